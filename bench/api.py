"""A tiny synchronous client for the cluster's HTTPS API (stdlib only).

Built from the cluster's kubeconfig (server, CA data, bearer token). `watch()`
yields (monotonic receive time, event) pairs from a streaming watch, so latencies
measured with it include the API server's watch delivery — what a user sees.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml


class Api:
    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        url = urlsplit(cluster["server"])
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 443
        self.token = config["users"][0]["user"]["token"]
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        self.ssl = ssl.create_default_context(cadata=ca)
        self._conn: http.client.HTTPSConnection | None = None

    def _connect(self, timeout: float | None = 30.0) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.ssl,
                                           timeout=timeout)

    def request(self, method: str, path: str, body: Any = None, *,
                content_type: str = "application/json") -> Any:
        if self._conn is None:
            self._conn = self._connect()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        try:
            self._conn.request(method, path, body=data, headers=headers)
            resp = self._conn.getresponse()
        except (OSError, http.client.HTTPException):
            self._conn.close()
            self._conn = self._connect()
            self._conn.request(method, path, body=data, headers=headers)
            resp = self._conn.getresponse()
        payload = resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path}: {resp.status} {payload[:300]!r}")
        return json.loads(payload) if payload else None

    def scale_rc(self, namespace: str, name: str, replicas: int) -> None:
        self.request("PATCH", f"/api/v1/namespaces/{namespace}/replicationcontrollers/{name}",
                     {"spec": {"replicas": replicas}},
                     content_type="application/merge-patch+json")

    def watch(self, path: str, *, resource_version: str | None = None,
              idle_timeout: float = 60.0) -> Iterator[tuple[float, dict[str, Any]]]:
        """Yield (time.monotonic() at receipt, event) until the caller stops; raises
        TimeoutError after `idle_timeout` seconds without an event."""
        conn = self._connect(timeout=idle_timeout)
        sep = "&" if "?" in path else "?"
        query = f"{path}{sep}watch=1"
        if resource_version:
            query += f"&resourceVersion={resource_version}"
        conn.request("GET", query, headers={"Authorization": f"Bearer {self.token}"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"watch {path}: {resp.status}")
        try:
            while True:
                line = resp.readline()
                if not line:
                    return
                if line.strip():
                    yield time.monotonic(), json.loads(line)
        finally:
            conn.close()
