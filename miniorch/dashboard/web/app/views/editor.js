// The YAML editor. mode "create": a textarea labelled "YAML", button "Create";
// every document (multi-document allowed) is parsed with js-yaml, its resource found
// via discovery (apiVersion + kind) and POSTed to its collection (namespace from the
// document, else the selected one, else "default"); then we go to the first new
// object's page. mode "edit": the object's YAML (GET once, not live, so typing is
// never clobbered), button "Save" PUTs it; a 409 Conflict shows an alert and offers
// "Reload" instead of overwriting. A 422's details.causes and YAML syntax errors are
// listed one per item as "<field>: <message>" in a role="alert" region.

import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { dump, loadAll } from "js-yaml";
import { request, pathFor, resourceForKind } from "../api.js";
import { ErrorAlert } from "../components/common.js";
import { navigate, routes, errorText } from "../util.js";
import { forDisplay } from "./detail.js";

const SAMPLE = (ns) => `apiVersion: v1
kind: Pod
metadata:
  name: my-pod
  namespace: ${ns || "default"}
  labels:
    app: my-app
spec:
  containers:
  - name: main
    image: kubia
`;

function yamlError(err) {
  const mark = err.mark;
  const where = mark && typeof mark.line === "number" ? `line ${mark.line + 1}, column ${mark.column + 1}` : "YAML";
  return `${where}: ${err.reason || err.message}`;
}

/** Errors of one document as list items ("field: message"), prefixed when many. */
function causeItems(err, prefix) {
  if (err.causes && err.causes.length) {
    return err.causes.map((c) => `${prefix}${c.field || c.reason || "error"}: ${c.message}`);
  }
  return [`${prefix}${errorText(err)}`];
}

function parseDocs(text) {
  const docs = loadAll(text).filter((d) => d !== null && d !== undefined);
  if (!docs.length) throw Object.assign(new Error("the YAML holds no object"), { plain: true });
  for (const d of docs) {
    if (typeof d !== "object" || Array.isArray(d)) throw Object.assign(new Error("each document must be an object"), { plain: true });
  }
  return docs;
}

async function createAll(resources, docs, namespace) {
  const created = [];
  const problems = [];
  for (const [i, doc] of docs.entries()) {
    const prefix = docs.length > 1 ? `document ${i + 1}: ` : "";
    if (!doc.apiVersion || !doc.kind) {
      problems.push(`${prefix}${!doc.apiVersion ? "apiVersion" : "kind"}: Required value`);
      continue;
    }
    const res = await resourceForKind(resources, String(doc.apiVersion), String(doc.kind));
    if (!res) { problems.push(`${prefix}kind: the API serves no ${doc.kind} in ${doc.apiVersion}`); continue; }
    const ns = res.namespaced ? (doc.metadata && doc.metadata.namespace) || namespace || "default" : "";
    try {
      const obj = await request(pathFor(res, ns), { method: "POST", body: doc });
      created.push({ res, obj });
    } catch (err) {
      problems.push(...causeItems(err, prefix));
    }
  }
  return { created, problems };
}

export function EditorView({ mode, res, resources, namespace, name }) {
  const [text, setText] = useState(mode === "create" ? SAMPLE(namespace) : "");
  const [loaded, setLoaded] = useState(mode === "create");
  const [problems, setProblems] = useState([]);
  const [error, setError] = useState(null);
  const [conflict, setConflict] = useState(null);
  const [busy, setBusy] = useState(false);

  const load = async () => {
    setError(null); setConflict(null); setProblems([]);
    try {
      const obj = await request(pathFor(res, res.namespaced ? namespace : "", name));
      setText(dump(forDisplay(obj), { lineWidth: -1 }));
      setLoaded(true);
    } catch (err) { setError(err); }
  };
  useEffect(() => { if (mode === "edit") load(); }, []);

  const submitCreate = async () => {
    let docs;
    try { docs = parseDocs(text); } catch (err) { setProblems([err.plain ? err.message : yamlError(err)]); return; }
    const { created, problems: p } = await createAll(resources, docs, namespace);
    setProblems(p);
    if (!p.length && created.length) {
      const { res: r, obj } = created[0];
      navigate(routes.detail(r, obj.metadata.namespace, obj.metadata.name));
    }
  };

  const submitEdit = async () => {
    let docs;
    try { docs = parseDocs(text); } catch (err) { setProblems([err.plain ? err.message : yamlError(err)]); return; }
    if (docs.length !== 1) { setProblems(["YAML: edit one object at a time"]); return; }
    try {
      const obj = await request(pathFor(res, res.namespaced ? namespace : "", name), { method: "PUT", body: docs[0] });
      navigate(routes.detail(res, obj.metadata.namespace, obj.metadata.name));
    } catch (err) {
      if (err.status === 409) setConflict(err);
      else setProblems(causeItems(err, ""));
    }
  };

  const submit = async (e) => {
    e.preventDefault();
    setBusy(true); setProblems([]); setError(null); setConflict(null);
    try { await (mode === "create" ? submitCreate() : submitEdit()); } finally { setBusy(false); }
  };

  const title = mode === "create" ? "Create from YAML" : `Edit ${res.kind} ${name}`;
  return html`<section class="editor">
    <div class="page-head">
      ${mode === "edit" && html`<p class="crumbs"><a href=${routes.detail(res, namespace, name)}>${res.kind} ${name}</a></p>`}
      <h1>${title}</h1>
    </div>
    <form onSubmit=${submit}>
      <label for="yaml-input">YAML</label>
      <textarea id="yaml-input" spellcheck="false" rows="24" value=${text} disabled=${!loaded}
        onInput=${(e) => setText(e.currentTarget.value)}></textarea>
      <${ErrorAlert} error=${error} />
      ${problems.length > 0 && html`<${ErrorAlert} items=${problems} />`}
      ${conflict && html`<div role="alert" class="alert">
        <p>Conflict: ${conflict.message}</p>
        <p>Someone else changed this object since you loaded it; nothing was saved. Reload to get the current version (your edits are discarded).</p>
        <button type="button" onClick=${load}>Reload</button>
      </div>`}
      <div class="buttons">
        <button type="submit" class="primary" disabled=${busy || !loaded}>${mode === "create" ? "Create" : "Save"}</button>
        <button type="button" onClick=${() => history.back()}>Cancel</button>
      </div>
    </form>
  </section>`;
}
