"""The kubelet on the real runtime: sandboxed pods from the image store (root only)."""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from miniorch.api.kinds import PODS
from miniorch.api.registry import Registry
from miniorch.core import podfiles
from miniorch.core.settings import NetworkSettings, Settings
from tests.leakcheck import LeakChecker
from tests.node.nodehelpers import (
    FAST,
    container_status,
    events_of,
    make_pod,
    pod_of,
    running_kubelet,
    wait_for,
)

pytestmark = pytest.mark.root

try:
    from miniorch.images.store import ImageStore
    from miniorch.node.runtime import SandboxRuntime
    from miniorch.sandbox.network import HostNetwork
    IMPORT_ERROR = ""
except ImportError as exc:  # the sandbox or image layer is not there yet
    IMPORT_ERROR = str(exc)

SERVER = ("import http.server, socket\n"
          "class H(http.server.BaseHTTPRequestHandler):\n"
          "    def do_GET(self):\n"
          "        body = ('You have hit ' + socket.gethostname() + '\\n').encode()\n"
          "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
          "print('listening', flush=True)\n"
          "http.server.HTTPServer(('0.0.0.0', 8080), H).serve_forever()\n")


@pytest.fixture
async def cluster_net(tmp_path: Path) -> AsyncIterator[tuple[Settings, SandboxRuntime]]:
    if IMPORT_ERROR:
        pytest.skip(f"sandbox runtime not importable yet: {IMPORT_ERROR}")
    if os.geteuid() != 0:
        pytest.skip("real sandboxes need root")
    tag = secrets.token_hex(3)
    # 10.150-199: away from the default pod/service ranges and the sandbox tests' 200-239.
    subnet = secrets.choice(range(150, 200))
    network = NetworkSettings(pod_cidr=f"10.{subnet}.0.0/16", bridge_name=f"mon{tag}")
    settings = Settings(home=tmp_path, node_heartbeat_seconds=0.5, network=network)
    host = HostNetwork(bridge=network.bridge_name, gateway_cidr=f"10.{subnet}.0.1/16")
    runtime = SandboxRuntime(images=ImageStore(settings.images_dir), id_prefix=f"zn{tag}")
    checker = LeakChecker(prefixes=[f"zn{tag}", network.bridge_name], mount_roots=[tmp_path])
    checker.start()
    await host.setup()
    try:
        yield settings, runtime
    finally:
        await host.teardown()
    checker.check()


async def http_get(ip: str, port: int) -> bytes:
    with anyio.fail_after(3):
        stream = await anyio.connect_tcp(ip, port)
        async with stream:
            await stream.send(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
            data = b""
            with pytest.raises(anyio.EndOfStream):
                while True:
                    data += await stream.receive()
    return data


async def test_sandboxed_pod_is_reachable_and_restarts_after_kill_9(
        registry: Registry, cluster_net: tuple[Settings, SandboxRuntime]) -> None:
    settings, runtime = cluster_net
    async with running_kubelet(registry, settings, runtime, config=FAST, index=3) as node:
        pod = make_pod(registry, node.name, image="python", ports=[8080],
                       command=["python3", "-c", SERVER])
        await wait_for(lambda: container_status(registry, pod).get("ready"), within=60,
                       what="ready (the first start unpacks the python image)")
        current = pod_of(registry, pod)
        assert current is not None
        ip = current["status"]["podIP"]
        assert ip == f"10.{settings.network.pod_cidr.split('.')[1]}.3.2"
        reply = await http_get(ip, 8080)
        assert reply.startswith(b"HTTP/1.0 200") and reply.endswith(
            f"You have hit {pod['metadata']['name']}\n".encode())
        reasons = [r for _t, r, _m in events_of(registry, pod)]
        assert "Started" in reasons and "Pulled" in reasons
        assert current["status"]["containerStatuses"][0]["imageID"].startswith("sha256:")
        directory = podfiles.pod_dir(settings.pods_dir, "default", pod["metadata"]["name"],
                                     pod["metadata"]["uid"])
        sandbox = podfiles.read_sandbox(directory)
        assert sandbox is not None and sandbox["netns"].startswith("zn")
        os.kill(sandbox["containers"]["kubia"]["pid"], signal.SIGKILL)
        began = anyio.current_time()
        await wait_for(lambda: container_status(registry, pod).get("restartCount") == 1,
                       within=2, what="restartCount 1")
        restarted_in = anyio.current_time() - began
        assert restarted_in < 1, restarted_in
        assert container_status(registry, pod)["lastState"]["terminated"]["signal"] == 9
        await wait_for(lambda: container_status(registry, pod).get("ready"), within=10,
                       what="ready again")
        assert (await http_get(ip, 8080)).startswith(b"HTTP/1.0 200")
        # Graceful deletion tears the sandbox down and removes the pod.
        registry.delete(PODS, "default", pod["metadata"]["name"], grace_period_seconds=1)
        await wait_for(lambda: pod_of(registry, pod) is None, within=10, what="pod removed")
        assert not directory.exists()


async def test_memory_limit_gives_oomkilled(
        registry: Registry, cluster_net: tuple[Settings, SandboxRuntime]) -> None:
    settings, runtime = cluster_net
    async with running_kubelet(registry, settings, runtime, config=FAST, index=4) as node:
        pod = make_pod(registry, node.name, image="python", restart_policy="Never",
                       command=["python3", "-c", "b = bytearray(256 * 1024 * 1024)"],
                       resources={"limits": {"memory": "48Mi", "cpu": "500m"}})
        await wait_for(lambda: "terminated" in container_status(registry, pod).get("state", {}),
                       within=60, what="terminated")
        terminated = container_status(registry, pod)["state"]["terminated"]
        assert terminated["reason"] == "OOMKilled", terminated
        assert terminated["exitCode"] == 137
        current = pod_of(registry, pod)
        assert current is not None
        assert current["status"]["phase"] == "Failed"
        assert current["status"]["qosClass"] == "Guaranteed"
        registry.delete(PODS, "default", pod["metadata"]["name"], grace_period_seconds=1)
        await wait_for(lambda: pod_of(registry, pod) is None, within=10, what="pod removed")
