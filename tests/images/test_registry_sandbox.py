"""D15 end to end: kubia built on one machine, pushed to a real registry, pulled by a node
of another (an empty store whose only puller is the registry) and run in a real sandbox;
the pod answers `You've hit <pod name>` (root only)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from miniorch.api.kinds import PODS
from miniorch.api.registry import Registry
from miniorch.core.settings import NetworkSettings, Settings
from miniorch.images import ImageStore, build
from miniorch.images import registry as oci_registry
from miniorch.images.regconfig import RegistryPuller, load_config
from miniorch.node.runtime import SandboxRuntime
from miniorch.sandbox.network import HostNetwork
from tests.images.regserver import RunningRegistry, needs_registry, run_registry
from tests.leakcheck import LeakChecker
from tests.node.nodehelpers import (
    FAST,
    container_status,
    events_of,
    make_pod,
    pod_of,
    registry,
    running_kubelet,
    wait_for,
)

OFFLINE = {"MINIORCH_OFFLINE": "1"}
"""Only loopback registries (never Docker Hub): the suite must not reach the internet."""

__all__ = ["registry"]

pytestmark = [needs_registry, pytest.mark.root]

SAMPLE_APP = Path(__file__).resolve().parents[2] / "sample_app"


@pytest.fixture
def reg(workdir: Path) -> Iterator[RunningRegistry]:
    with run_registry(workdir / "registry") as r:
        yield r


@pytest.fixture
async def machine_b(workdir: Path, reg: RunningRegistry
                    ) -> AsyncIterator[tuple[Settings, SandboxRuntime]]:
    if os.geteuid() != 0:
        pytest.skip("real sandboxes need root")
    tag = secrets.token_hex(3)
    subnet = secrets.choice(range(100, 150))
    home = workdir / "machine-b"
    home.mkdir()
    (home / "registries.json").write_text(json.dumps({"insecure": [reg.host]}))
    network = NetworkSettings(pod_cidr=f"10.{subnet}.0.0/16", bridge_name=f"mor{tag}")
    settings = Settings(home=home, node_heartbeat_seconds=0.5, network=network)
    # No built-in base images on this machine: every layer must come from the registry.
    store = ImageStore(settings.images_dir,
                       pullers=[RegistryPuller(load_config(home, env=OFFLINE))])
    runtime = SandboxRuntime(images=store, id_prefix=f"zr{tag}")
    host = HostNetwork(bridge=network.bridge_name, gateway_cidr=f"10.{subnet}.0.1/16")
    checker = LeakChecker(prefixes=[f"zr{tag}", network.bridge_name], mount_roots=[home])
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
            try:
                while True:
                    data += await stream.receive()
            except anyio.EndOfStream:
                pass
    return data


async def test_kubia_pushed_then_pulled_and_run_as_a_pod_elsewhere(
        registry: Registry, store: ImageStore, workdir: Path, reg: RunningRegistry,
        machine_b: tuple[Settings, SandboxRuntime]) -> None:
    ctx = workdir / "kubia"
    shutil.copytree(SAMPLE_APP, ctx)
    ref = f"{reg.host}/luksa/kubia:v1"

    def build_and_push() -> str:
        img = build(store, ctx, tag=ref)
        oci_registry.push(store, ref, insecure=True)
        return img.id

    image_id = await anyio.to_thread.run_sync(build_and_push)
    settings, runtime = machine_b
    async with running_kubelet(registry, settings, runtime, config=FAST, index=5) as node:
        pod = make_pod(registry, node.name, image=ref, ports=[8080])
        await wait_for(lambda: "running" in container_status(registry, pod).get("state", {}),
                       within=60, what="running (pull + unpack of the python layers)")
        current = pod_of(registry, pod)
        assert current is not None
        assert container_status(registry, pod)["imageID"] == image_id
        ip = current["status"]["podIP"]
        reply = b""
        with anyio.move_on_after(15):
            while not reply.startswith(b"HTTP/1.0 200"):
                try:
                    reply = await http_get(ip, 8080)
                except OSError:
                    await anyio.sleep(0.1)
        assert reply.endswith(f"You've hit {pod['metadata']['name']}\n".encode()), reply
        events = events_of(registry, pod)
        assert ("Normal", "Pulling", f'Pulling image "{ref}"') in events
        assert any(r == "Pulled" and m.startswith(f'Successfully pulled image "{ref}"')
                   for _t, r, m in events)
        registry.delete(PODS, "default", pod["metadata"]["name"], grace_period_seconds=1)
        await wait_for(lambda: pod_of(registry, pod) is None, within=10, what="pod removed")
