// Events as a table (newest first), shared by the overview's recent warnings and a
// detail page's events. Rows are named "<reason>: <message>"; Warning rows marked.

import { html } from "htm/preact";
import { Age } from "./common.js";

const eventTime = (e) => e.lastTimestamp || e.eventTime || e.firstTimestamp || e.metadata.creationTimestamp;

export function EventsTable({ events, showObject }) {
  if (!events.length) return html`<p class="muted">No events.</p>`;
  return html`<div class="table-wrap"><table class="events">
    <thead><tr><th scope="col">Type</th><th scope="col">Reason</th>${showObject && html`<th scope="col">Object</th>`}<th scope="col">Age</th><th scope="col">Count</th><th scope="col">Message</th></tr></thead>
    <tbody>${events.map((e) => html`<tr aria-label=${`${e.reason}: ${e.message}`} class=${e.type === "Warning" ? "warning" : ""}>
      <td>${e.type}</td><td>${e.reason}</td>
      ${showObject && html`<td>${e.involvedObject.kind}/${e.involvedObject.name}</td>`}
      <td><${Age} ts=${eventTime(e)} /></td><td>${e.count || 1}</td><td>${e.message}</td>
    </tr>`)}</tbody>
  </table></div>`;
}

export const sortEvents = (items) => [...items.values()].sort((a, b) => Date.parse(eventTime(b)) - Date.parse(eventTime(a)));

