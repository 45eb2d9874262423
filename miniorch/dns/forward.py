"""Forwarding names outside the cluster to the host's resolvers.

    client query (wire bytes) ──► Forwarder.forward(wire, tcp) ──► upstream 1, 2, 3 in
                                  order, each within `timeout` ──► its reply, verbatim

As CoreDNS' `forward` plugin does by default, a query goes upstream over the transport
it arrived on: a UDP reply with TC set is relayed as it is, and the client retries over
TCP, to us and so to the upstream. Each UDP query uses its own connected socket (a
fresh random source port; the kernel drops datagrams from any other address), and a
reply counts only if it carries the query's ID.

The cluster process runs in the host's network namespace, so loopback resolvers
(systemd-resolved's 127.0.0.53, a local dnsmasq) are reachable and kept. Left out:
addresses inside the pod or service networks (a host whose resolver is a ClusterIP
would loop through us) and the server's own address.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence

import anyio
import structlog
from anyio.streams.buffered import BufferedByteReceiveStream

from miniorch.core.resolvconf import ResolvConf

log = structlog.get_logger(__name__)

Upstream = tuple[str, int]


def upstreams_from(conf: ResolvConf, *, exclude_networks: Iterable[str] = (),
                   exclude: Iterable[str] = ()) -> list[Upstream]:
    """The host's nameservers (port 53) a forwarder may use (see the module docstring)."""
    networks = [ipaddress.ip_network(n) for n in exclude_networks]
    excluded = set(exclude)
    found: list[Upstream] = []
    for server in conf.nameservers:
        try:
            ip = ipaddress.ip_address(server.split("%", 1)[0])
        except ValueError:
            continue
        if str(ip) in excluded or any(ip in network for network in networks):
            continue
        if (str(ip), 53) not in found:
            found.append((str(ip), 53))
    return found


class Forwarder:
    def __init__(self, upstreams: Sequence[Upstream], *, timeout: float) -> None:
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self.failures = 0
        """Queries no upstream answered (each answered SERVFAIL by the server)."""

    async def forward(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The first upstream reply to `wire`, or None if none answered in time."""
        for host, port in self.upstreams:
            try:
                with anyio.fail_after(self.timeout):
                    if tcp:
                        return await _ask_tcp(host, port, wire)
                    return await _ask_udp(host, port, wire)
            except (TimeoutError, OSError, anyio.EndOfStream, anyio.BrokenResourceError,
                    anyio.IncompleteRead) as exc:
                log.debug("upstream resolver failed", upstream=f"{host}:{port}",
                          error=str(exc) or type(exc).__name__)
        self.failures += 1
        return None


async def _ask_udp(host: str, port: int, wire: bytes) -> bytes:
    async with await anyio.create_connected_udp_socket(host, port) as sock:
        await sock.send(wire)
        while True:
            reply = await sock.receive()
            if len(reply) >= 12 and reply[:2] == wire[:2]:
                return reply


async def _ask_tcp(host: str, port: int, wire: bytes) -> bytes:
    async with await anyio.connect_tcp(host, port) as stream:
        await stream.send(struct.pack("!H", len(wire)) + wire)
        buffered = BufferedByteReceiveStream(stream)
        (length,) = struct.unpack("!H", await buffered.receive_exactly(2))
        return await buffered.receive_exactly(length)
