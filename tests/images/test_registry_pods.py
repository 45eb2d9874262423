"""Pods pull their images from a real registry through the kubelet (K8 of the walkthrough).

The node's runtime is the ProcessRuntime (containers are host processes, so the test
needs no namespaces) with the production image half of SandboxRuntime: a real store
whose pullers are the configured registries. Events and waiting reasons are what
`describe pod` shows.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio.to_thread
import pytest

from miniorch.api.registry import Registry
from miniorch.core.settings import Settings
from miniorch.images import ImageStore, build
from miniorch.images import registry as oci_registry
from miniorch.images.regconfig import open_store
from miniorch.node.cri import ImageInfo, PullAuth
from miniorch.node.processes import ProcessRuntime
from miniorch.node.runtime import SandboxRuntime
from tests.images.regserver import RunningRegistry, needs_registry, run_registry
from tests.images.test_registry_stub import Stub, stub
from tests.node.nodehelpers import (
    container_status,
    events_of,
    make_pod,
    registry,
    running_kubelet,
    settings,
    wait_for,
)

OFFLINE = {"MINIORCH_OFFLINE": "1"}
"""Only loopback registries (never Docker Hub): the suite must not reach the internet."""

__all__ = ["registry", "settings", "stub"]  # fixtures, re-exported for pytest

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


class RegistryBackedProcesses(ProcessRuntime):
    """Containers as host processes; images as in production (store + registries)."""

    def __init__(self, store: ImageStore) -> None:
        super().__init__()
        self.store_images = SandboxRuntime(images=store, id_prefix=f"mor{secrets.token_hex(2)}-")

    def can_pull(self, ref: str) -> bool:
        return self.store_images.can_pull(ref)

    async def resolve_image(self, ref: str) -> ImageInfo | None:
        return await self.store_images.resolve_image(ref)

    async def pull_image(self, ref: str, auth: PullAuth | None = None) -> ImageInfo:
        return await self.store_images.pull_image(ref, auth)


@pytest.fixture
def reg(workdir: Path) -> Iterator[RunningRegistry]:
    with run_registry(workdir / "registry") as r:
        yield r


def pushed_image(store: ImageStore, workdir: Path, ref: str) -> str:
    d = workdir / "ctx"
    d.mkdir()
    (d / "app.txt").write_text("kubia\n")
    (d / "Dockerfile").write_text('FROM busybox\nCOPY app.txt /app.txt\n')
    img = build(store, d, tag=ref)
    oci_registry.push(store, ref, insecure=True)
    return img.id


def node_store(workdir: Path, base_cache: Path, host: str) -> ImageStore:
    home = workdir / "node-home"
    home.mkdir()
    (home / "registries.json").write_text(json.dumps({"insecure": [host]}))
    return open_store(home, env=OFFLINE, base_cache=base_cache)


def waiting_reason(registry: Registry, pod: dict[str, object]) -> object:
    return container_status(registry, pod).get("state", {}).get("waiting", {}).get("reason")


@needs_registry
async def test_pod_pulls_from_registry_with_events(
        registry: Registry, settings: Settings, store: ImageStore, workdir: Path,
        base_cache: Path, reg: RunningRegistry) -> None:
    ref = f"{reg.host}/kubia:v1"
    image_id = pushed_image(store, workdir, ref)
    runtime = RegistryBackedProcesses(node_store(workdir, base_cache, reg.host))
    async with running_kubelet(registry, settings, runtime) as node:
        pod = make_pod(registry, node.name, image=ref, command=SLEEP)
        await wait_for(lambda: "running" in container_status(registry, pod).get("state", {}),
                       within=20, what="pod running")
        assert container_status(registry, pod)["imageID"] == image_id
        await wait_for(lambda: any(r == "Pulled" for _t, r, _m in events_of(registry, pod)),
                       what="Pulled event")
        events = events_of(registry, pod)
        assert ("Normal", "Pulling", f'Pulling image "{ref}"') in events
        pulled = [m for _t, r, m in events if r == "Pulled"]
        assert pulled[0].startswith(f'Successfully pulled image "{ref}" in ')
        assert "including waiting). Image size: " in pulled[0]
        assert pulled[0].endswith(" bytes.") and " 0 bytes" not in pulled[0]

        # IfNotPresent (a `:v1` tag): the next pod finds it on the machine.
        second = make_pod(registry, node.name, image=ref, command=SLEEP)
        await wait_for(lambda: ("Normal", "Pulled",
                                f'Container image "{ref}" already present on machine')
                       in events_of(registry, second), within=10, what="already present")

        # Always re-pulls from the registry (layers already here are not fetched again).
        third = make_pod(registry, node.name, image=ref, command=SLEEP,
                         imagePullPolicy="Always")
        await wait_for(lambda: any(r == "Pulled" and m.startswith("Successfully")
                                   for _t, r, m in events_of(registry, third)),
                       within=10, what="re-pulled")


@needs_registry
async def test_missing_image_err_image_pull_then_back_off(
        registry: Registry, settings: Settings, workdir: Path, base_cache: Path,
        reg: RunningRegistry) -> None:
    runtime = RegistryBackedProcesses(node_store(workdir, base_cache, reg.host))
    ref = f"{reg.host}/nope:v1"
    async with running_kubelet(registry, settings, runtime) as node:
        pod = make_pod(registry, node.name, image=ref, command=SLEEP)
        await wait_for(lambda: waiting_reason(registry, pod) == "ErrImagePull",
                       within=10, what="ErrImagePull")
        message = container_status(registry, pod)["state"]["waiting"]["message"]
        assert message.startswith(f'Failed to pull image "{ref}": ')
        assert "manifest unknown" in message
        await wait_for(lambda: waiting_reason(registry, pod) == "ImagePullBackOff",
                       within=10, what="ImagePullBackOff")
        assert ("Warning", "Failed", message) in events_of(registry, pod)
        await wait_for(lambda: ("Normal", "BackOff", f'Back-off pulling image "{ref}"')
                       in events_of(registry, pod), what="BackOff event")

        # Never: no pull at all, a reason of its own.
        never = make_pod(registry, node.name, image=ref, command=SLEEP,
                         imagePullPolicy="Never")
        await wait_for(lambda: waiting_reason(registry, never) == "ErrImageNeverPull",
                       within=10, what="ErrImageNeverPull")
        assert not any(r == "Pulling" for _t, r, _m in events_of(registry, never))

        # Unqualified names with no default registry: Docker's message, unchanged.
        hub = make_pod(registry, node.name, image="luksa/kubia:v9", command=SLEEP)
        await wait_for(lambda: waiting_reason(registry, hub) in ("ErrImagePull",
                                                                 "ImagePullBackOff"),
                       within=10, what="no registry")
        assert "no registry configured" in container_status(registry, hub)["state"][
            "waiting"]["message"]


async def test_a_slow_pull_does_not_hold_up_other_pods(
        registry: Registry, settings: Settings, store: ImageStore, workdir: Path,
        base_cache: Path, stub: tuple[Stub, str]) -> None:
    # The stub registry runs on this very event loop: if a pull blocked the loop, the
    # registry could not answer and nothing would move.
    fake, host = stub
    ref = f"{host}/slow:v1"
    await anyio.to_thread.run_sync(lambda: pushed_image(store, workdir, ref))
    fake.delay = 1.5
    runtime = RegistryBackedProcesses(node_store(workdir, base_cache, host))
    async with running_kubelet(registry, settings, runtime) as node:
        slow = make_pod(registry, node.name, image=ref, command=SLEEP)
        await wait_for(lambda: any(r == "Pulling" for _t, r, _m in events_of(registry, slow)),
                       what="slow pull started")
        quick = make_pod(registry, node.name, image="busybox:latest", command=SLEEP,
                         imagePullPolicy="IfNotPresent")
        await wait_for(lambda: "running" in container_status(registry, quick).get("state", {}),
                       within=10, what="quick pod running")
        assert "running" not in container_status(registry, slow).get("state", {})
        await wait_for(lambda: "running" in container_status(registry, slow).get("state", {}),
                       within=20, what="slow pod running")
