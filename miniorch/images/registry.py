"""An OCI distribution API client: `push` and `pull` between the local store and a registry.

    push: store ──► HEAD blob (exists? skip) ──► POST mount=&from= (same registry, cheap)
                    ──► POST upload ──► PUT ?digest= (one request, blob ≤ chunk_size)
                                    └─► PATCH chunk … PATCH chunk ──► PUT ?digest=
          ──► PUT manifest by tag (OCI; Docker v2 schema 2 if the registry refuses OCI)
    pull: for each endpoint (mirrors, then the registry; regconfig.RegistryConfig):
          GET manifest (tag or digest; an index / manifest list → this platform's entry,
              containerd's variant rules; bodies bounded by oci.Limits)
          ──► GET each blob the store lacks into tmp/pull-*/ (digest and size verified
              while streaming) ──► unpack every layer into unpacked/ (diff_id verified,
              members confined: layers.unpack_layer) ──► under a lease: rename blobs in,
              then name the manifest (marked as pulled, so `Always` re-pulls it)

Invariants.
  - Nothing fetched is stored unless it verified: every digest (index entry, manifest,
    config, layer, diff_id) must be `sha256:<64 hex>` or `sha512:<128 hex>` before it is
    used at all; a manifest fetched by digest must hash to it (by tag: to
    `Docker-Content-Digest` when the registry sends one), every blob to its descriptor's
    digest and size, every decompressed layer to its diff_id. A mismatch raises
    `DigestMismatch`; a layer breaking the unpack rules, `UnsafePath`.
  - A failed pull leaves no image, no blob and no unpacked layer: blobs are staged under
    the store's tmp/ and only renamed into blobs/ once every one of them has verified and
    unpacked; the staging directory is removed and the store gc'd on every failed path.
    The pull holds a store lease from start to finish, so a concurrent `image rm`
    cannot collect layers it reuses.
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

from miniorch.core.logging import get_logger
from miniorch.images.errors import (
    DigestMismatch,
    ImageError,
    ImageNotFound,
    InvalidDigest,
    LimitExceeded,
    PullAccessDenied,
    RegistryAuthError,
    RegistryError,
    UnsafePath,
)
from miniorch.images.oci import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    LAYER_COMPRESSION,
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER_GZIP,
    MEDIA_MANIFEST,
    Descriptor,
    Image,
    Limits,
    check_digest,
    digest_of,
    hasher,
)
from miniorch.images.progress import Transfer, TransferProgress, no_progress
from miniorch.images.reference import Reference, parse_reference
from miniorch.images.regconfig import (
    Credentials,
    Endpoint,
    RegistryConfig,
    check_insecure,
    is_loopback,
)
from miniorch.images.store import SOURCE_REGISTRY, ImageStore

log = get_logger(__name__)  # structlog, imported on first use (core.logging)

CONFIG_TYPES = (MEDIA_CONFIG, DOCKER_CONFIG)
MANIFEST_TYPES = (MEDIA_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (MEDIA_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))

DEFAULT_CHUNK = 4 << 20
"""Blobs up to this size go up in one PUT; bigger ones in PATCH chunks of this size."""
_READ = 1 << 16
_MAX_ERROR_BODY = 64 << 10
"""Error and auth bodies are read this far, no further (a registry can send gigabytes)."""
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
                stream: bool = False, max_body: int = 4 << 20) -> Response:
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
            resp = Response(raw, self._read_body(raw, max_body if 200 <= raw.status < 300
                                                 else _MAX_ERROR_BODY))
            if resp.status == 401 and own_host and not challenged:
                challenged = True
                if self._answer_challenge(resp.header("WWW-Authenticate") or "", scope):
                    continue
            if (method in ("GET", "HEAD") and resp.status in (301, 302, 303, 307, 308)
                    and resp.header("Location") and redirects < _MAX_REDIRECTS):
                redirects += 1
                url = urllib.parse.urljoin(url, resp.header("Location") or "")
                target = urllib.parse.urlsplit(url)
                if target.scheme != "https" and not (target.scheme == "http" and
                                                     is_loopback(target.netloc)):
                    raise RegistryError(f"registry {self.registry} redirected to {url[:200]}: "
                                        "only HTTPS (or plain HTTP on loopback) is followed")
                continue
            return resp

    def _read_body(self, raw: http.client.HTTPResponse, limit: int) -> bytes:
        """The whole body, if it is at most `limit` bytes; else LimitExceeded (for a 2xx)
        or the first `limit` bytes (an error's text), and the connection is dropped."""
        length = raw.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            data, whole = raw.read(min(limit, _MAX_ERROR_BODY)), False
        else:
            data = raw.read(limit + 1)
            whole = len(data) <= limit
        if not whole:
            with contextlib.suppress(OSError):
                raw.close()
            self.close()  # mid-body: this connection cannot carry another request
            if 200 <= raw.status < 300:
                raise LimitExceeded(f"registry {self.registry}: response body larger than "
                                    f"{limit} bytes")
            return data[:limit]
        return data

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
        body = self._read_body(raw, _MAX_ERROR_BODY)
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
         config: RegistryConfig | None = None,
         pod_auth: Mapping[str, Credentials] | None = None) -> Image:
    """Fetch `ref` into the store (by tag or digest) and return the stored image.

    Endpoints are tried in the config's order (mirrors, then the registry itself); the
    first that delivers a verified, safely unpackable image wins. `auth` is for every
    endpoint (`image pull` with explicit credentials); `pod_auth` (a pod's
    imagePullSecrets, keyed by `regconfig.registry_key`) comes before auth.json.
    Raises PullAccessDenied when nothing may be contacted, else the last endpoint's
    RegistryError / DigestMismatch / UnsafePath — leaving the store unchanged.
    """
    config = config or RegistryConfig()
    parsed = ref if isinstance(ref, Reference) else parse_reference(ref)
    endpoints = config.endpoints(parsed)
    if not endpoints:
        raise PullAccessDenied(parsed.familiar_repository,
                               "offline, and no loopback mirror serves "
                               f"{parsed.domain}" if config.offline else
                               "no registry configured")
    error: ImageError | None = None
    for ep in endpoints:
        client = RegistryClient(ep.host, insecure=insecure or ep.insecure,
                                auth=auth or config.auth_for(ep.host, ep.domain, pod_auth))
        try:
            return _pull_from(store, client, ep, parsed, progress=progress)
        except (RegistryError, UnsafePath, InvalidDigest, LimitExceeded) as exc:
            error = exc
            if ep is not endpoints[-1]:
                log.info("mirror failed, trying the next endpoint", mirror=ep.host,
                         ref=str(parsed), error=str(exc))
        finally:
            client.close()
    assert error is not None
    raise error


def _pull_from(store: ImageStore, client: RegistryClient, ep: Endpoint, ref: Reference, *,
               progress: TransferProgress) -> Image:
    limits = store.limits
    scope = f"repository:{ep.repo}:pull"
    staging = store.tmp_dir / f"pull-{os.getpid()}-{os.urandom(4).hex()}"
    committed = False
    try:
        data, media_type = _get_manifest(client, ep.repo, ref, scope=scope, limits=limits)
        manifest = _validate_manifest(data, ref, limits)
        staging.mkdir(mode=0o700)
        with store.lease() as lease:
            staged: dict[str, Path] = {}
            layers = manifest["layers"]
            for d in layers:
                if store.has_blob(d["digest"]):
                    lease.add(d["digest"])
                    progress(Transfer(short(d["digest"]), "Already exists"))
                else:
                    progress(Transfer(short(d["digest"]), "Pulling fs layer"))
            for d in [*layers, manifest["config"]]:
                digest, size = str(d["digest"]), int(d["size"])
                if store.has_blob(digest):
                    lease.add(digest)
                    continue
                if digest in staged:
                    continue  # the same blob twice in one manifest
                dest = staging / digest.replace(":", "-")
                _fetch_blob(client, ep.repo, digest, size, dest, scope=scope,
                            progress=progress if d is not manifest["config"] else no_progress)
                staged[digest] = dest
            diff_ids = _check_config(staging, store, manifest, limits)
            # Unpack (and so verify every diff_id and every member) before anything is
            # committed: a hostile layer is refused here with the store unchanged.
            budget = limits.unpacked_total_bytes
            for d, diff_id in zip(layers, diff_ids, strict=True):
                lease.add(diff_id)
                desc = Descriptor(str(d["mediaType"]), str(d["digest"]), int(d["size"]))
                path = store.unpacked_layer(desc, diff_id, blob=staged.get(desc.digest),
                                            max_bytes=min(budget, limits.unpacked_layer_bytes))
                budget -= _tree_size_hint(path)
                if budget < 0:
                    raise LimitExceeded(f"{ref.familiar}: layers unpack to more than "
                                        f"{limits.unpacked_total_bytes} bytes")
            # Every blob verified: commit. The lease keeps them from gc until named.
            for digest, path in staged.items():
                lease.add(digest)
                if not store.has_blob(digest):
                    store.blob_path(digest).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(path, store.blob_path(digest))
            for d in layers:
                if d["digest"] in staged:
                    progress(Transfer(short(d["digest"]), "Pull complete"))
            image = store.add_manifest(data, media_type, [ref], source=SOURCE_REGISTRY)
            committed = True
        log.debug("pulled image", ref=str(ref), registry=ep.host,
                  digest=image.manifest.digest, requests=len(client.requests))
        return image
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not committed:
            # Unpacked layers of a refused pull are reachable from nothing: collect them.
            with contextlib.suppress(OSError, ImageError):
                store.gc()


def _tree_size_hint(path: Path) -> int:
    """Bytes under an unpacked layer (for the per-image total bound)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


def _get_manifest(client: RegistryClient, repo: str, ref: Reference, *, scope: str,
                  limits: Limits) -> tuple[bytes, str]:
    """The image manifest for `ref` (resolving indexes to this platform), verified."""
    target = ref.digest or ref.tag or "latest"
    data, media_type = _fetch_manifest(client, repo, target, ref, scope=scope, limits=limits)
    depth = 0
    while media_type in INDEX_TYPES:
        depth += 1
        if depth > limits.index_depth:
            raise LimitExceeded(f"{ref.familiar}: indexes nested more than "
                                f"{limits.index_depth} deep")
        chosen = _pick_platform(_json_object(data, f"index for {ref}"), ref)
        data, media_type = _fetch_manifest(client, repo, chosen.digest, ref, scope=scope,
                                           limits=limits)
        if len(data) != chosen.size:
            raise DigestMismatch(f"manifest {chosen.digest} size", str(chosen.size),
                                 str(len(data)))
    if media_type not in MANIFEST_TYPES:
        raise RegistryError(f"{ref.familiar}: unsupported manifest type {media_type!r} "
                            "(want an OCI image manifest or Docker v2 schema 2)")
    return data, media_type


def _denied(client: RegistryClient, resp: Response, ref: Reference) -> RegistryError:
    """Docker's and Kubernetes' wording for 401/403/404 on a pull."""
    text = _error_text(resp.body) or f"HTTP {resp.status}"
    return RegistryAuthError(
        f"pull access denied for {ref.familiar_repository}, repository does not exist or "
        f"may require 'docker login' (`miniorch image login {client.registry}`): {text}")


def _fetch_manifest(client: RegistryClient, repo: str, target: str, ref: Reference, *,
                    scope: str, limits: Limits) -> tuple[bytes, str]:
    resp = client.request("GET", f"/v2/{repo}/manifests/{target}", scope=scope,
                          headers={"Accept": ACCEPT}, max_body=limits.manifest_bytes)
    if resp.status in (401, 403):
        raise _denied(client, resp, ref)
    if resp.status == 404:
        raise RegistryError(f"manifest for {ref} not found: manifest unknown: "
                            f"{_error_text(resp.body)}")
    if resp.status != 200:
        raise client.fail(resp, f"pulling {ref.familiar}")
    data = resp.body
    by_digest = target.partition(":")[0] in ("sha256", "sha512")
    served = resp.header("Docker-Content-Digest")
    expected = target if by_digest else served
    if expected:
        check_digest(expected, "manifest digest")
        actual = digest_of(data, expected)
        if expected != actual:
            raise DigestMismatch(f"manifest {target}", expected, actual)
    doc = _json_object(data, f"manifest for {ref}")
    header_type = (resp.header("Content-Type") or "").partition(";")[0].strip()
    return data, str(doc.get("mediaType") or header_type)


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError:
        raise RegistryError(f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{what} is not a JSON object")
    return doc


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm",
                 "armel": "arm", "i386": "386", "i686": "386"}


def host_platform() -> tuple[str, str, str]:
    """(os, architecture, variant) of this machine, as OCI platforms spell them."""
    machine = os.uname().machine
    if machine in ("aarch64", "arm64"):
        return "linux", "arm64", "v8"
    if machine.startswith("armv"):
        return "linux", "arm", f"v{machine[4]}" if machine[4:5].isdigit() else "v7"
    return "linux", _ARCH_ALIASES.get(machine, machine), ""


def platform_rank(entry: Mapping[str, Any], host: tuple[str, str, str]) -> int | None:
    """How well an index entry's platform fits `host` (0 best), None if it cannot run.

    containerd's rules (platforms.Only): variants normalised (arm64 means arm64/v8, arm
    means arm/v7, amd64/v1 is amd64); an arm CPU also runs older arm variants, arm64
    runs arm/v7 and below, amd64 runs 386 — each fallback ranked after the exact match.
    Attestation manifests (`unknown/unknown`) never match.
    """
    hos, harch, hvar = host
    eos = str(entry.get("os") or "")
    earch = _ARCH_ALIASES.get(str(entry.get("architecture") or ""),
                              str(entry.get("architecture") or ""))
    evar = str(entry.get("variant") or "")
    if eos != hos:
        return None
    if earch == "arm64" and evar in ("", "v8"):
        evar = "v8"
    if earch == "arm" and not evar:
        evar = "v7"
    if earch == "amd64" and evar == "v1":
        evar = ""
    if earch == harch and evar == hvar:
        return 0
    if harch == "arm" and earch == "arm" and evar[1:].isdigit() and hvar[1:].isdigit():
        older = int(hvar[1:]) - int(evar[1:])
        return older if older > 0 else None
    if harch == "arm64" and earch == "arm" and evar in ("v8", "v7", "v6", "v5"):
        return 10 + ("v8", "v7", "v6", "v5").index(evar)
    if harch == "amd64" and earch == "386":
        return 10
    return None


def _pick_platform(index: Mapping[str, Any], ref: Reference) -> Descriptor:
    host = host_platform()
    best: tuple[int, Descriptor] | None = None
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise RegistryError(f"index for {ref.familiar} has no manifests list")
    for m in entries:
        if not isinstance(m, dict):
            continue
        rank = platform_rank(m.get("platform") or {}, host)
        if rank is None:
            continue
        desc = _descriptor(m, f"index entry of {ref.familiar}", limit=1 << 62)
        if best is None or rank < best[0]:
            best = (rank, desc)
    if best is None:
        raise RegistryError(f"no matching manifest for {host[0]}/{host[1]}"
                            f"{'/' + host[2] if host[2] else ''} in the manifest list "
                            f"entries of {ref.familiar}")
    return best[1]


def _descriptor(d: object, what: str, *, limit: int) -> Descriptor:
    if not isinstance(d, dict):
        raise RegistryError(f"{what}: not a descriptor")
    check_digest(d.get("digest"), f"{what} digest")
    size = d.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(f"{what}: size {size!r} is not a non-negative integer")
    if size > limit:
        raise LimitExceeded(f"{what}: {size} bytes is over the limit of {limit}")
    return Descriptor(str(d.get("mediaType") or ""), str(d["digest"]), size)


def _validate_manifest(data: bytes, ref: Reference, limits: Limits) -> dict[str, Any]:
    m = _json_object(data, f"manifest for {ref}")
    if m.get("schemaVersion") != 2:
        raise RegistryError(f"manifest for {ref} is invalid: not schema version 2")
    config = _descriptor(m.get("config"), f"config of {ref.familiar}",
                         limit=limits.config_bytes)
    if config.media_type not in CONFIG_TYPES:
        raise RegistryError(f"{ref.familiar} is not a container image (its config is "
                            f"{config.media_type!r})")
    layers = m.get("layers") or []
    if not isinstance(layers, list):
        raise RegistryError(f"manifest for {ref} is invalid: layers is not a list")
    if len(layers) > limits.layers:
        raise LimitExceeded(f"{ref.familiar}: {len(layers)} layers (at most {limits.layers})")
    for i, d in enumerate(layers):
        desc = _descriptor(d, f"layer {i} of {ref.familiar}", limit=limits.layer_bytes)
        if desc.media_type not in LAYER_COMPRESSION:
            raise RegistryError(f"{ref.familiar}: layer {short(desc.digest)} has unsupported "
                                f"media type {desc.media_type!r}")
    m["layers"] = layers
    return m


def _fetch_blob(client: RegistryClient, repo: str, digest: str, size: int, dest: Path, *,
                scope: str, progress: TransferProgress) -> None:
    sid = short(digest)
    h = hasher(digest)
    resp = client.request("GET", f"/v2/{repo}/blobs/{digest}", scope=scope, stream=True)
    if not 200 <= resp.status < 300:
        raise client.fail(resp, f"fetching blob {sid}")
    got = 0
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
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
    actual = f"{digest.partition(':')[0]}:{h.hexdigest()}"
    if got != size or actual != digest:
        dest.unlink(missing_ok=True)
        if got != size:
            actual += f" ({got} bytes, expected {size})"
        raise DigestMismatch(f"blob {sid}", digest, actual)
    progress(Transfer(sid, "Download complete", got, size))


def _check_config(staging: Path, store: ImageStore, manifest: Mapping[str, Any],
                  limits: Limits) -> list[str]:
    """The config must be JSON whose rootfs.diff_ids are digests pairing up with the
    layers. Returns the diff_ids."""
    digest = str(manifest["config"]["digest"])
    path = staging / digest.replace(":", "-")
    raw = path.read_bytes() if path.exists() else store.read_blob(digest)
    cfg = _json_object(raw, f"image config {short(digest)}")
    rootfs = cfg.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list):
        raise RegistryError(f"image config {short(digest)} has no rootfs.diff_ids")
    for diff in diff_ids:
        check_digest(diff, f"diff_id in image config {short(digest)}")
    if len(diff_ids) != len(manifest["layers"]):
        raise RegistryError(f"image config {short(digest)} lists {len(diff_ids)} layers, "
                            f"the manifest {len(manifest['layers'])}")
    return [str(d) for d in diff_ids]


__all__ = [
    "DEFAULT_CHUNK",
    "PushResult",
    "RegistryClient",
    "host_platform",
    "parse_challenge",
    "platform_rank",
    "pull",
    "push",
    "to_docker_manifest",
]
