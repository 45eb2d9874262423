"""Watch over HTTP: the store's watch, streamed as one JSON event per line.

    GET …?watch=true ──► Registry.watch(since=resourceVersion) ──► chunked response
                          ADDED/MODIFIED/DELETED …  then ERROR (410) if it falls behind

The same request as a WebSocket upgrade (as Kubernetes serves it, and as browser
dashboards use it) gets one text message per event instead: a browser keeps at most
six HTTP/1.1 connections per host, so a page with more live lists than that would
starve on chunked watches, while WebSockets do not count against that pool.

Invariants (kubectl-compat.md §4):
- Every event is one line ending in `\\n`, written (and so flushed) as soon as the
  store offers it; plain events reuse the store's JSON text without re-encoding.
- `resourceVersion` absent or `0`: ADDED for every current object first.
- A resume point older than the store's history, or a watcher too slow to keep up,
  ends the stream with an ERROR event carrying a 410 `Expired` Status: clients re-list.
- Every event written is counted (apiserver_watch_events_total), and one fanned out by
  a write is timed from the store's write to the socket write
  (miniorch_apiserver_watch_delivery_seconds).
- `timeoutSeconds` ends the stream cleanly; so does server shutdown (the stream's
  cancel scope is registered with the context) and a client that went away.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import structlog
from aiohttp import web

from miniorch.api.errors import BadRequest, Gone
from miniorch.api.resource import Resource
from miniorch.api.selectors import FieldSelector, LabelSelector
from miniorch.api.server_common import ApiContext, dumps, partial_metadata
from miniorch.api.store import Watch, WatchEvent
from miniorch.api.tables import to_table

log = structlog.get_logger(__name__)


def _since(raw: str | None) -> int | None:
    if raw is None or raw in ("", "0"):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f'invalid resource version "{raw}"') from None
    if value < 0:
        raise BadRequest(f'invalid resource version "{raw}"')
    return value


def _encode(ctx: ApiContext, resource: Resource, event: WatchEvent, form: str,
            include: str) -> bytes:
    if form == "table":
        table = to_table(ctx.registry.kinds.of(resource), [event.object],
                         resource_version=str(event.rv), now=ctx.clock.now(),
                         include_object=include)
        return dumps({"type": event.type, "object": table}) + b"\n"
    if form == "partial":
        return dumps({"type": event.type, "object": partial_metadata(event.object)}) + b"\n"
    return b'{"type":"' + event.type.encode() + b'","object":' + event.raw.encode() + b"}\n"


async def serve_watch(request: web.Request, ctx: ApiContext, resource: Resource,
                      namespace: str | None, *, labels: LabelSelector, fields: FieldSelector,
                      form: str, include: str, timeout_seconds: int | None) -> web.StreamResponse:
    since = _since(request.query.get("resourceVersion"))
    # Opened before the response starts, so a bad selector is still a plain 400.
    try:
        watch = ctx.registry.watch(resource, namespace, since=since, label_selector=labels,
                                   field_selector=fields)
    except Gone as exc:
        watch = None
        gone: Gone | None = exc
    else:
        gone = None

    if request.headers.get("Upgrade", "").lower() == "websocket":
        return await _serve_websocket(request, ctx, resource, watch, gone, form=form,
                                      include=include, timeout_seconds=timeout_seconds)

    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)

    delivered = _Delivered(ctx, resource)

    async def write(batch: list[WatchEvent]) -> None:
        # Every event queued so far in one chunk: one write, not one each.
        await response.write(b"".join(_encode(ctx, resource, e, form, include) for e in batch))
        delivered(batch)

    try:
        if watch is None:
            assert gone is not None
            await _write_error(response, gone)
        else:
            await _deliver(ctx, watch, timeout_seconds, write,
                           partial(_write_error, response))
    except (ConnectionResetError, ConnectionError):
        log.debug("watch client went away", resource=resource.key)
    return response


async def _serve_websocket(request: web.Request, ctx: ApiContext, resource: Resource,
                           watch: Watch | None, gone: Gone | None, *, form: str, include: str,
                           timeout_seconds: int | None) -> web.WebSocketResponse:
    """One text message per event; ends when the client closes, on timeout or on 410."""
    ws = web.WebSocketResponse(autoping=True, heartbeat=30)
    await ws.prepare(request)

    delivered = _Delivered(ctx, resource)

    async def send(batch: list[WatchEvent]) -> None:
        for event in batch:
            await ws.send_str(_encode(ctx, resource, event, form, include).decode().rstrip("\n"))
        delivered(batch)

    try:
        if watch is None:
            assert gone is not None
            await _send_error(ws, gone)
        else:
            async with anyio.create_task_group() as tg:
                async def until_client_closes() -> None:
                    async for _ in ws:  # clients send nothing we act on
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(until_client_closes)
                await _deliver(ctx, watch, timeout_seconds, send, partial(_send_error, ws))
                tg.cancel_scope.cancel()
    except (ConnectionResetError, ConnectionError):
        log.debug("websocket watch client went away", resource=resource.key)
    await ws.close()
    return ws


async def _deliver(ctx: ApiContext, watch: Watch, timeout_seconds: int | None,
                   send: Callable[[list[WatchEvent]], Awaitable[None]],
                   fail: Callable[[Gone], Awaitable[None]]) -> None:
    """The watch's events, batch by batch, until it ends, `timeoutSeconds` pass, the
    server stops (the stream scope), or it falls behind (`fail` gets the 410)."""
    deadline = math.inf if not timeout_seconds or timeout_seconds <= 0 else timeout_seconds
    with ctx.stream_scope(), anyio.move_on_after(deadline):
        async with watch:
            try:
                while True:
                    try:
                        batch = await watch.next_batch()
                    except StopAsyncIteration:
                        return
                    await send(batch)
            except Gone as exc:
                await fail(exc)


class _Delivered:
    """Counts a stream's events (apiserver_watch_events_total) and times each live one
    from its write in the store to its write here (the fan-out delay)."""

    def __init__(self, ctx: ApiContext, resource: Resource) -> None:
        metrics = ctx.metrics
        self._events = metrics.watch_events.labels(resource.group, resource.version,
                                                   resource.kind)
        self._delay = metrics.watch_delivery.labels(resource.plural)

    def __call__(self, batch: list[WatchEvent]) -> None:
        now = time.perf_counter()
        self._events.inc(len(batch))
        for event in batch:
            if event.stored:
                self._delay.observe(now - event.stored)


async def _send_error(ws: web.WebSocketResponse, error: Gone) -> None:
    with contextlib.suppress(ConnectionError):
        await ws.send_str(dumps({"type": "ERROR", "object": error.to_status()}).decode())


async def _write_error(response: web.StreamResponse, error: Gone) -> None:
    with contextlib.suppress(ConnectionError):
        await response.write(dumps({"type": "ERROR", "object": error.to_status()}) + b"\n")
