"""`DnsServer`: the cluster DNS actor (what CoreDNS is in a kubeadm cluster).

    pod ──udp/tcp──► 10.96.0.10:53 ──(service proxy, L4)──► 10.244.0.1:53 ── DnsServer
                                                                │ wire bytes
                                          dnspython parses ─────┤
           name in cluster.local or a reverse zone of our CIDRs ├─► ClusterZone (informers)
           anything else ───────────────────────────────────────┴─► Forwarder (host's
                                                                     resolvers)

Listens on UDP and TCP, the same port, at `listen_host` (the bridge's gateway in a
root cluster; loopback in tests). At start it publishes the kube-dns Service and its
Endpoints (dns/objects.py) with the address it bound.

Wire rules kept:
- A UDP reply fits the client's EDNS payload size (512 bytes without EDNS); a bigger
  one is cut at an RRset boundary with TC set, and the client asks again over TCP
  (RFC 7766), which carries up to 64 KiB per message, several per connection.
- Not a query (QR set): dropped. An opcode other than QUERY: NOTIMP. Not exactly one
  question or bytes dnspython cannot parse: FORMERR (when the header is readable).
- Our zones' names are answered authoritatively (AA); another class than IN for them
  is REFUSED. A forward nobody answers in time is SERVFAIL.
- Bounded: at most MAX_IN_FLIGHT UDP queries being answered (beyond that a query is
  dropped, and its client retries, as an overloaded resolver does) and MAX_TCP
  connections, each closed after TCP_IDLE seconds without a query.

Rootless mode has no bridge and no route from a pod to the host, so the cluster does
not run this actor there (cluster/cluster.py) and pods keep a placeholder resolv.conf.
"""

from __future__ import annotations

import errno
import struct

import anyio
import anyio.abc
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import structlog
from anyio.abc import TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.stapled import MultiListener

from miniorch.api.kinds import ENDPOINTS, NAMESPACES, PODS, SERVICES
from miniorch.api.registry import Registry
from miniorch.core.resolvconf import ResolvConf
from miniorch.core.settings import Settings
from miniorch.dns.forward import Forwarder, Upstream, upstreams_from
from miniorch.dns.objects import ensure_kube_dns
from miniorch.dns.zone import ClusterZone
from miniorch.machinery.informer import SharedInformerFactory

log = structlog.get_logger(__name__)

MAX_IN_FLIGHT = 256
MAX_TCP = 64
TCP_IDLE = 10.0
OUR_PAYLOAD = 1232
"""The EDNS payload size we advertise (DNS flag day 2020: no IP fragmentation)."""


class DnsServer:
    def __init__(self, *, registry: Registry, settings: Settings,
                 informers: SharedInformerFactory, listen_host: str) -> None:
        self.registry = registry
        self.settings = settings
        self.informers = informers
        self.listen_host = listen_host
        self.port = 0
        """The bound port (UDP and TCP), once running."""
        self.zone: ClusterZone | None = None
        self.forwarder: Forwarder | None = None
        self.dropped = 0
        """UDP queries dropped because MAX_IN_FLIGHT were being answered."""
        self._in_flight = 0
        self._tcp_clients = 0

    def upstreams(self) -> list[Upstream]:
        dns_settings = self.settings.dns
        if dns_settings.upstreams is not None:
            return list(dns_settings.upstreams)
        network = self.settings.network
        return upstreams_from(ResolvConf.read(dns_settings.host_resolv_conf),
                              exclude_networks=(network.pod_cidr, network.service_cidr),
                              exclude=(self.listen_host,))

    async def run(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; `task_status.started(port)` once both sockets listen."""
        dns_settings, network = self.settings.dns, self.settings.network
        self.zone = ClusterZone(
            domain=dns_settings.cluster_domain,
            services=self.informers.informer(SERVICES),
            endpoints=self.informers.informer(ENDPOINTS),
            pods=self.informers.informer(PODS),
            namespaces=self.informers.informer(NAMESPACES),
            dns_ip=dns_settings.service_ip, ttl=dns_settings.ttl,
            reverse_networks=(network.service_cidr, network.pod_cidr))
        self.forwarder = Forwarder(self.upstreams(), timeout=dns_settings.upstream_timeout)
        udp, tcp = await self._bind(dns_settings.port)
        async with udp, tcp, anyio.create_task_group() as tg:
            ensure_kube_dns(self.registry, dns_settings, address=self.listen_host,
                            port=self.port)
            log.info("dns server listening", address=f"{self.listen_host}:{self.port}",
                     domain=dns_settings.cluster_domain,
                     upstreams=[f"{h}:{p}" for h, p in self.forwarder.upstreams])
            tg.start_soon(self._serve_udp, udp, tg)
            tg.start_soon(tcp.serve, self._serve_tcp)
            task_status.started(self.port)

    async def _bind(self, port: int
                    ) -> tuple[anyio.abc.UDPSocket, MultiListener[anyio.abc.SocketStream]]:
        """UDP and TCP on one port number (port 0: a free one both can take)."""
        for _attempt in range(20):
            udp = await anyio.create_udp_socket(local_host=self.listen_host, local_port=port)
            bound = int(udp.extra(anyio.abc.SocketAttribute.local_port))
            try:
                tcp = await anyio.create_tcp_listener(local_host=self.listen_host,
                                                      local_port=bound)
            except OSError as exc:
                await udp.aclose()
                if port or exc.errno != errno.EADDRINUSE:
                    raise
                continue  # the free UDP port is taken for TCP: draw another
            self.port = bound
            return udp, tcp
        raise OSError(errno.EADDRINUSE, "no port free for both UDP and TCP")

    # ---- transports ----------------------------------------------------------------------

    async def _serve_udp(self, udp: anyio.abc.UDPSocket, tg: anyio.abc.TaskGroup) -> None:
        async for data, (host, port) in udp:
            if self._in_flight >= MAX_IN_FLIGHT:
                self.dropped += 1
                continue
            self._in_flight += 1
            tg.start_soon(self._answer_udp, udp, data, host, port)

    async def _answer_udp(self, udp: anyio.abc.UDPSocket, data: bytes, host: str,
                          port: int) -> None:
        try:
            reply = await self.answer(data, tcp=False)
            if reply is not None:
                await udp.sendto(reply, host, port)
        except OSError as exc:  # the client's address went away: nothing to tell it
            log.debug("dns reply not sent", client=f"{host}:{port}", error=str(exc))
        finally:
            self._in_flight -= 1

    async def _serve_tcp(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            if self._tcp_clients >= MAX_TCP:
                return
            self._tcp_clients += 1
            try:
                buffered = BufferedByteReceiveStream(stream)
                while True:
                    wire = b""
                    with anyio.move_on_after(TCP_IDLE):
                        (length,) = struct.unpack("!H", await buffered.receive_exactly(2))
                        wire = await buffered.receive_exactly(length)
                    if not wire:
                        return  # idle (or an empty message): close, as RFC 7766 allows
                    reply = await self.answer(wire, tcp=True)
                    if reply is None:
                        return
                    await stream.send(struct.pack("!H", len(reply)) + reply)
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError,
                    OSError):
                return
            finally:
                self._tcp_clients -= 1

    # ---- one message ---------------------------------------------------------------------

    async def answer(self, wire: bytes, *, tcp: bool) -> bytes | None:
        """The reply to one message, or None to send nothing."""
        assert self.zone is not None and self.forwarder is not None
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return _header_only_error(wire, dns.rcode.FORMERR)
        if query.flags & dns.flags.QR:
            return None
        if query.opcode() != dns.opcode.QUERY:
            return _error(query, dns.rcode.NOTIMP)
        if len(query.question) != 1:
            return _error(query, dns.rcode.FORMERR)
        question = query.question[0]
        origin = self.zone.origin_of(question.name)
        if origin is None:
            reply = await self.forwarder.forward(wire, tcp=tcp)
            return reply if reply is not None else _error(query, dns.rcode.SERVFAIL)
        if question.rdclass != dns.rdataclass.IN:
            return _error(query, dns.rcode.REFUSED)
        result = self.zone.resolve(question.name, question.rdtype)
        response = dns.message.make_response(query, recursion_available=True,
                                             our_payload=OUR_PAYLOAD)
        response.flags |= dns.flags.AA
        response.set_rcode(result.rcode)
        response.answer.extend(result.answer)
        response.authority.extend(result.authority)
        response.additional.extend(result.additional)
        if result.chase is not None:
            await self._chase(response, result.chase, question.rdtype, tcp=tcp)
        return response.to_wire(max_size=_reply_limit(query, tcp=tcp), prefer_truncation=True)

    async def _chase(self, response: dns.message.Message, target: dns.name.Name,
                     rdtype: dns.rdatatype.RdataType, *, tcp: bool) -> None:
        """Resolve an ExternalName's target upstream and append what it says; if no
        upstream answers, the CNAME alone goes out (the client may chase it itself)."""
        assert self.forwarder is not None
        sub = dns.message.make_query(target, rdtype)
        reply = await self.forwarder.forward(sub.to_wire(), tcp=tcp)
        if reply is None:
            return
        try:
            upstream = dns.message.from_wire(reply)
        except dns.exception.DNSException:
            return
        if upstream.flags & dns.flags.TC:
            response.flags |= dns.flags.TC  # the client retries over TCP, and so do we
        response.answer.extend(upstream.answer)
        if upstream.rcode() == dns.rcode.NXDOMAIN:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.extend(upstream.authority)


def _reply_limit(query: dns.message.Message, *, tcp: bool) -> int:
    if tcp:
        return 65535
    if query.edns < 0:
        return 512
    return max(512, min(int(query.payload), 65535))


def _error(query: dns.message.Message, rcode: dns.rcode.Rcode) -> bytes:
    response = dns.message.make_response(query, recursion_available=True,
                                         our_payload=OUR_PAYLOAD)
    response.set_rcode(rcode)
    return response.to_wire()


def _header_only_error(wire: bytes, rcode: dns.rcode.Rcode) -> bytes | None:
    """FORMERR for bytes dnspython cannot parse: the query's ID and opcode, no sections
    (nothing answers a message too short to have a header, nor a response)."""
    if len(wire) < 12:
        return None
    (ident, flags) = struct.unpack("!HH", wire[:4])
    if flags & dns.flags.QR:
        return None
    reply_flags = dns.flags.QR | (flags & 0x7800) | (flags & dns.flags.RD) | int(rcode)
    return struct.pack("!HHHHHH", ident, reply_flags, 0, 0, 0, 0)
