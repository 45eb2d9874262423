"""The registry client against a tiny in-process registry (aiohttp) that misbehaves on cue.

A legitimate boundary fake: it speaks just enough of the distribution API to serve a
tampered blob, demand a bearer token, serve a multi-platform index, or refuse OCI
manifests — things a well-behaved real registry will not do for a test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from miniorch.images import ImageStore, build, registry
from miniorch.images.errors import DigestMismatch, RegistryAuthError
from miniorch.images.oci import MEDIA_INDEX
from miniorch.images.regconfig import Credentials


@dataclass
class Stub:
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    tamper: dict[str, bytes] = field(default_factory=dict)
    """digest → bytes served instead of the real blob."""
    bearer: tuple[str, str] | None = None
    """(user, password) the token endpoint wants; then every /v2 call needs a token."""
    reject_oci: bool = False
    delay: float = 0.0
    """Seconds each blob GET waits before answering (a slow registry)."""
    token_scopes: list[str] = field(default_factory=list)
    base: str = ""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth], client_max_size=64 << 20)
        app.router.add_get("/token", self.token)
        app.router.add_get("/v2/", self.ping)
        app.router.add_post("/v2/{name:.+}/blobs/uploads/", self.start_upload)
        app.router.add_patch("/v2/{name:.+}/blobs/uploads/{id}", self.patch_upload)
        app.router.add_put("/v2/{name:.+}/blobs/uploads/{id}", self.finish_upload)
        app.router.add_route("HEAD", "/v2/{name:.+}/blobs/{digest:sha256:[a-f0-9]+}",
                             self.get_blob)
        app.router.add_get("/v2/{name:.+}/blobs/{digest:sha256:[a-f0-9]+}", self.get_blob,
                           allow_head=False)
        app.router.add_get("/v2/{name:.+}/manifests/{ref}", self.get_manifest)
        app.router.add_put("/v2/{name:.+}/manifests/{ref}", self.put_manifest)
        return app

    @web.middleware
    async def _auth(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        if self.bearer is None or request.path == "/token":
            return await handler(request)
        if request.headers.get("Authorization", "").startswith("Bearer tok-"):
            return await handler(request)
        name = request.match_info.get("name", "")
        scope = f"repository:{name}:pull,push" if name else ""
        challenge = f'Bearer realm="{self.base}/token",service="stub"'
        if scope:
            challenge += f',scope="{scope}"'
        return web.json_response({"errors": [{"code": "UNAUTHORIZED", "message": "no"}]},
                                 status=401, headers={"WWW-Authenticate": challenge})

    async def token(self, request: web.Request) -> web.Response:
        assert self.bearer is not None
        want = "Basic " + base64.b64encode(":".join(self.bearer).encode()).decode()
        if request.headers.get("Authorization") != want:
            return web.json_response({"details": "bad credentials"}, status=401)
        self.token_scopes.append(request.query.get("scope", ""))
        return web.json_response({"token": f"tok-{uuid.uuid4().hex}"})

    async def ping(self, _request: web.Request) -> web.Response:
        return web.json_response({})

    async def start_upload(self, request: web.Request) -> web.Response:
        upload = uuid.uuid4().hex
        self.uploads[upload] = bytearray()
        loc = f"/v2/{request.match_info['name']}/blobs/uploads/{upload}"
        return web.Response(status=202, headers={"Location": loc})

    async def patch_upload(self, request: web.Request) -> web.Response:
        self.uploads[request.match_info["id"]] += await request.read()
        return web.Response(status=202, headers={"Location": request.path})

    async def finish_upload(self, request: web.Request) -> web.Response:
        data = self.uploads.pop(request.match_info["id"]) + await request.read()
        digest = request.query["digest"]
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            return web.json_response({"errors": [{"code": "DIGEST_INVALID"}]}, status=400)
        self.blobs[digest] = bytes(data)
        return web.Response(status=201, headers={"Docker-Content-Digest": digest})

    async def get_blob(self, request: web.Request) -> web.Response:
        digest = request.match_info["digest"]
        if digest not in self.blobs:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN"}]}, status=404)
        data = self.tamper.get(digest, self.blobs[digest])
        if request.method == "GET" and self.delay:
            await anyio.sleep(self.delay)
        if request.method == "HEAD":
            return web.Response(status=200, headers={"Content-Length": str(len(data))})
        return web.Response(body=data)

    async def get_manifest(self, request: web.Request) -> web.Response:
        key = f"{request.match_info['name']}:{request.match_info['ref']}"
        if key not in self.manifests:
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN",
                                                  "message": "manifest unknown"}]}, status=404)
        media_type, data = self.manifests[key]
        return web.Response(body=data, headers={"Content-Type": media_type})

    async def put_manifest(self, request: web.Request) -> web.Response:
        media_type = request.headers["Content-Type"]
        if self.reject_oci and "oci" in media_type:
            return web.json_response({"errors": [{"code": "MANIFEST_INVALID",
                                                  "message": "oci not supported"}]}, status=400)
        data = await request.read()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        name = request.match_info["name"]
        self.manifests[f"{name}:{request.match_info['ref']}"] = (media_type, data)
        self.manifests[f"{name}:{digest}"] = (media_type, data)
        return web.Response(status=201, headers={"Docker-Content-Digest": digest})


@pytest.fixture
async def stub() -> AsyncIterator[tuple[Stub, str]]:
    s = Stub()
    server = TestServer(s.app(), host="127.0.0.1")
    await server.start_server()
    s.base = f"http://127.0.0.1:{server.port}"
    try:
        yield s, f"127.0.0.1:{server.port}"
    finally:
        await server.close()


def tiny(workdir: Path, store: ImageStore, tag: str) -> None:
    d = workdir / "ctx"
    d.mkdir(exist_ok=True)
    (d / "hello.txt").write_text("hello\n")
    (d / "Dockerfile").write_text("FROM busybox\nCOPY hello.txt /hello.txt\n")
    build(store, d, tag=tag)


def empty_store(workdir: Path) -> ImageStore:
    return ImageStore(workdir / "other" / "images", pullers=[])


async def test_tampered_blob_is_refused_and_nothing_is_stored(
        stub: tuple[Stub, str], store: ImageStore, workdir: Path) -> None:
    s, host = stub
    ref = f"{host}/app:v1"
    tiny(workdir, store, ref)
    await anyio.to_thread.run_sync(lambda: registry.push(store, ref, insecure=True))
    img = store.get(ref)
    top = img.layers[-1].digest
    s.tamper[top] = s.blobs[top][:-1] + bytes([s.blobs[top][-1] ^ 1])  # same size, one bit
    other = empty_store(workdir)
    with pytest.raises(DigestMismatch, match=f"blob {top[7:19]}"):
        await anyio.to_thread.run_sync(lambda: registry.pull(other, ref, insecure=True))
    assert other.images() == []
    assert list(other.blobs_dir.iterdir()) == []  # not even the layers that verified
    assert list(other.tmp_dir.iterdir()) == [] and list(other.leases_dir.iterdir()) == []
    # A blob longer than its descriptor is cut off and refused too.
    s.tamper[top] = s.blobs[top] + b"trailing"
    with pytest.raises(DigestMismatch, match="bytes, expected"):
        await anyio.to_thread.run_sync(lambda: registry.pull(other, ref, insecure=True))
    # A manifest that does not hash to the digest asked for.
    del s.tamper[top]
    bogus = "sha256:" + "0" * 64
    s.manifests[f"app:{bogus}"] = s.manifests["app:v1"]
    with pytest.raises(DigestMismatch, match="manifest"):
        await anyio.to_thread.run_sync(
            lambda: registry.pull(other, f"{host}/app@{bogus}", insecure=True))
    assert other.images() == []
    pulled = await anyio.to_thread.run_sync(lambda: registry.pull(other, ref, insecure=True))
    assert pulled.id == img.id


async def test_bearer_token_flow(stub: tuple[Stub, str], store: ImageStore,
                                 workdir: Path) -> None:
    s, host = stub
    s.bearer = ("luksa", "pw")
    ref = f"{host}/luksa/kubia:v1"
    tiny(workdir, store, ref)
    with pytest.raises(RegistryAuthError, match="token request"):
        await anyio.to_thread.run_sync(lambda: registry.push(store, ref, insecure=True))
    creds = Credentials("luksa", "pw")
    result = await anyio.to_thread.run_sync(
        lambda: registry.push(store, ref, insecure=True, auth=creds))
    assert s.token_scopes and s.token_scopes[0] == "repository:luksa/kubia:pull,push"
    assert len(s.token_scopes) == 1  # one token, reused for the whole push
    other = empty_store(workdir)
    pulled = await anyio.to_thread.run_sync(
        lambda: registry.pull(other, ref, insecure=True, auth=creds))
    assert pulled.manifest.digest == result.digest


async def test_index_picks_this_platform_and_docker_schema2_fallback(
        stub: tuple[Stub, str], store: ImageStore, workdir: Path) -> None:
    s, host = stub
    s.reject_oci = True
    ref = f"{host}/app:v1"
    tiny(workdir, store, ref)
    result = await anyio.to_thread.run_sync(lambda: registry.push(store, ref, insecure=True))
    media_type, data = s.manifests["app:v1"]
    assert media_type == registry.DOCKER_MANIFEST
    assert json.loads(data)["config"]["mediaType"] == registry.DOCKER_CONFIG
    assert result.digest == "sha256:" + hashlib.sha256(data).hexdigest()

    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [
        {"mediaType": registry.DOCKER_MANIFEST, "digest": "sha256:" + "1" * 64, "size": 1,
         "platform": {"os": "linux", "architecture": "arm64"}},
        {"mediaType": registry.DOCKER_MANIFEST, "digest": result.digest, "size": len(data),
         "platform": {"os": "linux", "architecture": "amd64"}},
    ]}
    s.manifests["app:multi"] = (MEDIA_INDEX, json.dumps(index).encode())
    other = empty_store(workdir)
    pulled = await anyio.to_thread.run_sync(
        lambda: registry.pull(other, f"{host}/app:multi", insecure=True))
    assert pulled.id == store.get(ref).id
    assert pulled.manifest.media_type == registry.DOCKER_MANIFEST
    assert other.unpacked_layers(pulled)[0].joinpath("hello.txt").read_text() == "hello\n"
