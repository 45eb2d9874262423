// Small shared helpers: kubectl-style human ages, a shared clock for ages that tick,
// the app's own #/ routes (every part encodeURIComponent'd: the only hrefs built from
// cluster data), and a few formatting helpers. No DOM, no network.

import { useEffect, useState } from "preact/hooks";

/** kubectl's HumanDuration: "45s", "5m10s", "2h", "3d4h", "400d", "2y30d". */
export function humanDuration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 ? `${m}m${s % 60}s` : `${m}m`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (h < 24 * 8) return h % 24 ? `${d}d${h % 24}h` : `${d}d`;
  if (h < 24 * 365 * 2) return `${d}d`;
  const y = Math.floor(d / 365);
  if (h < 24 * 365 * 8) return d % 365 ? `${y}y${d % 365}d` : `${y}y`;
  return `${y}y`;
}

export function age(timestamp, now = Date.now()) {
  if (!timestamp) return "<unknown>";
  return humanDuration(now - Date.parse(timestamp));
}

// One interval for the whole page; every <Age> subscribes to it.
const tickers = new Set();
setInterval(() => { const now = Date.now(); for (const fn of tickers) fn(now); }, 1000);

/** The current time, re-rendering the caller every second. */
export function useNow() {
  const [now, setNow] = useState(Date.now());
  useEffect(() => { tickers.add(setNow); return () => tickers.delete(setNow); }, []);
  return now;
}

const enc = encodeURIComponent;

export const routes = {
  overview: () => "#/",
  list: (res) => `#/r/${enc(res.group || "core")}/${enc(res.version)}/${enc(res.name)}`,
  detail: (res, ns, name) => `${routes.list(res)}/${enc(ns || "_")}/${enc(name)}`,
  edit: (res, ns, name) => `#/edit/${enc(res.group || "core")}/${enc(res.version)}/${enc(res.name)}/${enc(ns || "_")}/${enc(name)}`,
  create: () => "#/create",
  logs: (ns, pod) => `#/logs/${enc(ns)}/${enc(pod)}`,
  shell: (ns, pod) => `#/shell/${enc(ns)}/${enc(pod)}`,
};

export function navigate(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

/** Kubernetes quantities ("100m", "128Mi", "1G") as numbers (cores, bytes). */
export function parseQuantity(q) {
  if (q === undefined || q === null || q === "") return 0;
  const m = String(q).match(/^([0-9.]+)([a-zA-Z]*)$/);
  if (!m) return 0;
  const n = parseFloat(m[1]);
  const mult = { "": 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 }[m[2]];
  return n * (mult === undefined ? 1 : mult);
}

export function formatCpu(cores) {
  return cores < 1 && cores > 0 ? `${Math.round(cores * 1000)}m` : `${+cores.toFixed(2)}`;
}

export function formatBytes(b) {
  if (b >= 1024 ** 3) return `${+(b / 1024 ** 3).toFixed(1)}Gi`;
  if (b >= 1024 ** 2) return `${Math.round(b / 1024 ** 2)}Mi`;
  if (b >= 1024) return `${Math.round(b / 1024)}Ki`;
  return `${b}`;
}

/** The display string of an API error (Status message, else the error's text). */
export function errorText(err) {
  if (!err) return "";
  const code = err.status ? `${err.status}${err.reason ? " " + err.reason : ""}: ` : "";
  return `${code}${err.message}`;
}
