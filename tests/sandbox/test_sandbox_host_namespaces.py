"""hostNetwork, hostPID, hostIPC: a pod sandbox that shares the host's namespaces
shares exactly those, and its init never signals outside the pod."""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import TYPE_CHECKING

import anyio
import pytest

from miniorch.sandbox.pod import ContainerSpec
from tests.sandbox.test_sandbox_pod import run_exec, wait_http

if TYPE_CHECKING:
    from tests.sandbox.conftest import MakeSandbox, TestNet

NAMESPACES = ("net", "uts", "pid", "ipc", "mnt")


def host_ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


@pytest.mark.parametrize(("flags", "shared"), [
    pytest.param({}, set(), id="isolated"),
    pytest.param({"host_network": True}, {"net", "uts"}, id="hostNetwork"),
    pytest.param({"host_pid": True}, {"pid"}, id="hostPID"),
    pytest.param({"host_ipc": True}, {"ipc"}, id="hostIPC"),
])
async def test_shares_exactly_the_namespaces_asked_for(
        make_sandbox: MakeSandbox, testnet: TestNet, flags: dict[str, bool],
        shared: set[str]) -> None:
    if flags.get("host_network"):
        flags = {**flags, "ip": "127.0.0.1"}
    sandbox = await make_sandbox(**flags)
    app = await sandbox.start_container(ContainerSpec(name="app", argv=["sleep", "30"]))
    code, out, err = await run_exec(sandbox, ["sh", "-c", " ; ".join(
        f"readlink /proc/self/ns/{kind}" for kind in NAMESPACES) + "; hostname"],
        container_pid=app.pid)
    assert code == 0, err
    *links, hostname = out.split()
    seen = {kind for kind, link in zip(NAMESPACES, links, strict=True) if link == host_ns(kind)}
    assert seen == shared
    if "uts" in shared:
        assert hostname == socket.gethostname()
    else:
        assert hostname == sandbox.spec.hostname
    await app.stop(0)


async def test_host_network_pod_sees_the_hosts_interfaces(make_sandbox: MakeSandbox,
                                                          testnet: TestNet) -> None:
    sandbox = await make_sandbox(host_network=True, ip="127.0.0.1")
    assert sandbox.netns == ""
    code, out, _ = await run_exec(sandbox, ["cat", "/proc/net/dev"])
    assert code == 0 and testnet.bridge in out  # the test's bridge: only the host has it
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = await sandbox.start_container(ContainerSpec(name="web", argv=[
        sys.executable, "-c",
        "import http.server as h\n"
        "class H(h.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'host')\n"
        "    def log_message(self, *a): pass\n"
        f"h.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"]))
    assert await wait_http(f"http://127.0.0.1:{port}/") == "host"
    await app.stop(0)


async def test_host_pid_init_signals_only_the_pod(make_sandbox: MakeSandbox) -> None:
    """The init is no PID 1 here: a SIGTERM it forwards must reach the pod's processes
    and nothing else of the host (kill(-1) would hit every process)."""
    bystander = await anyio.open_process(["sleep", "30"])
    try:
        sandbox = await make_sandbox(host_pid=True)
        assert sandbox.init_pid != 1
        app = await sandbox.start_container(ContainerSpec(name="app", argv=[
            sys.executable, "-c",
            "import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))\n"
            "print('up', flush=True)\n"
            "time.sleep(30)\n"]))
        assert await app.stdout.receive() == b"up\n"
        code, out, _ = await run_exec(sandbox, ["ps", "-e", "-o", "pid="])
        assert code == 0 and str(os.getpid()) in out.split()  # the host's processes
        os.kill(sandbox.init_pid, signal.SIGTERM)
        with anyio.fail_after(5):
            status = await app.wait()
        assert (status.exit_code, status.signal) == (3, None)
        await anyio.sleep(0.2)
        assert bystander.returncode is None, "the host process was signalled"
    finally:
        bystander.kill()
        await bystander.wait()
        await bystander.aclose()
