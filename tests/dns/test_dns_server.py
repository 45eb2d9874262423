"""The cluster DNS server over real UDP/TCP sockets on loopback, answering from real
informers over a real registry; names outside the cluster go to a fake upstream."""

from __future__ import annotations

import struct

import anyio
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from miniorch.api.kinds import ENDPOINTS, SERVICES
from miniorch.controllers.endpoints import EndpointsReconciler
from miniorch.dns import DnsServer
from miniorch.machinery.controller import ObjectKey
from tests.dns.conftest import HOST, DnsEnv, addresses, soa_in_authority

ZONE = "svc.cluster.local"


async def test_a_service_name_answers_its_cluster_ip(env: DnsEnv) -> None:
    svc = env.service("kubia-http", selector={"app": "kubia"})
    async with env.running():
        reply = await env.ask(f"kubia-http.default.{ZONE}")
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.flags & dns.flags.AA
        assert addresses(reply) == [svc["spec"]["clusterIP"]]
        assert reply.answer[0].ttl == 5
        # Names are case-insensitive; TCP answers the same.
        upper = await env.ask(f"KUBIA-HTTP.Default.{ZONE.upper()}", tcp=True)
        assert addresses(upper) == [svc["spec"]["clusterIP"]]
        assert env.upstream.questions == []  # nothing of the cluster goes upstream


async def test_negative_answers_carry_the_soa(env: DnsEnv) -> None:
    env.service("web")
    async with env.running():
        # The name exists, the type does not: NODATA.
        nodata = await env.ask(f"web.default.{ZONE}", "AAAA")
        assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
        assert soa_in_authority(nodata)
        assert nodata.authority[0].name.to_text() == "cluster.local."
        # Empty non-terminals exist too: svc.cluster.local, an existing namespace.
        for name in (ZONE, f"default.{ZONE}", "default.pod.cluster.local"):
            reply = await env.ask(name)
            assert reply.rcode() == dns.rcode.NOERROR and not reply.answer, name
        # No such service / namespace / deeper name: NXDOMAIN.
        for name in (f"nope.default.{ZONE}", f"web.nonamespace.{ZONE}",
                     f"nonamespace.{ZONE}", f"a.b.web.default.{ZONE}",
                     "kubia-http.cluster.local", "x.y.cluster.local"):
            reply = await env.ask(name)
            assert reply.rcode() == dns.rcode.NXDOMAIN, name
            assert soa_in_authority(reply), name
        apex = await env.ask("cluster.local", "SOA")
        assert addresses(apex, "SOA")[0].startswith("ns.dns.cluster.local. "
                                                    "hostmaster.cluster.local. ")
        ns = await env.ask("cluster.local", "NS")
        assert addresses(ns, "NS") == ["ns.dns.cluster.local."]
        assert [rr.to_text() for rrset in ns.additional for rr in rrset] == ["10.96.0.10"]
    assert env.upstream.questions == []


async def test_changes_apply_at_once(env: DnsEnv) -> None:
    async with env.running():
        name = f"late.default.{ZONE}"
        assert (await env.ask(name)).rcode() == dns.rcode.NXDOMAIN
        svc = env.service("late")
        assert addresses(await env.ask(name)) == [svc["spec"]["clusterIP"]]
        env.registry.delete(SERVICES, "default", "late")
        assert (await env.ask(name)).rcode() == dns.rcode.NXDOMAIN


async def test_headless_service_answers_ready_pod_ips(env: DnsEnv) -> None:
    env.service("db", clusterIP="None", selector={"app": "db"})
    env.endpoints("db", ["10.244.1.5", "10.244.2.6"], not_ready=["10.244.3.7"])
    async with env.running():
        name = f"db.default.{ZONE}"
        assert addresses(await env.ask(name)) == ["10.244.1.5", "10.244.2.6"]
        env.endpoints("db", ["10.244.2.6"])
        assert addresses(await env.ask(name)) == ["10.244.2.6"]
        # No ready endpoint: the name still exists (NODATA), it is not NXDOMAIN.
        env.endpoints("db", [], not_ready=["10.244.2.6"])
        empty = await env.ask(name)
        assert empty.rcode() == dns.rcode.NOERROR and not empty.answer
        assert soa_in_authority(empty)
        # Each endpoint has a name of its own: the dashed IP without a hostname.
        env.endpoints("db", ["10.244.1.5"])
        assert addresses(await env.ask(f"10-244-1-5.db.default.{ZONE}")) == ["10.244.1.5"]
        missing = await env.ask(f"10-244-9-9.db.default.{ZONE}")
        assert missing.rcode() == dns.rcode.NXDOMAIN


async def test_publish_not_ready_addresses(env: DnsEnv) -> None:
    env.service("peers", clusterIP="None", publishNotReadyAddresses=True)
    env.endpoints("peers", ["10.244.1.5"], not_ready=["10.244.1.6"])
    async with env.running():
        reply = await env.ask(f"peers.default.{ZONE}")
        assert addresses(reply) == ["10.244.1.5", "10.244.1.6"]


async def test_srv_records_of_named_ports(env: DnsEnv) -> None:
    svc = env.service("web", ports=[
        {"name": "http", "port": 80, "protocol": "TCP"},
        {"name": "dns", "port": 53, "protocol": "UDP"}])
    async with env.running():
        reply = await env.ask(f"_http._tcp.web.default.{ZONE}", "SRV")
        assert addresses(reply, "SRV") == [f"0 100 80 web.default.{ZONE}."]
        # The target's address comes along in the additional section.
        assert [rr.to_text() for rrset in reply.additional for rr in rrset
                if rrset.rdtype == dns.rdatatype.A] == [svc["spec"]["clusterIP"]]
        udp = await env.ask(f"_dns._udp.web.default.{ZONE}", "SRV")
        assert addresses(udp, "SRV") == [f"0 100 53 web.default.{ZONE}."]
        # Wrong protocol or port name: no such name. `_tcp` alone: an empty non-terminal.
        assert (await env.ask(f"_http._udp.web.default.{ZONE}", "SRV")).rcode() \
            == dns.rcode.NXDOMAIN
        assert (await env.ask(f"_nope._tcp.web.default.{ZONE}", "SRV")).rcode() \
            == dns.rcode.NXDOMAIN
        ent = await env.ask(f"_tcp.web.default.{ZONE}", "SRV")
        assert ent.rcode() == dns.rcode.NOERROR and not ent.answer


async def test_headless_hostname_and_subdomain_records(env: DnsEnv) -> None:
    env.service("kubia", clusterIP="None", selector={"app": "kubia"})
    env.pod("kubia-0", "10.244.1.5", hostname="kubia-0", subdomain="kubia")
    env.pod("other", "10.244.1.6", hostname="other", subdomain="elsewhere")
    env.endpoints("kubia", ["10.244.1.5", "10.244.1.6"],
                  pods={"10.244.1.5": "kubia-0", "10.244.1.6": "other"})
    async with env.running():
        reply = await env.ask(f"kubia-0.kubia.default.{ZONE}")
        assert addresses(reply) == ["10.244.1.5"]
        # A pod whose subdomain is another Service is named by its IP here.
        assert addresses(await env.ask(f"10-244-1-6.kubia.default.{ZONE}")) == ["10.244.1.6"]
        assert (await env.ask(f"other.kubia.default.{ZONE}")).rcode() == dns.rcode.NXDOMAIN
        srv = await env.ask(f"_http._tcp.kubia.default.{ZONE}", "SRV")
        assert addresses(srv, "SRV") == [f"0 50 8080 10-244-1-6.kubia.default.{ZONE}.",
                                         f"0 50 8080 kubia-0.kubia.default.{ZONE}."]
        assert sorted(rr.to_text() for rrset in srv.additional for rr in rrset
                      if rrset.rdtype == dns.rdatatype.A) == ["10.244.1.5", "10.244.1.6"]


async def test_external_name_is_a_chased_cname(env: DnsEnv) -> None:
    env.service("ext", type="ExternalName", externalName="db.example.test", ports=[])
    inner = env.service("inner")
    env.service("alias", type="ExternalName",
                externalName=f"inner.default.{ZONE}", ports=[])
    async with env.running():
        reply = await env.ask(f"ext.default.{ZONE}")
        assert addresses(reply, "CNAME") == ["db.example.test."]
        assert addresses(reply) == ["192.0.2.7"]  # chased through the upstream
        assert env.upstream.questions == [("db.example.test.", "A", "udp")]
        cname_only = await env.ask(f"ext.default.{ZONE}", "CNAME")
        assert addresses(cname_only, "CNAME") == ["db.example.test."]
        assert addresses(cname_only) == []
        # A target inside the cluster is answered here, nothing goes upstream.
        local = await env.ask(f"alias.default.{ZONE}")
        assert addresses(local, "CNAME") == [f"inner.default.{ZONE}."]
        assert addresses(local) == [inner["spec"]["clusterIP"]]
        assert len(env.upstream.questions) == 1


async def test_pod_records_are_verified(env: DnsEnv) -> None:
    env.pod("web", "10.244.1.5")
    async with env.running():
        reply = await env.ask("10-244-1-5.default.pod.cluster.local")
        assert addresses(reply) == ["10.244.1.5"]
        # No pod with that IP in that namespace: no record.
        for name in ("10-244-1-9.default.pod.cluster.local",
                     "10-244-1-5.kube-system.pod.cluster.local"):
            assert (await env.ask(name)).rcode() == dns.rcode.NXDOMAIN, name


async def test_reverse_lookups_stay_in_the_cluster(env: DnsEnv) -> None:
    svc = env.service("web")
    async with env.running():
        ip = svc["spec"]["clusterIP"]
        reply = await env.ask(dns.reversename.from_address(ip).to_text(), "PTR")
        assert addresses(reply, "PTR") == [f"web.default.{ZONE}."]
        dns_ip = await env.ask("10.0.96.10.in-addr.arpa", "PTR")
        assert addresses(dns_ip, "PTR") == [f"kube-dns.kube-system.{ZONE}."]
        unknown = await env.ask("99.99.244.10.in-addr.arpa", "PTR")
        assert unknown.rcode() == dns.rcode.NXDOMAIN and soa_in_authority(unknown)
        assert unknown.authority[0].name.to_text() == "244.10.in-addr.arpa."
    assert env.upstream.questions == []  # private addresses never go upstream


async def test_other_names_are_forwarded(env: DnsEnv) -> None:
    async with env.running():
        reply = await env.ask("www.example.test")
        assert addresses(reply) == ["192.0.2.7"]
        assert not reply.flags & dns.flags.AA
        nx = await env.ask("nowhere.invalid", tcp=True)
        assert nx.rcode() == dns.rcode.NXDOMAIN
        assert env.upstream.questions == [("www.example.test.", "A", "udp"),
                                          ("nowhere.invalid.", "A", "tcp")]


async def test_a_silent_upstream_is_servfail_after_the_timeout(env: DnsEnv) -> None:
    async with env.running(upstream_timeout=0.3):
        env.upstream.silent = True
        began = anyio.current_time()
        reply = await env.ask("www.example.test")
        took = anyio.current_time() - began
        assert reply.rcode() == dns.rcode.SERVFAIL
        assert 0.25 <= took < 2.0
        assert env.server is not None and env.server.forwarder is not None
        assert env.server.forwarder.failures == 1


async def test_big_answers_set_tc_and_come_whole_over_tcp(env: DnsEnv) -> None:
    env.service("many", clusterIP="None")
    ips = [f"10.244.{i // 200 + 1}.{i % 200 + 1}" for i in range(80)]
    env.endpoints("many", ips)
    async with env.running():
        name = f"many.default.{ZONE}"
        short = await env.ask(name)
        assert short.flags & dns.flags.TC
        assert len(addresses(short)) < 80
        # An EDNS client with a big buffer gets it all over UDP; TCP always does.
        edns = dns.message.make_query(name, "A", use_edns=0, payload=4096)
        assert env.server is not None
        big = await dns.asyncquery.udp(edns, HOST, port=env.server.port)
        assert not big.flags & dns.flags.TC and len(addresses(big)) == 80
        whole = await env.ask(name, tcp=True)
        assert not whole.flags & dns.flags.TC
        assert addresses(whole) == sorted(ips)
        # A forwarded truncated answer is relayed as it is; the TCP retry is whole.
        relayed = await env.ask("big.example.test", "TXT")
        assert relayed.flags & dns.flags.TC
        full = await env.ask("big.example.test", "TXT", tcp=True)
        assert len(addresses(full, "TXT")) == 60


async def test_malformed_and_unsupported_messages(env: DnsEnv) -> None:
    async with env.running() as server:
        async with await anyio.create_connected_udp_socket(HOST, server.port) as sock:
            # A readable header but garbage after it: FORMERR with the query's ID.
            await sock.send(struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\xff")
            with anyio.fail_after(5):
                reply = await sock.receive()
            ident, flags = struct.unpack("!HH", reply[:4])
            assert ident == 0x1234 and flags & 0x8000 and flags & 0xF == dns.rcode.FORMERR
        query = dns.message.make_query(f"x.default.{ZONE}", "A")
        query.set_opcode(dns.opcode.STATUS)
        reply_msg = await dns.asyncquery.udp(query, HOST, port=server.port)
        assert reply_msg.rcode() == dns.rcode.NOTIMP
        chaos = dns.message.make_query(f"web.default.{ZONE}", "TXT", rdclass="CH")
        assert (await dns.asyncquery.udp(chaos, HOST, port=server.port)).rcode() \
            == dns.rcode.REFUSED


async def test_kube_dns_service_and_endpoints(env: DnsEnv) -> None:
    async with env.running() as server:
        svc = env.registry.get(SERVICES, "kube-system", "kube-dns")
        assert svc["spec"]["clusterIP"] == "10.96.0.10"
        assert svc["metadata"]["labels"] == {"k8s-app": "kube-dns",
                                             "kubernetes.io/cluster-service": "true",
                                             "kubernetes.io/name": "CoreDNS"}
        assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
            ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]
        assert "selector" not in svc["spec"]
        ep = env.registry.get(ENDPOINTS, "kube-system", "kube-dns")
        assert ep["subsets"] == [{"addresses": [{"ip": HOST}], "ports": [
            {"name": "dns", "port": server.port, "protocol": "UDP"},
            {"name": "dns-tcp", "port": server.port, "protocol": "TCP"}]}]
        # A selector-less Service: the endpoints controller leaves its Endpoints alone.
        await EndpointsReconciler(env.registry).reconcile(ObjectKey("kube-system", "kube-dns"))
        assert env.registry.get(ENDPOINTS, "kube-system", "kube-dns") == ep
    # Started again on another port: the Endpoints follow, the Service stays.
    async with env.running() as again:
        ep = env.registry.get(ENDPOINTS, "kube-system", "kube-dns")
        assert ep["subsets"][0]["ports"][0]["port"] == again.port
        assert env.registry.get(SERVICES, "kube-system", "kube-dns")["metadata"]["uid"] \
            == svc["metadata"]["uid"]


async def test_a_taken_port_fails_the_start_and_leaves_the_group_running(env: DnsEnv) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((HOST, 0))
        port = taken.getsockname()[1]
        async with env.running():  # informers and the fake upstream
            assert env.server is not None
            server = DnsServer(registry=env.registry, settings=env.settings(port=port),
                               informers=env.server.informers, listen_host=HOST)
            async with anyio.create_task_group() as tg:
                with pytest.raises(OSError):
                    await tg.start(server.run)
                # The cluster's task group goes on (cluster.py reports a warning).
                assert not tg.cancel_scope.cancel_called
                tg.cancel_scope.cancel()
            # The first server still answers.
            assert (await env.ask(f"kubernetes.default.{ZONE}")).answer
