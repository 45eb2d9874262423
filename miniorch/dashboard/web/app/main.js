// Boot and routing. Paints the shell at once (header, sidebar, connection status),
// starts discovery (cached in sessionStorage, refreshed in the background) and picks
// the view from location.hash:
//   #/                                        overview
//   #/r/<group|core>/<version>/<resource>     list
//   #/r/<group|core>/<version>/<resource>/<namespace|_>/<name>   detail
//   #/edit/<group|core>/<version>/<resource>/<namespace|_>/<name> YAML editor (PUT)
//   #/create                                  YAML editor (POST)
//   #/logs/<ns>/<pod>, #/shell/<ns>/<pod>     the lead's LogsView / ShellView
// The selected namespace ("" = all) lives here and in sessionStorage.

import { html, render } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { discover, discoveryNow, onDiscovery, findResource, pathFor, rediscover } from "./api.js";
import { useLiveList } from "./components/common.js";
import { Shell } from "./components/shell.js";
import { Overview } from "./views/overview.js";
import { ListView } from "./views/list.js";
// Imported here too (they are deduplicated) so the browser fetches the whole first
// page's module graph in one wave instead of one level at a time.
import "./util.js";
import "./components/common.js";
import "./components/table.js";
import "./components/events.js";

// Pages that need js-yaml or xterm.js load on first use (and are prefetched once idle).
const loadDetail = () => import("./views/detail.js");
const loadEditor = () => import("./views/editor.js");

const NS_KEY = "miniorch.namespace";

export function parseRoute(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter((p) => p !== "").map(decodeURIComponent);
  const gv = (g, v) => ({ group: g === "core" ? "" : g, version: v });
  if (parts[0] === "r" && parts.length >= 4) {
    const base = { ...gv(parts[1], parts[2]), resource: parts[3] };
    if (parts.length >= 6) return { view: "detail", ...base, namespace: parts[4] === "_" ? "" : parts[4], name: parts[5] };
    return { view: "list", ...base };
  }
  if (parts[0] === "edit" && parts.length >= 6) {
    return { view: "edit", ...gv(parts[1], parts[2]), resource: parts[3], namespace: parts[4] === "_" ? "" : parts[4], name: parts[5] };
  }
  if (parts[0] === "create") return { view: "create" };
  if ((parts[0] === "logs" || parts[0] === "shell") && parts.length >= 3) {
    return { view: parts[0], namespace: parts[1], pod: parts[2] };
  }
  return { view: "overview" };
}

function useHash() {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return hash;
}

function App() {
  const hash = useHash();
  const route = parseRoute(hash);
  const [disc, setDisc] = useState(discoveryNow);
  const [discoveryError, setDiscoveryError] = useState(null);
  const [namespace, setNs] = useState(() => sessionStorage.getItem(NS_KEY) ?? "default");
  const setNamespace = (ns) => { sessionStorage.setItem(NS_KEY, ns); setNs(ns); };

  useEffect(() => {
    const off = onDiscovery((resources, complete) => setDisc({ resources, complete }));
    discover(parseRoute(location.hash)).then(() => setDisc(discoveryNow()), setDiscoveryError);
    const idle = setTimeout(() => { loadDetail(); loadEditor(); }, 1000);
    return () => { off(); clearTimeout(idle); };
  }, []);
  const { resources, complete } = disc;
  useCustomKinds(resources);

  // Move focus to the main region on navigation so keyboard/screen-reader users land there.
  useEffect(() => {
    const main = document.getElementById("main");
    if (main && document.activeElement === document.body) main.focus({ preventScroll: true });
  }, [hash]);

  const ctx = { resources, complete, namespace, setNamespace };
  return html`<${Shell} ...${ctx} route=${route} discoveryError=${discoveryError}>
    ${resources ? html`<${View} route=${route} ...${ctx} />` : html`<p class="muted">Discovering the API…</p>`}
  </${Shell}>`;
}

/** New kinds appear with no reload: a CRD added, changed or removed re-reads discovery. */
function useCustomKinds(resources) {
  const crds = resources && resources.find((r) => r.group === "apiextensions.k8s.io" && r.name === "customresourcedefinitions");
  const live = useLiveList(crds ? pathFor(crds) : null, {});
  const seen = useRef(null);
  const signature = [...live.items.values()].map((c) => `${c.metadata.name}@${(c.status?.acceptedNames || {}).plural || ""}`).sort().join(",");
  useEffect(() => {
    if (!live.listed) return undefined;
    if (seen.current === null || seen.current === signature) { seen.current = signature; return undefined; }
    seen.current = signature;
    const t = setTimeout(rediscover, 300); // the API serves a new CRD's group a moment later
    return () => clearTimeout(t);
  }, [live.listed, signature]);
}

function View({ route, resources, complete, namespace, setNamespace }) {
  const find = () => findResource(resources, route.group, route.version, route.resource);
  const Unknown = complete ? NotFound : Discovering;
  switch (route.view) {
    case "list": {
      const res = find();
      if (!res) return html`<${Unknown} route=${route} />`;
      return html`<${ListView} key=${res.groupVersion + res.name} res=${res} resources=${resources} namespace=${namespace} />`;
    }
    case "detail": {
      const res = find();
      if (!res) return html`<${Unknown} route=${route} />`;
      return html`<${Lazy} key=${hashKey(route)} load=${loadDetail} exportName="DetailView" res=${res} resources=${resources} namespace=${route.namespace} name=${route.name} />`;
    }
    case "edit": {
      const res = find();
      if (!res) return html`<${Unknown} route=${route} />`;
      return html`<${Lazy} key=${"edit" + hashKey(route)} load=${loadEditor} exportName="EditorView" mode="edit" res=${res} resources=${resources} namespace=${route.namespace} name=${route.name} />`;
    }
    case "create":
      return html`<${Lazy} key="create" load=${loadEditor} exportName="EditorView" mode="create" resources=${resources} namespace=${namespace} />`;
    case "logs":
      return html`<${Lazy} key=${hashKey(route)} load=${() => import("./views/logs.js")} exportName="LogsView" namespace=${route.namespace} pod=${route.pod} />`;
    case "shell":
      return html`<${Lazy} key=${hashKey(route)} load=${() => import("./views/terminal.js")} exportName="ShellView" namespace=${route.namespace} pod=${route.pod} />`;
    default:
      return html`<${Overview} resources=${resources} namespace=${namespace} setNamespace=${setNamespace} />`;
  }
}

/** A view from a module loaded on first use (views/terminal.js pulls in xterm.js). */
function Lazy({ load, exportName, ...props }) {
  const [mod, setMod] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => { load().then(setMod, setError); }, []);
  if (error) return html`<div role="alert" class="alert"><p>Could not load this view: ${error.message}</p></div>`;
  if (!mod) return html`<p class="muted">Loading…</p>`;
  const V = mod[exportName];
  return html`<${V} ...${props} />`;
}

const hashKey = (route) => JSON.stringify(route);

const Discovering = () => html`<p class="muted">Discovering the API…</p>`;

function NotFound({ route }) {
  const what = `${route.group ? route.group + "/" : ""}${route.version}/${route.resource}`;
  return html`<section><h1>Not found</h1><p>The API serves no resource ${what}.</p>
    <p><a href="#/">Back to the overview</a></p></section>`;
}

const root = document.getElementById("app");
root.textContent = ""; // the static "Loading miniorch…" placeholder
render(html`<${App} />`, root);
// Tells app/boot.js's watchdog that every module loaded.
window.__miniorchBooted = true;
window.dispatchEvent(new Event("miniorch:booted"));
