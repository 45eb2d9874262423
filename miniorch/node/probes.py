"""Running one probe (httpGet, tcpSocket, exec) against a container.

    PodWorker prober loop ──► run_probe(ProbeSpec, target) ──► ProbeResult(ok, message)

Probes go to the pod IP (`target.ip`) as the kubelet's do; the messages are kubelet's
(`Get "http://10.244.1.5:8080/": dial tcp ...: connect: connection refused`,
`HTTP probe failed with statuscode: 500`) so `describe pod` reads the same.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from anyio.abc import SocketStream

from miniorch.core.dialer import Dialer
from miniorch.core.objects import Obj

ExecFn = Callable[[list[str]], Awaitable[tuple[int, bytes]]]


@dataclass(frozen=True, kw_only=True)
class ProbeSpec:
    """A probe from the container spec with Kubernetes' defaults filled in."""

    kind: str
    """"httpGet", "tcpSocket" or "exec"."""
    port: int = 0
    host: str = ""
    path: str = "/"
    scheme: str = "HTTP"
    headers: tuple[tuple[str, str], ...] = ()
    command: tuple[str, ...] = ()
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def from_spec(cls, probe: Obj, container: Obj) -> ProbeSpec | None:
        """None if the probe has no handler miniorch supports (grpc)."""
        common = {
            "initial_delay": float(probe.get("initialDelaySeconds") or 0),
            "period": float(probe.get("periodSeconds") or 10),
            "timeout": float(probe.get("timeoutSeconds") or 1),
            "success_threshold": int(probe.get("successThreshold") or 1),
            "failure_threshold": int(probe.get("failureThreshold") or 3),
        }
        if "httpGet" in probe:
            get = probe["httpGet"] or {}
            return cls(kind="httpGet", port=resolve_port(get.get("port"), container),
                       host=str(get.get("host") or ""), path=str(get.get("path") or "/"),
                       scheme=str(get.get("scheme") or "HTTP").upper(),
                       headers=tuple((str(h.get("name")), str(h.get("value")))
                                     for h in get.get("httpHeaders") or []),
                       **common)  # type: ignore[arg-type]
        if "tcpSocket" in probe:
            tcp = probe["tcpSocket"] or {}
            return cls(kind="tcpSocket", port=resolve_port(tcp.get("port"), container),
                       host=str(tcp.get("host") or ""), **common)  # type: ignore[arg-type]
        if "exec" in probe:
            return cls(kind="exec", command=tuple(str(a) for a in
                                                  (probe["exec"] or {}).get("command") or []),
                       **common)  # type: ignore[arg-type]
        return None


def resolve_port(port: object, container: Obj) -> int:
    """A probe port is a number or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    text = str(port or "")
    if text.isdigit():
        return int(text)
    for declared in container.get("ports") or []:
        if declared.get("name") == text:
            return int(declared.get("containerPort") or 0)
    return 0


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str = ""


def _reason(exc: OSError) -> str:
    """`connection refused`, as Go prints it (anyio wraps the real error in a generic
    "All connection attempts failed")."""
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    if cause.errno:
        return os.strerror(cause.errno).lower()
    return (cause.strerror or str(cause)).lower()


def _url(spec: ProbeSpec, host: str) -> str:
    return f"{spec.scheme.lower()}://{host}:{spec.port}{spec.path}"


async def _connect(host: str, port: int, dialer: Dialer | None) -> SocketStream:
    """Plain TCP, or through the dialer (rootless mode: pod IPs are virtual)."""
    if dialer is None:
        return await anyio.connect_tcp(host, port)
    return await SocketStream.from_socket(await dialer.connect(host, port))


async def _tcp(host: str, port: int, limit: float, dialer: Dialer | None = None
               ) -> ProbeResult:
    try:
        with anyio.fail_after(limit):
            stream = await _connect(host, port, dialer)
        await stream.aclose()
        return ProbeResult(True)
    except TimeoutError:
        return ProbeResult(False, f"dial tcp {host}:{port}: i/o timeout")
    except OSError as exc:
        return ProbeResult(False, f"dial tcp {host}:{port}: connect: {_reason(exc)}")


async def _http(spec: ProbeSpec, host: str, dialer: Dialer | None = None) -> ProbeResult:
    """A bare HTTP/1.1 GET: the status line is all a probe needs (no client session to
    own, no connection pool to drain)."""
    url = _url(spec, host)
    if spec.scheme != "HTTP":
        return ProbeResult(False, f'Get "{url}": scheme {spec.scheme} is not supported')
    try:
        with anyio.fail_after(spec.timeout):
            stream = await _connect(host, spec.port, dialer)
            async with stream:
                headers = {"Host": f"{host}:{spec.port}", "User-Agent": "kube-probe/1.32",
                           "Accept": "*/*", "Connection": "close", **dict(spec.headers)}
                request = f"GET {spec.path} HTTP/1.1\r\n" + "".join(
                    f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
                await stream.send(request.encode("latin-1"))
                received = b""
                while b"\r\n" not in received and len(received) < 8192:
                    try:
                        received += await stream.receive()
                    except anyio.EndOfStream:
                        break
    except TimeoutError:
        return ProbeResult(False, f'Get "{url}": context deadline exceeded (Client.Timeout '
                                  "exceeded while awaiting headers)")
    except OSError as exc:
        return ProbeResult(False, f'Get "{url}": dial tcp {host}:{spec.port}: connect: '
                                  f"{_reason(exc)}")
    status_line = received.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return ProbeResult(False, f'Get "{url}": malformed HTTP response {status_line!r}')
    code = int(parts[1])
    if 200 <= code < 400:
        return ProbeResult(True)
    return ProbeResult(False, f"HTTP probe failed with statuscode: {code}")


async def run_probe(spec: ProbeSpec, *, pod_ip: str, exec_fn: ExecFn,
                    dialer: Dialer | None = None) -> ProbeResult:
    """`dialer`: how to reach `pod_ip` (None: plain TCP; see core.dialer)."""
    host = spec.host or pod_ip
    if spec.kind == "tcpSocket":
        return await _tcp(host, spec.port, spec.timeout, dialer)
    if spec.kind == "httpGet":
        return await _http(spec, host, dialer)
    try:
        with anyio.fail_after(spec.timeout):
            code, output = await exec_fn(list(spec.command))
    except TimeoutError:
        return ProbeResult(False, f"command {list(spec.command)!r} timed out")
    except Exception as exc:
        return ProbeResult(False, str(exc))
    if code == 0:
        return ProbeResult(True)
    text = output.decode("utf-8", "replace").strip()
    return ProbeResult(False, text or f"command {list(spec.command)!r} exited with {code}")
