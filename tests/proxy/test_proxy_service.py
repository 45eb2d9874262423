"""ServiceProxy end to end on loopback: real Registry, real listeners, real backends."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from aiohttp import web

from miniorch.api.kinds import ENDPOINTS, SERVICES
from miniorch.api.store import WATCH_MAILBOX


def cluster_ip(svc: dict) -> str:  # type: ignore[type-arg]
    return str(svc["spec"]["clusterIP"])


def ingress_ip(svc: dict) -> str | None:  # type: ignore[type-arg]
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return ingress[0]["ip"] if ingress else None


async def test_round_robin_over_ready_endpoints_only(env) -> None:
    pods = [await env.backend() for _ in range(3)]
    unready = await env.backend("unready")
    svc = env.service("web")
    env.endpoints("web", [p.address for p in pods], not_ready=[unready.address])
    async with env.running():
        seen = await env.spread(cluster_ip(svc), 8080, 12)
    assert seen == {p.name: 4 for p in pods}
    assert unready.hits == 0


async def test_endpoint_changes_are_followed(env) -> None:
    first, second = await env.backend(), await env.backend()
    svc = env.service("web")
    env.endpoints("web", [first.address])
    async with env.running() as proxy:
        assert await env.spread(cluster_ip(svc), 8080, 3) == {first.name: 3}

        env.endpoints("web", [first.address, second.address])
        await env.wait_for(proxy, lambda: len(proxy.backends("default", "web")) == 2)
        assert await env.spread(cluster_ip(svc), 8080, 4) == {first.name: 2, second.name: 2}

        env.endpoints("web", [second.address], not_ready=[first.address])
        await env.wait_for(proxy, lambda: proxy.backends("default", "web")
                           == (second.address,))
        assert await env.spread(cluster_ip(svc), 8080, 3) == {second.name: 3}


async def test_dead_backend_is_skipped(env) -> None:
    pods = [await env.backend() for _ in range(2)]
    svc = env.service("web")
    env.endpoints("web", [env.dead_address(), *(p.address for p in pods)])
    async with env.running():
        seen = await env.spread(cluster_ip(svc), 8080, 6)
    assert set(seen) == {p.name for p in pods}
    assert sum(seen.values()) == 6


async def test_no_reachable_or_ready_endpoint_answers_503(env) -> None:
    svc = env.service("web")
    async with env.running() as proxy:
        status, text = await env.get(cluster_ip(svc), 8080)
        assert status == 503
        assert "no ready endpoints" in text

        env.endpoints("web", [env.dead_address(), env.dead_address()])
        await env.wait_for(proxy, lambda: len(proxy.backends("default", "web")) == 2)
        status, _ = await env.get(cluster_ip(svc), 8080)
        assert status == 503


async def test_client_ip_affinity(env) -> None:
    pods = [await env.backend() for _ in range(3)]
    svc = env.service("web", sessionAffinity="ClientIP",
                      sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}})
    env.endpoints("web", [p.address for p in pods])
    one, other = f"{env.client_net}.1", f"{env.client_net}.2"
    async with env.running() as proxy:
        first = await env.spread(cluster_ip(svc), 8080, 5, client_ip=one)
        second = await env.spread(cluster_ip(svc), 8080, 5, client_ip=other)
        assert len(first) == 1 and len(second) == 1
        assert first != second  # a new client goes on with the rotation

        # Its endpoint stops being Ready: the client moves, and sticks to the new one.
        sticky = next(p for p in pods if p.name in first)
        rest = [p for p in pods if p is not sticky]
        env.endpoints("web", [p.address for p in rest], not_ready=[sticky.address])
        await env.wait_for(proxy, lambda: len(proxy.backends("default", "web")) == 2)
        moved = await env.spread(cluster_ip(svc), 8080, 4, client_ip=one)
        assert len(moved) == 1 and sticky.name not in moved


async def test_headers_and_streamed_bodies(env) -> None:
    pod = await env.backend()
    svc = env.service("web")
    env.endpoints("web", [pod.address])
    payload = bytes(range(256)) * 8192  # 2 MiB, sent in chunks
    async with env.running():
        async def chunks():  # type: ignore[no-untyped-def]
            for start in range(0, len(payload), 65536):
                yield payload[start:start + 65536]

        url = f"http://{cluster_ip(svc)}:8080/echo?x=%2F1"
        async with aiohttp.ClientSession() as session, session.post(
                url, data=chunks(), headers={"Host": "kubia.example", "X-Forwarded-For": "1.2.3.4",
                                             "Connection": "keep-alive, X-Private",
                                             "X-Private": "secret", "X-Kept": "yes"}) as resp:
            body = await resp.read()
            assert resp.status == 200
            assert resp.headers["X-Backend"] == pod.name
    assert body == payload
    headers = pod.last_headers
    assert headers["Host"] == "kubia.example"
    assert headers["X-Forwarded-For"] == "1.2.3.4, 127.0.0.1"
    assert headers["X-Kept"] == "yes"
    assert "X-Private" not in headers  # named by Connection: hop-by-hop


async def test_node_port_listens_on_loopback_and_local_node_ips(env, free_node_port) -> None:
    pod = await env.backend()
    node_ip = f"{env.client_net}.9"
    env.node("node-1", node_ip)
    env.node("node-2", "192.0.2.55")  # not an address of this host: skipped quietly
    env.service("web", type="NodePort", node_port=free_node_port)
    env.endpoints("web", [pod.address])
    async with env.running() as proxy:
        assert await env.get("127.0.0.1", free_node_port) == (200, f"You've hit {pod.name}\n")
        assert await env.get(node_ip, free_node_port) == (200, f"You've hit {pod.name}\n")
        assert ("192.0.2.55", free_node_port) not in proxy.listening


async def test_service_deletion_closes_listeners(env, free_node_port) -> None:
    pod = await env.backend()
    svc = env.service("web", type="NodePort", node_port=free_node_port)
    env.endpoints("web", [pod.address])
    async with env.running() as proxy:
        assert (await env.get("127.0.0.1", free_node_port))[0] == 200
        env.registry.delete(SERVICES, "default", "web")
        await env.wait_for(proxy, lambda: not proxy.listening)
        for host, port in ((cluster_ip(svc), 8080), ("127.0.0.1", free_node_port)):
            with pytest.raises(aiohttp.ClientConnectorError):
                await env.get(host, port)


async def test_loadbalancer_pending_until_bound(env) -> None:
    pod = await env.backend()
    first_ip = f"{env.lb_net}.1"  # the pool hands out its first host address first
    blocker = socket.socket()
    try:
        blocker.bind((first_ip, 8080))
        blocker.listen()
        env.service("web", type="LoadBalancer")
        env.endpoints("web", [pod.address])
        async with env.running():
            event = await env.wait_event("FailedToBind")
            assert event["type"] == "Warning"
            assert f"{first_ip}:8080" in event["message"]
            assert event["source"]["component"] == "service-proxy"
            assert ingress_ip(env.get_service("web")) is None  # <pending>

            blocker.close()
            svc = await env.wait_service("web", lambda s: ingress_ip(s) is not None)
            assert svc["status"]["loadBalancer"]["ingress"] == [{"ip": first_ip,
                                                                  "ipMode": "VIP"}]
            assert await env.get(first_ip, 8080) == (200, f"You've hit {pod.name}\n")
    finally:
        blocker.close()


async def test_loadbalancer_ip_is_stable_across_restarts(env) -> None:
    pod = await env.backend()
    for name in ("a", "b"):
        env.service(name, type="LoadBalancer")
        env.endpoints(name, [pod.address])
    async with env.running():
        a = await env.wait_service("a", lambda s: ingress_ip(s) is not None)
        b = await env.wait_service("b", lambda s: ingress_ip(s) is not None)
    assert {ingress_ip(a), ingress_ip(b)} == {f"{env.lb_net}.1", f"{env.lb_net}.2"}

    # While no proxy runs, the lower address is freed and a new Service appears.
    env.registry.delete(SERVICES, "default", "a")
    env.service("c", type="LoadBalancer")
    async with env.running():
        c = await env.wait_service("c", lambda s: ingress_ip(s) is not None)
        assert ingress_ip(env.get_service("b")) == ingress_ip(b)
        assert ingress_ip(c) == ingress_ip(a)
        status, _ = await env.get(str(ingress_ip(b)), 8080)
        assert status == 200


async def test_load_balancer_ip_requested_and_released_on_type_change(env) -> None:
    pod = await env.backend()
    wanted = f"{env.lb_net}.77"
    env.service("web", type="LoadBalancer", loadBalancerIP=wanted)
    env.endpoints("web", [pod.address])
    async with env.running() as proxy:
        await env.wait_service("web", lambda s: ingress_ip(s) == wanted)
        assert (wanted, 8080) in proxy.listening

        def to_cluster_ip(obj: dict) -> None:  # type: ignore[type-arg]
            obj["spec"]["type"] = "ClusterIP"
            obj["spec"].pop("loadBalancerIP")
        env.registry.mutate(SERVICES, "default", "web", to_cluster_ip)
        await env.wait_service("web", lambda s: ingress_ip(s) is None)
        await env.wait_for(proxy, lambda: (wanted, 8080) not in proxy.listening)
        assert await env.get(cluster_ip(env.get_service("web")), 8080) == (
            200, f"You've hit {pod.name}\n")


async def test_stop_closes_every_listener(env, free_node_port) -> None:
    env.service("web", type="LoadBalancer", node_port=free_node_port)
    async with env.running() as proxy:
        await env.wait_service("web", lambda s: ingress_ip(s) is not None)
        bound = set(proxy.listening)
    assert len(bound) == 3  # ClusterIP, 127.0.0.1:nodePort, EXTERNAL-IP
    assert not proxy.listening
    for host, port in bound:
        with socket.socket() as probe:
            probe.bind((host, port))  # free again


async def test_busy_node_port_does_not_stop_other_services(env, free_node_port) -> None:
    pod = await env.backend()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", free_node_port))
    blocker.listen()
    try:
        env.service("blocked", type="NodePort", node_port=free_node_port)
        svc = env.service("fine")
        env.endpoints("fine", [pod.address])
        async with env.running():
            await env.wait_event("FailedToBind")
            assert (await env.get(cluster_ip(svc), 8080))[0] == 200
    finally:
        blocker.close()


async def test_backend_failing_mid_body_truncates_the_response(env) -> None:
    """A response cut off mid-body: a POST (not replayable) sees it truncated; a GET is
    retried (nothing of it was sent yet) and, with no endpoint that answers whole, ends
    in a clean 503 once the Service's wait is over."""
    async def half_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if b"content-length:" in head.lower():
            await reader.readexactly(int(head.lower().split(b"content-length:")[1]
                                         .split(b"\r\n")[0]))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(half_answer, f"{env.backend_net}.99", 0)
    try:
        svc = env.service("web")
        svc["metadata"]["annotations"] = {"miniorch.dev/endpoint-wait-seconds": "0.5"}
        env.registry.update(SERVICES, svc)
        env.endpoints("web", [server.sockets[0].getsockname()])
        async with env.running(), aiohttp.ClientSession() as session:
            url = f"http://{cluster_ip(svc)}:8080/"
            with pytest.raises(aiohttp.ClientPayloadError):
                async with session.post(url, data=b"x") as response:
                    await response.read()
            async with session.get(url) as response:
                assert response.status == 503
    finally:
        server.close()
        await server.wait_closed()


async def test_head_request(env) -> None:
    pod = await env.backend()
    svc = env.service("web")
    env.endpoints("web", [pod.address])
    async with env.running(), aiohttp.ClientSession() as session, \
            session.head(f"http://{cluster_ip(svc)}:8080/") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(f"You've hit {pod.name}\n"))


async def test_websocket_is_proxied(env) -> None:
    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("chat",))
        await ws.prepare(request)
        async for message in ws:
            await ws.send_str(f"echo {message.data} via {request.headers['Host']}")
        return ws

    app = web.Application()
    app.router.add_get("/ws", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, f"{env.backend_net}.98", 0)
    await site.start()
    try:
        svc = env.service("web")
        env.endpoints("web", [(f"{env.backend_net}.98", site.port)])
        async with env.running(), aiohttp.ClientSession() as session, session.ws_connect(
                f"http://{cluster_ip(svc)}:8080/ws", protocols=("chat",)) as ws:
            assert ws.protocol == "chat"
            for word in ("one", "two"):
                await ws.send_str(word)
                reply = await ws.receive()
                assert reply.data == f"echo {word} via {cluster_ip(svc)}:8080"
    finally:
        await runner.cleanup()


async def test_non_loopback_addresses_go_through_local_addresses(env) -> None:
    # 192.0.2.0/24 (TEST-NET-1) is not an address of this host and the recording
    # LocalAddresses does not really add it, so binding fails: the proxy must add the
    # ClusterIP before binding, remove it after the failure, warn, and retry.
    env.settings = type(env.settings)(home=env.settings.home, network=type(
        env.settings.network)(service_cidr="192.0.2.0/24",
                              loadbalancer_cidr=env.settings.network.loadbalancer_cidr))
    env.registry.network = env.settings.network
    svc = env.service("web")
    async with env.running():
        event = await env.wait_event("FailedToBind")
        assert f"{cluster_ip(svc)}:8080" in event["message"]
    assert cluster_ip(svc) in env.local_addresses.added
    assert all(ip == cluster_ip(svc) for ip in env.local_addresses.added)  # never loopback


async def test_port_change_moves_the_listener(env) -> None:
    pod = await env.backend()
    svc = env.service("web")
    env.endpoints("web", [pod.address])
    async with env.running() as proxy:
        def new_port(obj: dict) -> None:  # type: ignore[type-arg]
            obj["spec"]["ports"][0]["port"] = 9090
        env.registry.mutate(SERVICES, "default", "web", new_port)
        ip = cluster_ip(svc)
        await env.wait_for(proxy, lambda: proxy.listening == {(ip, 9090)})
        assert (await env.get(ip, 9090))[0] == 200
        with pytest.raises(aiohttp.ClientConnectorError):
            await env.get(ip, 8080)


async def test_multi_port_service_matches_endpoint_ports_by_name(env) -> None:
    web_pod, admin_pod = await env.backend("web-pod"), await env.backend("admin-pod")
    svc = env.service("multi", ports=[{"name": "http", "port": 8080, "protocol": "TCP"},
                                      {"name": "admin", "port": 8081, "protocol": "TCP"}])
    env.registry.create(ENDPOINTS, {"metadata": {"name": "multi"}, "subsets": [
        {"addresses": [{"ip": web_pod.ip}], "ports": [{"name": "http", "port": web_pod.port}]},
        {"addresses": [{"ip": admin_pod.ip}],
         "ports": [{"name": "admin", "port": admin_pod.port}]}]})
    async with env.running():
        assert await env.spread(cluster_ip(svc), 8080, 2) == {"web-pod": 2}
        assert await env.spread(cluster_ip(svc), 8081, 2) == {"admin-pod": 2}


async def test_relists_after_the_watch_falls_behind(env) -> None:
    pods = [await env.backend() for _ in range(2)]
    env.service("web")
    env.endpoints("web", [pods[0].address])
    async with env.running() as proxy:
        # More writes than a watch mailbox holds, with no await in between: the
        # proxy's Endpoints watch overflows, ends with Gone, and must re-list.
        for i in range(WATCH_MAILBOX + 50):
            env.endpoints("web", [pods[i % 2].address])
        env.endpoints("web", [p.address for p in pods])
        await env.wait_for(proxy, lambda: len(proxy.backends("default", "web")) == 2)
