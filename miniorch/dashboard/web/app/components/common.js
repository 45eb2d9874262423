// Small presentational pieces shared by the views: a ticking <Age>, an error region
// (role="alert"), a modal <Dialog> on the native <dialog> element (showModal traps
// focus and makes the page inert; Escape closes; focus returns to the opener), label
// chips, and a live-list hook. Everything from the cluster is passed as text children.

import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { liveList } from "../api.js";
import { age, errorText, useNow } from "../util.js";

export function Age({ ts }) {
  const now = useNow();
  return html`<time datetime=${ts || ""} title=${ts || ""}>${age(ts, now)}</time>`;
}

/** Errors as an alert: one list item per Status cause ("field: message"). */
export function ErrorAlert({ error, items, children }) {
  if (!error && !(items && items.length) && !children) return null;
  const causes = items || (error && error.causes && error.causes.length
    ? error.causes.map((c) => `${c.field || c.reason || "error"}: ${c.message}`)
    : null);
  return html`<div role="alert" class="alert">
    ${error && html`<p>${errorText(error)}</p>`}
    ${causes && html`<ul>${causes.map((c) => html`<li>${c}</li>`)}</ul>`}
    ${children}
  </div>`;
}

/** A modal dialog; `onClose` is called on Escape, backdrop close, or the Cancel button. */
export function Dialog({ title, onClose, children }) {
  const ref = useRef(null);
  useEffect(() => {
    const opener = document.activeElement;
    const d = ref.current;
    d.showModal();
    const cancel = (e) => { e.preventDefault(); onClose(); };
    d.addEventListener("cancel", cancel);
    return () => {
      d.removeEventListener("cancel", cancel);
      if (d.open) d.close();
      if (opener && opener.isConnected && opener.focus) opener.focus();
    };
  }, []);
  return html`<dialog ref=${ref} aria-labelledby="dialog-title" class="dialog">
    <h2 id="dialog-title">${title}</h2>
    ${children}
  </dialog>`;
}

export function Labels({ labels }) {
  const entries = Object.entries(labels || {});
  if (!entries.length) return html`<span class="muted">none</span>`;
  return html`<ul class="chips">${entries.map(([k, v]) => html`<li class="chip">${k}=${v}</li>`)}</ul>`;
}

/**
 * Follow a collection: returns { items: Map, columns, error, listed, version }.
 * Restarts when `path`/`key` change; `path` null means "nothing to follow".
 */
export function useLiveList(path, params, { table = false } = {}) {
  const [state, setState] = useState({ items: new Map(), columns: [], listed: false, error: null, version: 0 });
  const key = path ? `${path}?${JSON.stringify(params || {})}` : "";
  useEffect(() => {
    setState({ items: new Map(), columns: [], listed: false, error: null, version: 0 });
    if (!path) return undefined;
    return liveList(path, { params: params || {}, table, onChange: setState });
  }, [key, table]);
  return state;
}
