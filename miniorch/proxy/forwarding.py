"""The HTTP reverse proxy: one aiohttp application behind every Service listener.

    client ──► TCPSite (ClusterIP:port | 127.0.0.1:nodePort | EXTERNAL-IP:port)
           ──► proxy_app's handler: route = routes[(local ip, local port)]
           ──► route.balancer.candidates(client ip) ──► shared ClientSession ──► pod

One `web.Application` and one `AppRunner` serve every listener; the handler finds the
Service port a request belongs to from the *local* address the connection arrived on
(`sockname`), so adding or removing a listener never touches the app, and an
Endpoints change (which only edits a `Balancer` in place) reaches the very next
request.

Invariants:
- One `ClientSession`, created and closed by the app's `cleanup_ctx`, with an explicit
  `TCPConnector(limit=UPSTREAM_CONNECTIONS)`: aiohttp's default of 100 would silently
  queue requests under load. Connections to pods are kept alive and reused.
- Bodies stream both ways (`request.content` → upstream, upstream → `StreamResponse`);
  nothing is buffered whole, so `logs -f`-like long responses and uploads work.
- Hop-by-hop headers (RFC 9110 §7.6.1, plus those named in `Connection`) are dropped
  in both directions; `Host` passes through unchanged; `X-Forwarded-For` gains the
  client's address.
- A failed *connect* (refused, unreachable, timeout) moves on to the next candidate:
  nothing was sent, so retrying is safe for any method. Once a backend has accepted
  the request, its answer (or failure, as 502) is final. No candidate at all → 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
import anyio
import structlog
from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from miniorch.core.dialer import Dialer
from miniorch.proxy.balancer import Backend, Balancer

log = structlog.get_logger(__name__)

UPSTREAM_CONNECTIONS = 4096
"""Connections the shared client may hold open to pods at once (all Services)."""
CONNECT_TIMEOUT_SECONDS = 3.0
"""A pod that does not accept a connection within this is treated as down (next one)."""

HOP_BY_HOP = frozenset(h.lower() for h in (
    hdrs.CONNECTION, hdrs.KEEP_ALIVE, hdrs.PROXY_AUTHENTICATE, hdrs.PROXY_AUTHORIZATION,
    hdrs.TE, hdrs.TRAILER, hdrs.TRANSFER_ENCODING, hdrs.UPGRADE, "Proxy-Connection",
))
# aiohttp's client would otherwise add its own User-Agent, Accept-Encoding and a
# Content-Type for streamed bodies: a proxy must not invent headers.
_SKIP_AUTO_HEADERS = (hdrs.USER_AGENT, hdrs.ACCEPT_ENCODING, hdrs.CONTENT_TYPE)
_CONNECT_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


@dataclass(frozen=True)
class Route:
    """Where a listener's traffic goes: one Service port and its balancer."""

    service: str
    """`namespace/name`, for logs and error bodies."""
    port_name: str
    balancer: Balancer


RouteTable = Mapping[tuple[str, int], Route]
"""(local ip, local port) → Route. Owned and edited by the ServiceProxy actor."""

ROUTES = web.AppKey("routes", RouteTable)
SESSION = web.AppKey("session", aiohttp.ClientSession)
DIALER = web.AppKey("dialer", Dialer)


def proxy_app(routes: RouteTable, *, dialer: Dialer | None = None) -> web.Application:
    """The application every Service listener serves; `routes` is read live.
    `dialer`: how to reach pods when their IPs are not routable (rootless mode);
    None: plain TCP through aiohttp's own connector."""
    app = web.Application(handler_args={"max_field_size": 16384})
    app[ROUTES] = routes
    if dialer is not None:
        app[DIALER] = dialer
    app.cleanup_ctx.append(_client_session)
    app.router.add_route("*", "/{tail:.*}", _forward)
    return app


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    connector: aiohttp.BaseConnector
    dialer = app.get(DIALER)
    if dialer is not None:
        from miniorch.proxy.dialing import DialerConnector
        connector = DialerConnector(dialer, limit=UPSTREAM_CONNECTIONS, keepalive_timeout=30.0)
    else:
        connector = aiohttp.TCPConnector(limit=UPSTREAM_CONNECTIONS, limit_per_host=0,
                                         keepalive_timeout=30.0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(),
                                     skip_auto_headers=_SKIP_AUTO_HEADERS) as session:
        app[SESSION] = session
        yield


def end_to_end_headers(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    """`headers` without hop-by-hop ones (including any the Connection header names)."""
    drop = set(HOP_BY_HOP)
    for value in headers.getall(hdrs.CONNECTION, ()):
        drop.update(token.strip().lower() for token in value.split(","))
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in drop)


async def _forward(request: web.Request) -> web.StreamResponse:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    route = request.app[ROUTES].get((sockname[0], sockname[1])) if sockname else None
    if route is None:
        # The Service went away while this keep-alive connection stayed open.
        return web.Response(status=503, text="no service is listening here any more\n",
                            headers={hdrs.CONNECTION: "close"})
    client_ip = request.remote
    candidates = route.balancer.candidates(client_ip)
    if not candidates:
        return web.Response(status=503, text=f'service "{route.balancer.description}" '
                                             "has no ready endpoints\n")
    headers = end_to_end_headers(request.headers)
    if client_ip:
        earlier = headers.get(hdrs.X_FORWARDED_FOR)
        headers[hdrs.X_FORWARDED_FOR] = f"{earlier}, {client_ip}" if earlier else client_ip
    session = request.app[SESSION]
    if _is_websocket(request):
        return await _forward_websocket(request, route, candidates, headers, session)
    body = request.content if request.body_exists else None
    last_error: Exception | None = None
    for backend in candidates:
        try:
            upstream = await session.request(
                request.method, _upstream_url(backend, request.raw_path), headers=headers,
                data=body, allow_redirects=False)
        except _CONNECT_ERRORS as exc:
            # Nothing reached the pod: try the next one.
            _connect_failed(route, backend, exc)
            last_error = exc
            continue
        except aiohttp.ClientError as exc:
            return _bad_gateway(route, backend, exc)
        route.balancer.succeeded(client_ip, backend)
        async with upstream:
            return await _relay(request, upstream)
    return _unreachable(route, candidates, last_error)


def _connect_failed(route: Route, backend: Backend, exc: Exception) -> None:
    route.balancer.failed(backend)
    log.debug("backend connect failed", service=route.service, backend=str(backend),
              error=str(exc))


def _bad_gateway(route: Route, backend: Backend, exc: Exception) -> web.Response:
    log.warning("backend request failed", service=route.service, backend=str(backend),
                error=str(exc))
    return web.Response(status=502, text=f"bad gateway: {backend}: {exc}\n")


def _unreachable(route: Route, candidates: list[Backend],
                 last_error: Exception | None) -> web.Response:
    log.warning("no backend reachable", service=route.service,
                tried=[str(b) for b in candidates], error=str(last_error))
    return web.Response(status=503, text=f'service "{route.balancer.description}": no '
                                         f"endpoint accepted the connection ({last_error})\n")


def _upstream_url(backend: Backend, raw_path: str) -> URL:
    # raw_path is the request target as the client sent it (path and query, still
    # percent-encoded): pass it on byte for byte.
    return URL(f"http://{backend.ip}:{backend.port}{raw_path}", encoded=True)


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                  headers=end_to_end_headers(upstream.headers))
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
    except aiohttp.ClientError as exc:
        # The pod failed mid-body. The status line is already sent, so the only honest
        # signal left is to cut the client's connection: it sees a truncated response,
        # never a short body passed off as complete.
        log.warning("backend failed mid-response", url=str(upstream.url), error=str(exc))
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


# ---- WebSocket ----------------------------------------------------------------------
# aiohttp cannot splice an arbitrary `Upgrade` through, but WebSocket it speaks on both
# sides: terminate the client's socket here, open one to the pod, and pump messages.
# The handshake headers are each side's own; everything else is forwarded.

_WS_HANDSHAKE = frozenset(h.lower() for h in (
    hdrs.SEC_WEBSOCKET_KEY, hdrs.SEC_WEBSOCKET_VERSION, hdrs.SEC_WEBSOCKET_EXTENSIONS,
    hdrs.SEC_WEBSOCKET_PROTOCOL))


def _is_websocket(request: web.Request) -> bool:
    return (request.method == "GET"
            and request.headers.get(hdrs.UPGRADE, "").lower() == "websocket")


async def _forward_websocket(request: web.Request, route: Route, candidates: list[Backend],
                             headers: CIMultiDict[str],
                             session: aiohttp.ClientSession) -> web.StreamResponse:
    protocols = [p.strip() for p in request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "")
                 .split(",") if p.strip()]
    forwarded = CIMultiDict((k, v) for k, v in headers.items()
                            if k.lower() not in _WS_HANDSHAKE)
    last_error: Exception | None = None
    for backend in candidates:
        try:
            upstream = await session.ws_connect(
                _upstream_url(backend, request.raw_path), headers=forwarded,
                protocols=protocols, max_msg_size=0)
        except _CONNECT_ERRORS as exc:
            _connect_failed(route, backend, exc)
            last_error = exc
            continue
        except aiohttp.ClientError as exc:
            return _bad_gateway(route, backend, exc)
        route.balancer.succeeded(request.remote, backend)
        client = web.WebSocketResponse(
            protocols=(upstream.protocol,) if upstream.protocol else (), max_msg_size=0)
        try:
            await client.prepare(request)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_pump, client, upstream, tg.cancel_scope)
                tg.start_soon(_pump, upstream, client, tg.cancel_scope)
        finally:
            with anyio.move_on_after(2.0, shield=True):
                await upstream.close()
                await client.close()
        return client
    return _unreachable(route, candidates, last_error)


async def _pump(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                done: anyio.CancelScope) -> None:
    """Copy messages one way until that side closes, then end both directions."""
    async for message in source:
        if message.type is aiohttp.WSMsgType.TEXT:
            await sink.send_str(message.data)
        elif message.type is aiohttp.WSMsgType.BINARY:
            await sink.send_bytes(message.data)
        elif message.type is aiohttp.WSMsgType.ERROR:
            break
    done.cancel()
