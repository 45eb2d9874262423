"""A real in-memory API (Store(None) + Registry) and small real fakes around it.

`cluster.kubelet` is a fake node agent over the real store: it marks pods bound to
its nodes Running (and Ready, unless told otherwise) with an IP, and finishes the
graceful deletion of pods that are terminating — what the node actors do, minus the
processes. Tests wait on watches (`cluster.wait_until`), never on sleeps.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import anyio
import pytest
from anyio.abc import TaskStatus

from miniorch.api.errors import NotFound
from miniorch.api.kinds import NODES, PODS, REPLICATION_CONTROLLERS, Resource
from miniorch.api.registry import Registry
from miniorch.api.store import Store, Watch
from miniorch.core.clock import rfc3339
from miniorch.core.objects import Obj

T = TypeVar("T")


class FakeClock:
    """A Clock whose time moves only when the test says so."""

    def __init__(self) -> None:
        self._now = datetime(2026, 1, 1, tzinfo=UTC)
        self._mono = 1000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


class Cluster:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.store = Store(None, clock=self.clock)
        self.registry = Registry(self.store, clock=self.clock)
        self.registry.ensure_system_objects()
        self._ips = itertools.count(2)

    # ---- objects -----------------------------------------------------------------

    def add_node(self, name: str, *, cpu: str = "2", memory: str = "4Gi", pods: int = 110,
                 ready: bool = True, labels: dict[str, str] | None = None,
                 taints: list[Obj] | None = None) -> Obj:
        now = rfc3339(self.clock.now())
        node: Obj = {
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                   **(labels or {})}},
            "spec": {"taints": taints} if taints else {},
            "status": {
                "capacity": {"cpu": cpu, "memory": memory, "pods": str(pods)},
                "allocatable": {"cpu": cpu, "memory": memory, "pods": str(pods)},
                "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                "reason": "KubeletReady", "lastHeartbeatTime": now,
                                "lastTransitionTime": now}],
            },
        }
        return self.registry.create(NODES, node)

    def add_rc(self, name: str, replicas: int, *, labels: dict[str, str] | None = None,
               namespace: str = "default", requests: dict[str, str] | None = None,
               ports: list[Obj] | None = None) -> Obj:
        labels = labels or {"app": name}
        container: Obj = {"name": name, "image": "kubia",
                          "ports": ports or [{"containerPort": 8080, "protocol": "TCP"}]}
        if requests:
            container["resources"] = {"requests": requests}
        return self.registry.create(REPLICATION_CONTROLLERS, {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": labels,
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [container]}}}})

    def pods(self, namespace: str = "default", **kw: Any) -> list[Obj]:
        return self.registry.list(PODS, namespace, **kw)[0]

    def active_pods(self, namespace: str = "default") -> list[Obj]:
        return [p for p in self.pods(namespace) if not p["metadata"].get("deletionTimestamp")]

    # ---- waiting -----------------------------------------------------------------

    async def wait_until(self, check: Callable[[], T], *resources: Resource,
                         within: float = 5.0) -> T:
        """Re-evaluate `check` after every change to `resources` until it is truthy."""
        resources = resources or (PODS,)
        changed = anyio.Event()
        with anyio.fail_after(within):
            # Open the watches before the first check, so no change can slip between.
            watches = [self.registry.watch(r, since=self.store.resource_version)
                       for r in resources]
            async with anyio.create_task_group() as tg:
                async def follow(watch: Watch) -> None:
                    async with watch:
                        async for _ in watch:
                            changed.set()
                for watch in watches:
                    tg.start_soon(follow, watch)
                while True:
                    result = check()
                    if result:
                        tg.cancel_scope.cancel()
                        return result
                    await changed.wait()
                    changed = anyio.Event()
        raise AssertionError("unreachable")

    # ---- fake kubelet ------------------------------------------------------------

    async def kubelet(self, *, ready: bool = True,
                      task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run bound pods (status only) and finish their graceful deletion."""
        async with self.registry.watch(PODS) as watch:
            task_status.started()
            async for event in watch:
                pod = event.object
                meta, spec = pod["metadata"], pod.get("spec", {})
                if event.type == "DELETED" or not spec.get("nodeName"):
                    continue
                try:
                    if meta.get("deletionTimestamp"):
                        self.registry.delete(PODS, meta["namespace"], meta["name"],
                                             grace_period_seconds=0)
                    elif pod.get("status", {}).get("phase") not in ("Running", "Succeeded",
                                                                    "Failed"):
                        # (a finished pod stays finished: tests end Job pods themselves)
                        self.registry.update_status(PODS, meta["namespace"], meta["name"],
                                                    self.running_status(pod, ready=ready))
                except NotFound:
                    pass

    def running_status(self, pod: Obj, *, ready: bool) -> Obj:
        now = rfc3339(self.clock.now())
        status: Obj = dict(pod.get("status") or {})
        n = next(self._ips)
        status.update({
            "phase": "Running", "podIP": f"10.244.{n // 250}.{n % 250 + 2}",
            "hostIP": "127.0.0.1", "startTime": now,
            "conditions": [{"type": "PodScheduled", "status": "True"},
                           {"type": "Ready", "status": "True" if ready else "False",
                            "lastTransitionTime": now}],
        })
        return status

    def set_ready(self, pod: Obj, ready: bool) -> Obj:
        def flip(obj: Obj) -> None:
            for cond in obj.setdefault("status", {}).setdefault("conditions", []):
                if cond.get("type") == "Ready":
                    cond["status"] = "True" if ready else "False"
        return self.registry.mutate(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"],
                                    flip, subresource="status")


@asynccontextmanager
async def running(*actors: Callable[..., Any]) -> AsyncIterator[anyio.abc.TaskGroup]:
    """Start actors (each `run(task_status=...)`) and cancel them all on exit."""
    async with anyio.create_task_group() as tg:
        for actor in actors:
            await tg.start(actor)
        try:
            yield tg
        finally:
            tg.cancel_scope.cancel()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        c.store.close()


@pytest.fixture
def run_actors() -> Callable[..., Any]:
    return running
