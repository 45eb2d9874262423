"""Burst benchmark: N pods created at once on K kubelets; time from create to Running
and to Ready, per pod (p50/p90/max) and for the whole burst.

    .venv/bin/python -m tests.node.bench_burst --pods 100 --nodes 3 [--real]

Without --real: ProcessRuntime running `sleep` (kubelet overhead, no sandbox work).
With --real (root): SandboxRuntime, busybox `sleep` in real sandboxes on a private
bridge. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from miniorch.api.kinds import PODS
from miniorch.api.registry import Registry
from miniorch.api.store import Store
from miniorch.core.clock import SystemClock
from miniorch.core.objects import NodeName
from miniorch.core.settings import NetworkSettings, Settings
from miniorch.node import ImageInfo, Kubelet, KubeletConfig
from miniorch.node.processes import ProcessRuntime


class TimingRegistry(Registry):
    """Notes when each pod's status first says Running / Ready, at the write itself
    (a watcher's clock would include its own queueing behind the burst)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.running: dict[str, float] = {}
        self.ready: dict[str, float] = {}

    def mutate(self, resource: Any, namespace: str, name: str, change: Any, *,
               subresource: str = "") -> dict[str, Any]:
        obj = super().mutate(resource, namespace, name, change, subresource=subresource)
        if resource is PODS:
            status = obj.get("status") or {}
            now = time.perf_counter()
            if status.get("phase") == "Running":
                self.running.setdefault(name, now)
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in status.get("conditions") or []):
                self.ready.setdefault(name, now)
        return obj


CONFIG: dict[str, Any] = {}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


async def main(pods: int, nodes: int, real: bool) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="mo-bench-"))
    tag = secrets.token_hex(3)
    subnet = secrets.choice(range(150, 200))
    network = NetworkSettings(pod_cidr=f"10.{subnet}.0.0/16", bridge_name=f"mob{tag}")
    settings = Settings(home=home, network=network)
    registry = TimingRegistry(Store(None))
    registry.ensure_system_objects()
    host = None
    runtime: Any
    image = "sleeper"
    if real:
        from miniorch.images.store import ImageStore
        from miniorch.node.runtime import SandboxRuntime
        from miniorch.sandbox.network import HostNetwork
        host = HostNetwork(bridge=network.bridge_name, gateway_cidr=f"10.{subnet}.0.1/16")
        await host.setup()
        runtime = SandboxRuntime(images=ImageStore(settings.images_dir), id_prefix=f"zb{tag}")
        image = "busybox"
        await runtime.pull_image("busybox")
        # Unpack the layers now: a one-time cost per image, not per pod.
        store = runtime.images
        busybox = store.resolve("busybox")
        assert busybox is not None
        store.unpacked_layers(busybox)
    else:
        runtime = ProcessRuntime({"sleeper": ImageInfo(ref="sleeper", id="sha256:" + "c" * 64,
                                                       entrypoint=("sleep", "3600"))})
    created: dict[str, float] = {}
    running = registry.running
    ready = registry.ready
    try:
        async with anyio.create_task_group() as tg:
            for i in range(nodes):
                kubelet = Kubelet(name=NodeName(f"bench-{i + 1}"), index=i + 1,
                                  registry=registry, settings=settings, clock=SystemClock(),
                                  runtime=runtime, config=KubeletConfig(**CONFIG))
                await tg.start(kubelet.run)
            began = time.perf_counter()
            for i in range(pods):
                pod = registry.create(PODS, {
                    "metadata": {"name": f"burst-{i}", "namespace": "default"},
                    "spec": {"nodeName": f"bench-{i % nodes + 1}",
                             "terminationGracePeriodSeconds": 1,
                             "containers": [{"name": "c", "image": image,
                                             **({"command": ["sleep", "3600"]} if real
                                                else {})}]}})
                created[pod["metadata"]["name"]] = time.perf_counter()
            with anyio.fail_after(120):
                while len(ready) < pods:  # noqa: ASYNC110 - polling a plain dict is the point
                    await anyio.sleep(0.01)
            burst = time.perf_counter() - began
            stop_began = time.perf_counter()
            tg.cancel_scope.cancel()
        stopped = time.perf_counter() - stop_began
    finally:
        if host is not None:
            await host.teardown()
    to_running = [running[n] - created[n] for n in created]
    to_ready = [ready[n] - created[n] for n in created]
    return {"pods": pods, "nodes": nodes, "runtime": "sandbox" if real else "processes",
            "running_ms": {"p50": pct(to_running, 0.5), "p90": pct(to_running, 0.9),
                           "max": pct(to_running, 1.0),
                           "mean": round(statistics.mean(to_running) * 1000, 1)},
            "ready_ms": {"p50": pct(to_ready, 0.5), "p90": pct(to_ready, 0.9),
                         "max": pct(to_ready, 1.0)},
            "burst_all_ready_s": round(burst, 2), "stop_all_s": round(stopped, 2)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--real", action="store_true")
    args = parser.parse_args()
    import logging

    import structlog
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    result = anyio.run(main, args.pods, args.nodes, args.real)
    json.dump(result, sys.stdout)
    print()
