"""Fixtures for the DNS server tests: a real in-memory Store + Registry, the shared
informers, a DnsServer on loopback, and a fake upstream resolver on loopback.

Nothing leaves 127.0.0.0/8: the server's upstreams are the fake's address only, and
queries are sent with dnspython straight to the server's bound port.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import dns.asyncquery
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from miniorch.api.kinds import ENDPOINTS, NAMESPACES, PODS, SERVICES
from miniorch.api.registry import Registry
from miniorch.api.store import Store
from miniorch.core.objects import Obj
from miniorch.core.settings import DnsSettings, NetworkSettings, Settings
from miniorch.dns import DnsServer
from miniorch.machinery.informer import SharedInformerFactory

WAIT = 5.0
HOST = "127.0.0.1"


class FakeUpstream:
    """A resolver on loopback standing in for the host's: answers `*.example.test` A
    192.0.2.7 (big.example.test: 60 TXT records, too big for UDP without EDNS),
    NXDOMAIN for the rest, and records every question it got; `silent` drops all."""

    def __init__(self) -> None:
        self.port = 0
        self.questions: list[tuple[str, str, str]] = []
        """(name, type, transport)"""
        self.silent = False

    def reply(self, wire: bytes, transport: str) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        self.questions.append((question.name.to_text(), dns.rdatatype.to_text(question.rdtype),
                               transport))
        if self.silent:
            return None
        response = dns.message.make_response(query, recursion_available=True)
        name = question.name.to_text()
        if name == "big.example.test.":
            response.answer.append(dns.rrset.from_text_list(
                question.name, 60, "IN", "TXT", [f'"record {i:03} ' + "x" * 40 + '"'
                                                  for i in range(60)]))
        elif name.endswith(".example.test.") and question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A",
                                                       "192.0.2.7"))
        elif not name.endswith(".example.test."):
            response.set_rcode(dns.rcode.NXDOMAIN)
        limit = 65535 if transport == "tcp" else 512
        return response.to_wire(max_size=limit, prefer_truncation=True)

    async def run(self, *, task_status: anyio.abc.TaskStatus[int]) -> None:
        for _attempt in range(20):
            udp = await anyio.create_udp_socket(local_host=HOST, local_port=0)
            self.port = int(udp.extra(anyio.abc.SocketAttribute.local_port))
            try:
                tcp = await anyio.create_tcp_listener(local_host=HOST, local_port=self.port)
                break
            except OSError:  # that number is a busy TCP port (another test's client)
                await udp.aclose()
        else:
            raise OSError("no port free for both UDP and TCP")
        async with udp, tcp, anyio.create_task_group() as tg:
            tg.start_soon(tcp.serve, self._tcp)
            task_status.started(self.port)
            async for data, (host, port) in udp:
                reply = self.reply(data, "udp")
                if reply is not None:
                    await udp.sendto(reply, host, port)

    async def _tcp(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            buffered = BufferedByteReceiveStream(stream)
            with contextlib.suppress(anyio.EndOfStream, anyio.IncompleteRead):
                while True:
                    (length,) = struct.unpack("!H", await buffered.receive_exactly(2))
                    reply = self.reply(await buffered.receive_exactly(length), "tcp")
                    if reply is None:
                        return
                    await stream.send(struct.pack("!H", len(reply)) + reply)


class DnsEnv:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.store = Store(None)
        self.network = NetworkSettings()
        self.registry = Registry(self.store, network=self.network)
        self.registry.ensure_system_objects()
        self.upstream = FakeUpstream()
        self.server: DnsServer | None = None

    def close(self) -> None:
        self.store.close()

    # ---- objects -----------------------------------------------------------------

    def namespace(self, name: str) -> Obj:
        return self.registry.create(NAMESPACES, {"metadata": {"name": name}})

    def service(self, name: str, namespace: str = "default", **spec: Any) -> Obj:
        spec.setdefault("ports", [{"name": "http", "port": 80, "targetPort": 8080,
                                   "protocol": "TCP"}])
        return self.registry.create(SERVICES, {"metadata": {"name": name,
                                                            "namespace": namespace},
                                               "spec": spec})

    def endpoints(self, name: str, ready: Sequence[str], not_ready: Sequence[str] = (),
                  *, namespace: str = "default", port: int = 8080,
                  port_name: str = "http", pods: dict[str, str] | None = None) -> Obj:
        """Endpoints of one subset; `pods` maps an IP to the pod its targetRef names."""
        def address(ip: str) -> Obj:
            entry: Obj = {"ip": ip}
            if pods and ip in pods:
                pod = self.registry.get(PODS, namespace, pods[ip])
                entry["targetRef"] = {"kind": "Pod", "namespace": namespace,
                                      "name": pods[ip], "uid": pod["metadata"]["uid"]}
            return entry
        subset: Obj = {"ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}
        if ready:
            subset["addresses"] = [address(ip) for ip in ready]
        if not_ready:
            subset["notReadyAddresses"] = [address(ip) for ip in not_ready]
        body: Obj = {"metadata": {"name": name, "namespace": namespace},
                     "subsets": [subset] if ready or not_ready else []}
        if self.registry.try_get(ENDPOINTS, namespace, name) is None:
            return self.registry.create(ENDPOINTS, body)

        def replace(obj: Obj) -> None:
            obj["subsets"] = body["subsets"]
        return self.registry.mutate(ENDPOINTS, namespace, name, replace)

    def pod(self, name: str, ip: str, namespace: str = "default", **spec: Any) -> Obj:
        pod = self.registry.create(PODS, {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec}})

        def running(obj: Obj) -> None:
            obj["status"] = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
        self.registry.mutate(PODS, namespace, pod["metadata"]["name"], running,
                             subresource="status")
        return self.registry.get(PODS, namespace, name)

    # ---- the server --------------------------------------------------------------

    def settings(self, **dns: Any) -> Settings:
        dns.setdefault("listen_host", HOST)
        dns.setdefault("port", 0)
        dns.setdefault("upstreams", ((HOST, self.upstream.port),))
        dns.setdefault("upstream_timeout", 0.5)
        return Settings(home=self.tmp_path, network=self.network, dns=DnsSettings(**dns))

    @contextlib.asynccontextmanager
    async def running(self, **dns: Any) -> AsyncIterator[DnsServer]:
        async with anyio.create_task_group() as tg:
            with anyio.fail_after(WAIT):
                await tg.start(self.upstream.run)
                informers = SharedInformerFactory(self.registry)
                await tg.start(informers.run)
                settings = self.settings(**dns)
                server = DnsServer(registry=self.registry, settings=settings,
                                   informers=informers,
                                   listen_host=settings.dns.listen_host or HOST)
                await tg.start(server.run)
            self.server = server
            try:
                yield server
            finally:
                tg.cancel_scope.cancel()

    # ---- asking ------------------------------------------------------------------

    async def ask(self, name: str, rdtype: str = "A", *, tcp: bool = False,
                  edns: int | bool = False) -> dns.message.Message:
        assert self.server is not None
        query = dns.message.make_query(name, rdtype, use_edns=edns)
        with anyio.fail_after(WAIT):
            if tcp:
                return await dns.asyncquery.tcp(query, HOST, port=self.server.port)
            return await dns.asyncquery.udp(query, HOST, port=self.server.port,
                                            ignore_trailing=True)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[DnsEnv]:
    made = DnsEnv(tmp_path)
    yield made
    made.close()


def addresses(response: dns.message.Message, rdtype: str = "A") -> list[str]:
    """The sorted addresses (or other rdata texts) of the answer's records of `rdtype`."""
    wanted = dns.rdatatype.from_text(rdtype)
    return sorted(rr.to_text() for rrset in response.answer if rrset.rdtype == wanted
                  for rr in rrset)


def soa_in_authority(response: dns.message.Message) -> bool:
    return any(rrset.rdtype == dns.rdatatype.SOA for rrset in response.authority)
