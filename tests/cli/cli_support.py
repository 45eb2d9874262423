"""A tiny HTTPS server standing in for the API at the test boundary.

It answers fixed JSON per (method, path) and records every request, so a test can run
the real `kubectl` and miniorch's CLI against the very same answers and compare what
they print (or what they send). Discovery (`/api`, `/apis`, `/api/v1`) is built in.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from miniorch.api.kinds import RESOURCES
from miniorch.api.kubeconfig import write_kubeconfig
from miniorch.api.tls import ensure_tls


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StubApi:
    url: str
    kubeconfig: Path
    routes: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)

    def route(self, method: str, path: str, body: Any, *, status: int = 200) -> None:
        self.routes[(method, path)] = (status, body)

    def sent(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests
                if (method is None or r.method == method)
                and not r.path.startswith(("/api?", "/apis", "/openapi"))
                and r.path not in ("/api", "/api/v1")]


def _discovery() -> dict[str, Any]:
    resources = [{"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                  "kind": r.kind, "verbs": list(r.verbs), "shortNames": list(r.short_names),
                  "categories": list(r.categories)}
                 for r in RESOURCES if not r.group]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
            "resources": resources}


@contextmanager
def stub_api(tmp: Path) -> Iterator[StubApi]:
    material = ensure_tls(tmp / "tls", ips=["127.0.0.1"])
    holder: dict[str, StubApi] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            api = holder["api"]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            api.requests.append(Recorded(self.command, parts.path, parts.query,
                                         dict(self.headers), body))
            if parts.path == "/api":
                status, payload = 200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [
                                            {"clientCIDR": "0.0.0.0/0",
                                             "serverAddress": "127.0.0.1"}]}
            elif parts.path == "/apis":
                status, payload = 200, {"kind": "APIGroupList", "apiVersion": "v1",
                                        "groups": []}
            elif parts.path == "/api/v1":
                status, payload = 200, _discovery()
            elif (self.command, parts.path) in api.routes:
                status, payload = api.routes[(self.command, parts.path)]
            else:
                status, payload = 404, {"kind": "Status", "apiVersion": "v1",
                                        "status": "Failure", "reason": "NotFound",
                                        "message": "the server could not find the requested "
                                                   "resource", "code": 404}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(material.cert_path), str(material.key_path))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    url = f"https://127.0.0.1:{port}"
    kubeconfig = tmp / "kubeconfig"
    write_kubeconfig(kubeconfig, server=url, ca_pem=material.ca_pem, token=material.token)
    holder["api"] = StubApi(url=url, kubeconfig=kubeconfig)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["api"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class LocalExec:
    """The exec boundary: a host process instead of one inside a pod's namespaces."""

    def __init__(self, process: Any) -> None:
        self._process = process
        self.stdin = process.stdin
        self.stdout = process.stdout
        self.stderr = process.stderr

    def resize(self, cols: int, rows: int) -> None:
        del cols, rows

    def kill(self) -> None:
        if self._process.returncode is None:
            self._process.kill()

    async def wait(self) -> int:
        code: int = await self._process.wait()
        return code


async def local_spawner(request: Any) -> LocalExec:
    import anyio

    return LocalExec(await anyio.open_process(list(request.argv)))
