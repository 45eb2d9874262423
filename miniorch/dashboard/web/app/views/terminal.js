// A shell in a container: xterm.js on the API's exec WebSocket (`kubectl exec -it`).
//
//   keys ─► term.onData ─► [0x00 | utf-8]  (stdin)   ─► ws ─► …/pods/<pod>/exec?tty=true
//   screen ◄─ term.write ◄─ [0x01 | bytes] (stdout)  ◄─ ws
//   size ─► term.onResize ─► [0x04 | {"Width","Height"}] (resize)
//   end  ◄─ [0x03 | Status JSON] then close             (exit code or error)
//
// The channel protocol is the one kubectl speaks (v5, else v4: same framing for what we
// send). The socket goes to the dashboard's own origin, which relays it to the API with
// the cluster's token; the page never holds a credential. Output is written to the
// terminal as bytes: xterm.js draws it on its canvas, so nothing in it becomes markup.
import { html } from "htm/preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { ErrorAlert } from "../components/common.js";
import { BackToPod, ContainerSelect, useContainers } from "../components/pod.js";

const STDIN = 0, STDOUT = 1, STDERR = 2, STATUS = 3, RESIZE = 4;
const PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
const encoder = new TextEncoder();

function frame(channel, bytes) {
  const out = new Uint8Array(bytes.length + 1);
  out[0] = channel;
  out.set(bytes, 1);
  return out;
}

function execUrl(namespace, pod, container, command) {
  const query = new URLSearchParams({ container, stdin: "true", stdout: "true", stderr: "true", tty: "true" });
  for (const word of command) query.append("command", word);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/api/v1/namespaces/${encodeURIComponent(namespace)}` +
    `/pods/${encodeURIComponent(pod)}/exec?${query}`;
}

/** What the API's closing Status says, as one line for the terminal. */
function describeStatus(text) {
  try {
    const status = JSON.parse(text);
    if (status.status === "Success") return "exited (0)";
    const code = status.details?.causes?.find((c) => c.reason === "ExitCode")?.message;
    return code ? `exited (${code})` : status.message || "ended";
  } catch {
    return text || "ended";
  }
}

export function ShellView({ namespace, pod }) {
  const [command, setCommand] = useState("sh");
  const [session, setSession] = useState(0); // bumped by "Reconnect" and by a new command
  const [state, setState] = useState("Connecting…");
  const [error, setError] = useState(null);
  const [containers, container, setContainer] = useContainers(namespace, pod, setError);
  const screen = useRef(null);

  useEffect(() => {
    if (!container) return undefined;
    setError(null);
    const term = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000,
      fontFamily: "ui-monospace, 'DejaVu Sans Mono', Menlo, monospace" });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(screen.current);
    fit.fit();
    const words = command.trim().split(/\s+/).filter(Boolean);
    const ws = new WebSocket(execUrl(namespace, pod, container, words.length ? words : ["sh"]), PROTOCOLS);
    ws.binaryType = "arraybuffer";
    let ended = false;
    const sendResize = () => {
      if (ws.readyState === WebSocket.OPEN) {
        ws.send(frame(RESIZE, encoder.encode(JSON.stringify({ Width: term.cols, Height: term.rows }))));
      }
    };
    ws.onopen = () => {
      setState(`Connected to ${pod} (${container})`);
      sendResize();
      term.focus();
    };
    ws.onmessage = (event) => {
      const data = new Uint8Array(event.data);
      if (data.length === 0) return;
      const payload = data.subarray(1);
      if (data[0] === STDOUT || data[0] === STDERR) term.write(payload);
      else if (data[0] === STATUS) {
        ended = true;
        const why = describeStatus(new TextDecoder().decode(payload));
        term.write(`\r\n[${why}]\r\n`);
        setState(`Session ${why}`);
      }
    };
    ws.onerror = () => setError(new Error("The shell's connection failed (is the pod running, "
      + "and does the container have this command?)"));
    ws.onclose = () => {
      if (!ended) setState("Disconnected");
      term.options.disableStdin = true;
    };
    const input = term.onData((text) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(frame(STDIN, encoder.encode(text)));
    });
    const resized = term.onResize(sendResize);
    const refit = () => fit.fit();
    window.addEventListener("resize", refit);
    return () => {
      window.removeEventListener("resize", refit);
      input.dispose();
      resized.dispose();
      ws.close();
      term.dispose();
    };
  }, [namespace, pod, container, session]);

  const restart = (event) => {
    event.preventDefault();
    setState("Connecting…");
    setSession((n) => n + 1);
  };

  return html`
    <section class="shell" aria-labelledby="shell-title">
      <header class="page-head">
        <h1 id="shell-title">Shell: ${pod}</h1>
        <${BackToPod} namespace=${namespace} pod=${pod} />
      </header>
      <form class="toolbar" onSubmit=${restart}>
        <${ContainerSelect} names=${containers} value=${container} onChange=${setContainer} />
        <label>Command <input value=${command} size="12" spellcheck="false"
          onInput=${(e) => setCommand(e.currentTarget.value)} /></label>
        <button type="submit">Reconnect</button>
        <span class="muted" aria-live="polite">${state}</span>
      </form>
      <${ErrorAlert} error=${error} />
      <div class="terminal" role="region" aria-label=${`Terminal of ${pod}`} ref=${screen}></div>
    </section>`;
}
