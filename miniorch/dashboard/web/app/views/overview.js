// The overview (#/), all live: nodes (Ready, capacity, and what is allocated — pod
// count and summed container requests of the non-terminated pods bound to each,
// from a watch of all pods), the workloads of the selected namespace with
// ready/desired (RCs, ReplicaSets, Deployments, StatefulSets, DaemonSets, Jobs), and
// the most recent Warning events (fieldSelector type=Warning).

import { html } from "htm/preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { pathFor } from "../api.js";
import { Age, ErrorAlert, useLiveList } from "../components/common.js";
import { EventsTable, sortEvents } from "../components/events.js";
import { formatBytes, formatCpu, parseQuantity, routes } from "../util.js";

const WORKLOADS = [
  ["", "replicationcontrollers", (o) => [o.status?.readyReplicas || 0, o.spec?.replicas ?? 1]],
  ["apps", "replicasets", (o) => [o.status?.readyReplicas || 0, o.spec?.replicas ?? 1]],
  ["apps", "deployments", (o) => [o.status?.readyReplicas || 0, o.spec?.replicas ?? 1]],
  ["apps", "statefulsets", (o) => [o.status?.readyReplicas || 0, o.spec?.replicas ?? 1]],
  ["apps", "daemonsets", (o) => [o.status?.numberReady || 0, o.status?.desiredNumberScheduled || 0]],
  ["batch", "jobs", (o) => [o.status?.succeeded || 0, o.spec?.completions ?? 1]],
];

const find = (resources, g, n) => resources.find((r) => r.group === g && r.name === n);

function podRequests(pod) {
  let cpu = 0, mem = 0;
  for (const c of pod.spec?.containers || []) {
    const req = c.resources?.requests || {};
    cpu += parseQuantity(req.cpu);
    mem += parseQuantity(req.memory);
  }
  return { cpu, mem };
}

function Nodes({ resources }) {
  const nodes = useLiveList(pathFor(find(resources, "", "nodes")), {});
  const pods = useLiveList(pathFor(find(resources, "", "pods")), {});
  const alloc = useMemo(() => {
    const by = new Map();
    for (const p of pods.items.values()) {
      const node = p.spec?.nodeName;
      if (!node || p.status?.phase === "Succeeded" || p.status?.phase === "Failed") continue;
      const a = by.get(node) || { pods: 0, cpu: 0, mem: 0 };
      const r = podRequests(p);
      a.pods++; a.cpu += r.cpu; a.mem += r.mem;
      by.set(node, a);
    }
    return by;
  }, [pods.version]);
  const list = [...nodes.items.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  const nodeRes = find(resources, "", "nodes");
  return html`<section aria-labelledby="ov-nodes"><h2 id="ov-nodes">Nodes</h2>
    <${ErrorAlert} error=${nodes.error || pods.error} />
    ${nodes.listed && !list.length && html`<p class="empty">No nodes.</p>`}
    ${list.length > 0 && html`<div class="table-wrap"><table>
      <thead><tr><th scope="col">Name</th><th scope="col">Ready</th><th scope="col">Pods</th><th scope="col">CPU requested</th><th scope="col">Memory requested</th><th scope="col">Age</th></tr></thead>
      <tbody>${list.map((n) => {
        const ready = (n.status?.conditions || []).find((c) => c.type === "Ready");
        const cap = n.status?.capacity || {};
        const a = alloc.get(n.metadata.name) || { pods: 0, cpu: 0, mem: 0 };
        return html`<tr aria-label=${n.metadata.name}>
          <td><a href=${routes.detail(nodeRes, "", n.metadata.name)}>${n.metadata.name}</a></td>
          <td class=${ready?.status === "True" ? "ok" : "bad"}>${ready ? (ready.status === "True" ? "Ready" : "NotReady") : "Unknown"}</td>
          <td>${a.pods} / ${cap.pods || "?"}</td>
          <td>${formatCpu(a.cpu)} / ${cap.cpu || "?"}</td>
          <td>${formatBytes(a.mem)} / ${cap.memory ? formatBytes(parseQuantity(cap.memory)) : "?"}</td>
          <td><${Age} ts=${n.metadata.creationTimestamp} /></td>
        </tr>`;
      })}</tbody>
    </table></div>`}
  </section>`;
}

function WorkloadRows({ res, namespace, counts, onCount }) {
  const live = useLiveList(pathFor(res, namespace), {});
  const list = [...live.items.values()].sort((a, b) =>
    (a.metadata.namespace || "").localeCompare(b.metadata.namespace || "") || a.metadata.name.localeCompare(b.metadata.name));
  // The parent shows an empty state only once every kind has listed none.
  useEffect(() => onCount(res.name, live.listed ? list.length : undefined), [live.listed, list.length]);
  return list.map((o) => {
    const [ready, desired] = counts(o);
    return html`<tr aria-label=${o.metadata.name}>
      <td>${res.kind}</td>
      <td><a href=${routes.detail(res, o.metadata.namespace, o.metadata.name)}>${o.metadata.name}</a></td>
      ${!namespace && html`<td>${o.metadata.namespace}</td>`}
      <td class=${ready >= desired ? "ok" : "warn"}>${ready}/${desired}</td>
      <td><${Age} ts=${o.metadata.creationTimestamp} /></td>
    </tr>`;
  });
}

function Workloads({ resources, namespace }) {
  const kinds = WORKLOADS.map(([g, n, counts]) => [find(resources, g, n), counts]).filter(([r]) => r);
  const [listed, setListed] = useState({});
  const onCount = (name, n) => setListed((prev) => (prev[name] === n ? prev : { ...prev, [name]: n }));
  const none = kinds.length > 0 && kinds.every(([r]) => listed[r.name] === 0);
  return html`<section aria-labelledby="ov-workloads"><h2 id="ov-workloads">Workloads${namespace ? ` in ${namespace}` : ""}</h2>
    ${none && html`<p class="empty">No workloads${namespace ? ` in ${namespace}` : ""} yet. Create a Deployment
      with the Create button, or <code>kubectl create deployment web --image=kubia</code>.</p>`}
    <div class="table-wrap" hidden=${none}><table>
      <thead><tr><th scope="col">Kind</th><th scope="col">Name</th>${!namespace && html`<th scope="col">Namespace</th>`}<th scope="col">Ready</th><th scope="col">Age</th></tr></thead>
      <tbody>${kinds.map(([r, counts]) => html`<${WorkloadRows} key=${r.name} res=${r} namespace=${namespace} counts=${counts} onCount=${onCount} />`)}</tbody>
    </table></div>
  </section>`;
}

function Warnings({ resources, namespace }) {
  const live = useLiveList(pathFor(find(resources, "", "events"), namespace), { fieldSelector: "type=Warning" });
  const events = useMemo(() => sortEvents(live.items).slice(0, 20), [live.version]);
  return html`<section aria-labelledby="ov-warnings"><h2 id="ov-warnings">Recent warnings</h2>
    <${ErrorAlert} error=${live.error} />
    ${live.listed && !events.length ? html`<p class="muted">No warnings${namespace ? ` in ${namespace}` : ""}. All quiet.</p>`
      : html`<${EventsTable} events=${events} showObject=${true} />`}
  </section>`;
}

export function Overview({ resources, namespace }) {
  // Discovery may still be arriving group by group: wait for the core group.
  if (!find(resources, "", "nodes") || !find(resources, "", "events")) return html`<p class="muted">Discovering the API…</p>`;
  return html`<section class="overview">
    <div class="page-head"><h1>Overview</h1></div>
    <${Nodes} resources=${resources} />
    <${Workloads} resources=${resources} namespace=${namespace} />
    <${Warnings} resources=${resources} namespace=${namespace} />
  </section>`;
}
