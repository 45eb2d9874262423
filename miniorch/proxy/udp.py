"""UDP Service ports: one relay per client address, replies sent from the Service address.

    client ──datagram──► UdpFrontend (bound to ClusterIP:port / nodePort / EXTERNAL-IP:port)
        relay = relays[client addr]  or  a new connected socket to an endpoint
                                         (round-robin / ClientIP affinity, like TCP)
        relay ──datagram──► endpoint ──reply──► relay ──frontend.sendto(client)──► client

Like kube-proxy's conntrack entries for UDP: a client (ip, port) keeps talking to the
endpoint its first datagram went to until it has been idle for `UDP_IDLE_SECONDS` or
that endpoint stops being Ready; the reply leaves from the frontend socket, so its
source is the address the client sent to (a DNS resolver drops any other).

Invariants:
- At most `MAX_RELAYS` relays per frontend; the least recently used goes first.
- A datagram that arrives while no endpoint is Ready is dropped and counted
  (`ProxyStats.failures`): UDP has no refusal to send. The client's own timeout retries.
- Rootless mode (pods reachable only through a Dialer, TCP only) has no UDP relay: the
  proxy does not listen on UDP ports there (ServiceProxy logs it).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import cast

import structlog

from miniorch.proxy.balancer import Backend
from miniorch.proxy.connections import ProxyCore, Route

log = structlog.get_logger(__name__)

UDP_IDLE_SECONDS = 30.0
"""Idle time after which a client's relay is dropped (the kernel's UDP conntrack
timeout for a stream of datagrams is in this range)."""
MAX_RELAYS = 4096

Address = tuple[str, int]


class _Relay(asyncio.DatagramProtocol):
    def __init__(self, frontend: UdpFrontend, client: Address, backend: Backend) -> None:
        self.frontend = frontend
        self.client = client
        self.backend = backend
        self.transport: asyncio.DatagramTransport | None = None
        self.last_used = time.monotonic()
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # 3.11's selector datagram transport does not subclass DatagramTransport.
        self.transport = relay = cast(asyncio.DatagramTransport, transport)
        for data in self.pending:
            relay.sendto(data)
        self.pending.clear()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.last_used = time.monotonic()
        self.frontend.reply(data, self.client)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from the endpoint: the next datagram picks anew.
        self.frontend.drop(self.client, self)

    def send(self, data: bytes) -> None:
        self.last_used = time.monotonic()
        if self.transport is None:
            self.pending.append(data)
        else:
            self.transport.sendto(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class UdpFrontend(asyncio.DatagramProtocol):
    """The socket on one Service address:port for UDP."""

    def __init__(self, core: ProxyCore, address: Address) -> None:
        self.core = core
        self.address = address
        self.transport: asyncio.DatagramTransport | None = None
        self.relays: OrderedDict[Address, _Relay] = OrderedDict()
        self._sweeper: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # 3.11's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)
        self._schedule_sweep()

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        client = (str(addr[0]), int(addr[1]))
        route = self.core.udp_routes.get(self.address)
        if route is None:
            return
        relay = self.relays.get(client)
        if relay is not None and relay.backend not in route.balancer.backends:
            self.drop(client, relay)  # its endpoint is no longer Ready
            relay = None
        if relay is None:
            relay = self._new_relay(route, client)
            if relay is None:
                return
        else:
            self.relays.move_to_end(client)
        relay.send(data)

    def _new_relay(self, route: Route, client: Address) -> _Relay | None:
        candidates = route.balancer.candidates(client[0])
        if not candidates:
            self.core.failed(route, "UDP datagram dropped: no ready endpoint",
                             client=f"{client[0]}:{client[1]}")
            return None
        backend = candidates[0]
        route.balancer.succeeded(client[0], backend)
        relay = _Relay(self, client, backend)
        self.relays[client] = relay
        self.core.stats.udp_relays += 1
        while len(self.relays) > MAX_RELAYS:
            _, oldest = self.relays.popitem(last=False)
            oldest.close()
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._connect(relay))
        self.core.tasks.add(task)
        task.add_done_callback(self.core.tasks.discard)
        return relay

    async def _connect(self, relay: _Relay) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_datagram_endpoint(
                lambda: relay, remote_addr=(relay.backend.ip, relay.backend.port))
        except OSError as exc:
            log.debug("UDP relay failed", backend=str(relay.backend), error=str(exc))
            self.drop(relay.client, relay)

    def reply(self, data: bytes, client: Address) -> None:
        if self.transport is not None:
            self.transport.sendto(data, client)

    def drop(self, client: Address, relay: _Relay) -> None:
        if self.relays.get(client) is relay:
            del self.relays[client]
        relay.close()

    def _schedule_sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweeper = loop.call_later(UDP_IDLE_SECONDS / 3, self._sweep)

    def _sweep(self) -> None:
        cutoff = time.monotonic() - UDP_IDLE_SECONDS
        for client, relay in list(self.relays.items()):
            if relay.last_used < cutoff:
                self.drop(client, relay)
        if self.transport is not None and not self.transport.is_closing():
            self._schedule_sweep()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for relay in self.relays.values():
            relay.close()
        self.relays.clear()
        if self.transport is not None:
            self.transport.close()
