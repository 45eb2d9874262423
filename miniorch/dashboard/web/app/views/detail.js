// The detail page of one object, live: an object watch (fieldSelector
// metadata.name=<name>) feeds the summary, status, conditions and YAML; the events
// about it follow their own watch (involvedObject.uid); relations follow theirs
// (pods of a workload by its selector, a Deployment's ReplicaSets, a Service's
// Endpoints and pods, a Node's pods, a pod's node, the owner from ownerReferences).
// If the object disappears after we saw it, the page says it was deleted.
// Actions (Edit, Scale, Delete, Rollout restart/undo, Logs, Shell) are in actions.js.

import { html } from "htm/preact";
import { useMemo, useRef } from "preact/hooks";
import { dump } from "js-yaml";
import { pathFor, selectorString } from "../api.js";
import { Age, ErrorAlert, Labels, useLiveList } from "../components/common.js";
import { ResourceTable, byNsName, visibleColumns } from "../components/table.js";
import { EventsTable, sortEvents } from "../components/events.js";
import { Actions } from "./actions.js";
import { routes } from "../util.js";

const coreRes = (resources, name) => resources.find((r) => !r.group && r.name === name);

/** The object without managedFields (noise for people), for YAML display and editing. */
export function forDisplay(obj) {
  if (!obj) return obj;
  const { managedFields, ...meta } = obj.metadata || {};
  return { ...obj, metadata: meta };
}

function Field({ name, children }) {
  return html`<div class="field"><dt>${name}</dt><dd>${children}</dd></div>`;
}

function scalar(v) {
  return v === null || v === undefined || typeof v !== "object";
}

function StatusFields({ status }) {
  const entries = Object.entries(status || {}).filter(([k]) => k !== "conditions");
  if (!entries.length) return html`<p class="muted">No status fields.</p>`;
  return html`<dl class="fields">${entries.map(([k, v]) => html`<${Field} name=${k}>
    ${scalar(v) ? String(v) : html`<pre class="small">${dump(v, { lineWidth: -1 }).trimEnd()}</pre>`}
  </${Field}>`)}</dl>`;
}

function Conditions({ conditions }) {
  if (!conditions || !conditions.length) return null;
  return html`<section><h2>Conditions</h2><div class="table-wrap"><table>
    <thead><tr><th scope="col">Type</th><th scope="col">Status</th><th scope="col">Reason</th><th scope="col">Message</th><th scope="col">Last transition</th></tr></thead>
    <tbody>${conditions.map((c) => html`<tr aria-label=${c.type}>
      <td>${c.type}</td><td>${c.status}</td><td>${c.reason || ""}</td><td>${c.message || ""}</td>
      <td>${c.lastTransitionTime ? html`<${Age} ts=${c.lastTransitionTime} />` : ""}</td>
    </tr>`)}</tbody>
  </table></div></section>`;
}

function Events({ resources, obj, res }) {
  const evRes = coreRes(resources, "events");
  // Events of cluster-scoped objects (nodes) live in any namespace (kubelet uses "default").
  const path = evRes ? pathFor(evRes, res.namespaced ? obj.metadata.namespace : "") : null;
  const live = useLiveList(path, { fieldSelector: `involvedObject.uid=${obj.metadata.uid}` });
  const events = useMemo(() => sortEvents(live.items), [live.version]);
  return html`<section><h2>Events</h2><${ErrorAlert} error=${live.error} /><${EventsTable} events=${events} /></section>`;
}

/** A live Table of related objects (pods of a selector, a node's pods…). */
function Related({ title, res, namespace, params, filter }) {
  const live = useLiveList(res ? pathFor(res, namespace) : null, params, { table: true });
  const rows = useMemo(() => [...live.items.values()].filter(filter || (() => true)).sort(byNsName), [live.version]);
  const cols = useMemo(() => visibleColumns(live.columns, false), [live.columns]);
  if (!res) return null;
  return html`<section><h2>${title}</h2>
    <${ErrorAlert} error=${live.error} />
    ${live.listed && !rows.length && html`<p class="muted">None.</p>`}
    ${rows.length > 0 && html`<${ResourceTable} res=${res} rows=${rows} cols=${cols} showNs=${!namespace && res.namespaced} caption=${title} />`}
  </section>`;
}

function Owners({ resources, obj }) {
  const refs = obj.metadata.ownerReferences || [];
  if (!refs.length) return null;
  return html`<${Field} name="Controlled by">
    <ul class="plain">${refs.map((ref) => {
      const [g] = ref.apiVersion.includes("/") ? ref.apiVersion.split("/") : ["", ref.apiVersion];
      const r = resources.find((x) => x.group === g && x.kind === ref.kind);
      const label = `${ref.kind}/${ref.name}`;
      return html`<li>${r ? html`<a href=${routes.detail(r, obj.metadata.namespace, ref.name)}>${label}</a>` : label}</li>`;
    })}</ul>
  </${Field}>`;
}

function Relations({ resources, res, obj }) {
  const ns = obj.metadata.namespace;
  const pods = coreRes(resources, "pods");
  const spec = obj.spec || {};
  const out = [];
  if (res.kind === "Service") {
    const ep = coreRes(resources, "endpoints");
    out.push(html`<${Related} key="ep" title="Endpoints" res=${ep} namespace=${ns} params=${{ fieldSelector: `metadata.name=${obj.metadata.name}` }} />`);
    if (spec.selector && Object.keys(spec.selector).length) {
      out.push(html`<${Related} key="pods" title="Pods" res=${pods} namespace=${ns} params=${{ labelSelector: selectorString(spec.selector) }} />`);
    }
  } else if (res.kind === "Node") {
    out.push(html`<${Related} key="pods" title="Pods on this node" res=${pods} namespace="" params=${{ fieldSelector: `spec.nodeName=${obj.metadata.name}` }} />`);
  } else if (spec.selector && spec.template && res.kind !== "CronJob") {
    const sel = selectorString(spec.selector);
    if (res.kind === "Deployment") {
      const rs = resources.find((r) => r.group === "apps" && r.name === "replicasets");
      const owned = (row) => (row.object.metadata.ownerReferences || []).some((o) => o.uid === obj.metadata.uid);
      out.push(html`<${Related} key="rs" title="ReplicaSets" res=${rs} namespace=${ns} params=${{ labelSelector: sel }} filter=${owned} />`);
    }
    out.push(html`<${Related} key="pods" title="Pods" res=${pods} namespace=${ns} params=${{ labelSelector: sel }} />`);
  }
  return out;
}

function Summary({ resources, res, obj }) {
  const m = obj.metadata;
  const nodes = coreRes(resources, "nodes");
  return html`<dl class="fields">
    <${Field} name="Name">${m.name}</${Field}>
    ${res.namespaced && html`<${Field} name="Namespace">${m.namespace}</${Field}>`}
    <${Field} name="Age"><${Age} ts=${m.creationTimestamp} /></${Field}>
    <${Field} name="UID">${m.uid}</${Field}>
    ${m.deletionTimestamp && html`<${Field} name="Deleting">since <${Age} ts=${m.deletionTimestamp} /></${Field}>`}
    <${Field} name="Labels"><${Labels} labels=${m.labels} /></${Field}>
    <${Field} name="Annotations"><${Labels} labels=${m.annotations} /></${Field}>
    <${Owners} resources=${resources} obj=${obj} />
    ${res.kind === "Pod" && obj.spec && obj.spec.nodeName && html`<${Field} name="Node">
      ${nodes ? html`<a href=${routes.detail(nodes, "", obj.spec.nodeName)}>${obj.spec.nodeName}</a>` : obj.spec.nodeName}
    </${Field}>`}
  </dl>`;
}

export function DetailView({ res, resources, namespace, name }) {
  const live = useLiveList(pathFor(res, res.namespaced ? namespace : ""), { fieldSelector: `metadata.name=${name}` });
  const item = [...live.items.values()][0] || null;
  // Items of a LIST carry no apiVersion/kind (watch events do): put them back first.
  const obj = item && { apiVersion: res.groupVersion, kind: res.kind, ...item };
  const seen = useRef(false);
  if (obj) seen.current = true;
  const yaml = useMemo(() => (obj ? dump(forDisplay(obj), { lineWidth: -1 }) : ""), [obj && obj.metadata.resourceVersion]);
  const title = `${res.kind} ${name}`;

  return html`<section class="detail">
    <div class="page-head">
      <p class="crumbs"><a href=${routes.list(res)}>${res.title}</a>${res.namespaced && namespace ? ` · ${namespace}` : ""}</p>
      <h1>${title}</h1>
    </div>
    <${ErrorAlert} error=${live.error} />
    ${!obj && live.listed && html`<div class="empty">
      <p>${seen.current ? `This ${res.kind.toLowerCase()} was deleted.` : `No ${res.kind.toLowerCase()} named ${name}${res.namespaced ? ` in ${namespace}` : ""}.`}</p>
      <p><a href=${routes.list(res)}>All ${res.title}</a></p>
    </div>`}
    ${!obj && !live.listed && html`<p class="muted">Loading…</p>`}
    ${obj && html`
      <${Actions} res=${res} resources=${resources} obj=${obj} />
      <section><h2>Summary</h2><${Summary} resources=${resources} res=${res} obj=${obj} /></section>
      ${obj.status && html`<section><h2>Status</h2><${StatusFields} status=${obj.status} /></section>`}
      <${Conditions} conditions=${obj.status && obj.status.conditions} />
      <${Relations} resources=${resources} res=${res} obj=${obj} />
      <${Events} key=${obj.metadata.uid} resources=${resources} obj=${obj} res=${res} />
      <section><h2>YAML</h2><pre class="yaml">${yaml}</pre></section>
    `}
  </section>`;
}
