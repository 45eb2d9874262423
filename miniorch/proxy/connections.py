"""What every proxied connection shares, and how it reaches an endpoint.

    listener.handle_connection ──► ready_candidates(route)  (waits, bounded, if none)
                               ──► connect_upstream(candidates) ──► Stream to a pod

`ProxyCore` holds what every connection shares: the route table (owned and edited by
the ServiceProxy actor), the dialer, the idle upstream connections of the HTTP path,
and the failure counters.

Invariants:
- A connect that fails (refused, unreachable, timed out) moves on to the next
  candidate and penalises the backend (Balancer.failed); nothing was sent yet.
- A Service port with no Ready endpoint that expects some (Balancer.expects_endpoints)
  makes a new connection wait up to its endpoint wait; when that runs out the client
  gets a refusal (RST) on the TCP path and a 503 on the HTTP path, and
  `ProxyStats.failures` counts it, with a log line.
- Every connection task ends with both sockets closed, however it ends.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from miniorch.core.dialer import Dialer
from miniorch.proxy.balancer import Backend, Balancer
from miniorch.proxy.sniff import Mode
from miniorch.proxy.stream import Stream

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT_SECONDS = 3.0
"""A pod that does not accept a connection within this is treated as down (next one)."""
RETRY_PAUSE_SECONDS = 0.25
"""When every endpoint refused, the next round starts at the next Endpoints change or
after this long, whichever is first (bounded by the endpoint wait)."""
IDLE_UPSTREAMS_PER_BACKEND = 64
UPSTREAM_IDLE_SECONDS = 30.0
"""Kept-alive upstream connections unused for longer are closed, not reused (a pod's
server may time them out itself; Go's and nginx's defaults are in this range)."""


@dataclass(frozen=True)
class Route:
    """Where a listener's traffic goes: one Service port and its balancer."""

    service: str
    """`namespace/name`, for logs and error bodies."""
    port_name: str
    balancer: Balancer
    mode: Mode | None = None
    """From the port's appProtocol; None: sniff the first bytes."""


RouteTable = Mapping[tuple[str, int], Route]
"""(local ip, local port) → Route, TCP only. Owned and edited by the ServiceProxy."""


@dataclass
class ProxyStats:
    """Counters the proxy exposes (`ServiceProxy.stats`)."""

    connections: int = 0
    http_requests: int = 0
    spliced: int = 0
    connect_failures: int = 0
    """Connects to an endpoint that failed and moved on to the next one."""
    retries: int = 0
    """Idempotent requests resent to another endpoint after theirs died unanswered."""
    waited: int = 0
    """Connections/requests that waited for a Ready endpoint and got one."""
    failures: int = 0
    """Clients that got a 503/502 or a refusal: no endpoint within the wait, none
    reachable, or an endpoint that failed after it accepted a request."""
    udp_relays: int = 0


class Closable(Protocol):
    def close(self) -> None: ...


@dataclass
class ProxyCore:
    routes: RouteTable
    udp_routes: RouteTable = field(default_factory=dict)
    dialer: Dialer | None = None
    stats: ProxyStats = field(default_factory=ProxyStats)
    idle: dict[Backend, list[tuple[Stream, float]]] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    pending: set[Closable] = field(default_factory=set)
    """Callback-driven connections in flight (sniffing, connecting, splicing)."""

    def take_idle(self, backend: Backend) -> Stream | None:
        pool = self.idle.get(backend)
        now = time.monotonic()
        while pool:
            stream, since = pool.pop()
            if not stream.closed and not stream.buffered() and now - since < UPSTREAM_IDLE_SECONDS:
                return stream
            stream.close()
        return None

    def put_idle(self, backend: Backend, stream: Stream) -> None:
        pool = self.idle.setdefault(backend, [])
        if len(pool) >= IDLE_UPSTREAMS_PER_BACKEND or stream.closed:
            stream.close()
            return
        pool.append((stream, time.monotonic()))

    def prune_idle(self, alive: set[Backend]) -> None:
        """Close kept-alive connections to endpoints no Service lists any more."""
        for backend in [b for b in self.idle if b not in alive]:
            for stream, _ in self.idle.pop(backend):
                stream.close()

    def close(self) -> None:
        self.prune_idle(set())
        for item in list(self.pending):
            item.close()
        self.pending.clear()
        for task in list(self.tasks):
            task.cancel()

    def failed(self, route: Route, what: str, **details: object) -> None:
        self.stats.failures += 1
        log.warning(what, service=route.service, port=route.port_name,
                    failures=self.stats.failures, **details)


_IN_PROGRESS = (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK)


async def _connect(loop: asyncio.AbstractEventLoop, backend: Backend) -> socket.socket:
    """A non-blocking connect by hand: loop.create_connection(host, port) resolves the
    address and runs two coroutines per connect, a third of the HTTP path's CPU for a
    pod that takes one request per connection (kubia answers HTTP/1.0)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        err = sock.connect_ex((backend.ip, backend.port))
        if err in _IN_PROGRESS:
            writable: asyncio.Future[None] = loop.create_future()
            fd = sock.fileno()
            loop.add_writer(fd, _resolve, writable)
            try:
                await writable
            finally:
                loop.remove_writer(fd)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))
    except BaseException:
        sock.close()
        raise
    return sock


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def open_upstream(core: ProxyCore, backend: Backend) -> Stream:
    """A new connection to `backend` (OSError / TimeoutError when it cannot be had)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
        if core.dialer is None:
            sock = await _connect(loop, backend)
            try:
                _, stream = await loop.create_connection(Stream, sock=sock)
            except BaseException:
                sock.close()
                raise
        else:
            sock = await core.dialer.connect(backend.ip, backend.port)
            try:
                _, stream = await loop.create_connection(Stream, sock=sock)
            except BaseException:
                sock.close()
                raise
    return stream


async def connect_upstream(core: ProxyCore, route: Route, candidates: list[Backend]
                           ) -> tuple[Backend, Stream] | None:
    """The first candidate that accepts a connection, or None (each failure counted)."""
    for backend in candidates:
        try:
            return backend, await open_upstream(core, backend)
        except (OSError, TimeoutError) as exc:
            core.stats.connect_failures += 1
            route.balancer.failed(backend)
            log.debug("endpoint connect failed", service=route.service, backend=str(backend),
                      error=str(exc) or type(exc).__name__)
    return None


async def ready_candidates(core: ProxyCore, route: Route, client_ip: str | None, *,
                           at_most: float | None = None) -> list[Backend]:
    """Candidates for one connection/request, waiting (bounded by the Service's endpoint
    wait, or `at_most` seconds) while none is Ready but some are expected; empty when the wait
    ran out or none is expected."""
    balancer = route.balancer
    candidates = balancer.candidates(client_ip)
    if candidates:
        return candidates
    if await balancer.wait_for_endpoints(at_most):
        core.stats.waited += 1
        return balancer.candidates(client_ip)
    return []
