// What the pod views (logs, terminal) share: the pod's URL, its containers (fetched
// once, init containers last) with a picker, and the link back to the pod's page.

import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { request } from "../api.js";
import { routes } from "../util.js";

const PODS = { group: "", version: "v1", name: "pods" };

export function podPath(namespace, pod) {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}`;
}

/** [names, chosen, choose]: the pod's containers, the first one chosen; `onError(err)`. */
export function useContainers(namespace, pod, onError) {
  const [names, setNames] = useState([]);
  const [chosen, choose] = useState("");
  useEffect(() => {
    let live = true;
    request(podPath(namespace, pod)).then((obj) => {
      if (!live) return;
      const spec = obj.spec || {};
      const all = [...(spec.containers || []), ...(spec.initContainers || [])].map((c) => c.name);
      setNames(all);
      choose(all[0] || "");
    }, (err) => { if (live) onError(err); });
    return () => { live = false; };
  }, [namespace, pod]);
  return [names, chosen, choose];
}

export function ContainerSelect({ names, value, onChange }) {
  return html`<label>Container
    <select value=${value} onChange=${(e) => onChange(e.currentTarget.value)}>
      ${names.map((name) => html`<option value=${name}>${name}</option>`)}
    </select>
  </label>`;
}

export function BackToPod({ namespace, pod }) {
  return html`<a href=${routes.detail(PODS, namespace, pod)}>Back to pod ${pod}</a>`;
}
