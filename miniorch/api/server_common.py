"""What the API server's flat modules share: the app's state, encoding, negotiation.

    server.py ──builds──► ApiContext (app[CONTEXT]) ◄──reads── server_watch / _logs / _exec

`ApiContext` carries the injected collaborators (settings, registry, clock, token, and
the exec spawner: the one true boundary, a sandbox in production and a local process
in the server tests). It also tracks the cancel scopes of
long-lived streams (watches, followed logs, exec sessions): on shutdown the server
cancels them, so a graceful stop never waits for a client that keeps a watch open.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import yaml
from aiohttp import web

from miniorch.api.errors import (
    ApiError,
    BadRequest,
    RequestEntityTooLarge,
    UnsupportedMediaType,
)
from miniorch.api.registry import Registry
from miniorch.core.clock import Clock
from miniorch.core.objects import Obj
from miniorch.core.settings import Settings

if TYPE_CHECKING:
    from miniorch.api.server_exec import ExecSpawner


@dataclass(kw_only=True)
class ApiContext:
    settings: Settings
    registry: Registry
    clock: Clock
    token: str
    spawn_exec: ExecSpawner
    """Starts `pods/exec` processes (inside the pod's sandbox, or locally in tests)."""
    streams: set[anyio.CancelScope] = field(default_factory=set)

    @contextmanager
    def stream_scope(self) -> Iterator[anyio.CancelScope]:
        """A cancel scope the server cancels at shutdown (for long-lived responses)."""
        with anyio.CancelScope() as scope:
            self.streams.add(scope)
            try:
                yield scope
            finally:
                self.streams.discard(scope)

    def cancel_streams(self) -> None:
        for scope in list(self.streams):
            scope.cancel()


CONTEXT = web.AppKey("miniorch_api_context", ApiContext)

JSON_CT = "application/json"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(obj: Any, *, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(obj), status=status, content_type=JSON_CT,
                        headers=headers)


def status_response(error: ApiError) -> web.Response:
    return json_response(error.to_status(), status=error.code)


def success_status(*, code: int = 200, details: Obj | None = None) -> Obj:
    status: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                   "status": "Success", "code": code}
    if details:
        status["details"] = details
    return status


def query_bool(value: str | None) -> bool:
    """`true`, `True`, `1` (the Python client sends `True`)."""
    return (value or "").strip().lower() in ("true", "1", "yes")


def query_int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"invalid value for {name}: {raw!r}: must be an integer") from None


# ---- content negotiation ----------------------------------------------------------

@dataclass(frozen=True)
class Negotiated:
    """What shape the client asked for: a plain object, a Table or partial metadata."""

    form: str
    """`object`, `table` or `partial`."""


def negotiate(accept: str) -> Negotiated:
    """The first media range we can serve, in the client's order.

    kubectl lists `as=Table;v=v1;g=meta.k8s.io` first; describe lists protobuf first
    (we skip it: JSON only); everything else is plain JSON.
    """
    for media_range in accept.split(","):
        parts = [p.strip() for p in media_range.split(";")]
        mime = parts[0].lower()
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if mime not in ("application/json", "application/*", "*/*", ""):
            continue
        as_ = params.get("as")
        if as_ is None:
            return Negotiated("object")
        if params.get("g") != "meta.k8s.io" or params.get("v") != "v1":
            continue
        if as_ == "Table":
            return Negotiated("table")
        if as_ in ("PartialObjectMetadata", "PartialObjectMetadataList"):
            return Negotiated("partial")
    return Negotiated("object")


def include_object(request: web.Request) -> str:
    value = request.query.get("includeObject") or "Metadata"
    if value not in ("None", "Metadata", "Object"):
        raise BadRequest(f'invalid includeObject value "{value}"')
    return value


def partial_metadata(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {})}


# ---- request bodies ---------------------------------------------------------------

class _NoTimestampLoader(yaml.SafeLoader):
    """YAML without implicit timestamps: `creationTimestamp: 2024-…` stays a string,
    as Kubernetes' YAML-to-JSON conversion keeps it."""


_NoTimestampLoader.yaml_implicit_resolvers = {
    key: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


async def read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge(f"Request entity too large: limit is {limit}")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RequestEntityTooLarge(f"Request entity too large: limit is {limit}") from None


def decode_object(body: bytes, content_type: str) -> Obj:
    """A JSON (or YAML) request body as an object, with kube-apiserver's error wording."""
    if not body.strip():
        raise BadRequest("the body of the request was empty")
    if content_type == PROTOBUF_CT:
        return decode_protobuf_namespace(body)
    if "yaml" in content_type:
        try:
            parsed = yaml.load(body, Loader=_NoTimestampLoader)  # a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise BadRequest(f"error converting YAML to JSON: {exc}") from None
    else:
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"couldn't get version/kind; json parse error: {exc}") from None
    if not isinstance(parsed, dict):
        raise BadRequest("couldn't get version/kind; json parse error: json: cannot unmarshal "
                         f"{type(parsed).__name__} into Go value of type struct "
                         '{ APIVersion string "json:\\"apiVersion,omitempty\\""; '
                         'Kind string "json:\\"kind,omitempty\\"" }')
    return parsed


# ---- protobuf (only what kubectl's typed commands send) -----------------------------------

PROTOBUF_CT = "application/vnd.kubernetes.protobuf"
PROTOBUF_MAGIC = b"k8s\x00"


def _protobuf_fields(data: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) of one protobuf message; varints as ints,
    length-delimited fields as bytes (other wire types are not used by these messages)."""
    pos = 0

    def varint() -> int:
        nonlocal pos
        result = shift = 0
        while True:
            if pos >= len(data):
                raise BadRequest("malformed protobuf body")
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result
    while pos < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, wire, varint()
        elif wire == 2:
            size = varint()
            yield number, wire, data[pos:pos + size]
            pos += size
        else:
            raise BadRequest(f"malformed protobuf body: wire type {wire}")


def _protobuf_map_entry(entry: bytes) -> tuple[str, str]:
    fields = {n: v for n, _w, v in _protobuf_fields(entry) if isinstance(v, bytes)}
    return fields.get(1, b"").decode(), fields.get(2, b"").decode()


def decode_protobuf_namespace(body: bytes) -> Obj:
    """`kubectl create namespace X` sends a protobuf Namespace (kubectl's typed client
    prefers protobuf); its metadata is all that matters. Any other protobuf body is a
    415, as the API serves JSON and YAML."""
    if not body.startswith(PROTOBUF_MAGIC):
        raise BadRequest("malformed protobuf body: missing the k8s envelope")
    type_meta: dict[int, str] = {}
    raw = b""
    for number, _wire, value in _protobuf_fields(body[len(PROTOBUF_MAGIC):]):
        if number == 1 and isinstance(value, bytes):
            type_meta = {n: v.decode() for n, _w, v in _protobuf_fields(value)
                         if isinstance(v, bytes)}
        elif number == 2 and isinstance(value, bytes):
            raw = value
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    if (api_version, kind) != ("v1", "Namespace"):
        raise UnsupportedMediaType(
            f"the body of the request was in an unknown format - accepted media types "
            f"include: application/json, application/yaml (protobuf: {kind or 'unknown'})")
    meta: Obj = {}
    for number, _wire, value in _protobuf_fields(raw):
        if number != 1 or not isinstance(value, bytes):
            continue  # spec.finalizers and status are the server's to set
        for field_no, _w, item in _protobuf_fields(value):
            if not isinstance(item, bytes):
                continue
            if field_no in (1, 2):
                meta["name" if field_no == 1 else "generateName"] = item.decode()
            elif field_no in (11, 12):
                key, val = _protobuf_map_entry(item)
                meta.setdefault("labels" if field_no == 11 else "annotations", {})[key] = val
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}
