"""A kubelet's resource readings (its /metrics/resource): what metrics.k8s.io serves.

    ResourceMetrics (api/metrics_api.py) ──every resolution──► Kubelet.scrape()
        on the loop: each pod worker's running containers (namespace, pod, uid, name)
        in a worker thread:
          node      ◄── psutil: CPU time not idle (all CPUs, ns), RAM total - available
          container ◄── its cgroup leaf (sandbox/cgroups.py: cpu counter, working set)
                    ◄── else (no cgroups: rootless, plain processes) psutil over its
                        process tree: CPU time of the live processes, their RSS
                                 │
                                 ▼ NodeScrape (one timestamp for the whole node)

Every node of a miniorch cluster is the same machine, so each reports the machine's own
figures, as each node's capacity is the machine's (nodeinfo.py).

`PodStartTimer` times a pod's start on this node (sandbox → running → ready) for the
control plane's /metrics.

Invariants: reading never blocks the event loop (sysfs and /proc reads run in a thread
over a snapshot taken on the loop); a container that exits between the snapshot and the
read is left out of that scrape, never reported as zero.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

import anyio.to_thread
import psutil

from miniorch.api.metrics_api import ContainerSample, NodeScrape, PodSample
from miniorch.core.metrics import ControlPlaneMetrics
from miniorch.core.objects import Obj
from miniorch.sandbox.cgroups import CgroupHandle

_BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")
"""Non-idle CPU time (guest time is already counted in user)."""


@runtime_checkable
class Metered(Protocol):
    """A runtime container with its own cgroup leaf (SandboxRuntime's)."""

    @property
    def cgroup(self) -> CgroupHandle: ...


class Running(Protocol):
    @property
    def pid(self) -> int: ...


PodTargets = tuple[str, str, str, tuple[tuple[str, Running], ...]]
"""(namespace, pod, uid, ((container, runtime container), ...))."""


def node_reading() -> tuple[int, int]:
    """(CPU ns used by the machine since boot, working-set bytes)."""
    times = psutil.cpu_times()
    busy = sum(getattr(times, f, 0.0) for f in _BUSY_FIELDS)
    memory = psutil.virtual_memory()
    return int(busy * 1e9), int(memory.total - memory.available)


def container_reading(container: Running) -> tuple[int, int] | None:
    """(CPU ns, working-set bytes) of one container; None if it is gone."""
    if isinstance(container, Metered):
        cpu, memory = container.cgroup.cpu_usage_ns(), container.cgroup.memory_working_set()
        if cpu is not None and memory is not None:
            return cpu, memory
        return None
    try:
        root = psutil.Process(container.pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    cpu_seconds = 0.0
    rss = 0
    for process in processes:
        with contextlib.suppress(psutil.Error), process.oneshot():
            times = process.cpu_times()
            cpu_seconds += times.user + times.system
            rss += process.memory_info().rss
    return int(cpu_seconds * 1e9), rss


def read_node(node: str, at: float, targets: Iterable[PodTargets],
              read_container: Callable[[Running], tuple[int, int] | None] = container_reading,
              read_node_figures: Callable[[], tuple[int, int]] = node_reading) -> NodeScrape:
    """The synchronous half of a scrape (runs in a worker thread)."""
    cpu, memory = read_node_figures()
    pods = []
    for namespace, name, uid, containers in targets:
        samples = []
        for container_name, container in containers:
            reading = read_container(container)
            if reading is not None:
                samples.append(ContainerSample(container_name, *reading))
        if samples:
            pods.append(PodSample(namespace, name, uid, tuple(samples)))
    return NodeScrape(node=node, at=at, cpu_ns=cpu, memory_bytes=memory, pods=tuple(pods))


async def scrape_node(node: str, at: float, targets: list[PodTargets]) -> NodeScrape:
    return await anyio.to_thread.run_sync(read_node, node, at, targets)


class PodStartTimer:
    """One pod's start, step by step, into miniorch_pod_start_phase_duration_seconds
    (and the kubelet's kubelet_pod_start_duration_seconds: seen → running).

    The kubelet's first sight of a pod is when the scheduler bound it (the scheduler
    times `scheduled` itself); each later step is timed from the one before, once per
    pod worker: a container restart is not a pod start.
    """

    def __init__(self, metrics: ControlPlaneMetrics) -> None:
        self._metrics = metrics
        self._seen = self._last = time.perf_counter()
        self._done: set[str] = set()

    def mark(self, phase: str) -> None:
        if phase in self._done:
            return
        self._done.add(phase)
        now = time.perf_counter()
        self._metrics.pod_phase.labels(phase).observe(now - self._last)
        self._last = now
        if phase == "running":
            self._metrics.pod_start.observe(now - self._seen)

    def follow(self, status: Obj) -> None:
        """Mark `running` and `ready` from the status the worker is about to write."""
        if "ready" in self._done:
            return
        containers = status.get("containerStatuses") or []
        if "running" not in self._done and containers and all(
                "running" in (c.get("state") or {}) for c in containers):
            self.mark("running")
        if "running" in self._done and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or []):
            self.mark("ready")
