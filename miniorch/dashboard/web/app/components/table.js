// A Kubernetes Table (as served for ?as=Table) rendered as an HTML table: one
// <tr aria-label="<name>"> per object, the name cell linking to its detail page, the
// Age column ticking from metadata.creationTimestamp. A row re-renders only when its
// Table row object (or the column set) changed, so a big live list diffs cheaply.

import { html, Component } from "htm/preact";
import { Age } from "./common.js";
import { routes } from "../util.js";

export class Row extends Component {
  shouldComponentUpdate(next) {
    return next.row !== this.props.row || next.cols !== this.props.cols || next.showNs !== this.props.showNs;
  }
  render({ row, cols, showNs, res }) {
    const meta = row.object.metadata;
    return html`<tr aria-label=${meta.name}>
      ${showNs && html`<td>${meta.namespace}</td>`}
      ${cols.map(({ def, index }) => {
        if (def.format === "name") {
          return html`<td><a href=${routes.detail(res, meta.namespace, meta.name)}>${meta.name}</a></td>`;
        }
        if (def.name === "Age") return html`<td><${Age} ts=${meta.creationTimestamp} /></td>`;
        const v = row.cells[index];
        return html`<td>${v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v)}</td>`;
      })}
    </tr>`;
  }
}

export const byNsName = (a, b) => {
  const ma = a.object.metadata, mb = b.object.metadata;
  return (ma.namespace || "").localeCompare(mb.namespace || "") || ma.name.localeCompare(mb.name);
};

/** cols: [{def, index}] (already filtered); rows: Table rows in display order. */
export function ResourceTable({ res, rows, cols, showNs, caption }) {
  return html`<div class="table-wrap"><table class="resources">
    ${caption && html`<caption class="visually-hidden">${caption}</caption>`}
    <thead><tr>
      ${showNs && html`<th scope="col">Namespace</th>`}
      ${cols.map(({ def }) => html`<th scope="col" title=${def.description}>${def.name}</th>`)}
    </tr></thead>
    <tbody>${rows.map((row) => html`<${Row} key=${row.object.metadata.uid} row=${row} cols=${cols} showNs=${showNs} res=${res} />`)}</tbody>
  </table></div>`;
}

export const visibleColumns = (columns, wide) =>
  columns.map((def, index) => ({ def, index })).filter(({ def }) => wide || def.priority === 0);
