"""An OCI distribution API client: `push` and `pull` between the local store and a registry.

    push: store ──► HEAD blob (exists? skip) ──► POST mount=&from= (same registry, cheap)
                    ──► POST upload ──► PUT ?digest= (one request, blob ≤ chunk_size)
                                    └─► PATCH chunk … PATCH chunk ──► PUT ?digest=
          ──► PUT manifest by tag (OCI; Docker v2 schema 2 if the registry refuses OCI)
    pull: GET manifest (tag or digest; an index / manifest list → this platform's entry)
          ──► GET each blob the store lacks into tmp/pull-*/ (sha256 and size verified
              while streaming) ──► under a lease: rename blobs in, then name the manifest

Invariants.
  - Nothing fetched is stored unless it verified: a manifest fetched by digest must hash
    to it (by tag: to `Docker-Content-Digest` when the registry sends one), every blob to
    its descriptor's digest and size. A mismatch raises `DigestMismatch`.
  - A failed pull leaves no image and no blob: blobs are staged under the store's tmp/
    and only renamed into blobs/ once every one of them has verified; the staging
    directory is removed on every path. The pull holds a store lease from start to
    finish, so a concurrent `image rm` cannot collect layers it reuses.
  - The manifest is stored byte for byte as the registry served it, so the image's
    digest is the registry's; the image ID (config digest) is the same on both ends.
  - Plain HTTP only for loopback registries (regconfig.check_insecure).

Auth follows the registry's challenge on 401: `Basic` → the stored credentials; `Bearer
realm=…,service=…,scope=…` → GET the realm (with the credentials as Basic, if any) for
a token, cached per scope for the client's life. Everything here is synchronous
(http.client); async callers run it in a worker thread (`anyio.to_thread.run_sync`).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from miniorch.images.errors import (
    DigestMismatch,
    ImageError,
    ImageNotFound,
    PullAccessDenied,
    RegistryAuthError,
    RegistryError,
)
from miniorch.images.oci import (
    MEDIA_INDEX,
    MEDIA_LAYER_GZIP,
    MEDIA_LAYER_TAR,
    MEDIA_MANIFEST,
    Image,
)
from miniorch.images.progress import Transfer, TransferProgress, no_progress
from miniorch.images.reference import Reference, parse_reference
from miniorch.images.regconfig import Credentials, RegistryConfig, check_insecure
from miniorch.images.store import ImageStore, _host_arch

log = structlog.get_logger(__name__)

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_TYPES = (MEDIA_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (MEDIA_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))

DEFAULT_CHUNK = 4 << 20
"""Blobs up to this size go up in one PUT; bigger ones in PATCH chunks of this size."""
_READ = 1 << 16
_MAX_MANIFEST = 4 << 20
_MAX_REDIRECTS = 5


def short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


# ---------------------------------------------------------------------------- HTTP


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…",scope="…"` → ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


def _error_text(body: bytes) -> str:
    """The registry's `{"errors": [{"code", "message"}]}` as `code: message; …`."""
    try:
        errors = json.loads(body).get("errors") or []
        parts = [f"{str(e.get('code', '')).lower().replace('_', ' ')}: {e.get('message', '')}"
                 for e in errors]
        if parts:
            return "; ".join(parts)
    except (ValueError, AttributeError):
        pass
    return body[:200].decode(errors="replace").strip()


class Response:
    """A response whose body has been read (small ones) or is still streaming (`raw`)."""

    def __init__(self, raw: http.client.HTTPResponse, body: bytes | None) -> None:
        self.raw = raw
        self.status = raw.status
        self.body = body if body is not None else b""

    def header(self, name: str) -> str | None:
        return self.raw.getheader(name)


@dataclass
class RegistryClient:
    """One registry, one keep-alive connection per host, auth state for the session."""

    registry: str
    insecure: bool = False
    auth: Credentials | None = None
    timeout: float = 60.0
    requests: list[str] = field(default_factory=list)
    """`METHOD path` of every request sent (tests count uploads; handy when debugging)."""
    _conns: dict[tuple[str, str], http.client.HTTPConnection] = field(default_factory=dict)
    _scheme: str | None = None
    _tokens: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.insecure:
            check_insecure(self.registry)

    @property
    def base(self) -> str:
        return f"{'http' if self.insecure else 'https'}://{self.registry}"

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    # -- transport

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        conn = self._conns.get((scheme, netloc))
        if conn is None:
            if scheme == "https":
                conn = http.client.HTTPSConnection(netloc, timeout=self.timeout,
                                                   context=ssl.create_default_context())
            else:
                conn = http.client.HTTPConnection(netloc, timeout=self.timeout)
            self._conns[(scheme, netloc)] = conn
        return conn

    def _send(self, method: str, url: str, headers: Mapping[str, str],
              body: bytes | None) -> http.client.HTTPResponse:
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.requests.append(f"{method} {target}")
        for attempt in (0, 1):
            conn = self._connection(parts.scheme, parts.netloc)
            try:
                conn.request(method, target, body=body, headers=dict(headers))
                return conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as exc:
                # A keep-alive connection the server closed meanwhile: one fresh try.
                conn.close()
                self._conns.pop((parts.scheme, parts.netloc), None)
                if attempt:
                    raise RegistryError(f"registry {self.registry}: {exc}") from None
            except ssl.SSLError as exc:
                conn.close()
                self._conns.pop((parts.scheme, parts.netloc), None)
                hint = (" (a plain-HTTP registry? use --insecure, loopback only)"
                        if "WRONG_VERSION_NUMBER" in str(exc) else "")
                raise RegistryError(f"cannot reach registry {self.registry} over HTTPS: "
                                    f"{exc.reason or exc}{hint}") from None
            except OSError as exc:
                conn.close()
                self._conns.pop((parts.scheme, parts.netloc), None)
                raise RegistryError(f"cannot reach registry {self.registry}: {exc}") from None
        raise AssertionError("unreachable")

    def request(self, method: str, url: str, *, scope: str,
                headers: Mapping[str, str] | None = None, body: bytes | None = None,
                stream: bool = False) -> Response:
        """Send, answering one auth challenge and following GET redirects.

        With `stream`, a 2xx body is left unread in `response.raw` (the caller must
        read it to the end before the next request); other bodies are always read.
        """
        if not url.startswith(("http://", "https://")):
            url = self.base + url
        challenged = False
        redirects = 0
        while True:
            hdrs = dict(headers or {})
            own_host = urllib.parse.urlsplit(url).netloc == self.registry
            if own_host:
                self._authorize(hdrs, scope)
            raw = self._send(method, url, hdrs, body)
            if stream and 200 <= raw.status < 300:
                return Response(raw, None)
            resp = Response(raw, raw.read())
            if resp.status == 401 and own_host and not challenged:
                challenged = True
                if self._answer_challenge(resp.header("WWW-Authenticate") or "", scope):
                    continue
            if (method in ("GET", "HEAD") and resp.status in (301, 302, 303, 307, 308)
                    and resp.header("Location") and redirects < _MAX_REDIRECTS):
                redirects += 1
                url = urllib.parse.urljoin(url, resp.header("Location") or "")
                continue
            return resp

    # -- auth

    def _authorize(self, headers: dict[str, str], scope: str) -> None:
        if self._scheme == "basic" and self.auth is not None:
            headers["Authorization"] = self.auth.basic()
        elif self._scheme == "bearer" and scope in self._tokens:
            headers["Authorization"] = f"Bearer {self._tokens[scope]}"

    def _answer_challenge(self, header: str, scope: str) -> bool:
        """True if the request is worth retrying with new credentials."""
        scheme, params = parse_challenge(header)
        if scheme == "basic":
            if self.auth is None or self._scheme == "basic":
                return False
            self._scheme = "basic"
            return True
        if scheme == "bearer" and params.get("realm"):
            self._tokens[scope] = self._fetch_token(params, scope)
            self._scheme = "bearer"
            return True
        return False

    def _fetch_token(self, params: Mapping[str, str], scope: str) -> str:
        realm = params["realm"]
        parts = urllib.parse.urlsplit(realm)
        if parts.scheme == "http":
            # Credentials over plain HTTP: only to this machine.
            check_insecure(parts.netloc)
        query = {k: v for k, v in (("service", params.get("service")),
                                   ("scope", params.get("scope") or scope)) if v}
        url = realm + ("&" if parts.query else "?") + urllib.parse.urlencode(query)
        headers = {"Authorization": self.auth.basic()} if self.auth else {}
        raw = self._send("GET", url, headers, None)
        body = raw.read()
        if raw.status != 200:
            raise RegistryAuthError(f"token request to {parts.netloc} failed "
                                    f"({raw.status}): {_error_text(body)}")
        try:
            doc = json.loads(body)
            return str(doc.get("token") or doc["access_token"])
        except (ValueError, KeyError, AttributeError):
            raise RegistryAuthError(f"token server {parts.netloc} sent no token") from None

    # -- errors

    def fail(self, resp: Response, what: str) -> RegistryError:
        text = _error_text(resp.body) or f"HTTP {resp.status}"
        if resp.status == 401:
            return RegistryAuthError(f"{what}: unauthorized: authentication required "
                                     f"(try `miniorch image login {self.registry}`)")
        if resp.status == 403:
            return RegistryAuthError(f"{what}: denied: {text}")
        return RegistryError(f"{what}: {text} (HTTP {resp.status})")


def _with_query(url: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urllib.parse.urlencode(params)
    return urllib.parse.urlunsplit(parts._replace(query=query))


def _client(config: RegistryConfig, registry: str, *, insecure: bool,
            auth: Credentials | None) -> RegistryClient:
    return RegistryClient(registry, insecure=insecure or config.is_insecure(registry),
                          auth=auth or config.auth_for(registry))


def _locate(config: RegistryConfig, ref: Reference) -> tuple[str, str]:
    where = config.locate(ref)
    if where is None:
        raise PullAccessDenied(ref.familiar_repository)
    return where


# ---------------------------------------------------------------------------- push


@dataclass(frozen=True)
class PushResult:
    reference: Reference
    """Where it went: `127.0.0.1:5000/luksa/kubia:latest`."""
    digest: str
    """Manifest digest, as the registry now serves it."""
    size: int
    """Manifest size (Docker prints `latest: digest: sha256:… size: 1234`)."""
    uploaded: tuple[str, ...] = ()
    existing: tuple[str, ...] = ()
    mounted: tuple[str, ...] = ()
    requests: int = 0


def push(store: ImageStore, ref: str, *, insecure: bool = False,
         auth: Credentials | None = None, progress: TransferProgress = no_progress,
         config: RegistryConfig | None = None, chunk_size: int = DEFAULT_CHUNK,
         manifest_format: str = "oci") -> PushResult:
    """Push the local image named `ref` to the registry its name says (or the default).

    `manifest_format` "oci" sends the stored OCI manifest unchanged and falls back to
    Docker v2 schema 2 if the registry refuses it; "docker" sends schema 2 directly.
    """
    config = config or RegistryConfig()
    parsed = parse_reference(ref)
    if parsed.digest is not None:
        raise ImageError(f"cannot push {ref}: push a tag, not a digest")
    img = store.resolve(str(parsed))
    if img is None:
        raise ImageNotFound(ref, f"An image does not exist locally with the tag: "
                                 f"{parsed.familiar_repository}")
    where = config.locate(parsed)
    if where is None:
        raise RegistryError(
            f"cannot push {parsed.familiar}: no registry configured for Docker Hub names; "
            f"tag it with a registry (`image tag {parsed.familiar_repository} "
            f"127.0.0.1:5000/{parsed.familiar_repository}`) or set a default in "
            "$MINIORCH_HOME/registries.json or $MINIORCH_REGISTRY")
    registry, repo = where
    client = _client(config, registry, insecure=insecure, auth=auth)
    scope = f"repository:{repo}:pull,push"
    uploaded: list[str] = []
    existing: list[str] = []
    mounted: list[str] = []
    try:
        blobs = [*img.layers, img.config_descriptor]
        for d in img.layers:
            progress(Transfer(short(d.digest), "Preparing"))
        sources = _mount_sources(store, parsed, registry, config)
        for d in blobs:
            outcome = _push_blob(store, client, repo, d.digest, d.size, scope=scope,
                                 progress=progress, chunk_size=chunk_size,
                                 sources=sources.get(d.digest, ()),
                                 show=d is not img.config_descriptor)
            {"uploaded": uploaded, "existing": existing}.get(outcome, mounted).append(d.digest)
        data = store.read_blob(img.manifest.digest)
        media_type = img.manifest.media_type
        if manifest_format == "docker":
            data, media_type = to_docker_manifest(data)
        url = f"/v2/{repo}/manifests/{parsed.tag}"
        resp = client.request("PUT", url, scope=scope, body=data,
                              headers={"Content-Type": media_type})
        if resp.status in (400, 415) and media_type == MEDIA_MANIFEST:
            log.debug("registry refused the OCI manifest; sending Docker schema 2",
                     registry=registry, detail=_error_text(resp.body))
            data, media_type = to_docker_manifest(data)
            resp = client.request("PUT", url, scope=scope, body=data,
                                  headers={"Content-Type": media_type})
        if resp.status != 201:
            raise client.fail(resp, f"pushing manifest {parsed.familiar}")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        served = resp.header("Docker-Content-Digest")
        if served and served != digest:
            raise DigestMismatch(f"manifest {parsed.familiar}", digest, served)
        return PushResult(reference=Reference(registry, repo, parsed.tag), digest=digest,
                          size=len(data), uploaded=tuple(uploaded), existing=tuple(existing),
                          mounted=tuple(mounted), requests=len(client.requests))
    finally:
        client.close()


def _mount_sources(store: ImageStore, target: Reference, registry: str,
                   config: RegistryConfig) -> dict[str, tuple[str, ...]]:
    """blob digest → other repositories of the same registry that (locally) hold it."""
    out: dict[str, list[str]] = {}
    for img in store.images():
        for name in img.names:
            where = config.locate(name)
            if where is None or where[0] != registry or where[1] == target.path:
                continue
            for d in (*img.layers, img.config_descriptor):
                if where[1] not in out.setdefault(d.digest, []):
                    out[d.digest].append(where[1])
    return {k: tuple(v) for k, v in out.items()}


def _push_blob(store: ImageStore, client: RegistryClient, repo: str, digest: str, size: int,
               *, scope: str, progress: TransferProgress, chunk_size: int,
               sources: tuple[str, ...], show: bool) -> str:
    """Upload one blob unless the registry has it. Returns uploaded|existing|mounted."""
    sid = short(digest)

    def report(status: str, current: int = 0) -> None:
        if show:
            progress(Transfer(sid, status, current, size))

    resp = client.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=scope)
    if resp.status == 200:
        report("Layer already exists")
        return "existing"
    if resp.status != 404:
        raise client.fail(resp, f"checking blob {sid}")
    location = None
    for source in sources[:3]:
        resp = client.request("POST", f"/v2/{repo}/blobs/uploads/?" + urllib.parse.urlencode(
            {"mount": digest, "from": source}), scope=f"{scope} repository:{source}:pull")
        if resp.status == 201:
            report(f"Mounted from {source}")
            return "mounted"
        if resp.status == 202:
            location = resp.header("Location")  # not mounted, but an upload is open
            break
    if location is None:
        resp = client.request("POST", f"/v2/{repo}/blobs/uploads/", scope=scope)
        if resp.status != 202 or not resp.header("Location"):
            raise client.fail(resp, f"starting upload of {sid}")
        location = resp.header("Location") or ""
    location = urllib.parse.urljoin(client.base + "/", location)
    path = store.blob_path(digest)
    report("Pushing", 0)
    with open(path, "rb") as f:
        if size <= chunk_size:
            data = f.read()
            resp = client.request("PUT", _with_query(location, digest=digest), scope=scope,
                                  body=data, headers={"Content-Type": "application/octet-stream"})
        else:
            offset = 0
            while chunk := f.read(chunk_size):
                resp = client.request(
                    "PATCH", location, scope=scope, body=chunk,
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
                if resp.status != 202:
                    raise client.fail(resp, f"uploading {sid}")
                location = urllib.parse.urljoin(location, resp.header("Location") or location)
                offset += len(chunk)
                report("Pushing", offset)
            resp = client.request("PUT", _with_query(location, digest=digest), scope=scope,
                                  body=b"", headers={"Content-Type": "application/octet-stream"})
    if resp.status != 201:
        raise client.fail(resp, f"uploading {sid}")
    report("Pushed", size)
    return "uploaded"


def to_docker_manifest(data: bytes) -> tuple[bytes, str]:
    """An OCI image manifest rewritten as Docker v2 schema 2 (same blobs, new digest)."""
    m = json.loads(data)
    layer_types = {MEDIA_LAYER_GZIP: DOCKER_LAYER_GZIP, DOCKER_LAYER_GZIP: DOCKER_LAYER_GZIP}
    layers = []
    for layer in m.get("layers") or []:
        if layer["mediaType"] not in layer_types:
            raise RegistryError(f"layer {short(layer['digest'])} ({layer['mediaType']}) "
                                "has no Docker schema 2 equivalent")
        layers.append({"mediaType": layer_types[layer["mediaType"]],
                       "size": layer["size"], "digest": layer["digest"]})
    doc = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
           "config": {"mediaType": DOCKER_CONFIG, "size": m["config"]["size"],
                      "digest": m["config"]["digest"]},
           "layers": layers}
    return json.dumps(doc, indent=3).encode(), DOCKER_MANIFEST


# ---------------------------------------------------------------------------- pull


def pull(store: ImageStore, ref: str | Reference, *, insecure: bool = False,
         auth: Credentials | None = None, progress: TransferProgress = no_progress,
         config: RegistryConfig | None = None) -> Image:
    """Fetch `ref` into the store (by tag or digest) and return the stored image.

    Raises PullAccessDenied when nothing serves `ref` (a Docker Hub name with no default
    registry), RegistryError / DigestMismatch on failure — leaving the store unchanged.
    """
    config = config or RegistryConfig()
    parsed = ref if isinstance(ref, Reference) else parse_reference(ref)
    registry, repo = _locate(config, parsed)
    client = _client(config, registry, insecure=insecure, auth=auth)
    scope = f"repository:{repo}:pull"
    staging = store.tmp_dir / f"pull-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        data, media_type = _get_manifest(client, repo, parsed, scope=scope)
        manifest = _validate_manifest(data, parsed)
        staging.mkdir()
        with store.lease() as lease:
            staged: list[tuple[str, Path]] = []
            blobs = [*manifest["layers"], manifest["config"]]
            for d in manifest["layers"]:
                if store.has_blob(d["digest"]):
                    lease.add(d["digest"])
                    progress(Transfer(short(d["digest"]), "Already exists"))
                else:
                    progress(Transfer(short(d["digest"]), "Pulling fs layer"))
            for d in blobs:
                digest, size = str(d["digest"]), int(d["size"])
                store.blob_path(digest)  # refuses digests that are not sha256:<hex>
                if store.has_blob(digest):
                    lease.add(digest)
                    continue
                dest = staging / digest.removeprefix("sha256:")
                _fetch_blob(client, repo, digest, size, dest, scope=scope,
                            progress=progress if d is not manifest["config"] else no_progress)
                staged.append((digest, dest))
            _check_config(staging, store, manifest)
            # Every blob verified: commit. The lease keeps them from gc until named.
            for digest, path in staged:
                lease.add(digest)
                if not store.has_blob(digest):
                    os.replace(path, store.blob_path(digest))
            fetched = {digest for digest, _ in staged}
            for d in manifest["layers"]:
                if d["digest"] in fetched:
                    progress(Transfer(short(d["digest"]), "Pull complete"))
            image = store.add_manifest(data, media_type, [parsed])
        log.debug("pulled image", ref=str(parsed), digest=image.manifest.digest,
                 requests=len(client.requests))
        return image
    finally:
        client.close()
        shutil.rmtree(staging, ignore_errors=True)


def _get_manifest(client: RegistryClient, repo: str, ref: Reference, *,
                  scope: str) -> tuple[bytes, str]:
    """The image manifest for `ref` (resolving an index to this platform), verified."""
    target = ref.digest or ref.tag or "latest"
    data, media_type = _fetch_manifest(client, repo, target, ref, scope=scope)
    if media_type in INDEX_TYPES:
        digest = _pick_platform(json.loads(data), ref)
        data, media_type = _fetch_manifest(client, repo, digest, ref, scope=scope)
    if media_type not in MANIFEST_TYPES:
        raise RegistryError(f"{ref.familiar}: unsupported manifest type {media_type!r} "
                            "(want an OCI image manifest or Docker v2 schema 2)")
    return data, media_type


def _fetch_manifest(client: RegistryClient, repo: str, target: str, ref: Reference, *,
                    scope: str) -> tuple[bytes, str]:
    resp = client.request("GET", f"/v2/{repo}/manifests/{target}", scope=scope,
                          headers={"Accept": ACCEPT})
    if resp.status == 404:
        raise RegistryError(f"manifest for {ref} not found: {_error_text(resp.body)}")
    if resp.status != 200:
        raise client.fail(resp, f"pulling {ref.familiar}")
    data = resp.body
    if len(data) > _MAX_MANIFEST:
        raise RegistryError(f"manifest for {ref} is too large ({len(data)} bytes)")
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    expected = target if target.startswith("sha256:") else resp.header("Docker-Content-Digest")
    if expected and expected != actual:
        raise DigestMismatch(f"manifest {target}", expected, actual)
    try:
        doc = json.loads(data)
    except ValueError:
        raise RegistryError(f"manifest for {ref} is not JSON") from None
    header_type = (resp.header("Content-Type") or "").partition(";")[0].strip()
    return data, str(doc.get("mediaType") or header_type)


def _pick_platform(index: Mapping[str, Any], ref: Reference) -> str:
    arch = _host_arch()
    for m in index.get("manifests") or []:
        platform = m.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == arch:
            return str(m["digest"])
    raise RegistryError(f"no matching manifest for linux/{arch} in the manifest list "
                        f"entries of {ref.familiar}")


def _validate_manifest(data: bytes, ref: Reference) -> dict[str, Any]:
    try:
        m: dict[str, Any] = json.loads(data)
        if m.get("schemaVersion") != 2 or "config" not in m:
            raise ValueError("not schema version 2")
        for d in [m["config"], *(m.get("layers") or [])]:
            str(d["digest"])
            int(d["size"])
        allowed = (MEDIA_LAYER_GZIP, MEDIA_LAYER_TAR, DOCKER_LAYER_GZIP)
        for d in m.get("layers") or []:
            if d.get("mediaType") not in allowed:
                raise ValueError(f"unsupported layer type {d.get('mediaType')!r}")
        m.setdefault("layers", [])
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(f"manifest for {ref} is invalid: {exc}") from None
    return m


def _fetch_blob(client: RegistryClient, repo: str, digest: str, size: int, dest: Path, *,
                scope: str, progress: TransferProgress) -> None:
    sid = short(digest)
    resp = client.request("GET", f"/v2/{repo}/blobs/{digest}", scope=scope, stream=True)
    if not 200 <= resp.status < 300:
        raise client.fail(resp, f"fetching blob {sid}")
    h = hashlib.sha256()
    got = 0
    try:
        with open(dest, "wb") as f:
            while chunk := resp.raw.read(_READ):
                got += len(chunk)
                if got > size:
                    break  # more than the descriptor promised: stop reading, fail below
                h.update(chunk)
                f.write(chunk)
                progress(Transfer(sid, "Downloading", got, size))
    finally:
        if got > size or not resp.raw.isclosed():
            # The connection is mid-body: it cannot carry another request.
            with contextlib.suppress(OSError):
                resp.raw.close()
            client.close()
    progress(Transfer(sid, "Verifying Checksum", got, size))
    actual = "sha256:" + h.hexdigest()
    if got != size or actual != digest:
        dest.unlink(missing_ok=True)
        if got != size:
            actual += f" ({got} bytes, expected {size})"
        raise DigestMismatch(f"blob {sid}", digest, actual)
    progress(Transfer(sid, "Download complete", got, size))


def _check_config(staging: Path, store: ImageStore, manifest: Mapping[str, Any]) -> None:
    """The config must be JSON whose rootfs.diff_ids pair up with the layers."""
    digest = str(manifest["config"]["digest"])
    path = staging / digest.removeprefix("sha256:")
    raw = path.read_bytes() if path.exists() else store.read_blob(digest)
    try:
        cfg = json.loads(raw)
        diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
    except (ValueError, AttributeError):
        raise RegistryError(f"image config {short(digest)} is not valid JSON") from None
    if len(diff_ids) != len(manifest["layers"]):
        raise RegistryError(f"image config {short(digest)} lists {len(diff_ids)} layers, "
                            f"the manifest {len(manifest['layers'])}")


__all__ = [
    "DEFAULT_CHUNK",
    "PushResult",
    "RegistryClient",
    "parse_challenge",
    "pull",
    "push",
    "to_docker_manifest",
]
