"""Any TCP, UDP, waiting for endpoints and retries, through a real ServiceProxy on loopback."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, cast

import aiohttp
import pytest

from miniorch.api.kinds import ENDPOINTS, SERVICES
from miniorch.core.objects import Obj
from miniorch.proxy.sniff import Mode, classify, mode_for


@pytest.mark.parametrize(("data", "expected"), [
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n", Mode.HTTP, id="http11"),
    pytest.param(b"POST /a?b=c HTTP/1.0\r\n", Mode.HTTP, id="http10"),
    pytest.param(b"GET / HTTP/1.1\n", Mode.HTTP, id="bare-lf"),
    pytest.param(b"GE", None, id="partial-method"),
    pytest.param(b"GET /index.ht", None, id="partial-target"),
    pytest.param(b"GET / HTTP/1.", None, id="partial-version"),
    pytest.param(b"\x16\x03\x01\x02\x00\x01", Mode.TCP, id="tls-client-hello"),
    pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Mode.TCP, id="http2-preface"),
    pytest.param(b"PRI * HTTP/", None, id="http2-preface-partial"),
    pytest.param(b"*1\r\n$4\r\nPING\r\n", Mode.TCP, id="redis"),
    pytest.param(b"get / HTTP/1.1\r\n", Mode.TCP, id="lowercase-method"),
    pytest.param(b"\x00\x00\x00\x08", Mode.TCP, id="binary"),
])
def test_classify(data: bytes, expected: Mode | None) -> None:
    assert classify(data) is expected


def test_mode_for_app_protocol() -> None:
    assert mode_for(None) is None
    assert mode_for("http") is Mode.HTTP
    assert mode_for("HTTP") is Mode.HTTP
    for spliced in ("tcp", "https", "kubernetes.io/h2c", "grpc", "redis"):
        assert mode_for(spliced) is Mode.TCP


# ---- helpers ----------------------------------------------------------------------

def service(env: Any, name: str, ports: list[Obj], **extra: Any) -> Obj:
    metadata: Obj = {"name": name, "namespace": "default", **extra.pop("metadata", {})}
    body: Obj = {"metadata": metadata, "spec": {"type": "ClusterIP", "ports": ports,
                                                "selector": {"app": name}, **extra}}
    return env.registry.create(SERVICES, body)


def endpoints(env: Any, name: str, subsets: list[Obj]) -> None:
    body: Obj = {"metadata": {"name": name, "namespace": "default"}, "subsets": subsets}
    if env.registry.try_get(ENDPOINTS, "default", name) is None:
        env.registry.create(ENDPOINTS, body)
        return

    def replace(obj: Obj) -> None:
        obj["subsets"] = subsets
    env.registry.mutate(ENDPOINTS, "default", name, replace)


class TcpServer:
    """A raw TCP "pod": runs `handler(reader, writer)` per connection."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.server: asyncio.Server | None = None
        self.connections = 0

    async def start(self, ip: str) -> tuple[str, int]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            finally:
                writer.close()
        self.server = await asyncio.start_server(handle, ip, 0)
        return ip, int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def reverse_after_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    data = await reader.read()  # until the client's half-close
    writer.write(data[::-1])
    await writer.drain()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 smtp.example ESMTP ready\r\n")
    await writer.drain()
    line = await reader.readline()
    writer.write(b"250 got " + line)
    await writer.drain()


# ---- TCP --------------------------------------------------------------------------

async def test_raw_tcp_is_spliced_with_half_close(env) -> None:
    pod = TcpServer(reverse_after_eof)
    address = await pod.start(f"{env.backend_net}.10")
    try:
        svc = service(env, "raw", [{"name": "raw", "port": 9000, "protocol": "TCP"}])
        endpoints(env, "raw", [{"addresses": [{"ip": address[0]}],
                                "ports": [{"name": "raw", "port": address[1]}]}])
        payload = bytes(range(256)) * 4096  # 1 MiB, binary: spliced after one byte
        async with env.running() as proxy:
            reader, writer = await asyncio.open_connection(svc["spec"]["clusterIP"], 9000)
            writer.write(payload)
            await writer.drain()
            writer.write_eof()  # half-close: the pod sees EOF, then answers
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            assert answer == payload[::-1]
            assert proxy.stats.spliced == 1 and proxy.stats.failures == 0
    finally:
        await pod.stop()


async def test_server_speaks_first_protocol(env) -> None:
    pod = TcpServer(banner)
    address = await pod.start(f"{env.backend_net}.11")
    try:
        svc = service(env, "smtp", [{"port": 2525}])
        endpoints(env, "smtp", [{"addresses": [{"ip": address[0]}],
                                 "ports": [{"port": address[1]}]}])
        async with env.running():
            started = time.monotonic()
            reader, writer = await asyncio.open_connection(svc["spec"]["clusterIP"], 2525)
            greeting = await asyncio.wait_for(reader.readline(), 5)
            assert greeting == b"220 smtp.example ESMTP ready\r\n"
            assert time.monotonic() - started < 2  # the sniff timeout, not longer
            writer.write(b"HELO me\r\n")
            assert await asyncio.wait_for(reader.readline(), 5) == b"250 got HELO me\r\n"
            writer.close()
    finally:
        await pod.stop()


@pytest.mark.parametrize(("app_protocol", "first"), [
    pytest.param(None, b"\x16\x03\x01\x00\x05hello", id="tls-bytes-sniffed"),
    pytest.param(None, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", id="h2-preface-sniffed"),
    pytest.param("tcp", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http-bytes-forced-tcp"),
])
async def test_non_http_bytes_pass_untouched(env, app_protocol: str | None,
                                             first: bytes) -> None:
    pod = TcpServer(echo)
    address = await pod.start(f"{env.backend_net}.12")
    try:
        port: Obj = {"port": 9443}
        if app_protocol:
            port["appProtocol"] = app_protocol
        svc = service(env, "pass", [port])
        endpoints(env, "pass", [{"addresses": [{"ip": address[0]}],
                                 "ports": [{"port": address[1]}]}])
        async with env.running():
            reader, writer = await asyncio.open_connection(svc["spec"]["clusterIP"], 9443)
            writer.write(first)
            got = await asyncio.wait_for(reader.readexactly(len(first)), 5)
            writer.close()
            assert got == first
    finally:
        await pod.stop()


async def test_tcp_without_endpoints_is_refused_and_counted(env) -> None:
    svc = service(env, "none", [{"port": 9001, "appProtocol": "tcp"}],
                  metadata={"annotations": {"miniorch.dev/endpoint-wait-seconds": "0.3"}})
    endpoints(env, "none", [{"notReadyAddresses": [{"ip": f"{env.backend_net}.13"}],
                             "ports": [{"port": 9}]}])
    async with env.running() as proxy:
        started = time.monotonic()
        reader, writer = await asyncio.open_connection(svc["spec"]["clusterIP"], 9001)
        with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 5)
        waited = time.monotonic() - started
        writer.close()
        assert 0.25 <= waited < 3  # it waited for the not-ready endpoint, bounded
        assert proxy.stats.failures == 1


# ---- waiting for endpoints, retries ------------------------------------------------

async def test_request_waits_for_an_endpoint_that_becomes_ready(env) -> None:
    pod = await env.backend("late")
    svc = env.service("web")
    env.endpoints("web", [], not_ready=[pod.address])  # starting
    async with env.running() as proxy:
        async def ready_soon() -> None:
            await asyncio.sleep(0.5)
            env.endpoints("web", [pod.address])
        task = asyncio.create_task(ready_soon())
        started = time.monotonic()
        status, text = await env.get(svc["spec"]["clusterIP"], 8080)
        await task
        assert (status, text) == (200, "You've hit late\n")
        assert time.monotonic() - started >= 0.4
        assert proxy.stats.waited == 1 and proxy.stats.failures == 0


@pytest.mark.parametrize("app_protocol", ["http", "tcp"])
async def test_every_endpoint_refusing_waits_for_one_to_come_back(env, app_protocol: str
                                                                  ) -> None:
    pod = await env.backend("back")
    dead = env.dead_address()
    svc = service(env, "web", [{"port": 8080, "appProtocol": app_protocol}])
    endpoints(env, "web", [{"addresses": [{"ip": dead[0]}], "ports": [{"port": dead[1]}]}])
    async with env.running() as proxy:
        async def app_restarted() -> None:  # its replacement is Ready a little later
            await asyncio.sleep(0.6)
            endpoints(env, "web", [{"addresses": [{"ip": pod.ip}],
                                    "ports": [{"port": pod.port}]}])
        task = asyncio.create_task(app_restarted())
        status, text = await env.get(svc["spec"]["clusterIP"], 8080)
        await task
        assert (status, text) == (200, "You've hit back\n")
        assert proxy.stats.connect_failures >= 1 and proxy.stats.failures == 0


async def test_wait_runs_out_with_a_503(env) -> None:
    svc = env.service("web", port=8080)

    def annotate(obj: Obj) -> None:
        obj["metadata"]["annotations"] = {"miniorch.dev/endpoint-wait-seconds": "0.4"}
    env.registry.mutate(SERVICES, "default", "web", annotate)
    env.endpoints("web", [], not_ready=[env.dead_address()])
    async with env.running() as proxy:
        started = time.monotonic()
        status, text = await env.get(svc["spec"]["clusterIP"], 8080)
        assert status == 503 and "no ready endpoints" in text
        assert 0.35 <= time.monotonic() - started < 3
        assert proxy.stats.failures == 1


async def test_no_wait_when_no_endpoint_is_expected(env) -> None:
    svc = env.service("web")
    env.endpoints("web", [])  # a selector matching nothing: nothing to wait for
    async with env.running():
        started = time.monotonic()
        status, _ = await env.get(svc["spec"]["clusterIP"], 8080)
        assert status == 503
        assert time.monotonic() - started < 0.5


async def test_idempotent_request_retried_when_its_endpoint_dies_unanswered(env) -> None:
    async def dies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # takes the request, answers nothing
    dying = TcpServer(dies)
    dead = await dying.start(f"{env.backend_net}.14")
    good = await env.backend("good")
    try:
        svc = env.service("web")
        env.endpoints("web", [dead, good.address])
        async with env.running() as proxy:
            seen = await env.spread(svc["spec"]["clusterIP"], 8080, 6)
            assert seen == {"good": 6}
            assert dying.connections >= 1 and proxy.stats.retries >= 1
            assert proxy.stats.failures == 0
            # A POST is not idempotent: its failure is the client's to see.
            env.endpoints("web", [dead])
            await env.wait_for(proxy, lambda: proxy.backends("default", "web") == (dead,))
            status, _ = await post(env, svc["spec"]["clusterIP"])
            assert status == 502
            assert proxy.stats.failures == 1
    finally:
        await dying.stop()


async def test_idempotent_request_retried_when_its_endpoint_dies_mid_response(env) -> None:
    """An app killed between writing its headers and its body (kubia writes them apart):
    nothing reached the client yet, so a GET goes to another endpoint."""
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 23\r\n\r\nYou've")
        await writer.drain()
        writer.close()  # dies before the rest of the body
    halfway = TcpServer(half)
    dead = await halfway.start(f"{env.backend_net}.15")
    good = await env.backend("good")
    try:
        svc = env.service("web")
        env.endpoints("web", [dead, good.address])
        async with env.running() as proxy:
            seen = await env.spread(svc["spec"]["clusterIP"], 8080, 6)
            assert seen == {"good": 6}
            assert halfway.connections >= 1 and proxy.stats.retries >= 1
            assert proxy.stats.failures == 0
    finally:
        await halfway.stop()


async def post(env: Any, host: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.post(
            f"http://{host}:8080/", data=b"x") as response:
        return response.status, await response.text()


async def test_keep_alive_requests_are_balanced_one_by_one(env) -> None:
    pods = [await env.backend() for _ in range(3)]
    svc = env.service("web")
    env.endpoints("web", [p.address for p in pods])
    async with env.running():
        reader, writer = await asyncio.open_connection(svc["spec"]["clusterIP"], 8080)
        names = []
        for _ in range(6):
            writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            names.append((await reader.readexactly(length)).decode().split()[-1])
        writer.close()
    assert sorted(names) == sorted(p.name for p in pods for _ in range(2))


# ---- UDP --------------------------------------------------------------------------

class UdpEcho(asyncio.DatagramProtocol):
    def __init__(self, name: bytes) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # 3.11's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(self.name + b":" + data, addr)


async def test_udp_port_relays_and_replies_from_the_service_address(env) -> None:
    loop = asyncio.get_running_loop()
    pods = []
    for i in (1, 2):
        transport, _ = await loop.create_datagram_endpoint(
            lambda i=i: UdpEcho(f"pod{i}".encode()), local_addr=(f"{env.backend_net}.2{i}", 0))
        pods.append(transport)
    try:
        svc = service(env, "dns", [{"name": "dns", "port": 5353, "protocol": "UDP"},
                                   {"name": "dns-tcp", "port": 5353, "protocol": "TCP"}])
        endpoints(env, "dns", [{"addresses": [{"ip": t.get_extra_info("sockname")[0]}],
                                "ports": [{"name": "dns", "port":
                                           t.get_extra_info("sockname")[1],
                                           "protocol": "UDP"}]} for t in pods])
        ip = svc["spec"]["clusterIP"]
        async with env.running() as proxy:
            assert (ip, 5353) in proxy.listening_udp and (ip, 5353) in proxy.listening
            answers = []
            for n in range(4):  # a new client socket each time: the rotation moves on
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.setblocking(False)
                    sock.bind((f"{env.client_net}.1", 0))
                    await loop.sock_sendto(sock, f"q{n}".encode(), (ip, 5353))
                    data, source = await asyncio.wait_for(loop.sock_recvfrom(sock, 512), 5)
                    assert source == (ip, 5353)  # from the Service address
                    answers.append(data)
                    # The same client keeps its endpoint.
                    await loop.sock_sendto(sock, b"again", (ip, 5353))
                    again, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 512), 5)
                    assert again.split(b":")[0] == data.split(b":")[0]
            assert sorted(answers) == [b"pod1:q0", b"pod1:q2", b"pod2:q1", b"pod2:q3"] or \
                sorted(answers) == [b"pod1:q1", b"pod1:q3", b"pod2:q0", b"pod2:q2"]
        assert not proxy.listening_udp
    finally:
        for transport in pods:
            transport.close()
