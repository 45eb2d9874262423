"""Choosing a backend for one Service port: round-robin, ClientIP affinity, failover.

Data flow:

    Endpoints object ──ready_backends()──► Balancer.update(backends)
    request from client_ip ──Balancer.candidates(client_ip)──► [b1, b2, ...] (try in order)
    connected to b ──Balancer.succeeded(client_ip, b)──► affinity remembered
    connect to b failed ──Balancer.failed(b)──► b goes to the back of the line for a while

Invariants:
- Only Ready addresses (`subsets[].addresses`) are ever candidates; `notReadyAddresses`
  never are. An empty list means "no ready endpoints" (the proxy answers 503).
- `update()` keeps the round-robin position and the affinity table, so an Endpoints
  change does not reset the rotation; an affinity to a backend that is no longer Ready
  is dropped at the next request from that client.
- Everything here is synchronous and runs on the event loop thread: no locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from miniorch.core.clock import Clock
from miniorch.core.objects import Obj

DEFAULT_AFFINITY_SECONDS = 10800.0
"""Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours)."""

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


def ready_backends(endpoints: Obj | None, *, port_name: str,
                   single_port: bool) -> list[Backend]:
    """The Ready `ip:port`s of `endpoints` for the Service port called `port_name`.

    Endpoints ports are matched to Service ports by name (the endpoints controller
    copies the Service port's name); a one-port Service also accepts a one-port subset
    whose port is unnamed or named differently, as older writers leave names out.
    """
    found: list[Backend] = []
    if not endpoints:
        return found
    for subset in endpoints.get("subsets") or []:
        ports = [p for p in subset.get("ports") or []
                 if p.get("protocol", "TCP") == "TCP" and p.get("port")]
        match = [p for p in ports if (p.get("name") or "") == port_name]
        if not match and single_port and len(ports) == 1:
            match = ports
        if not match:
            continue
        port = int(match[0]["port"])
        for address in subset.get("addresses") or []:
            if address.get("ip"):
                backend = Backend(str(address["ip"]), port)
                if backend not in found:
                    found.append(backend)
    return found


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

    @property
    def backends(self) -> tuple[Backend, ...]:
        return tuple(self._backends)

    def configure(self, *, affinity_seconds: float | None) -> None:
        if affinity_seconds != self._affinity_seconds:
            self._affinity_seconds = affinity_seconds
            self._affinity.clear()

    def update(self, backends: Sequence[Backend]) -> None:
        self._backends = list(backends)
        if self._backends:
            self._next %= len(self._backends)
        else:
            self._next = 0
        alive = set(self._backends)
        self._penalised = {b: t for b, t in self._penalised.items() if b in alive}

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
