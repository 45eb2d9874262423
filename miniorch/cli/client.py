"""A small synchronous Kubernetes REST client for the CLI.

Data flow: kubeconfig file → `ClusterConfig` (server URL, CA, token, namespace) →
`Client`, which keeps one keep-alive HTTPS connection and turns every non-2xx answer
into `StatusError` (the server's `Status`) and a refused connection into
`ConnectionRefused`.

Why not aiohttp, the `kubernetes` package or even `http.client`: a CLI call is one or
two requests to one server, and importing any of them costs more than the requests
(`http.client` alone pulls in the `email` package: ~12 ms, a fifth of `get pods`).
`_Connection` speaks the HTTP/1.1 a client needs — a request, a status line and
headers, a body framed by Content-Length, chunked encoding or the connection's close —
over `socket` + `ssl`. Streaming responses (watch, `logs -f`) are read line by line or
chunk by chunk from a connection of their own.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from miniorch.cli.errors import CliError, ConnectionRefused, StatusError

Obj = dict[str, Any]

TABLE_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
USER_AGENT = "miniorch-cli/0.1"


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """What the CLI needs from a kubeconfig's current context."""

    server: str
    """`https://127.0.0.1:6443`."""
    ca_data: str | None = None
    """PEM text of the CA that signed the server's certificate."""
    token: str | None = None
    namespace: str = "default"
    insecure: bool = False

    @property
    def hostport(self) -> str:
        return urlsplit(self.server).netloc


def load_config(path: Path, *, context: str | None = None) -> ClusterConfig:
    """Read a kubeconfig for its current (or named) context.

    The common case (the block YAML miniorch writes) goes through a small fast reader;
    anything else goes through the API's `load_kubeconfig` (PyYAML)."""
    from miniorch.cli import kubeconfig_fast

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CliError(
            f"no kubeconfig at {path}: is the cluster running? Start it with `miniorch up`."
        ) from None
    except OSError as exc:
        raise CliError(f"cannot read kubeconfig {path}: {exc.strerror}") from None
    doc = kubeconfig_fast.parse(text)
    fast = _resolve(doc, path, context) if doc is not None else None
    if fast is not None:
        return fast
    from miniorch.api.kubeconfig import KubeConfigError, load_kubeconfig

    try:
        kc = load_kubeconfig(path, context=context)
    except KubeConfigError as exc:
        raise CliError(str(exc)) from None
    return ClusterConfig(server=kc.server.rstrip("/"), ca_data=kc.ca_pem.decode(),
                         token=kc.token, namespace=kc.namespace)


def _resolve(doc: dict[str, Any], path: Path, context: str | None) -> ClusterConfig | None:
    """The current context's cluster and user; None when anything is not plain."""
    import base64

    def named(section: str, name: str) -> dict[str, Any] | None:
        for entry in doc.get(section) or []:
            if isinstance(entry, dict) and entry.get("name") == name:
                body = entry.get(section[:-1])
                return body if isinstance(body, dict) else None
        return None

    ctx = named("contexts", str(context or doc.get("current-context") or ""))
    if ctx is None:
        return None
    cluster = named("clusters", str(ctx.get("cluster", "")))
    user = named("users", str(ctx.get("user", "")))
    if cluster is None or user is None or not cluster.get("server") \
            or not cluster.get("certificate-authority-data") or not user.get("token"):
        return None
    try:
        ca = base64.b64decode(str(cluster["certificate-authority-data"])).decode()
    except ValueError:
        return None
    return ClusterConfig(server=str(cluster["server"]).rstrip("/"), ca_data=ca,
                         token=str(user["token"]), namespace=str(ctx.get("namespace") or
                                                                 "default"))


class RemoteDisconnected(ConnectionResetError):
    """The server closed the connection before answering (a stale keep-alive)."""


class _Connection:
    """One HTTP/1.1 connection, plain or TLS; `closed` once it cannot be reused."""

    def __init__(self, host: str, port: int, *, context: ssl.SSLContext | None,
                 timeout: float | None) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            if context is not None:
                sock = context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.file = sock.makefile("rb")
        self.host = f"{host}:{port}"
        self.closed = False

    def request(self, method: str, target: str, headers: dict[str, str],
                body: bytes | None) -> Response:
        head = [f"{method} {target} HTTP/1.1", f"Host: {self.host}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body or b'')}")
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b""))
        return Response(self, method)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.file.close()
            self.sock.close()


class Response:
    """A response whose body is read as it is asked for: iterate lines or chunks, or
    `read()` it whole. A fully read response leaves its connection reusable."""

    def __init__(self, conn: _Connection, method: str) -> None:
        self._conn = conn
        line = conn.file.readline(65537)
        if not line:
            raise RemoteDisconnected("the server closed the connection without answering")
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise OSError(f"malformed HTTP status line {line[:80]!r}")
        self.status = int(parts[1])
        headers: dict[str, str] = {}
        while (line := conn.file.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        self.headers = headers
        self.content_type = headers.get("content-type", "")
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._left: int | None = int(length) if length and not self._chunked else None
        self._chunk_left = 0
        self._close_after = headers.get("connection", "").lower() == "close" or (
            not self._chunked and self._left is None)
        self._done = False
        if method == "HEAD" or self.status in (204, 304) or self._left == 0:
            self._finish()

    def _finish(self) -> None:
        self._done = True
        if self._close_after:
            self._conn.close()

    def read1(self, size: int = 65536) -> bytes:
        """Up to `size` bytes of the body as soon as some arrive; b"" at its end."""
        if self._done:
            return b""
        file = self._conn.file
        if self._chunked:
            if self._chunk_left == 0:
                size_line = file.readline(65537)
                try:
                    self._chunk_left = int(size_line.split(b";", 1)[0], 16)
                except ValueError:
                    raise OSError(f"malformed chunk size {size_line[:40]!r}") from None
                if self._chunk_left == 0:
                    while file.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    self._finish()
                    return b""
            data = file.read1(min(size, self._chunk_left))
            if not data:
                raise RemoteDisconnected("the server closed the connection mid-response")
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                file.readline(3)  # the CRLF after each chunk
            return data
        if self._left is not None:
            data = file.read1(min(size, self._left))
            if not data:
                raise RemoteDisconnected("the server closed the connection mid-response")
            self._left -= len(data)
            if self._left == 0:
                self._finish()
            return data
        data = file.read1(size)  # framed by the connection's close
        if not data:
            self._finish()
        return data

    def read(self) -> bytes:
        parts = []
        while chunk := self.read1():
            parts.append(chunk)
        return b"".join(parts)

    def lines(self) -> Iterator[bytes]:
        pending = b""
        while chunk := self.read1():
            pending += chunk
            while (end := pending.find(b"\n")) >= 0:
                yield pending[:end + 1]
                pending = pending[end + 1:]
        if pending:
            yield pending

    def chunks(self, size: int = 65536) -> Iterator[bytes]:
        while chunk := self.read1(size):
            yield chunk

    def close(self) -> None:
        """Done with it: a body left unread makes the connection unusable."""
        if not self._done:
            self._done = True
            self._conn.close()


class Client:
    """One keep-alive HTTPS connection to the API server."""

    def __init__(self, config: ClusterConfig, *, timeout: float | None = 30.0) -> None:
        self.config = config
        parts = urlsplit(config.server)
        self._scheme = parts.scheme
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._timeout = timeout
        self._conn: _Connection | None = None

    # -- plumbing ---------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        if self.config.insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        return ssl.create_default_context(cadata=self.config.ca_data) if self.config.ca_data \
            else ssl.create_default_context()

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT}
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        return headers

    def _connect(self, timeout: float | None) -> _Connection:
        return _Connection(self._host, self._port, timeout=timeout,
                           context=self.ssl_context() if self._scheme == "https" else None)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _drop(self, conn: _Connection | None) -> None:
        """A failed request: its connection (the shared one or a stream's) is done."""
        if conn is not None:
            conn.close()
        if conn is self._conn:
            self._conn = None

    def open(self, method: str, path: str, *, query: dict[str, Any] | None = None,
             body: Any = None, content_type: str = "application/json",
             accept: str = "application/json", stream: bool = False) -> Response:
        """Send a request; raise `StatusError` for non-2xx. With `stream`, a fresh
        connection without a read timeout carries the (endless) response."""
        url = path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None},
                                   doseq=True)
        payload: bytes | None = None
        if body is not None:
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = self.headers()
        headers["Accept"] = accept
        if payload is not None:
            headers["Content-Type"] = content_type
        for attempt in range(2):
            conn: _Connection | None = None
            try:
                if stream:
                    conn = self._connect(None)
                else:
                    if self._conn is None or self._conn.closed:
                        self._conn = self._connect(self._timeout)
                    conn = self._conn
                response = conn.request(method, url, headers, payload)
            except ConnectionRefusedError:
                self._drop(conn)
                raise ConnectionRefused(self.config.hostport) from None
            except (BrokenPipeError, ConnectionResetError):
                # A keep-alive connection the server closed meanwhile: retry once anew.
                self._drop(conn)
                if attempt or stream:
                    raise CliError(f"the server {self.config.hostport} closed the connection"
                                   ) from None
                continue
            except ssl.SSLCertVerificationError as exc:
                self._drop(conn)
                raise CliError(f"tls: failed to verify certificate: {exc.verify_message}"
                               ) from None
            except TimeoutError:
                self._drop(conn)
                raise CliError(f"the server {self.config.hostport} did not answer in time"
                               ) from None
            except OSError as exc:
                self._drop(conn)
                raise CliError(f"dial tcp {self.config.hostport}: {exc.strerror or exc}"
                               ) from None
            if response.status >= 400:
                data = response.read()
                if stream:
                    conn.close()
                raise _status_error(response.status, data, path=path)
            return response
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                body: Any = None, content_type: str = "application/json",
                accept: str = "application/json") -> Any:
        """A whole request: the decoded JSON body (or text for non-JSON answers)."""
        response = self.open(method, path, query=query, body=body,
                             content_type=content_type, accept=accept)
        data = response.read()
        if "json" in response.content_type:
            return json.loads(data) if data else None
        return data.decode(errors="replace")

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query or None)


def _status_error(code: int, data: bytes, *, path: str) -> StatusError:
    try:
        status = json.loads(data)
        if not isinstance(status, dict) or status.get("kind") != "Status":
            raise ValueError
    except ValueError:
        text = data.decode(errors="replace").strip()
        reason = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                  405: "MethodNotAllowed", 409: "Conflict", 415: "UnsupportedMediaType",
                  500: "InternalError", 503: "ServiceUnavailable"}.get(code, "")
        message = ("the server could not find the requested resource" if code == 404
                   else text or f"the server responded with the status code {code}")
        if code == 401:
            message = "the server has asked for the client to provide credentials"
        status = {"kind": "Status", "status": "Failure", "reason": reason,
                  "message": message, "code": code}
    return StatusError(status, code=code)
