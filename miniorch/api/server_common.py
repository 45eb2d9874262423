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

from miniorch.api import jsontext
from miniorch.api.errors import (
    ApiError,
    BadRequest,
    RequestEntityTooLarge,
)
from miniorch.api.registry import Registry
from miniorch.core.clock import Clock
from miniorch.core.metrics import ControlPlaneMetrics
from miniorch.core.objects import Obj
from miniorch.core.settings import Settings

if TYPE_CHECKING:
    from miniorch.api.metrics_api import MetricsApi
    from miniorch.api.satokens import ServiceAccountTokens
    from miniorch.api.server_exec import ExecSpawner


@dataclass(kw_only=True)
class ApiContext:
    settings: Settings
    registry: Registry
    clock: Clock
    token: str
    spawn_exec: ExecSpawner
    """Starts `pods/exec` processes (inside the pod's sandbox, or locally in tests)."""
    tokens: ServiceAccountTokens
    """Signs and checks service-account tokens (satokens.py)."""
    metrics_api: MetricsApi | None = None
    """metrics.k8s.io (metrics_api.py), when the cluster scrapes its kubelets."""
    streams: set[anyio.CancelScope] = field(default_factory=set)

    @property
    def metrics(self) -> ControlPlaneMetrics:
        """The control plane's Prometheus figures (GET /metrics)."""
        return self.registry.metrics

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

RequestInfo = tuple[str, str, str, str, str, str, str]
REQUEST_INFO: web.RequestKey[RequestInfo] = web.RequestKey("miniorch_request_info")
"""Request key: (verb, dry_run, group, version, resource, subresource, scope) of a
resource request, set by the dispatcher for the metrics middleware (kube-apiserver's
RequestInfo)."""

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


PROTOBUF_CT = "application/vnd.kubernetes.protobuf"


async def read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge(f"Request entity too large: limit is {limit}")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RequestEntityTooLarge(f"Request entity too large: limit is {limit}") from None


def decode_object(body: bytes, content_type: str) -> Obj:
    """A JSON, YAML or Kubernetes protobuf request body as an object, with
    kube-apiserver's error wording."""
    if not body.strip():
        raise BadRequest("the body of the request was empty")
    if content_type == PROTOBUF_CT:
        # Imported here: the protobuf runtime and schema cost only a protobuf request.
        from miniorch.api import protobuf
        return protobuf.decode(body)
    if "yaml" in content_type:
        try:
            # a SafeLoader subclass
            parsed = jsontext.sanitize(yaml.load(body, Loader=_NoTimestampLoader))
        except RecursionError:  # the YAML composer recurses too
            raise BadRequest(f"error converting YAML to JSON: {jsontext.TooDeep()}") from None
        except (yaml.YAMLError, ValueError) as exc:
            raise BadRequest(f"error converting YAML to JSON: {exc}") from None
    else:
        try:
            parsed = jsontext.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"couldn't get version/kind; json parse error: {exc}") from None
    if not isinstance(parsed, dict):
        raise BadRequest("couldn't get version/kind; json parse error: json: cannot unmarshal "
                         f"{type(parsed).__name__} into Go value of type struct "
                         '{ APIVersion string "json:\\"apiVersion,omitempty\\""; '
                         'Kind string "json:\\"kind,omitempty\\"" }')
    return parsed
