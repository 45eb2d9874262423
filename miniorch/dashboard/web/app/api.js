// The page's only door to the cluster: the Kubernetes REST API, same origin (the
// dashboard server proxies /api, /apis, /version with the session's credentials).
//
// Data flow: `request()` wraps fetch and turns a non-2xx answer into an ApiError
// carrying the server's Status (code, reason, message, details.causes). `discover()`
// reads /api, /api/v1, /apis and every group's preferred version in parallel into a
// Resource list, cached in sessionStorage and refreshed in the background. `pathFor()`
// builds a URL for a resource/namespace/name/subresource. `liveList()` is LIST then
// WATCH: it keeps a Map keyed by metadata.uid, resumes a broken watch from the last
// resourceVersion it saw (backoff), re-lists only on 410 Gone, and hands the map to
// its caller at most once per animation frame. `connection` aggregates every running
// watch into "live" / "reconnecting" / "connecting" for the header's indicator.

export const TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/** An API error: `status` is the HTTP status, `body` the Kubernetes Status if any. */
export class ApiError extends Error {
  constructor(status, body, fallback) {
    super((body && body.message) || fallback || `HTTP ${status}`);
    this.status = status;
    this.body = body || null;
    this.reason = (body && body.reason) || "";
    this.causes = (body && body.details && body.details.causes) || [];
  }
}

/** fetch a JSON document; throws ApiError (status 0 for a network failure). */
export async function request(path, { method = "GET", body, contentType, accept, signal } = {}) {
  const headers = { Accept: accept || "application/json" };
  let payload;
  if (body !== undefined) {
    headers["Content-Type"] = contentType || "application/json";
    payload = typeof body === "string" ? body : JSON.stringify(body);
  }
  let resp;
  // A read that fails on the network is tried again: Chromium aborts requests in flight
  // whenever the host's network changes, which on a miniorch host is every pod start.
  // Writes are not: whether they reached the server is unknown.
  const attempts = method === "GET" || method === "HEAD" ? 3 : 1;
  for (let attempt = 1; ; attempt++) {
    try {
      resp = await fetch(path, { method, headers, body: payload, signal, credentials: "same-origin" });
      break;
    } catch (err) {
      if (err.name === "AbortError") throw err;
      if (attempt >= attempts) throw new ApiError(0, null, `network error: ${err.message}`);
      await new Promise((r) => setTimeout(r, 150 * attempt));
    }
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) {
    throw new ApiError(resp.status, data && data.kind === "Status" ? data : null,
      `${resp.status} ${resp.statusText}${text && !data ? ": " + text.slice(0, 200) : ""}`);
  }
  return data;
}

// ---------------------------------------------------------------- discovery

const CACHE_KEY = "miniorch.discovery.v1";

/** "networkpolicies" + "NetworkPolicy" → "NetworkPolicies" (the kind's casing). */
export function pluralTitle(plural, kind) {
  const lk = kind.toLowerCase();
  let p = 0;
  while (p < lk.length && p < plural.length && lk[p] === plural[p]) p++;
  // A plural that is not the kind's own (metrics.k8s.io serves PodMetrics as "pods"):
  // the kind's name says what it is, and keeps it apart from core Pods.
  if (p < lk.length - 1) return kind;
  return kind.slice(0, p) + plural.slice(p);
}

function resourcesOf(group, version, list) {
  const subs = new Map();
  for (const r of list.resources || []) {
    const [base, sub] = r.name.split("/");
    if (sub) (subs.get(base) || subs.set(base, []).get(base)).push(sub);
  }
  return (list.resources || []).filter((r) => !r.name.includes("/")).map((r) => ({
    group, version, groupVersion: group ? `${group}/${version}` : version,
    name: r.name, kind: r.kind, namespaced: !!r.namespaced, verbs: r.verbs || [],
    shortNames: r.shortNames || [], categories: r.categories || [],
    title: pluralTitle(r.name, r.kind), subresources: subs.get(r.name) || [],
  }));
}

/**
 * Discovery, calling onProgress(resourcesSoFar) as each group version arrives. The
 * group version the page shows first (`first`) is asked for at once and the other
 * groups a moment after it arrived, so the first list is not queued behind them
 * (a browser sends at most six requests at a time to one host).
 */
async function fetchDiscovery(onProgress, first) {
  const out = [];
  const seen = new Set();
  const add = (group, version, list) => {
    const key = `${group}/${version}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push(...resourcesOf(group, version, list));
    onProgress([...out]);
  };
  const fetchGroup = (g, v) => request(`/apis/${g}/${v}`).then((l) => add(g, v, l))
    .catch(() => {}); // one broken group must not hide the others
  const core = request("/api/v1").then((l) => add("", "v1", l));
  const firstGroup = first && first.group ? fetchGroup(first.group, first.version) : core;
  const groups = request("/apis");
  await Promise.all([firstGroup.catch(() => {}), groups.catch(() => {})]);
  await new Promise((r) => setTimeout(r, 30)); // let the first page send its list
  const list = await groups;
  await Promise.all([core, ...(list.groups || []).map((g) => {
    const v = g.preferredVersion || g.versions[0];
    return seen.has(`${g.name}/${v.version}`) ? null : fetchGroup(g.name, v.version);
  })]);
  return out;
}

let discovery = null; // { resources, complete, promise }
const discoveryListeners = new Set();

function publish(resources, complete) {
  discovery.resources = resources;
  discovery.complete = complete;
  for (const fn of discoveryListeners) fn(resources, complete);
}

function refreshDiscovery(first) {
  return fetchDiscovery((partial) => { if (!discovery.complete) publish(partial, false); }, first)
    .then((resources) => {
      sessionStorage.setItem(CACHE_KEY, JSON.stringify(resources));
      publish(resources, true);
      return resources;
    });
}

/**
 * Start discovery once: from the sessionStorage cache at once when there is one
 * (refreshed in the background a little later, so it never competes with the first
 * list), else from the server, group by group, `first` ({group, version}: what
 * the page shows) first. Resolves with the complete list.
 */
export function discover(first) {
  if (discovery) return discovery.promise;
  let cached = null;
  try { cached = JSON.parse(sessionStorage.getItem(CACHE_KEY) || "null"); } catch { cached = null; }
  discovery = { resources: cached, complete: !!cached, promise: null };
  if (cached) {
    discovery.promise = Promise.resolve(cached);
    setTimeout(() => refreshDiscovery().catch(() => {}), 1500);
  } else {
    discovery.promise = refreshDiscovery(first);
  }
  return discovery.promise;
}

/** Re-read discovery now (a CustomResourceDefinition came or went). */
export function rediscover() {
  if (!discovery) return discover();
  return refreshDiscovery().catch(() => discovery.resources);
}

/** Current discovery: { resources (null before any), complete }. */
export function discoveryNow() {
  return discovery ? { resources: discovery.resources, complete: discovery.complete } : { resources: null, complete: false };
}

/** Called with (resources, complete) whenever discovery progresses or is refreshed. */
export function onDiscovery(fn) {
  discoveryListeners.add(fn);
  return () => discoveryListeners.delete(fn);
}

export function findResource(resources, group, version, name) {
  return resources.find((r) => r.group === group && r.version === version && r.name === name)
    || resources.find((r) => r.group === group && r.name === name);
}

/** The resource serving apiVersion+kind; asks the server for a non-preferred version. */
export async function resourceForKind(resources, apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  let found = resources.find((r) => r.group === group && r.version === version && r.kind === kind);
  if (found) return found;
  try {
    const list = await request(group ? `/apis/${group}/${version}` : `/api/${version}`);
    found = resourcesOf(group, version, list).find((r) => r.kind === kind);
  } catch { found = null; }
  return found || null;
}

const enc = encodeURIComponent;

/** The URL of a collection, an object, or an object's subresource. */
export function pathFor(res, namespace, name, sub) {
  let p = res.group ? `/apis/${res.group}/${res.version}` : `/api/${res.version}`;
  if (res.namespaced && namespace) p += `/namespaces/${enc(namespace)}`;
  p += `/${res.name}`;
  if (name) p += `/${enc(name)}`;
  if (sub) p += `/${sub}`;
  return p;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

// ---------------------------------------------------------------- connection state

const watchStates = new Map(); // id → "connecting" | "live" | "reconnecting"
const connListeners = new Set();
let nextWatchId = 1;

function aggregate() {
  const states = [...watchStates.values()];
  if (states.includes("reconnecting")) return "reconnecting";
  if (states.includes("connecting")) return "connecting";
  return "live";
}

function setWatchState(id, state) {
  if (state === null) watchStates.delete(id); else watchStates.set(id, state);
  const a = aggregate();
  for (const fn of connListeners) fn(a);
}

export const connection = {
  get: aggregate,
  subscribe(fn) { connListeners.add(fn); return () => connListeners.delete(fn); },
};

// ---------------------------------------------------------------- list + watch

const uidOf = (item, table) => (table ? item.object.metadata.uid : item.metadata.uid);
const rvOf = (item, table) => (table ? item.object && item.object.metadata.resourceVersion : item.metadata.resourceVersion);

/** Read a newline-delimited JSON stream, calling onEvent for every line. */
async function readEvents(resp, onEvent) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) onEvent(JSON.parse(line));
    }
  }
  if (buf.trim()) onEvent(JSON.parse(buf));
}

class Gone extends Error {}
class NoSocket extends Error {}

// null: not known yet; false: this server answers WebSocket watches with no upgrade.
let socketWatch = null;

/**
 * LIST then WATCH `path` (a collection URL) with `params` (labelSelector, fieldSelector).
 * `onChange({ items: Map, columns, resourceVersion, error })` is called at most once per
 * animation frame after changes. With `table`, items are Table rows (row.object is the
 * PartialObjectMetadata) and `columns` the column definitions. Returns stop().
 */
export function liveList(path, { params = {}, table = false, onChange }) {
  const id = nextWatchId++;
  const items = new Map();
  const state = { items, columns: [], resourceVersion: "", error: null, listed: false, version: 0, membership: 0 };
  let ctl = null;
  let stopped = false;
  let frame = 0;
  const accept = table ? TABLE_ACCEPT : "application/json";

  const flush = () => { frame = 0; if (!stopped) onChange({ ...state }); };
  const changed = () => {
    state.version++;
    if (frame) return;
    // rAF does not run in hidden tabs; a timeout keeps hidden pages current too.
    frame = document.hidden ? setTimeout(flush, 250) : requestAnimationFrame(flush);
  };

  const apply = (ev) => {
    // An ERROR event (410 Expired, or anything else) ends this watch's history: re-list.
    if (ev.type === "ERROR") throw new Gone();
    const obj = ev.object;
    if (ev.type === "BOOKMARK") {
      state.resourceVersion = obj.metadata.resourceVersion;
      return;
    }
    const rows = table ? obj.rows || [] : [obj];
    if (table && obj.columnDefinitions && obj.columnDefinitions.length && !state.columns.length) {
      state.columns = obj.columnDefinitions;
    }
    for (const row of rows) {
      const uid = uidOf(row, table);
      if (ev.type === "DELETED") { if (items.delete(uid)) state.membership++; } else {
        if (!items.has(uid)) state.membership++;
        items.set(uid, row);
      }
      const rv = rvOf(row, table);
      if (rv) state.resourceVersion = rv;
    }
    changed();
  };

  async function list() {
    const data = await request(path + query(params), { accept, signal: ctl.signal });
    items.clear();
    for (const it of (table ? data.rows : data.items) || []) items.set(uidOf(it, table), it);
    if (table) state.columns = data.columnDefinitions || [];
    state.resourceVersion = data.metadata.resourceVersion;
    state.listed = true;
    state.error = null;
    state.membership++;
    state.version++;
    // The first paint of a list is not worth waiting a frame for: render now.
    if (frame) { cancelAnimationFrame(frame); clearTimeout(frame); }
    flush();
  }

  const watchUrl = () => path + query({ ...params, watch: "1", resourceVersion: state.resourceVersion, allowWatchBookmarks: "true" });

  // Chunked watch over fetch: the only way to ask for Table rows (an Accept header).
  async function watchFetch(onConnected) {
    let resp;
    try {
      resp = await fetch(watchUrl(), { headers: { Accept: accept }, signal: ctl.signal, credentials: "same-origin" });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, null, `network error: ${err.message}`);
    }
    if (resp.status === 410) throw new Gone();
    if (!resp.ok) {
      let body = null;
      try { body = await resp.json(); } catch { body = null; }
      throw new ApiError(resp.status, body);
    }
    connected();
    if (onConnected) onConnected();
    await readEvents(resp, apply);
  }

  // Watch over a WebSocket (one message per event): does not hold one of the
  // browser's six HTTP/1.1 connections per host, so a page can follow many lists.
  function watchSocket() {
    return new Promise((resolve, reject) => {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(`${scheme}//${location.host}${watchUrl()}`);
      let opened = false;
      let failure = null;
      const abort = () => ws.close();
      ctl.signal.addEventListener("abort", abort);
      ws.onopen = () => { opened = true; connected(); };
      ws.onmessage = (m) => {
        if (failure) return;
        try { apply(JSON.parse(m.data)); } catch (err) { failure = err; ws.close(); }
      };
      ws.onclose = (e) => {
        ctl.signal.removeEventListener("abort", abort);
        if (ctl.signal.aborted) reject(new DOMException("aborted", "AbortError"));
        else if (failure) reject(failure);
        else if (!opened) reject(new NoSocket());
        else if (!e.wasClean && e.code !== 1000) reject(new ApiError(0, null, "connection lost"));
        else resolve();
      };
    });
  }

  async function watchOnce() {
    if (table || socketWatch === false) return watchFetch();
    try {
      await watchSocket();
    } catch (err) {
      if (!(err instanceof NoSocket)) throw err;
      // The server may not serve watches over WebSockets: try a chunked watch, and
      // if that works, stop trying sockets for this page.
      await watchFetch(() => { socketWatch = false; });
    }
  }

  function connected() {
    if (state.error) { state.error = null; changed(); }
    setWatchState(id, "live");
  }

  async function run() {
    let delay = 0;
    let needList = true;
    let relists = 0;
    setWatchState(id, "connecting");
    const pause = (ms) => new Promise((r) => setTimeout(r, ms));
    while (!stopped) {
      const started = Date.now();
      try {
        if (needList) { await list(); needList = false; }
        await watchOnce();
        // A watch that ended cleanly (server timeout) resumes at once from the last
        // resourceVersion; one that ends as soon as it starts is not retried in a spin.
        delay = 0;
        if (Date.now() - started < 1000) await pause(1000);
      } catch (err) {
        if (stopped || err.name === "AbortError") break;
        if (err instanceof Gone) {
          needList = true;
          if (Date.now() - started > 5000) relists = 0;
          // A server that keeps ending watches at once must not make us spin.
          if (++relists > 2) await pause(1000);
          if (!stopped) ctl = new AbortController();
          continue;
        }
        // A lost connection or an error status: say so, and retry the watch from the
        // last resourceVersion (not a re-list) with exponential backoff.
        state.error = err;
        changed();
        setWatchState(id, "reconnecting");
        delay = Math.min(delay ? delay * 2 : 500, 10000);
        await pause(delay);
      }
      if (!stopped) ctl = new AbortController();
    }
  }

  ctl = new AbortController();
  run();
  return function stop() {
    stopped = true;
    if (frame) { cancelAnimationFrame(frame); clearTimeout(frame); }
    ctl.abort();
    setWatchState(id, null);
  };
}

// ---------------------------------------------------------------- selectors

/** A LabelSelector (or an RC's plain map) as a labelSelector query string. */
export function selectorString(sel) {
  if (!sel) return "";
  const parts = [];
  const labels = sel.matchLabels || sel.matchExpressions ? sel.matchLabels || {} : sel;
  for (const [k, v] of Object.entries(labels)) parts.push(`${k}=${v}`);
  for (const e of sel.matchExpressions || []) {
    const vals = (e.values || []).join(",");
    if (e.operator === "In") parts.push(`${e.key} in (${vals})`);
    else if (e.operator === "NotIn") parts.push(`${e.key} notin (${vals})`);
    else if (e.operator === "Exists") parts.push(e.key);
    else if (e.operator === "DoesNotExist") parts.push(`!${e.key}`);
  }
  return parts.join(",");
}
