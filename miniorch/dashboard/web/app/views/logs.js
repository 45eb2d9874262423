// A pod's logs, streamed: GET …/pods/<pod>/log?follow=true&container=…&previous=…
//
// The response of a followed log never ends: its body is read chunk by chunk and each
// chunk is appended to the <pre> as a text node (never as markup, so a log line holding
// "<script>" shows those characters). Changing the container, Follow or Previous aborts
// the running request and starts another; leaving the page aborts it too. Only the
// last MAX_CHUNKS chunks are kept, so a chatty pod cannot grow the page without bound.
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api.js";
import { ErrorAlert } from "../components/common.js";
import { BackToPod, ContainerSelect, podPath, useContainers } from "../components/pod.js";

const MAX_CHUNKS = 5000;
const TAIL_LINES = 1000;

export function LogsView({ namespace, pod }) {
  const [follow, setFollow] = useState(true);
  const [previous, setPrevious] = useState(false);
  const [state, setState] = useState("Loading…");
  const [error, setError] = useState(null);
  const [containers, container, setContainer] = useContainers(namespace, pod,
    (err) => { setError(err); setState(""); });
  const output = useRef(null);

  useEffect(() => {
    if (!container) return undefined;
    const pre = output.current;
    pre.replaceChildren();
    setError(null);
    const abort = new AbortController();
    const query = new URLSearchParams({ container, tailLines: String(TAIL_LINES) });
    if (follow) query.set("follow", "true");
    if (previous) query.set("previous", "true");
    setState(follow ? "Following…" : "Loading…");
    (async () => {
      const response = await fetch(`${podPath(namespace, pod)}/log?${query}`, { signal: abort.signal });
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        setError(new ApiError(response.status, body && body.kind === "Status" ? body : null));
        setState("");
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.append(document.createTextNode(value));
        while (pre.childNodes.length > MAX_CHUNKS) pre.firstChild.remove();
        if (stick) pre.scrollTop = pre.scrollHeight; // keep following the end, unless scrolled up
      }
      setState(follow ? "The log stream ended (the container stopped)." : "");
    })().catch((err) => {
      if (err.name === "AbortError") return;
      setError(new Error(`The log stream broke: ${err.message}`));
      setState("");
    });
    return () => abort.abort();
  }, [namespace, pod, container, follow, previous]);

  return html`
    <section class="logs" aria-labelledby="logs-title">
      <header class="page-head">
        <h1 id="logs-title">Logs: ${pod}</h1>
        <${BackToPod} namespace=${namespace} pod=${pod} />
      </header>
      <div class="toolbar">
        <${ContainerSelect} names=${containers} value=${container} onChange=${setContainer} />
        <label><input type="checkbox" checked=${follow}
          onChange=${(e) => setFollow(e.currentTarget.checked)} /> Follow</label>
        <label><input type="checkbox" checked=${previous}
          onChange=${(e) => setPrevious(e.currentTarget.checked)} /> Previous</label>
        <span class="muted" aria-live="polite">${state}</span>
      </div>
      <${ErrorAlert} error=${error} />
      <pre class="log-output" role="log" aria-label=${`Logs of ${pod}`} tabindex="0" ref=${output}></pre>
    </section>`;
}
