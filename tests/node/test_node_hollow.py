"""The hollow kubelet: a real Node and Lease, pods moved through their lifecycle by a
clock (no process), delays and failures as its profile says."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from miniorch.api.kinds import LEASES, NODES, PODS
from miniorch.api.registry import Registry
from miniorch.core.clock import SystemClock
from miniorch.core.objects import NodeName, Obj
from miniorch.core.settings import Settings
from miniorch.node.hollow import (
    HOLLOW_LABEL,
    HOLLOW_TAINT,
    Delay,
    HollowKubelet,
    HollowPodWorker,
    HollowProfile,
)
from tests.node.nodehelpers import make_pod, pod_of, wait_for


@asynccontextmanager
async def hollow_node(registry: Registry, settings: Settings, profile: HollowProfile
                      ) -> AsyncIterator[HollowKubelet]:
    kubelet = HollowKubelet(name=NodeName(f"hollow-{secrets.token_hex(3)}"),
                            index=secrets.choice(range(10, 250)), registry=registry,
                            settings=settings, clock=SystemClock(), profile=profile)
    async with anyio.create_task_group() as tg:
        await tg.start(kubelet.run)
        try:
            yield kubelet
        finally:
            tg.cancel_scope.cancel()


def _summary(pod: Obj) -> tuple[Any, ...]:
    """(phase, first container's state key and reason, ready, restarts, has IP)."""
    status = pod.get("status") or {}
    cs = (status.get("containerStatuses") or [{}])[0]
    state = cs.get("state") or {}
    key = next(iter(state), "")
    reason = (state.get(key) or {}).get("reason", "")
    return (status.get("phase"), key, reason, cs.get("ready"), cs.get("restartCount"),
            bool(status.get("podIP")))


async def _follow(registry: Registry, name: str, seen: list[tuple[Any, ...]], since: int
                  ) -> None:
    """Every status the node writes for the pod, in order (one entry per write)."""
    async with registry.watch(PODS, "default", since=since) as w:
        async for event in w:
            if event.object["metadata"]["name"] == name and \
                    (event.object.get("status") or {}).get("containerStatuses"):
                seen.append(_summary(event.object))


async def test_pod_goes_pending_running_ready_then_deleted(
        registry: Registry, settings: Settings) -> None:
    profile = HollowProfile(start=Delay(0.15, 0.15), ready=Delay(0.15, 0.15), pods=250)
    async with hollow_node(registry, settings, profile) as node:
        obj = registry.get(NODES, "", node.name)
        assert obj["metadata"]["labels"][HOLLOW_LABEL] == "true"
        assert obj["status"]["capacity"]["pods"] == "250"
        assert obj["spec"]["taints"] == [HOLLOW_TAINT]
        assert obj["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("hollow://")
        ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
        assert registry.get(LEASES, "kube-node-lease", node.name)["spec"]["holderIdentity"] \
            == node.name
        seen: list[tuple[Any, ...]] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_follow, registry, "web", seen, registry.store.resource_version)
            pod = make_pod(registry, node.name, name="web")
            await wait_for(lambda: seen and seen[-1][3], within=3, what="Ready")
            tg.cancel_scope.cancel()
        assert seen == [("Pending", "waiting", "ContainerCreating", False, 0, True),
                        ("Running", "running", "", False, 0, True),
                        ("Running", "running", "", True, 0, True)]
        current = pod_of(registry, pod) or {}
        ip = current["status"]["podIP"]
        assert ip.startswith(f"10.244.{node.index}.")
        assert node.context.ipam.ip_of(current["metadata"]["uid"]) == ip
        registry.delete(PODS, "default", "web")  # graceful: the node finishes it
        await wait_for(lambda: pod_of(registry, pod) is None, within=3, what="pod deleted")
        await wait_for(lambda: node.context.ipam.ip_of(current["metadata"]["uid"]) is None,
                       within=1, what="IP released")


async def test_zero_delays_write_running_and_ready_at_once(
        registry: Registry, settings: Settings) -> None:
    async with hollow_node(registry, settings, HollowProfile(start=Delay(), ready=Delay())
                           ) as node:
        seen: list[tuple[Any, ...]] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_follow, registry, "quick", seen, registry.store.resource_version)
            make_pod(registry, node.name, name="quick")
            await wait_for(lambda: seen, within=3, what="a status")
            await anyio.sleep(0.1)
            tg.cancel_scope.cancel()
        assert seen == [("Running", "running", "", True, 0, True)]


@pytest.mark.parametrize(("policy", "expected"), [
    pytest.param("Never", ("Failed", "terminated", "Error", False, 0, True), id="never"),
    pytest.param("Always", ("Running", "waiting", "CrashLoopBackOff", False, 2, True),
                 id="always-crashloops"),
])
async def test_failed_starts_follow_the_restart_policy(
        registry: Registry, settings: Settings, policy: str, expected: tuple[Any, ...]
        ) -> None:
    profile = HollowProfile(start=Delay(), ready=Delay(), fail=1.0, backoff=0.05)
    async with hollow_node(registry, settings, profile) as node:
        pod = make_pod(registry, node.name, restart_policy=policy)
        await wait_for(lambda: _summary(pod_of(registry, pod) or {}) == expected, within=3,
                       what=f"{expected}")
        cs = (pod_of(registry, pod) or {})["status"]["containerStatuses"][0]
        if policy == "Always":
            assert cs["lastState"]["terminated"]["exitCode"] == 1


async def test_jobs_complete_and_seeded_failures_repeat(
        registry: Registry, settings: Settings) -> None:
    profile = HollowProfile(start=Delay(), ready=Delay(), complete=Delay(0.05, 0.05))
    async with hollow_node(registry, settings, profile) as node:
        pod = make_pod(registry, node.name, restart_policy="Never")
        await wait_for(lambda: (pod_of(registry, pod) or {}).get("status", {}).get("phase")
                       == "Succeeded", within=3, what="Succeeded")
        # Each pod draws from its own stream: the same seed and pod, the same draws.
        draws = [HollowPodWorker(node.context, pod, HollowProfile(seed=seed)).rng.random()
                 for seed in (7, 7, 8)]
        assert draws[0] == draws[1] != draws[2]


def test_profile_parses_every_key_and_refuses_nonsense() -> None:
    profile = HollowProfile.parse("start=0.5-2, ready=0.1,fail=0.05,seed=3,pods=200,"
                                  "complete=5,stop=0-1,backoff=2,cpu=8,memory=64Gi,taint=0")
    assert profile == HollowProfile(start=Delay(0.5, 2), ready=Delay(0.1, 0.1), fail=0.05,
                                    seed=3, pods=200, complete=Delay(5, 5), stop=Delay(0, 1),
                                    backoff=2.0, cpu="8", memory="64Gi", taint=False)
    assert HollowProfile.parse("") == HollowProfile()
    for bad in ("start=2-1", "fail=1.5", "speed=3", "start", "ready=x", "taint=maybe"):
        with pytest.raises(ValueError):
            HollowProfile.parse(bad)
