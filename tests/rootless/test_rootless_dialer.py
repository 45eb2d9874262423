"""The Dialer seam (core.dialer) in the proxy's connector and the probes, and the
rootless sandbox's socket hand-out (sandbox.rootless), at unit level.

Virtual pod IPs (10.254.x.y) are never routed anywhere: a test dialer maps them to a
local test server, exactly as the rootless PodNetDialer maps them to a pod's shim.
The sandbox test creates a real RootlessSandbox (a user namespace works for root too)
and reaches a server inside its network namespace, where only `lo` exists.
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from miniorch.core.dialer import TcpDialer, connect_socket
from miniorch.node.probes import ProbeSpec, run_probe
from miniorch.proxy.dialing import DialerConnector
from miniorch.sandbox.pod import ContainerSpec, PodSandboxSpec, exec_in_sandbox
from miniorch.sandbox.rootless import PodNetDialer, RootlessSandbox
from tests.leakcheck import leak_check


class MapDialer:
    """Virtual IP → a real local port (stands in for a pod's shim)."""

    def __init__(self, routes: dict[str, int]) -> None:
        self.routes = routes
        self.dialed: list[tuple[str, int]] = []

    async def connect(self, host: str, port: int) -> socket.socket:
        self.dialed.append((host, port))
        if host not in self.routes:
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"{host}:{port} is nowhere")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        return await connect_socket(sock, ("127.0.0.1", self.routes[host]))


@pytest.fixture
async def hello_server() -> AsyncIterator[TestServer]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.path}\n")

    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def test_tcp_dialer_connects_and_refuses(hello_server: TestServer) -> None:
    assert hello_server.port is not None
    sock = await TcpDialer().connect("127.0.0.1", hello_server.port)
    sock.close()
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(OSError):
        await TcpDialer().connect("127.0.0.1", port)


async def test_connector_reaches_a_virtual_ip_through_the_dialer(
        hello_server: TestServer) -> None:
    assert hello_server.port is not None
    dialer = MapDialer({"10.254.7.9": hello_server.port})
    timeout = aiohttp.ClientTimeout(total=5, sock_connect=2)
    async with aiohttp.ClientSession(connector=DialerConnector(dialer), timeout=timeout) as s:
        for _ in range(3):  # keep-alive: one dial serves several requests
            async with s.get("http://10.254.7.9:8080/x?y=1") as response:
                assert response.status == 200
                assert await response.text() == "hello /x\n"
        assert dialer.dialed[0] == ("10.254.7.9", 8080)
        assert len(dialer.dialed) == 1
        # A failed dial is a connector error, as TCPConnector raises (the proxy's
        # "try the next endpoint" depends on it).
        with pytest.raises(aiohttp.ClientConnectorError):
            await s.get("http://10.254.7.10:8080/")


async def test_probes_go_through_the_dialer(hello_server: TestServer) -> None:
    assert hello_server.port is not None
    dialer = MapDialer({"10.254.7.9": hello_server.port})

    async def no_exec(argv: list[str]) -> tuple[int, bytes]:
        raise AssertionError("not an exec probe")

    tcp = ProbeSpec(kind="tcpSocket", port=8080, timeout=2)
    http = ProbeSpec(kind="httpGet", port=8080, path="/healthz", timeout=2)
    for spec in (tcp, http):
        ok = await run_probe(spec, pod_ip="10.254.7.9", exec_fn=no_exec, dialer=dialer)
        assert ok.ok, ok.message
        bad = await run_probe(spec, pod_ip="10.254.7.10", exec_fn=no_exec, dialer=dialer)
        assert not bad.ok
        assert "connection refused" in bad.message


SERVER = """
import http.server, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = socket.gethostname().encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
server = http.server.HTTPServer(("127.0.0.1", 8080), H)
print("up", flush=True)
server.serve_forever()
"""


async def test_rootless_sandbox_is_reached_through_its_shim(tmp_path: Path) -> None:
    suffix = secrets.token_hex(3)
    spec = PodSandboxSpec(id=f"rlt{suffix}", hostname=f"rl-pod-{suffix}", ip="10.254.1.5",
                          prefix_len=24, gateway="", bridge="",
                          # Longer than a unix socket path may be (108 bytes).
                          state_dir=tmp_path / ("long-" * 20) / "sandbox")
    dialer = PodNetDialer()
    with leak_check(mount_roots=[tmp_path]):
        sandbox = await RootlessSandbox.create_rootless(spec, dialer=dialer)
        try:
            assert dialer.knows("10.254.1.5")
            proc = await sandbox.start_container(ContainerSpec(
                name="web", argv=[sys.executable, "-I", "-S", "-c", SERVER]))
            assert proc.stdout is not None
            with anyio.fail_after(10):
                assert b"up" in await proc.stdout.receive()
            # The pod's 127.0.0.1:8080 is not the host's: only the shim reaches it.
            timeout = aiohttp.ClientTimeout(total=5, sock_connect=2)
            async with aiohttp.ClientSession(connector=DialerConnector(dialer),
                                             timeout=timeout) as session, \
                    session.get("http://10.254.1.5:8080/") as response:
                assert await response.text() == f"rl-pod-{suffix}"
            # exec enters the pod's namespaces: its own hostname, network with only lo.
            helper = await exec_in_sandbox(sandbox.init_pid, ["cat", "/proc/net/dev"],
                                           tty=False, container_pid=proc.pid)
            assert helper.stdout is not None
            output = b""
            async for chunk in helper.stdout:
                output += chunk
            assert await helper.wait() == 0
            interfaces = {line.split(b":")[0].strip() for line in output.splitlines()[2:]}
            assert interfaces == {b"lo"}
            # Each pod's user namespace maps root inside to the invoking user outside.
            uid_map = (await anyio.Path(f"/proc/{proc.pid}/uid_map").read_text()).split()
            assert uid_map == ["0", str(os.getuid()), "1"]
        finally:
            await sandbox.destroy(grace_seconds=1)
        assert not dialer.knows("10.254.1.5")
        assert not sandbox.net_sock.exists()
