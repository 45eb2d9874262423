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


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


async def main(pods: int, nodes: int, real: bool) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="mo-bench-"))
    tag = secrets.token_hex(3)
    subnet = secrets.choice(range(150, 200))
    network = NetworkSettings(pod_cidr=f"10.{subnet}.0.0/16", bridge_name=f"mob{tag}")
    settings = Settings(home=home, network=network)
    registry = Registry(Store(None))
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
    else:
        runtime = ProcessRuntime({"sleeper": ImageInfo(ref="sleeper", id="sha256:" + "c" * 64,
                                                       entrypoint=("sleep", "3600"))})
    created: dict[str, float] = {}
    running: dict[str, float] = {}
    ready: dict[str, float] = {}
    try:
        async with anyio.create_task_group() as tg:
            for i in range(nodes):
                kubelet = Kubelet(name=NodeName(f"bench-{i + 1}"), index=i + 1,
                                  registry=registry, settings=settings, clock=SystemClock(),
                                  runtime=runtime, config=KubeletConfig())
                await tg.start(kubelet.run)
            watch = registry.watch(PODS, since=registry.store.resource_version)
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
            async with watch:
                async for event in watch:
                    name = event.object["metadata"]["name"]
                    status = event.object.get("status") or {}
                    now = time.perf_counter()
                    if status.get("phase") == "Running":
                        running.setdefault(name, now)
                    if any(c.get("type") == "Ready" and c.get("status") == "True"
                           for c in status.get("conditions") or []):
                        ready.setdefault(name, now)
                    if len(ready) == pods:
                        break
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
