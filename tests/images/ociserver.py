"""A tiny OCI distribution server (aiohttp) for tests: serves what the test crafted.

Unlike a real registry it serves whatever it is given — tampered layers, lying
digests, configs whose diff_ids are paths — which is the point: the client must refuse
them. It can also stand in for Docker Hub: with `token_auth` every /v2 request needs a
bearer token from its own `/token` realm (anonymous for public repositories, Basic
credentials for `private` ones), exactly the `WWW-Authenticate: Bearer realm=…,
service=…,scope=…` flow of registry-1.docker.io and auth.docker.io.

    server = OciServer(token_auth=True)
    async with server.running() as host:        # "127.0.0.1:PORT"
        server.add_image("library/nginx", "latest", [layer_blob], config)

Crafting helpers: `tar_layer(members)` builds a tar (gzip, zstd or none) from
`(TarInfo, bytes | None)` pairs and returns (blob, diff_id); `image_config(diff_ids)`
a minimal config.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import tarfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def digest(data: bytes, alg: str = "sha256") -> str:
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


def member(name: str, data: bytes | None = None, *, type: bytes = tarfile.REGTYPE,
           mode: int = 0o644, linkname: str = "", uid: int = 0, gid: int = 0,
           devmajor: int = 0, devminor: int = 0) -> tuple[tarfile.TarInfo, bytes | None]:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.linkname, ti.uid, ti.gid = type, mode, linkname, uid, gid
    ti.devmajor, ti.devminor = devmajor, devminor
    ti.mtime = 1_700_000_000
    if data is not None:
        ti.size = len(data)
    return ti, data


def tar_layer(members: Sequence[tuple[tarfile.TarInfo, bytes | None]], *,
              compression: str = "gzip", alg: str = "sha256") -> tuple[bytes, str]:
    """(compressed blob, diff_id of the tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for ti, data in members:
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    plain = raw.getvalue()
    if compression == "gzip":
        blob = gzip.compress(plain, mtime=0)
    elif compression == "zstd":
        import zstandard

        blob = zstandard.ZstdCompressor().compress(plain)
    else:
        blob = plain
    return blob, digest(plain, alg)


def image_config(diff_ids: Sequence[str], **config: Any) -> bytes:
    return json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": config or {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }).encode()


@dataclass
class OciServer:
    token_auth: bool = False
    """Every /v2 request needs a bearer token from /token (Docker Hub's flow)."""
    private: dict[str, tuple[str, str]] = field(default_factory=dict)
    """repository → (user, password) the token service wants for it."""
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    """`repo:tag` or `repo:digest` → (media type, body)."""
    lie_digest_header: dict[str, str] = field(default_factory=dict)
    """`repo:ref` → Docker-Content-Digest to send instead of the real one."""
    requests: list[str] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    base: str = ""
    _tokens: dict[str, str] = field(default_factory=dict)

    # -- content

    def add_blob(self, data: bytes, alg: str = "sha256") -> dict[str, Any]:
        d = digest(data, alg)
        self.blobs[d] = data
        return {"digest": d, "size": len(data)}

    def add_manifest(self, repo: str, tag: str | None, doc: dict[str, Any] | bytes,
                     media_type: str = OCI_MANIFEST) -> dict[str, Any]:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        d = digest(body)
        self.manifests[f"{repo}:{d}"] = (media_type, body)
        if tag:
            self.manifests[f"{repo}:{tag}"] = (media_type, body)
        return {"mediaType": media_type, "digest": d, "size": len(body)}

    def add_image(self, repo: str, tag: str | None,
                  layers: Sequence[tuple[bytes, str]] | Sequence[tuple[bytes, str, str]],
                  config: bytes | None = None, *, docker: bool = False,
                  layer_digests: Sequence[str] | None = None) -> dict[str, Any]:
        """Store blobs and a manifest; `layers` are (blob, diff_id[, media type]).
        `layer_digests` overrides what the manifest claims (lying manifests)."""
        config = config if config is not None else image_config([lay[1] for lay in layers])
        cfg = self.add_blob(config)
        descs = []
        for i, lay in enumerate(layers):
            media = lay[2] if len(lay) > 2 else (DOCKER_GZIP if docker else OCI_GZIP)  # type: ignore[misc]
            d = self.add_blob(lay[0])
            if layer_digests is not None:
                d["digest"] = layer_digests[i]
            descs.append({"mediaType": media, **d})
        manifest = {"schemaVersion": 2,
                    "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
                    "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG, **cfg},
                    "layers": descs}
        return self.add_manifest(repo, tag, manifest,
                                 DOCKER_MANIFEST if docker else OCI_MANIFEST)

    # -- server

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/token", self._token)
        app.router.add_get("/v2/", self._ping)
        app.router.add_route("GET", "/v2/{name:.+}/manifests/{ref}", self._manifest)
        app.router.add_route("GET", "/v2/{name:.+}/blobs/{digest}", self._blob)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        self.base = f"http://127.0.0.1:{server.port}"
        try:
            yield f"127.0.0.1:{server.port}"
        finally:
            await server.close()

    @web.middleware
    async def _auth(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs}")
        if not self.token_auth or request.path == "/token":
            return await handler(request)
        name = request.match_info.get("name", "")
        scope = f"repository:{name}:pull" if name else ""
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and (
                self._tokens.get(header[7:]) == scope or (not name and header[7:] in
                                                          self._tokens)):
            return await handler(request)
        challenge = f'Bearer realm="{self.base}/token",service="registry.test"'
        if scope:
            challenge += f',scope="{scope}"'
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required",
                         "detail": [{"Type": "repository", "Name": name,
                                     "Action": "pull"}]}]},
            status=401, headers={"WWW-Authenticate": challenge})

    async def _token(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        q["authorization"] = request.headers.get("Authorization", "")
        self.token_requests.append(q)
        scope = q.get("scope", "")
        repo = scope.split(":")[1] if scope.count(":") == 2 else ""
        if q.get("service") != "registry.test":
            return web.json_response({"details": "unknown service"}, status=400)
        valid = {"Basic " + base64.b64encode(":".join(c).encode()).decode()
                 for c in self.private.values()}
        if q["authorization"] and q["authorization"] not in valid:
            return web.json_response({"details": "incorrect username or password"},
                                     status=401)
        if repo in self.private:
            want = "Basic " + base64.b64encode(":".join(self.private[repo]).encode()).decode()
            if q["authorization"] != want:
                if q["authorization"]:
                    return web.json_response({"details": "incorrect username or password"},
                                             status=401)
                # Docker Hub: anonymous callers get a token without the access asked for.
                scope = ""
        token = uuid.uuid4().hex
        self._tokens[token] = scope
        return web.json_response({"token": token, "access_token": token, "expires_in": 300})

    async def _ping(self, _request: web.Request) -> web.Response:
        return web.json_response({})

    async def _manifest(self, request: web.Request) -> web.Response:
        key = f"{request.match_info['name']}:{request.match_info['ref']}"
        if key not in self.manifests:
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN",
                                                  "message": "manifest unknown"}]}, status=404)
        media_type, body = self.manifests[key]
        return web.Response(body=body, headers={
            "Content-Type": media_type,
            "Docker-Content-Digest": self.lie_digest_header.get(key, digest(body))})

    async def _blob(self, request: web.Request) -> web.Response:
        d = request.match_info["digest"]
        if d not in self.blobs:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN",
                                                  "message": "blob unknown"}]}, status=404)
        return web.Response(body=self.blobs[d],
                            headers={"Content-Type": "application/octet-stream"})
