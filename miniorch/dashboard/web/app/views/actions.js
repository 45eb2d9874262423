// The action bar of a detail page. Which buttons show comes from discovery (verbs,
// a "<resource>/scale" subresource) and the kind: "Edit" (→ #/edit/…), "Scale"
// (dialog, PATCH …/scale merge-patch), "Delete" (dialog with "Cascade", DELETE with
// DeleteOptions), Deployments' "Rollout restart" / "Rollout undo" (as kubectl does
// them, and refused on a paused Deployment as kubectl refuses them), pods' "Logs" /
// "Shell" (→ the lead's views). Every failure is shown in a role="alert" region; the
// live object watch shows every success.

import { html } from "htm/preact";
import { useState } from "preact/hooks";
import { request, pathFor, selectorString } from "../api.js";
import { Dialog, ErrorAlert } from "../components/common.js";
import { navigate, routes } from "../util.js";

const MERGE = "application/merge-patch+json";
const JSON_PATCH = "application/json-patch+json";

function ScaleDialog({ res, obj, onClose }) {
  const [replicas, setReplicas] = useState(String(obj.spec && obj.spec.replicas !== undefined ? obj.spec.replicas : 1));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    try {
      await request(pathFor(res, obj.metadata.namespace, obj.metadata.name, "scale"), {
        method: "PATCH", contentType: MERGE, body: { spec: { replicas: Number(replicas) } },
      });
      onClose();
    } catch (err) { setError(err); setBusy(false); }
  };
  return html`<${Dialog} title=${`Scale ${res.kind.toLowerCase()} ${obj.metadata.name}`} onClose=${onClose}>
    <form onSubmit=${submit}>
      <label>Replicas <input type="number" min="0" step="1" required value=${replicas}
        onInput=${(e) => setReplicas(e.currentTarget.value)} /></label>
      <${ErrorAlert} error=${error} />
      <div class="buttons">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${busy}>Scale</button>
      </div>
    </form>
  </${Dialog}>`;
}

function DeleteDialog({ res, obj, onClose }) {
  const [policy, setPolicy] = useState("Background");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const m = obj.metadata;
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    try {
      await request(pathFor(res, m.namespace, m.name), {
        method: "DELETE", body: { kind: "DeleteOptions", apiVersion: "v1", propagationPolicy: policy },
      });
      onClose();
      navigate(routes.list(res));
    } catch (err) { setError(err); setBusy(false); }
  };
  const what = `${res.kind.toLowerCase()} ${m.namespace ? m.namespace + "/" : ""}${m.name}`;
  return html`<${Dialog} title=${`Delete ${what}?`} onClose=${onClose}>
    <form onSubmit=${submit}>
      <p>This deletes the ${res.kind} <strong>${m.name}</strong>${m.namespace ? ` in namespace ${m.namespace}` : ""}.</p>
      <label>Cascade <select value=${policy} onChange=${(e) => setPolicy(e.currentTarget.value)}>
        <option value="Background">Background</option>
        <option value="Foreground">Foreground</option>
        <option value="Orphan">Orphan</option>
      </select></label>
      <p class="muted small">Background: delete now, dependents after. Foreground: dependents first. Orphan: keep dependents.</p>
      <${ErrorAlert} error=${error} />
      <div class="buttons">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="danger" disabled=${busy}>Delete</button>
      </div>
    </form>
  </${Dialog}>`;
}

// kubectl refuses to restart or undo a paused Deployment (the controller would not act
// on the new template until a resume, so the click would seem to do nothing): so do we.
function refuseIfPaused(obj, what) {
  if (obj.spec && obj.spec.paused) {
    throw new Error(`can't ${what} paused deployment ${obj.metadata.name} (run kubectl rollout resume first)`);
  }
}

async function rolloutRestart(res, obj) {
  refuseIfPaused(obj, "restart");
  await request(pathFor(res, obj.metadata.namespace, obj.metadata.name), {
    method: "PATCH", contentType: MERGE,
    body: { spec: { template: { metadata: { annotations: { "kubectl.kubernetes.io/restartedAt": new Date().toISOString() } } } } },
  });
}

const REVISION = "deployment.kubernetes.io/revision";

/** kubectl rollout undo: the owned ReplicaSet of the previous revision's template. */
async function rolloutUndo(resources, res, obj) {
  refuseIfPaused(obj, "undo");
  const rsRes = resources.find((r) => r.group === "apps" && r.name === "replicasets");
  const list = await request(pathFor(rsRes, obj.metadata.namespace) + `?labelSelector=${encodeURIComponent(selectorString(obj.spec.selector))}`);
  const owned = list.items.filter((rs) => (rs.metadata.ownerReferences || []).some((o) => o.uid === obj.metadata.uid));
  const rev = (o) => Number((o.metadata.annotations || {})[REVISION] || 0);
  const current = rev(obj);
  const older = owned.filter((rs) => rev(rs) > 0 && rev(rs) < current).sort((a, b) => rev(b) - rev(a));
  const previous = older[0];
  if (!previous) throw new Error("no rollout history: there is no previous revision to go back to");
  const template = structuredClone(previous.spec.template);
  if (template.metadata && template.metadata.labels) delete template.metadata.labels["pod-template-hash"];
  await request(pathFor(res, obj.metadata.namespace, obj.metadata.name), {
    method: "PATCH", contentType: JSON_PATCH,
    body: [
      { op: "replace", path: "/spec/template", value: template },
    ],
  });
}

export function Actions({ res, resources, obj }) {
  const [dialog, setDialog] = useState(null);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState("");
  const m = obj.metadata;
  const can = (verb) => res.verbs.includes(verb);
  const run = (label, fn) => async () => {
    setError(null); setNotice("");
    try { await fn(); setNotice(`${label}: done.`); } catch (err) { setError(err); }
  };
  const close = () => setDialog(null);
  return html`<div class="actions">
    <div class="buttons" role="group" aria-label="Actions">
      ${can("update") && html`<button type="button" onClick=${() => navigate(routes.edit(res, m.namespace, m.name))}>Edit</button>`}
      ${res.subresources.includes("scale") && html`<button type="button" onClick=${() => setDialog("scale")}>Scale</button>`}
      ${res.kind === "Deployment" && res.group === "apps" && html`
        <button type="button" onClick=${run("Rollout restart", () => rolloutRestart(res, obj))}>Rollout restart</button>
        <button type="button" onClick=${run("Rollout undo", () => rolloutUndo(resources, res, obj))}>Rollout undo</button>`}
      ${res.kind === "Pod" && !res.group && html`
        <button type="button" onClick=${() => navigate(routes.logs(m.namespace, m.name))}>Logs</button>
        <button type="button" onClick=${() => navigate(routes.shell(m.namespace, m.name))}>Shell</button>`}
      ${can("delete") && html`<button type="button" class="danger" onClick=${() => setDialog("delete")}>Delete</button>`}
    </div>
    <${ErrorAlert} error=${error} />
    ${notice && html`<p class="notice">${notice}</p>`}
    ${dialog === "scale" && html`<${ScaleDialog} res=${res} obj=${obj} onClose=${close} />`}
    ${dialog === "delete" && html`<${DeleteDialog} res=${res} obj=${obj} onClose=${close} />`}
  </div>`;
}
