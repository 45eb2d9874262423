"""Helpers for kubelet tests (conftest.py re-exports the fixtures): an in-memory
registry, a kubelet running on a ProcessRuntime (plain local processes, pods on 127.x
loopback aliases), pod factories.

Names are random per test (node name, node index → the pod /24 and its 127.244.N.x
aliases), so tests can run next to other engineers' tests and a real cluster.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from miniorch.api import tls
from miniorch.api.kinds import CONFIGMAPS, EVENTS, PODS
from miniorch.api.registry import Registry
from miniorch.api.store import Store
from miniorch.core.clock import SystemClock
from miniorch.core.objects import NodeName, Obj
from miniorch.core.settings import NetworkSettings, Settings
from miniorch.node import ImageInfo, Kubelet, KubeletConfig
from miniorch.node.cri import ContainerRuntime
from miniorch.node.processes import ProcessRuntime

APP = str(Path(__file__).with_name("app.py"))
PY = sys.executable

# Short back-offs and heartbeats: the state machine is the same, the test is quick.
FAST = KubeletConfig(crash_backoff_base=0.4, crash_backoff_cap=1.6, image_backoff_base=0.5,
                     image_backoff_cap=2.0, sandbox_backoff_base=0.2, shutdown_grace_cap=3.0)


def images() -> dict[str, ImageInfo]:
    return {
        "kubia": ImageInfo(ref="kubia", id="sha256:" + "a" * 64, entrypoint=(PY, APP),
                           env={"APP": "kubia"}),
        "python": ImageInfo(ref="python", id="sha256:" + "b" * 64, entrypoint=(PY,),
                            cmd=("-c", "pass")),
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, node_heartbeat_seconds=0.2,
                    network=NetworkSettings(bridge_name=f"mot{secrets.token_hex(3)}"))


@pytest.fixture
def registry() -> Registry:
    registry = Registry(Store(None))
    registry.ensure_system_objects()
    return registry


@pytest.fixture
def runtime() -> ProcessRuntime:
    return ProcessRuntime(images())


@dataclass
class Node:
    kubelet: Kubelet
    name: str
    index: int


@asynccontextmanager
async def running_kubelet(registry: Registry, settings: Settings, runtime: ContainerRuntime,
                          *, config: KubeletConfig = FAST, index: int | None = None,
                          name: str | None = None) -> AsyncIterator[Node]:
    index = index if index is not None else secrets.choice(range(10, 250))
    name = name or f"node-{secrets.token_hex(3)}"
    kubelet = Kubelet(name=NodeName(name), index=index, registry=registry, settings=settings,
                      clock=SystemClock(), runtime=runtime, config=config)
    publish_root_ca(registry, settings)
    async with anyio.create_task_group() as tg:
        await tg.start(kubelet.run)
        try:
            yield Node(kubelet, name, index)
        finally:
            tg.cancel_scope.cancel()
    if isinstance(runtime, ProcessRuntime):
        assert runtime.live_processes() == [], "pods left running after kubelet stop"


def publish_root_ca(registry: Registry, settings: Settings, namespace: str = "default") -> None:
    """What the service-account controller does (no controllers run here): the cluster
    CA as `kube-root-ca.crt`, which every pod's projected API-access volume reads."""
    if registry.try_get(CONFIGMAPS, namespace, "kube-root-ca.crt") is None:
        material = tls.ensure_tls(settings.tls_dir)
        registry.create(CONFIGMAPS, {"metadata": {"name": "kube-root-ca.crt",
                                                  "namespace": namespace},
                                     "data": {"ca.crt": material.ca_pem.decode()}})


def make_pod(registry: Registry, node: str, *, name: str | None = None,
             image: str = "kubia", restart_policy: str | None = None,
             ports: list[int] | None = None, **container: Any) -> Obj:
    spec_container: Obj = {"name": "kubia", "image": image, **container}
    if ports:
        spec_container["ports"] = [{"containerPort": p, "protocol": "TCP"} for p in ports]
    spec: Obj = {"nodeName": node, "containers": [spec_container],
                 "terminationGracePeriodSeconds": 5}
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    return registry.create(PODS, {
        "metadata": {"name": name or f"kubia-{secrets.token_hex(3)}", "namespace": "default",
                     "labels": {"app": "kubia"}},
        "spec": spec})


async def wait_for(predicate: Callable[[], Any], *, within: float = 5.0,
                   what: str = "condition") -> Any:
    with anyio.move_on_after(within):
        while True:
            value = predicate()
            if value:
                return value
            await anyio.sleep(0.01)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


def pod_of(registry: Registry, pod: Obj) -> Obj | None:
    return registry.try_get(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])


def container_status(registry: Registry, pod: Obj) -> Obj:
    current = pod_of(registry, pod) or {}
    statuses = (current.get("status") or {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


def condition(obj: Obj, ctype: str) -> Obj:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return dict(cond)
    return {}


def events_of(registry: Registry, obj: Obj) -> list[tuple[str, str, str]]:
    items, _ = registry.list(EVENTS, field_selector=f"involvedObject.uid={obj['metadata']['uid']}")
    return [(e["type"], e["reason"], e["message"]) for e in items]
