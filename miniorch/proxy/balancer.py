"""Choosing a backend for one Service port: round-robin, ClientIP affinity, failover.

Data flow:

    Endpoints object ──ready_backends()──► Balancer.update(backends)
    request from client_ip ──Balancer.candidates(client_ip)──► [b1, b2, ...] (try in order)
    connected to b ──Balancer.succeeded(client_ip, b)──► affinity remembered
    connect to b failed ──Balancer.failed(b)──► b goes to the back of the line for a while
    no Ready backend ──Balancer.wait_for_endpoints()──► until update() brings one (bounded)

Invariants:
- Only Ready addresses (`subsets[].addresses`) are ever candidates; `notReadyAddresses`
  never are, but they say an endpoint is expected (pods starting, an app restarting),
  and so does the last Ready one having left less than `wait_seconds` ago: then
  `wait_for_endpoints()` holds a new connection until one is Ready, bounded by the
  Service's `miniorch.dev/endpoint-wait-seconds` (default 5). With none expected, or
  once the wait runs out, there are no candidates (the proxy answers 503 / refuses).
- `update()` keeps the round-robin position and the affinity table, so an Endpoints
  change does not reset the rotation; an affinity to a backend that is no longer Ready
  is dropped at the next request from that client.
- Everything here is synchronous and runs on the event loop thread: no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from miniorch.core.clock import Clock
from miniorch.core.objects import Obj

DEFAULT_AFFINITY_SECONDS = 10800.0
"""Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours)."""

DEFAULT_ENDPOINT_WAIT_SECONDS = 5.0
"""How long a new connection waits for a Ready endpoint when the Service has none but
expects some (annotation `miniorch.dev/endpoint-wait-seconds` overrides it)."""
ENDPOINT_WAIT_ANNOTATION = "miniorch.dev/endpoint-wait-seconds"

FAILED_BACKEND_PENALTY_SECONDS = 2.0
"""After a failed connect a backend is tried last, for this long. Keeps a dead pod that
is still listed as Ready (its readiness probe has not noticed yet) from costing every
N-th request a connect timeout."""


@dataclass(frozen=True, order=True)
class Backend:
    """One endpoint address of one Service port."""

    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


def ready_backends(endpoints: Obj | None, *, port_name: str, single_port: bool,
                   protocol: str = "TCP", field: str = "addresses") -> list[Backend]:
    """The Ready `ip:port`s of `endpoints` for the Service port called `port_name`
    (`field="notReadyAddresses"`: the ones not Ready yet).

    Endpoints ports are matched to Service ports by name (the endpoints controller
    copies the Service port's name); a one-port Service also accepts a one-port subset
    whose port is unnamed or named differently, as older writers leave names out.
    """
    found: list[Backend] = []
    if not endpoints:
        return found
    for subset in endpoints.get("subsets") or []:
        ports = [p for p in subset.get("ports") or []
                 if (p.get("protocol") or "TCP") == protocol and p.get("port")]
        match = [p for p in ports if (p.get("name") or "") == port_name]
        if not match and single_port and len(ports) == 1:
            match = ports
        if not match:
            continue
        port = int(match[0]["port"])
        for address in subset.get(field) or []:
            if address.get("ip"):
                backend = Backend(str(address["ip"]), port)
                if backend not in found:
                    found.append(backend)
    return found


def endpoint_wait(service: Obj) -> float:
    """Seconds a connection may wait for a Ready endpoint (the annotation, else 5)."""
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(ENDPOINT_WAIT_ANNOTATION)
    try:
        seconds = float(raw) if raw is not None else DEFAULT_ENDPOINT_WAIT_SECONDS
    except ValueError:
        return DEFAULT_ENDPOINT_WAIT_SECONDS
    return seconds if math.isfinite(seconds) and seconds >= 0 else DEFAULT_ENDPOINT_WAIT_SECONDS


def affinity_timeout(service: Obj) -> float | None:
    """Seconds of ClientIP stickiness for `service`, or None without affinity."""
    spec = service.get("spec") or {}
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    config = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
    seconds = config.get("timeoutSeconds")
    return float(seconds) if seconds else DEFAULT_AFFINITY_SECONDS


class Balancer:
    """The backends of one Service port and the state needed to spread load over them."""

    def __init__(self, *, clock: Clock, description: str) -> None:
        self._clock = clock
        self.description = description
        """`namespace/name:port` for logs and the 503 body."""
        self._backends: list[Backend] = []
        self._next = 0
        self._affinity_seconds: float | None = None
        # client IP -> (backend, last use). Refreshed on every use, as the iptables
        # `recent` match kube-proxy uses refreshes its timestamp on every packet.
        self._affinity: dict[str, tuple[Backend, float]] = {}
        self._penalised: dict[Backend, float] = {}
        self.wait_seconds = DEFAULT_ENDPOINT_WAIT_SECONDS
        self._expecting = False
        self._emptied_at: float | None = None
        # Made on first wait (they need a loop), replaced once set.
        self._ready: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None

    @property
    def backends(self) -> tuple[Backend, ...]:
        return tuple(self._backends)

    def configure(self, *, affinity_seconds: float | None,
                  wait_seconds: float = DEFAULT_ENDPOINT_WAIT_SECONDS) -> None:
        self.wait_seconds = wait_seconds
        if affinity_seconds != self._affinity_seconds:
            self._affinity_seconds = affinity_seconds
            self._affinity.clear()

    def update(self, backends: Sequence[Backend], *, expecting: bool = False) -> None:
        """`expecting`: endpoints exist that are not Ready yet (pods starting)."""
        if self._backends and not backends:
            self._emptied_at = self._clock.monotonic()
        self._expecting = expecting
        self._backends = list(backends)
        if self._backends and self._ready is not None:
            self._ready.set()
            self._ready = None
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        if self._backends:
            self._next %= len(self._backends)
        else:
            self._next = 0
        alive = set(self._backends)
        self._penalised = {b: t for b, t in self._penalised.items() if b in alive}

    def expects_endpoints(self) -> bool:
        """No Ready endpoint, but one is expected: some are not Ready yet, or the last
        Ready one left less than `wait_seconds` ago (an app restarting, a rollout)."""
        if self._expecting:
            return True
        return (self._emptied_at is not None
                and self._clock.monotonic() - self._emptied_at < self.wait_seconds)

    async def wait_for_endpoints(self, at_most: float | None = None) -> bool:
        """True once a Ready endpoint is there; False at once if none is expected, or
        when `wait_seconds` (or `at_most` seconds, if shorter) run out first."""
        if self._backends:
            return True
        limit = self.wait_seconds if at_most is None else min(at_most, self.wait_seconds)
        if not self.expects_endpoints() or limit <= 0:
            return False
        if self._ready is None:
            self._ready = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), limit)
        return bool(self._backends)

    async def wait_changed(self, at_most: float) -> None:
        """Until the next `update()` or `at_most` seconds, whichever is first."""
        if self._changed is None:
            self._changed = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), at_most)

    def candidates(self, client_ip: str | None) -> list[Backend]:
        """Backends to try for one request, best first; empty if none is Ready."""
        backends = self._backends
        if not backends:
            return []
        now = self._clock.monotonic()
        first: Backend | None = None
        if self._affinity_seconds is not None and client_ip:
            sticky = self._affinity.get(client_ip)
            if sticky is not None:
                backend, used = sticky
                if backend in backends and now - used < self._affinity_seconds:
                    first = backend
                else:
                    del self._affinity[client_ip]
        if first is None:
            start = self._next
            self._next = (start + 1) % len(backends)
            order = backends[start:] + backends[:start]
        else:
            order = [first, *(b for b in backends if b != first)]
        if self._penalised:
            self._penalised = {b: t for b, t in self._penalised.items() if t > now}
            order.sort(key=lambda b: b in self._penalised)  # stable: keeps rotation order
        return order

    def succeeded(self, client_ip: str | None, backend: Backend) -> None:
        if self._affinity_seconds is not None and client_ip:
            self._affinity[client_ip] = (backend, self._clock.monotonic())

    def failed(self, backend: Backend) -> None:
        self._penalised[backend] = self._clock.monotonic() + FAILED_BACKEND_PENALTY_SECONDS
