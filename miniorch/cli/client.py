"""A small synchronous Kubernetes REST client for the CLI.

Data flow: kubeconfig file → `ClusterConfig` (server URL, CA, token, namespace) →
`Client`, which keeps one keep-alive HTTPS connection and turns every non-2xx answer
into `StatusError` (the server's `Status`) and a refused connection into
`ConnectionRefused`.

Why not aiohttp or the `kubernetes` package: a CLI call is one or two requests, and
importing either costs more than the whole request. `http.client` + `ssl` start in a
few milliseconds. Streaming responses (watch, `logs -f`) are read line by line from
the same connection.
"""

from __future__ import annotations

import http.client
import json
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


class Response:
    """A streaming response: iterate lines, or read the whole body."""

    def __init__(self, raw: http.client.HTTPResponse) -> None:
        self.raw = raw
        self.status = raw.status
        self.content_type = raw.getheader("Content-Type", "")

    def lines(self) -> Iterator[bytes]:
        while True:
            line = self.raw.readline()
            if not line:
                return
            yield line

    def chunks(self, size: int = 65536) -> Iterator[bytes]:
        while True:
            chunk = self.raw.read1(size)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        self.raw.close()


class Client:
    """One keep-alive HTTPS connection to the API server."""

    def __init__(self, config: ClusterConfig, *, timeout: float | None = 30.0) -> None:
        self.config = config
        parts = urlsplit(config.server)
        self._scheme = parts.scheme
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

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

    def _connect(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                               context=self.ssl_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
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
            if stream:
                conn = self._connect(None)
            else:
                if self._conn is None:
                    self._conn = self._connect(self._timeout)
                conn = self._conn
            try:
                conn.request(method, url, body=payload, headers=headers)
                raw = conn.getresponse()
            except ConnectionRefusedError:
                self.close()
                raise ConnectionRefused(self.config.hostport) from None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A keep-alive connection the server closed meanwhile: retry once anew.
                self.close()
                if attempt or stream:
                    raise CliError(f"the server {self.config.hostport} closed the connection"
                                   ) from None
                continue
            except ssl.SSLCertVerificationError as exc:
                self.close()
                raise CliError(f"tls: failed to verify certificate: {exc.verify_message}"
                               ) from None
            except TimeoutError:
                self.close()
                raise CliError(f"the server {self.config.hostport} did not answer in time"
                               ) from None
            except OSError as exc:
                self.close()
                raise CliError(f"dial tcp {self.config.hostport}: {exc.strerror or exc}"
                               ) from None
            response = Response(raw)
            if raw.status >= 400:
                data = raw.read()
                if stream:
                    conn.close()
                raise _status_error(raw.status, data, path=path)
            return response
        raise AssertionError("unreachable")

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                body: Any = None, content_type: str = "application/json",
                accept: str = "application/json") -> Any:
        """A whole request: the decoded JSON body (or text for non-JSON answers)."""
        response = self.open(method, path, query=query, body=body,
                             content_type=content_type, accept=accept)
        data = response.raw.read()
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
