// The list page of any resource: the server's Table (kubectl's columns; priority-0
// only unless "Wide"), kept live by liveList (LIST then WATCH, Table rows keyed by
// uid). Rows are sorted only when membership changes (names never change), each row
// re-renders only when its own Table row object changed, and liveList coalesces
// events to one render per animation frame: 1,000 changing pods stay smooth.
// Filters: "Label selector" (server side, labelSelector) and "Search by name" (local).

import { html } from "htm/preact";
import { useMemo, useState } from "preact/hooks";
import { pathFor } from "../api.js";
import { ErrorAlert, useLiveList } from "../components/common.js";
import { ResourceTable, byNsName, visibleColumns } from "../components/table.js";
import { navigate, routes } from "../util.js";

export function ListView({ res, namespace }) {
  const [selectorDraft, setSelectorDraft] = useState("");
  const [selector, setSelector] = useState("");
  const [search, setSearch] = useState("");
  const [wide, setWide] = useState(false);
  const ns = res.namespaced ? namespace : "";
  const listable = res.verbs.includes("list");
  const live = useLiveList(listable ? pathFor(res, ns) : null, { labelSelector: selector }, { table: true });

  const sorted = useMemo(() => [...live.items.values()].sort(byNsName), [live.membership, live.listed]);
  // Rows changed in place (MODIFIED) are picked up from the map by uid.
  const rows = sorted.map((r) => live.items.get(r.object.metadata.uid) || r)
    .filter((r) => !search || r.object.metadata.name.includes(search));
  const cols = useMemo(() => visibleColumns(live.columns, wide), [live.columns, wide]);
  const showNs = res.namespaced && !namespace;
  const where = res.namespaced ? (namespace ? ` in ${namespace}` : " in any namespace") : "";
  const plural = res.title.toLowerCase();

  const applySelector = (e) => { e.preventDefault(); setSelector(selectorDraft.trim()); };

  return html`<section class="list">
    <div class="page-head">
      <h1>${res.title}</h1>
      <span class="muted">${res.groupVersion}${res.namespaced ? "" : " · cluster-scoped"}</span>
    </div>
    <div class="filters">
      <form onSubmit=${applySelector} class="inline">
        <label>Label selector
          <input type="text" value=${selectorDraft} placeholder="app=kubia,tier!=db" spellcheck="false"
            onInput=${(e) => setSelectorDraft(e.currentTarget.value)}
            onBlur=${() => setSelector(selectorDraft.trim())} />
        </label>
        <button type="submit">Apply</button>
      </form>
      <label>Search by name
        <input type="search" value=${search} onInput=${(e) => setSearch(e.currentTarget.value)} />
      </label>
      <label class="check"><input type="checkbox" checked=${wide} onChange=${(e) => setWide(e.currentTarget.checked)} /> Wide</label>
    </div>
    ${!listable && html`<p>This resource cannot be listed.</p>`}
    <${ErrorAlert} error=${live.error} />
    ${live.listed && rows.length === 0 && html`<div class="empty">
      <p>No ${plural}${where}${selector ? ` matching ${selector}` : ""}${search ? ` named like “${search}”` : ""}.</p>
      ${res.verbs.includes("create") && html`<button type="button" onClick=${() => navigate(routes.create())}>Create</button>`}
    </div>`}
    ${!live.listed && !live.error && html`<p class="muted">Loading ${plural}…</p>`}
    ${rows.length > 0 && html`<${ResourceTable} res=${res} rows=${rows} cols=${cols} showNs=${showNs} caption=${res.title + where} />`}
    <p class="muted count">${live.listed ? `${rows.length} of ${live.items.size}` : ""}</p>
  </section>`;
}
