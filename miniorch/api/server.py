"""The HTTPS API server: Kubernetes core/v1 REST over the registry, for kubectl, the
official Python client and miniorch's own CLI.

    client ──TLS──► aiohttp ──► _errors ──► _auth (Bearer token) ──► _dispatch
                                                  │ the admin token, or a service-account
                                                  │ JWT (satokens.py) → authn.CALLER
                                                                        │
     /version /healthz /api /apis /openapi/v3   (discovery, from registry.kinds)
     /api/v1/[watch/][namespaces/<ns>/]<plural>[/<name>[/<subresource>]]
     /apis/<group>/<version>/…                  (same shape, every group served)
                                                                        │
              list/get/create/update/patch/delete/deletecollection ─► Registry ─► Store
                (admission's warnings ─► api/warning.py ─► `Warning:` headers)
              ?watch=true ─► server_watch     pods/log ─► server_logs
              pods/exec ─► server_exec        pods/binding, pods/eviction, */scale, */status
              pods/portforward ─► server_portforward
              serviceaccounts/token ─► satokens (TokenRequest)

Invariants:
- Every body is JSON with `kind` and `apiVersion`; every error is a `Status` from
  `errors.ApiError.to_status()` with its HTTP code; anything unexpected is a 500
  Status and one structlog error line, never a traceback on the wire.
- Handlers call the synchronous registry directly: each request's read-modify-write
  is atomic on the event loop. The only blocking I/O per request is the store's
  (SQLite commit on writes); log and sandbox files are read in worker threads.
- Content negotiation: a Table (`as=Table;v=v1;g=meta.k8s.io`) only when asked for,
  else JSON (also when protobuf is preferred, as `describe` does).
- The server owns no state of its own besides the token and the set of open streams
  (cancelled at shutdown so a graceful stop never waits on a watching client).
- Authentication only, no authorisation: a service account may do what the admin may
  (no RBAC yet); `auth whoami` and `auth can-i` say who the caller is and why.
- Pods reach the API through the `kubernetes` Service: as root the server also listens
  on the bridge's gateway address (the Service's Endpoints, which the server writes
  at start as kube-apiserver's endpoint reconciler does). Without root there is no
  bridge: pods are host processes and reach the loopback address instead.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
import time
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import anyio.to_thread
import structlog
from aiohttp import web
from multidict import CIMultiDict

from miniorch.api import authn, kubeconfig, satokens, tls, warning
from miniorch.api.errors import (
    ApiError,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    Unauthorized,
    UnsupportedMediaType,
)
from miniorch.api.kinds import ENDPOINTS, PODS, SERVICE_ACCOUNTS, SERVICES, Kind, Resource
from miniorch.api.metrics_api import GROUP as METRICS_GROUP
from miniorch.api.metrics_api import VERSION as METRICS_VERSION
from miniorch.api.metrics_api import MetricsApi, ResourceMetrics
from miniorch.api.metrics_api import api_group as metrics_api_group
from miniorch.api.openapi import (
    OPENAPI_V2_PROTOBUF,
    openapi_v2_document,
    openapi_v2_protobuf,
    openapi_v3_document,
    openapi_v3_root,
)
from miniorch.api.patch import apply_patch
from miniorch.api.registry import Registry
from miniorch.api.schema import SCALE_DEFINITION
from miniorch.api.selectors import FieldSelector, LabelSelector
from miniorch.api.server_common import (
    CONTEXT,
    JSON_CT,
    REQUEST_INFO,
    ApiContext,
    decode_object,
    dumps,
    include_object,
    json_response,
    negotiate,
    partial_metadata,
    query_bool,
    query_int,
    read_body,
    status_response,
    success_status,
)
from miniorch.api.server_exec import ExecSpawner, sandbox_spawner, serve_exec
from miniorch.api.server_logs import serve_logs
from miniorch.api.server_portforward import serve_portforward
from miniorch.api.server_watch import serve_watch
from miniorch.api.tables import to_table
from miniorch.core.clock import Clock
from miniorch.core.metrics import EXPOSITION_CONTENT_TYPE
from miniorch.core.objects import Obj
from miniorch.core.settings import Settings

log = structlog.get_logger(__name__)

KUBERNETES_VERSION = ("1", "32", "v1.32.0-miniorch")
ANONYMOUS_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json")
AUTH_PROTOCOL_PREFIX = "base64url.bearer.authorization.k8s.io."


# ---- wiring -------------------------------------------------------------------------

def build_app(*, settings: Settings, registry: Registry, clock: Clock, token: str,
              spawn_exec: ExecSpawner | None = None,
              tokens: satokens.ServiceAccountTokens | None = None,
              resource_metrics: ResourceMetrics | None = None) -> web.Application:
    """The aiohttp application (tests run it with aiohttp's TestServer). `spawn_exec`
    starts `pods/exec` processes: by default inside the pod's sandbox. `tokens` signs
    and checks service-account tokens: by default with the key under `tls_dir`.
    `resource_metrics`: the kubelets' readings, served as metrics.k8s.io; None: that
    group is not served (as a cluster without metrics-server)."""
    ctx = ApiContext(settings=settings, registry=registry, clock=clock, token=token,
                     spawn_exec=spawn_exec or sandbox_spawner(settings),
                     tokens=tokens or satokens.ServiceAccountTokens.load(settings.tls_dir),
                     metrics_api=(MetricsApi(resource_metrics, registry, clock)
                                  if resource_metrics is not None else None))
    app = web.Application(middlewares=[_metrics_middleware, _errors_middleware,
                                       _auth_middleware],
                          client_max_size=settings.max_request_bytes)
    app[CONTEXT] = ctx
    app.router.add_route("*", "/{tail:.*}", _dispatch)

    async def on_shutdown(_app: web.Application) -> None:
        ctx.cancel_streams()
    app.on_shutdown.append(on_shutdown)
    return app


class ApiServer:
    """The API actor: serves HTTPS on `settings.api_host:api_port` until cancelled.

    At start it ensures the TLS material (CA, serving certificate, token) and writes
    the kubeconfig for the port actually bound (`api_port=0` picks a free one).
    """

    def __init__(self, *, settings: Settings, registry: Registry, clock: Clock,
                 spawn_exec: ExecSpawner | None = None, pod_gateway: str | None = None,
                 resource_metrics: ResourceMetrics | None = None) -> None:
        """`pod_gateway`: the bridge's host address (as root), where pods reach the API
        through the `kubernetes` Service; None without a bridge. `resource_metrics`:
        served as metrics.k8s.io (build_app)."""
        self.settings = settings
        self.resource_metrics = resource_metrics
        self.pod_gateway = pod_gateway
        self.registry = registry
        self.clock = clock
        self.spawn_exec = spawn_exec
        self.port: int | None = None
        """The bound port, once started."""
        self.material: tls.TlsMaterial | None = None

    @property
    def url(self) -> str:
        return f"https://{_url_host(self.settings.api_host)}:{self.port}"

    async def run(self, *, task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED
                  ) -> None:
        settings = self.settings
        first_cluster_ip = str(ipaddress.ip_network(settings.network.service_cidr)[1])
        ips = [settings.api_host, first_cluster_ip]
        if self.pod_gateway:
            ips.append(self.pod_gateway)
        material = await anyio.to_thread.run_sync(partial(
            tls.ensure_tls, settings.tls_dir, ips=ips))
        self.material = material
        app = build_app(settings=settings, registry=self.registry, clock=self.clock,
                        token=material.token, spawn_exec=self.spawn_exec,
                        resource_metrics=self.resource_metrics)
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                               shutdown_timeout=5.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, settings.api_host, settings.api_port,
                               ssl_context=material.server_ssl_context(), reuse_address=True)
            try:
                await site.start()
            except OSError as exc:
                raise OSError(exc.errno, f"cannot serve the API on {settings.api_host}:"
                              f"{settings.api_port}: {exc.strerror or exc} (is another "
                              "cluster running? choose another port with --api-port)"
                              ) from exc
            self.port = _bound_port(runner, settings.api_port)
            if self.pod_gateway and self.pod_gateway != settings.api_host:
                inner = web.TCPSite(runner, self.pod_gateway, self.port,
                                    ssl_context=material.server_ssl_context(),
                                    reuse_address=True)
                try:
                    await inner.start()
                except OSError as exc:
                    raise OSError(exc.errno, f"cannot serve the API to pods on "
                                  f"{self.pod_gateway}:{self.port}: {exc.strerror or exc}"
                                  ) from exc
            publish_api_endpoints(self.registry, self.pod_gateway or "127.0.0.1", self.port)
            await anyio.to_thread.run_sync(partial(
                kubeconfig.write_kubeconfig, settings.kubeconfig_path,
                server=self.url if settings.api_host not in ("0.0.0.0", "::")
                else f"https://127.0.0.1:{self.port}",
                ca_pem=material.ca_pem, token=material.token))
            log.info("api server listening", url=self.url)
            task_status.started(self.url)
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await runner.cleanup()


def publish_api_endpoints(registry: Registry, address: str, port: int) -> None:
    """`default/kubernetes`: its Endpoints name the address pods reach the API on, and
    the Service's targetPort follows the port bound (kube-apiserver's endpoint
    reconciler). The Service has no selector, so the Endpoints controller leaves them
    alone."""
    service = registry.try_get(SERVICES, "default", "kubernetes")
    if service is None:
        return
    ports = (service.get("spec") or {}).get("ports") or []
    if any(p.get("targetPort") != port for p in ports):
        def retarget(svc: Obj) -> None:
            for p in svc["spec"].get("ports") or []:
                p["targetPort"] = port
        registry.mutate(SERVICES, "default", "kubernetes", retarget)
    endpoints: Obj = {
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": address}],
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}
    current = registry.try_get(ENDPOINTS, "default", "kubernetes")
    if current is None:
        registry.create(ENDPOINTS, endpoints)
    elif current.get("subsets") != endpoints["subsets"]:
        def put(obj: Obj) -> None:
            obj["subsets"] = endpoints["subsets"]
            obj["metadata"].setdefault("labels", {}).update(endpoints["metadata"]["labels"])
        registry.mutate(ENDPOINTS, "default", "kubernetes", put)


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def _bound_port(runner: web.AppRunner, wanted: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return wanted


# ---- middlewares ----------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: times every request, whatever its outcome, into
    apiserver_request_duration_seconds / apiserver_request_total (core/metrics.py)."""
    started = time.perf_counter()
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    except web.HTTPException as exc:
        code = exc.status
        raise
    finally:
        info = request.get(REQUEST_INFO) or (request.method, "", "", "", "", "", "")
        request.app[CONTEXT].metrics.observe_request(info, code,
                                                     time.perf_counter() - started)


@web.middleware
async def _errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return status_response(exc)
    except web.HTTPException:
        raise
    except Exception as exc:
        log.exception("api request failed", method=request.method, path=request.path)
        return status_response(ApiError(f"Internal error occurred: {type(exc).__name__}: {exc}"))


@web.middleware
async def _auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in ANONYMOUS_PATHS:
        return await handler(request)
    token = request.app[CONTEXT].token
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    presented = value.strip() if scheme.lower() == "bearer" else ""
    if not presented:
        # Browsers cannot set headers on WebSockets; Kubernetes accepts the token as a
        # subprotocol instead.
        for proto in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
            proto = proto.strip()
            if proto.startswith(AUTH_PROTOCOL_PREFIX):
                raw = proto[len(AUTH_PROTOCOL_PREFIX):]
                try:
                    presented = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
                except ValueError:
                    presented = ""
    if presented and secrets.compare_digest(presented.encode(), token.encode()):
        user: authn.UserInfo | None = authn.ADMIN
    elif presented.count(".") == 2:
        ctx = request.app[CONTEXT]
        user = ctx.tokens.authenticate(ctx.registry, presented, ctx.clock.now().timestamp())
    else:
        user = None
    if user is None:
        raise Unauthorized("Unauthorized")
    # This request's own task: the reviews read it (authn.CALLER).
    authn.CALLER.set(user)
    # And its warnings sink: admission (podsecurity.py) warns through it.
    with warning.collecting():
        return await handler(request)


# ---- dispatch -------------------------------------------------------------------------

def _not_found() -> NotFound:
    return NotFound("the server could not find the requested resource")


def _not_allowed() -> MethodNotAllowed:
    return MethodNotAllowed("the server does not allow this method on the requested resource")


async def _dispatch(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    segs = [s for s in request.path.split("/") if s]
    if not segs:
        return json_response({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez",
                                        "/openapi/v3", "/readyz", "/version"]})
    head = segs[0]
    if head in ("healthz", "livez", "readyz") and len(segs) == 1:
        return web.Response(text="ok", content_type="text/plain")
    if head == "version" and len(segs) == 1:
        return json_response(_version())
    if head == "openapi":
        return _openapi(request, ctx, segs[1:])
    if head == "metrics" and len(segs) == 1:
        if request.method != "GET":
            raise _not_allowed()
        return web.Response(body=ctx.metrics.exposition(),
                            headers={"Content-Type": EXPOSITION_CONTENT_TYPE})
    kinds = ctx.registry.kinds
    if head == "api":
        if len(segs) == 1:
            return json_response(_api_versions(request))
        if segs[1] != "v1":
            raise _not_found()
        group, version, rest = "", "v1", segs[2:]
    elif head == "apis":
        groups = _api_groups(ctx)
        if len(segs) == 1:
            return json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if len(segs) == 2:
            for g in groups:
                if g["name"] == segs[1]:
                    return json_response({"kind": "APIGroup", "apiVersion": "v1", **g})
            raise _not_found()
        group, version, rest = segs[1], segs[2], segs[3:]
        if group == METRICS_GROUP and version == METRICS_VERSION and ctx.metrics_api:
            request[REQUEST_INFO] = _metrics_request_info(request, rest)
            return json_response(ctx.metrics_api.handle(request.method, rest,
                                                        dict(request.query)))
        if not kinds.served(group, version):
            raise _not_found()
    else:
        raise _not_found()
    if not rest:
        if request.method != "GET":
            raise _not_allowed()
        return json_response(_resource_list(ctx, group, version))
    return await _resource_request(request, ctx, group, version, rest)


async def _resource_request(request: web.Request, ctx: ApiContext, group: str, version: str,
                            rest: list[str]) -> web.StreamResponse:
    served = ctx.registry.kinds.served(group, version)
    watch_path = rest[0] == "watch"
    if watch_path:
        rest = rest[1:]
    if not rest:
        raise _not_found()
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in served \
            and served[rest[2]].resource.namespaced:
        namespace, kind, tail = rest[1], served[rest[2]], rest[3:]
    else:
        found = served.get(rest[0])
        if found is None:
            raise _not_found()
        kind, tail = found, rest[1:]
    resource = kind.resource
    if kind.answer is not None and (tail or watch_path or request.method != "POST"):
        raise _not_allowed()  # a review is only ever created (answered), never stored
    if len(tail) > 2 or (resource.namespaced and namespace is None and tail):
        raise _not_found()
    name = tail[0] if tail else None
    sub = tail[1] if len(tail) > 1 else None
    method = request.method
    ns = namespace or ""
    request[REQUEST_INFO] = _request_info(request, group, version, resource.plural,
                                          namespace, name, sub, watch_path,
                                          connect=sub in {c.name for c in kind.connect})

    if name is None:
        if method == "GET":
            return await _list(request, ctx, resource, namespace, watch=watch_path)
        if method == "POST":
            if resource.namespaced and namespace is None:
                raise _not_allowed()
            return await _create(request, ctx, resource, ns)
        if method == "DELETE" and "deletecollection" in resource.verbs:
            return await _delete_collection(request, ctx, resource, namespace)
        raise _not_allowed()
    if watch_path:
        if sub is not None or method != "GET":
            raise _not_found()
        return await _list(request, ctx, resource, namespace, watch=True, name=name)
    if sub is None:
        if method == "GET":
            if query_bool(request.query.get("watch")):
                return await _list(request, ctx, resource, namespace, watch=True, name=name)
            return _get(request, ctx, resource, ns, name)
        if method == "PUT":
            return await _update(request, ctx, resource, ns, name, "")
        if method == "PATCH":
            return await _patch(request, ctx, resource, ns, name, "")
        if method == "DELETE":
            return await _delete(request, ctx, resource, ns, name)
        raise _not_allowed()
    if sub == "status" and kind.status_subresource:
        if method == "GET":
            return json_response(ctx.registry.get(resource, ns, name))
        if method == "PUT":
            return await _update(request, ctx, resource, ns, name, "status")
        if method == "PATCH":
            return await _patch(request, ctx, resource, ns, name, "status")
        raise _not_allowed()
    if sub == "scale" and kind.scale is not None:
        return await _scale(request, ctx, resource, ns, name)
    if sub == "token" and resource == SERVICE_ACCOUNTS:
        if method != "POST":
            raise _not_allowed()
        return await _token_request(request, ctx, ns, name)
    connect = {c.name for c in kind.connect}
    if sub in connect and resource == PODS:
        handler, methods = _POD_CONNECT[sub]
        if method not in methods:
            raise _not_allowed()
        return await handler(request, ctx, ns, name)
    raise _not_found()


_VERBS = {"POST": "CREATE", "PUT": "UPDATE", "PATCH": "PATCH", "DELETE": "DELETE"}


def _request_info(request: web.Request, group: str, version: str, resource: str,
                  namespace: str | None, name: str | None, sub: str | None, watch: bool,
                  *, connect: bool) -> tuple[str, str, str, str, str, str, str]:
    """kube-apiserver's RequestInfo, as its request metrics label it: verb (LIST,
    WATCH, GET, CREATE, UPDATE, PATCH, APPLY, DELETE, DELETECOLLECTION, CONNECT),
    dry_run, group, version, resource, subresource, scope (resource/namespace/cluster)."""
    method = request.method
    if watch or (method == "GET" and query_bool(request.query.get("watch"))):
        verb = "WATCH"
    elif connect and sub not in ("log", "binding", "eviction"):
        verb = "CONNECT"  # exec, portforward: streams, as Kubernetes counts them
    elif method == "GET":
        verb = "GET" if name else "LIST"
    elif method == "DELETE" and not name:
        verb = "DELETECOLLECTION"
    elif method == "PATCH" and request.content_type == "application/apply-patch+yaml":
        verb = "APPLY"
    else:
        verb = _VERBS.get(method, method)
    scope = "resource" if name else "namespace" if namespace else "cluster"
    dry_run = "All" if request.query.getall("dryRun", []) else ""
    return (verb, dry_run, group, version, resource, sub or "", scope)


def _metrics_request_info(request: web.Request, rest: list[str]
                          ) -> tuple[str, str, str, str, str, str, str]:
    namespace = rest[1] if len(rest) >= 3 and rest[0] == "namespaces" else None
    tail = rest[2:] if namespace else rest
    return _request_info(request, METRICS_GROUP, METRICS_VERSION, tail[0] if tail else "",
                         namespace, tail[1] if len(tail) > 1 else None, None, False,
                         connect=False)


# ---- discovery ------------------------------------------------------------------------

def _version() -> Obj:
    major, minor, git_version = KUBERNETES_VERSION
    return {"major": major, "minor": minor, "gitVersion": git_version,
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2024-12-11T00:00:00Z", "goVersion": "go1.23.4", "compiler": "gc",
            "platform": "linux/amd64"}


def _api_versions(request: web.Request) -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}]}


def _api_groups(ctx: ApiContext) -> list[Obj]:
    out = []
    for name, versions in ctx.registry.kinds.group_versions().items():
        listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        out.append({"name": name, "versions": listed, "preferredVersion": listed[0]})
    if ctx.metrics_api is not None:
        out.append(metrics_api_group())  # last, as aggregated groups are listed
    return out


def _subresource(kind: Kind, name: str, sub_kind: str, verbs: list[str], *, group: str = "",
                 version: str = "") -> Obj:
    entry: Obj = {"name": f"{kind.resource.plural}/{name}", "singularName": "",
                  "namespaced": kind.resource.namespaced, "kind": sub_kind, "verbs": verbs}
    if group:
        entry["group"], entry["version"] = group, version
    return entry


def _resource_list(ctx: ApiContext, group: str, version: str) -> Obj:
    resources: list[Obj] = []
    for kind in ctx.registry.kinds.served(group, version).values():
        r = kind.resource
        entry: Obj = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                      "kind": r.kind, "verbs": list(r.verbs)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        resources.append(entry)
        status_verbs = ["get", "patch", "update"]
        if kind.status_subresource:
            resources.append(_subresource(kind, "status", r.kind, status_verbs))
        # Discovery lists subresources in name order, as kube-apiserver does.
        subs = [_subresource(kind, c.name, c.kind, list(c.verbs), group=c.group,
                             version=c.version) for c in kind.connect]
        if kind.scale is not None:
            subs.append(_subresource(kind, "scale", "Scale", status_verbs, group="autoscaling",
                                     version="v1"))
        resources.extend(sorted(subs, key=lambda e: str(e["name"])))
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": resources}


def _openapi(request: web.Request, ctx: ApiContext, rest: list[str]) -> web.Response:
    if rest == ["v2"]:
        if "protobuf" in request.headers.get("Accept", ""):
            return web.Response(body=openapi_v2_protobuf(), content_type=OPENAPI_V2_PROTOBUF)
        return json_response(openapi_v2_document())
    if rest == ["v3"]:
        return json_response(openapi_v3_root(ctx.registry.kinds))
    if len(rest) >= 3 and rest[0] == "v3":
        path = rest[1:]
        if path[0] == "api" and len(path) == 2:
            group_version = path[1]
        elif path[0] == "apis" and len(path) == 3:
            group_version = f"{path[1]}/{path[2]}"
        else:
            raise _not_found()
        try:
            return json_response(openapi_v3_document(ctx.registry.kinds, group_version))
        except LookupError:
            raise _not_found() from None
    raise _not_found()


# ---- verbs ----------------------------------------------------------------------------

def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for value in values:
        if value != "All":
            raise BadRequest(f'Invalid dryRun value "{value}": supported values: "All"')
    return bool(values)


def _field_warnings(request: web.Request, ctx: ApiContext, resource: Resource,
                    obj: Obj) -> list[str]:
    """`fieldValidation`: Strict refuses unknown fields, Warn (default) warns, Ignore."""
    mode = request.query.get("fieldValidation") or "Warn"
    if mode not in ("Ignore", "Warn", "Strict"):
        raise BadRequest(f"fieldValidation: Unsupported value: \"{mode}\": supported values: "
                         '"Ignore", "Strict", "Warn"')
    if mode == "Ignore":
        return []
    unknown = ctx.registry.kinds.of(resource).find_unknown_fields(obj)
    if not unknown:
        return []
    messages = [f'unknown field "{field}"' for field in unknown]
    if mode == "Strict":
        raise BadRequest("strict decoding error: " + ", ".join(messages))
    return messages


def _respond(obj: Obj, *, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    """The object, with `warnings` and those admission added (api/warning.py)."""
    response = json_response(obj, status=status)
    warnings = [*(warnings or ()), *warning.current()]
    if warnings:
        headers: CIMultiDict[str] = CIMultiDict()
        for text in _bounded_warnings(warnings):
            headers.add("Warning", f'299 - "{_warning_text(text)}"')
        response.headers.extend(headers)
    return response


_WARNINGS_TOTAL_RUNES = 4 * 1024
_WARNING_ITEM_RUNES = 256
_MAX_WARNINGS = 50


def _bounded_warnings(warnings: list[str]) -> list[str]:
    """kube-apiserver's warning recorder: duplicates dropped, and past 4 Ki characters
    in all, each warning cut to 256 and those that still do not fit left out. A body
    with thousands of unknown fields otherwise got thousands of Warning headers, more
    than HTTP clients accept. Python's http.client (under the official Python client)
    refuses a response with over 100 headers, so unlike Kubernetes we also keep at most
    50 warnings."""
    unique = list(dict.fromkeys(warnings))[:_MAX_WARNINGS]
    if sum(len(w) for w in unique) < _WARNINGS_TOTAL_RUNES:
        return unique
    kept: list[str] = []
    total = 0
    for text in unique:
        if len(text) > _WARNING_ITEM_RUNES:
            text = text[:_WARNING_ITEM_RUNES - 3] + "..."
        if total + len(text) > _WARNINGS_TOTAL_RUNES:
            break
        kept.append(text)
        total += len(text)
    return kept


def _warning_text(text: str) -> str:
    """A warning as a quoted-string's content: `\\` and `"` escaped, as Kubernetes does,
    and every unprintable character (controls, line breaks, lone surrogates) written as
    `\\uXXXX`. Warnings quote what the client sent (unknown field names), and a raw
    newline there would split the header (aiohttp drops the connection rather than send
    it) while a lone surrogate cannot be encoded at all. Kubernetes drops such warnings;
    escaping keeps them readable."""
    out = []
    for ch in text:
        if ch in ('\\', '"'):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\u{ord(ch):04x}")
    return "".join(out)


def _render(request: web.Request, ctx: ApiContext, resource: Resource, obj: Obj) -> Obj:
    form = negotiate(request.headers.get("Accept", "")).form
    if form == "table":
        return to_table(ctx.registry.kinds.of(resource), [obj],
                        resource_version=str(obj["metadata"].get("resourceVersion", "")),
                        now=ctx.clock.now(), include_object=include_object(request))
    if form == "partial":
        return partial_metadata(obj)
    return obj


def _get(request: web.Request, ctx: ApiContext, resource: Resource, namespace: str,
         name: str) -> web.Response:
    return json_response(_render(request, ctx, resource, ctx.registry.get(resource, namespace,
                                                                          name)))


async def _list(request: web.Request, ctx: ApiContext, resource: Resource,
                namespace: str | None, *, watch: bool, name: str | None = None
                ) -> web.StreamResponse:
    q = request.query
    labels = LabelSelector.parse(q.get("labelSelector"))
    field_text = q.get("fieldSelector") or ""
    if name is not None:
        field_text = f"metadata.name={name}" + (f",{field_text}" if field_text else "")
    fields = FieldSelector.parse(field_text)
    form = negotiate(request.headers.get("Accept", "")).form
    include = include_object(request)
    timeout = query_int(request, "timeoutSeconds")
    if watch or query_bool(q.get("watch")):
        return await serve_watch(request, ctx, resource, namespace, labels=labels,
                                 fields=fields, form=form, include=include,
                                 timeout_seconds=timeout)
    if form not in ("table", "partial"):
        # The stored texts spliced into the list: no parse and re-encode per object.
        raw, rv = ctx.registry.list_raw(resource, namespace, label_selector=labels,
                                        field_selector=fields)
        head = dumps({"kind": resource.list_kind, "apiVersion": resource.api_version,
                      "metadata": {"resourceVersion": str(rv)}})
        body = b"".join((head[:-1], b',"items":[', ",".join(raw).encode(), b"]}"))
        return web.Response(body=body, content_type=JSON_CT)
    items, rv = ctx.registry.list(resource, namespace, label_selector=labels,
                                  field_selector=fields)
    if form == "table":
        return json_response(to_table(ctx.registry.kinds.of(resource), items,
                                      resource_version=str(rv), now=ctx.clock.now(),
                                      include_object=include))
    return json_response({"kind": "PartialObjectMetadataList",
                          "apiVersion": "meta.k8s.io/v1",
                          "metadata": {"resourceVersion": str(rv)},
                          "items": [partial_metadata(i) for i in items]})


async def _read_object(request: web.Request, ctx: ApiContext) -> Obj:
    body = await read_body(request, ctx.settings.max_request_bytes)
    return decode_object(body, request.content_type)


async def _create(request: web.Request, ctx: ApiContext, resource: Resource,
                  namespace: str) -> web.Response:
    obj = await _read_object(request, ctx)
    warnings = _field_warnings(request, ctx, resource, obj)
    created = ctx.registry.create(resource, obj, namespace=namespace or None,
                                  dry_run=_dry_run(request))
    return _respond(_render(request, ctx, resource, created), status=201, warnings=warnings)


def _check_name(obj: Obj, name: str) -> None:
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise BadRequest("metadata must be an object")
    body_name = meta.get("name")
    if not body_name:
        meta["name"] = name
    elif body_name != name:
        raise BadRequest(f"the name of the object ({body_name}) does not match the name on "
                         f"the URL ({name})")


async def _update(request: web.Request, ctx: ApiContext, resource: Resource, namespace: str,
                  name: str, subresource: str) -> web.Response:
    obj = await _read_object(request, ctx)
    _check_name(obj, name)
    warnings = _field_warnings(request, ctx, resource, obj)
    dry_run = _dry_run(request)
    try:
        updated = ctx.registry.update(resource, obj, namespace=namespace or None,
                                      subresource=subresource, dry_run=dry_run)
    except NotFound:
        if not ctx.registry.kinds.of(resource).create_on_update or subresource:
            raise
        obj["metadata"].pop("resourceVersion", None)
        created = ctx.registry.create(resource, obj, namespace=namespace or None,
                                      dry_run=dry_run)
        return _respond(created, status=201, warnings=warnings)
    return _respond(_render(request, ctx, resource, updated), warnings=warnings)


def _patch_type(request: web.Request, *, strategic: bool = True) -> str:
    content_type = request.content_type
    # Custom resources have no Go struct to carry patch strategies: kube-apiserver
    # refuses strategic merge for them, and so do we.
    accepted = PATCH_TYPES if strategic else tuple(
        t for t in PATCH_TYPES if "strategic" not in t)
    if content_type not in accepted:
        raise UnsupportedMediaType(
            f"the body of the request was in an unknown format - accepted media types "
            f"include: {', '.join(accepted)}")
    return content_type


async def _patch(request: web.Request, ctx: ApiContext, resource: Resource, namespace: str,
                 name: str, subresource: str) -> web.Response:
    content_type = _patch_type(request,
                               strategic=ctx.registry.kinds.of(resource).strategic_merge)
    body = await read_body(request, ctx.settings.max_request_bytes)
    current = ctx.registry.get(resource, namespace, name)
    patched = apply_patch(current, body, content_type,
                          ctx.registry.kinds.of(resource).root_definition)
    if not isinstance(patched.get("metadata"), dict):
        raise BadRequest("metadata must be an object")
    if patched["metadata"].get("name", name) != name:
        raise BadRequest(f"the name of the object ({patched['metadata'].get('name')}) does "
                         f"not match the name on the URL ({name})")
    patched["metadata"]["name"] = name
    warnings = _field_warnings(request, ctx, resource, patched)
    updated = ctx.registry.update(resource, patched, namespace=namespace or None,
                                  subresource=subresource, dry_run=_dry_run(request))
    return _respond(_render(request, ctx, resource, updated), warnings=warnings)


async def _delete_options(request: web.Request, ctx: ApiContext) -> Obj:
    body = await read_body(request, ctx.settings.max_request_bytes)
    options: Obj = decode_object(body, request.content_type) if body.strip() else {}
    q = request.query
    grace = query_int(request, "gracePeriodSeconds")
    if grace is not None:
        options["gracePeriodSeconds"] = grace
    if q.get("propagationPolicy"):
        options["propagationPolicy"] = q["propagationPolicy"]
    if q.get("orphanDependents"):
        options["orphanDependents"] = query_bool(q["orphanDependents"])
    policy = options.get("propagationPolicy")
    if policy is None and options.get("orphanDependents") is not None:
        policy = "Orphan" if options["orphanDependents"] else "Background"
    if policy not in (None, "Orphan", "Background", "Foreground"):
        raise BadRequest(f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                         '"Foreground", "Background", "Orphan"')
    options["propagationPolicy"] = policy
    grace = options.get("gracePeriodSeconds")
    if grace is not None and not isinstance(grace, int):
        raise BadRequest("gracePeriodSeconds must be an integer")
    if options.get("dryRun") not in (None, [], ["All"]):
        raise BadRequest(f'Invalid dryRun value {options["dryRun"]}: supported values: "All"')
    options["dryRun"] = _dry_run(request) or options.get("dryRun") == ["All"]
    return options


def _delete_one(ctx: ApiContext, resource: Resource, namespace: str, name: str,
                options: Obj) -> Obj:
    return ctx.registry.delete(resource, namespace, name,
                               grace_period_seconds=options.get("gracePeriodSeconds"),
                               propagation_policy=options.get("propagationPolicy"),
                               preconditions=options.get("preconditions") or None,
                               dry_run=bool(options.get("dryRun")))


async def _delete(request: web.Request, ctx: ApiContext, resource: Resource, namespace: str,
                  name: str) -> web.Response:
    options = await _delete_options(request, ctx)
    deleted = _delete_one(ctx, resource, namespace, name, options)
    if ctx.registry.kinds.of(resource).returns_deleted:
        return json_response(deleted)
    details: Obj = {"name": name, "kind": resource.plural,
                    "uid": deleted.get("metadata", {}).get("uid", "")}
    if resource.group:
        details["group"] = resource.group
    return json_response(success_status(details=details))


async def _delete_collection(request: web.Request, ctx: ApiContext, resource: Resource,
                             namespace: str | None) -> web.Response:
    options = await _delete_options(request, ctx)
    items, _rv = ctx.registry.list(resource, namespace,
                                   label_selector=request.query.get("labelSelector"),
                                   field_selector=request.query.get("fieldSelector"))
    deleted = []
    for item in items:
        meta = item["metadata"]
        try:
            deleted.append(_delete_one(ctx, resource, meta.get("namespace", ""), meta["name"],
                                       options))
        except NotFound:
            continue  # removed meanwhile (a cascade): as good as deleted
    return json_response({"kind": resource.list_kind, "apiVersion": resource.api_version,
                          "metadata": {"resourceVersion": str(
                              ctx.registry.store.resource_version)},
                          "items": deleted})


# ---- subresources -----------------------------------------------------------------------

async def _scale(request: web.Request, ctx: ApiContext, resource: Resource, namespace: str,
                 name: str) -> web.Response:
    registry = ctx.registry
    if request.method == "GET":
        return json_response(registry.get_scale(resource, namespace, name))
    if request.method == "PUT":
        scale = await _read_object(request, ctx)
        _check_name(scale, name)
    elif request.method == "PATCH":
        content_type = _patch_type(request)
        body = await read_body(request, ctx.settings.max_request_bytes)
        scale = apply_patch(registry.get_scale(resource, namespace, name), body, content_type,
                            SCALE_DEFINITION)
    else:
        raise _not_allowed()
    return json_response(registry.update_scale(resource, namespace, name, scale,
                                               dry_run=_dry_run(request)))


async def _token_request(request: web.Request, ctx: ApiContext, namespace: str,
                         name: str) -> web.Response:
    """serviceaccounts/token: a TokenRequest answered with a signed token (never stored,
    so `dryRun` changes nothing but leaving the token out)."""
    body = await _read_object(request, ctx)
    answered = ctx.tokens.request_token(ctx.registry, namespace, name, body,
                                        now=ctx.clock.now().timestamp())
    if _dry_run(request):
        answered["status"]["token"] = ""
    return json_response(answered, status=201)


async def _bind(request: web.Request, ctx: ApiContext, namespace: str,
                name: str) -> web.Response:
    binding = await _read_object(request, ctx)
    target = binding.get("target") or {}
    node = target.get("name") if isinstance(target, dict) else None
    sent_uid = (binding.get("metadata") or {}).get("uid")
    ctx.registry.bind(namespace, name, str(node or ""), uid=sent_uid, dry_run=_dry_run(request))
    return json_response(success_status(code=201), status=201)


async def _evict(request: web.Request, ctx: ApiContext, namespace: str,
                 name: str) -> web.Response:
    eviction = await _read_object(request, ctx)
    options = eviction.get("deleteOptions") or {}
    if not isinstance(options, dict):
        raise BadRequest("deleteOptions must be an object")
    ctx.registry.delete(PODS, namespace, name,
                        grace_period_seconds=options.get("gracePeriodSeconds"),
                        preconditions=options.get("preconditions") or None,
                        dry_run=_dry_run(request))
    return json_response(success_status(code=201), status=201)


ConnectHandler = Callable[[web.Request, ApiContext, str, str], Awaitable[web.StreamResponse]]
_POD_CONNECT: dict[str, tuple[ConnectHandler, tuple[str, ...]]] = {
    "log": (serve_logs, ("GET",)),
    "exec": (serve_exec, ("GET", "POST")),
    "portforward": (serve_portforward, ("GET", "POST")),
    "binding": (_bind, ("POST",)),
    "eviction": (_evict, ("POST",)),
}
"""The pods' connect subresources (declared in kinds/pod.py) and their handlers."""

__all__ = ["ApiServer", "build_app", "publish_api_endpoints"]
