"""Probes: liveness restarts, exec readiness, and pods that vanish without grace."""

from __future__ import annotations

from miniorch.api.kinds import PODS
from miniorch.api.registry import Registry
from miniorch.core.settings import Settings
from miniorch.node.processes import ProcessRuntime
from tests.node.nodehelpers import (
    container_status,
    events_of,
    make_pod,
    pod_of,
    running_kubelet,
    wait_for,
)


async def test_failing_liveness_probe_restarts_the_container(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        # The delay lets the app bind first: a probe that runs before, fails (as in k8s).
        probe = {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1,
                 "failureThreshold": 1, "initialDelaySeconds": 1}
        pod = make_pod(registry, node.name, ports=[8080], livenessProbe=probe,
                       env=[{"name": "READY_STATUS", "value": "503"}])
        await wait_for(lambda: container_status(registry, pod).get("restartCount", 0) >= 1,
                       within=5, what="a liveness restart")
        await wait_for(lambda: ("Normal", "Killing", "Container kubia failed liveness probe, "
                                "will be restarted") in events_of(registry, pod),
                       what="Killing event")
        assert ("Warning", "Unhealthy", "Liveness probe failed: HTTP probe failed with "
                "statuscode: 503") in events_of(registry, pod)
        # The app exits 0 on SIGTERM: a clean exit, still restarted (restartPolicy Always).
        assert container_status(registry, pod)["lastState"]["terminated"]["exitCode"] == 0


async def test_exec_readiness_probe(registry: Registry, settings: Settings,
                                    runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        ready_file = settings.home / "ready-flag"
        probe = {"exec": {"command": ["test", "-e", str(ready_file)]}, "periodSeconds": 1}
        pod = make_pod(registry, node.name, readinessProbe=probe)
        await wait_for(lambda: "running" in container_status(registry, pod).get("state", {}),
                       what="running")
        await wait_for(lambda: ("Warning", "Unhealthy", "Readiness probe failed: command "
                                f"['test', '-e', '{ready_file}'] exited with 1")
                       in events_of(registry, pod), within=4, what="Unhealthy event")
        assert container_status(registry, pod)["ready"] is False
        ready_file.touch()
        await wait_for(lambda: container_status(registry, pod).get("ready"), within=3,
                       what="ready after the file appeared")


async def test_force_deleted_pod_is_torn_down(registry: Registry, settings: Settings,
                                              runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        pod = make_pod(registry, node.name, ports=[8080])
        await wait_for(lambda: container_status(registry, pod).get("ready"), what="ready")
        registry.delete(PODS, "default", pod["metadata"]["name"], grace_period_seconds=0)
        assert pod_of(registry, pod) is None
        await wait_for(lambda: runtime.live_processes() == [] and not node.kubelet.workers,
                       what="processes stopped")
