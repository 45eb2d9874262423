"""`…/pods/<name>/exec`: a command in a pod's container, over a WebSocket.

    kubectl / Python client ══WebSocket══► serve_exec ──spawn_exec──► ExecProcess
         channel 0 stdin  ──────────────►  proc.stdin
         channel 1 stdout ◄──────────────  proc.stdout   (the pty when tty=true)
         channel 2 stderr ◄──────────────  proc.stderr   (none with a tty)
         channel 3 status ◄──────────────  exit code → Status JSON, then close 1000
         channel 4 resize ──────────────►  proc.resize(cols, rows)
         channel 255 close ─────────────►  close stdin (v5 only)

Subprotocols (kubectl-compat.md §9): `v5.channel.k8s.io` (kubectl 1.30+),
`v4.channel.k8s.io` (Python client), and the older `channel.k8s.io` (binary frames,
plain-text errors) and `base64.channel.k8s.io` (text frames: an ASCII channel digit and
base64 data). Everything that can fail (pod, container, command, spawning) fails
before the upgrade, as a plain HTTP Status, which kubectl prints.

The spawning function is injected (`ApiContext.spawn_exec`): the default enters the
sandbox recorded in the pod's `sandbox.json`; tests pass one that runs a local
process, so the framing is tested without namespaces. A process is never left behind:
if the client goes away first, the process is killed.
"""

from __future__ import annotations

import base64
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio
import anyio.to_thread
import structlog
from aiohttp import WSMsgType, web
from anyio.abc import ByteReceiveStream, ByteSendStream

from miniorch.api.errors import ApiError, BadRequest
from miniorch.api.kinds import PODS
from miniorch.api.server_common import ApiContext, query_bool
from miniorch.core import podfiles
from miniorch.core.objects import Obj
from miniorch.core.settings import Settings

log = structlog.get_logger(__name__)

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V2 = "v2.channel.k8s.io"
V1 = "channel.k8s.io"
BASE64 = "base64.channel.k8s.io"
PROTOCOLS = (V5, V4, V3, V2, V1, BASE64)

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


class ExecProcess(Protocol):
    """A running command (`miniorch.sandbox.pod.ExecProcess` is the real one).

    Without a tty: three pipes. With one: stdin and stdout are the pty, stderr None.
    """

    stdin: ByteSendStream | None
    stdout: ByteReceiveStream | None
    stderr: ByteReceiveStream | None

    def resize(self, cols: int, rows: int) -> None: ...

    def kill(self) -> None: ...

    async def wait(self) -> int: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class ExecRequest:
    pod: Obj
    container: str
    argv: list[str]
    tty: bool
    pod_dir: Path


class ExecSpawner(Protocol):
    async def __call__(self, request: ExecRequest) -> ExecProcess: ...


def sandbox_spawner(settings: Settings) -> ExecSpawner:
    """The real spawner: enter the container recorded in the pod's `sandbox.json`."""
    del settings  # the pod dir comes with the request; kept for symmetry with others

    async def spawn(request: ExecRequest) -> ExecProcess:
        from miniorch.sandbox.pod import SandboxError, exec_in_sandbox

        sandbox = await anyio.to_thread.run_sync(podfiles.read_sandbox, request.pod_dir)
        entry = ((sandbox or {}).get("containers") or {}).get(request.container)
        if not sandbox or not sandbox.get("init_pid") or not isinstance(entry, dict) \
                or not entry.get("pid"):
            raise BadRequest(f'unable to upgrade connection: container not found '
                             f'("{request.container}")')
        try:
            return await exec_in_sandbox(int(sandbox["init_pid"]), request.argv,
                                         tty=request.tty, container_pid=int(entry["pid"]),
                                         security=entry.get("security"))
        except SandboxError as exc:
            raise BadRequest(f"unable to upgrade connection: {exc}") from None
        except OSError as exc:
            raise ApiError(f"failed to exec in container: {exc}") from None

    return spawn


def _offered_protocols(request: web.Request) -> list[str]:
    header = request.headers.get("Sec-WebSocket-Protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


def exit_status(code: int) -> Obj:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


async def serve_exec(request: web.Request, ctx: ApiContext, namespace: str,
                     name: str) -> web.StreamResponse:
    q = request.query
    argv = q.getall("command", [])
    if not argv:
        raise BadRequest("you must specify at least 1 command")
    pod = ctx.registry.get(PODS, namespace, name)
    containers = [c.get("name") for c in pod.get("spec", {}).get("containers") or []]
    container = q.get("container") or (containers[0] if containers else "")
    if container not in containers:
        raise BadRequest(f"container {container} is not valid for pod {name}")
    phase = pod.get("status", {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise BadRequest("cannot exec into a container in a completed pod; current phase is "
                         f"{phase}")
    want_stdin, tty = query_bool(q.get("stdin")), query_bool(q.get("tty"))
    want_stdout, want_stderr = query_bool(q.get("stdout")), query_bool(q.get("stderr"))
    if not (want_stdin or want_stdout or want_stderr):
        raise BadRequest("you must specify at least 1 of stdin, stdout, stderr")
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise BadRequest("Upgrade request required: miniorch serves exec over WebSockets "
                         f"({V5} or {V4}); SPDY is not supported")
    offered = _offered_protocols(request)
    if offered and not any(p in PROTOCOLS for p in offered):
        raise BadRequest(f"unable to upgrade connection: none of the subprotocols {offered} "
                         f"is supported; use one of {list(PROTOCOLS)}")

    meta = pod["metadata"]
    pod_dir = podfiles.pod_dir(ctx.settings.pods_dir, meta.get("namespace", namespace), name,
                               meta.get("uid", ""))
    proc = await ctx.spawn_exec(ExecRequest(pod=pod, container=container, argv=argv,
                                                    tty=tty, pod_dir=pod_dir))
    try:
        ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        session = _Session(ws, proc, protocol=ws.ws_protocol or V1, tty=tty,
                           stdin=want_stdin, stdout=want_stdout, stderr=want_stderr)
        with ctx.stream_scope():
            await session.run()
        return ws
    finally:
        with anyio.CancelScope(shield=True):
            await proc.aclose()


class _Session:
    def __init__(self, ws: web.WebSocketResponse, proc: ExecProcess, *, protocol: str,
                 tty: bool, stdin: bool, stdout: bool, stderr: bool) -> None:
        self.ws = ws
        self.proc = proc
        self.protocol = protocol
        self.tty = tty
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.send_lock = anyio.Lock()

    async def send(self, channel: int, data: bytes) -> None:
        async with self.send_lock:
            if self.ws.closed:
                return
            if self.protocol == BASE64:
                await self.ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
            else:
                await self.ws.send_bytes(bytes([channel]) + data)

    async def run(self) -> None:
        log.debug("exec session", protocol=self.protocol, tty=self.tty)
        if not self.stdin and self.proc.stdin is not None and not self.tty:
            await self.proc.stdin.aclose()
        code: int | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._client_reader, tg.cancel_scope)
            async with anyio.create_task_group() as pumps:
                if self.proc.stdout is not None:
                    pumps.start_soon(self._pump, self.proc.stdout,
                                     STDOUT if self.stdout or self.tty else None)
                if self.proc.stderr is not None:
                    pumps.start_soon(self._pump, self.proc.stderr,
                                     STDERR if self.stderr else None)
            code = await self.proc.wait()
            tg.cancel_scope.cancel()
        if code is None or self.ws.closed:
            return  # the client went away; the caller kills the process
        with contextlib.suppress(ConnectionError):
            if self.protocol in (V5, V4):
                await self.send(ERROR, json.dumps(exit_status(code)).encode())
            elif code != 0:
                await self.send(ERROR, exit_status(code)["message"].encode())
            await self.ws.close(code=1000)

    async def _pump(self, stream: ByteReceiveStream, channel: int | None) -> None:
        """Copy output to the client (or drain it, when the client did not ask for it)."""
        while True:
            try:
                data = await stream.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            if channel is not None and data:
                with contextlib.suppress(ConnectionError):
                    await self.send(channel, data)

    async def _client_reader(self, session_scope: anyio.CancelScope) -> None:
        async for msg in self.ws:
            if msg.type == WSMsgType.BINARY:
                raw: bytes = msg.data
            elif msg.type == WSMsgType.TEXT:
                text: str = msg.data
                if self.protocol == BASE64:
                    if not text:
                        continue
                    try:
                        raw = bytes([int(text[0])]) + base64.b64decode(text[1:])
                    except ValueError:
                        continue
                else:
                    raw = text.encode("utf-8", errors="surrogateescape")
            else:
                continue
            if not raw:
                continue
            await self._on_frame(raw[0], raw[1:])
        # The client closed the connection before the command finished: stop it.
        self.proc.kill()
        session_scope.cancel()

    async def _on_frame(self, channel: int, payload: bytes) -> None:
        stdin = self.proc.stdin
        if channel == STDIN and stdin is not None and payload:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await stdin.send(payload)
        elif channel == RESIZE and payload:
            try:
                size = json.loads(payload)
                self.proc.resize(int(size.get("Width", 0)), int(size.get("Height", 0)))
            except (ValueError, TypeError, AttributeError, OSError):
                log.debug("bad resize frame", payload=payload[:100])
        elif channel == CLOSE and payload[:1] == bytes([STDIN]) and stdin is not None:
            if self.tty:
                # A terminal has no half-close: EOT makes the line discipline send EOF.
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await stdin.send(b"\x04")
            else:
                await stdin.aclose()
