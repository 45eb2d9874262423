// The page frame: header (title, "Menu" toggle on narrow windows, the "Namespace"
// select fed by a live namespace list, the "Create" button, the connection status),
// and the sidebar nav built from discovery: one link per listable resource (no
// subresources), grouped Workloads / Network / Config / Cluster, then one group per
// other API group (custom resources included), so a new kind needs no code here.

import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { connection, pathFor } from "../api.js";
import { navigate, routes } from "../util.js";
import { useLiveList } from "./common.js";

const SECTIONS = [
  ["Workloads", [["", "pods"], ["apps", "deployments"], ["apps", "replicasets"], ["", "replicationcontrollers"],
    ["apps", "statefulsets"], ["apps", "daemonsets"], ["batch", "jobs"], ["batch", "cronjobs"]]],
  ["Network", [["", "services"], ["", "endpoints"], ["discovery.k8s.io", "endpointslices"],
    ["networking.k8s.io", "ingresses"], ["networking.k8s.io", "networkpolicies"]]],
  ["Config", [["", "configmaps"], ["", "secrets"], ["", "serviceaccounts"], ["", "resourcequotas"], ["", "limitranges"]]],
  ["Cluster", [["", "nodes"], ["", "namespaces"], ["", "events"], ["", "persistentvolumes"], ["", "persistentvolumeclaims"]]],
];

/** [[heading, [resource…]]…] for the sidebar. */
export function navSections(resources) {
  const listable = resources.filter((r) => r.verbs.includes("list"));
  const used = new Set();
  const take = (g, n) => {
    const r = listable.find((x) => x.group === g && x.name === n);
    if (r) used.add(r);
    return r;
  };
  const out = SECTIONS.map(([title, keys]) => [title, keys.map(([g, n]) => take(g, n)).filter(Boolean)]);
  // Core kinds not named above go to Cluster; every other group gets its own heading.
  for (const r of listable) if (!r.group && !used.has(r)) { out[3][1].push(r); used.add(r); }
  const groups = new Map();
  for (const r of listable) {
    if (used.has(r)) continue;
    if (!groups.has(r.group)) groups.set(r.group, []);
    groups.get(r.group).push(r);
  }
  for (const g of [...groups.keys()].sort()) {
    out.push([g, groups.get(g).sort((a, b) => a.title.localeCompare(b.title))]);
  }
  return out.filter(([, list]) => list.length);
}

function ConnectionStatus() {
  const [state, setState] = useState(connection.get());
  useEffect(() => connection.subscribe(setState), []);
  const text = { live: "Live", reconnecting: "Reconnecting…", connecting: "Connecting…" }[state];
  return html`<span role="status" class=${`conn conn-${state}`}>${text}</span>`;
}

function NamespaceSelect({ resources, namespace, setNamespace }) {
  const nsRes = resources && resources.find((r) => !r.group && r.name === "namespaces");
  const { items } = useLiveList(nsRes ? pathFor(nsRes) : null, {});
  const names = [...items.values()].map((n) => n.metadata.name).sort();
  if (namespace && !names.includes(namespace)) names.unshift(namespace);
  return html`<label class="ns">
    <span>Namespace</span>
    <select value=${namespace} onChange=${(e) => setNamespace(e.currentTarget.value)}>
      <option value="">All namespaces</option>
      ${names.map((n) => html`<option value=${n}>${n}</option>`)}
    </select>
  </label>`;
}

function Sidebar({ resources, route, open }) {
  const current = route.view === "list" || route.view === "detail" ? `${route.group}/${route.resource}` : "";
  return html`<nav id="sidebar" class=${open ? "sidebar open" : "sidebar"} aria-label="Resources">
    <ul>
      <li><a href="#/" aria-current=${route.view === "overview" ? "page" : undefined}>Overview</a></li>
    </ul>
    ${resources && navSections(resources).map(([title, list]) => html`
      <h2>${title}</h2>
      <ul>${list.map((r) => html`<li>
        <a href=${routes.list(r)} aria-current=${current === `${r.group}/${r.name}` ? "page" : undefined}>${r.title}</a>
      </li>`)}</ul>`)}
  </nav>`;
}

export function Shell({ resources, namespace, setNamespace, route, discoveryError, children }) {
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => setMenuOpen(false), [JSON.stringify(route)]);
  return html`<div class="layout">
    <header class="header">
      <button type="button" class="menu-button" aria-expanded=${menuOpen ? "true" : "false"}
        aria-controls="sidebar" onClick=${() => setMenuOpen(!menuOpen)}>Menu</button>
      <a class="brand" href="#/">miniorch</a>
      <${NamespaceSelect} resources=${resources} namespace=${namespace} setNamespace=${setNamespace} />
      ${route.view !== "create" && html`<button type="button" class="primary" onClick=${() => navigate(routes.create())}>Create</button>`}
      <${ConnectionStatus} />
    </header>
    <${Sidebar} resources=${resources} route=${route} open=${menuOpen} />
    <main id="main" tabindex="-1" class="main">
      ${discoveryError && html`<div role="alert" class="alert"><p>Could not read the API's discovery: ${discoveryError.message}</p></div>`}
      ${children}
    </main>
  </div>`;
}
