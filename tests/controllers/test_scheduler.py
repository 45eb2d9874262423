"""Scheduler: spreading, resource fit, maxPods, selectors, taints, messages, a burst."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from miniorch.api.kinds import EVENTS, NODES, PODS
from miniorch.controllers.pods import condition
from miniorch.controllers.replication import replication_controller
from miniorch.controllers.scheduler import pod_request, scheduler, tolerates
from miniorch.core.objects import Obj


def bound(cluster: Any) -> list[Obj]:
    return [p for p in cluster.pods() if p["spec"].get("nodeName")]


def make_pod(cluster: Any, name: str, *, cpu: str | None = None, memory: str | None = None,
             **spec: Any) -> Obj:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container: Obj = {"name": "c", "image": "kubia"}
    if requests:
        container["resources"] = {"requests": requests}
    return cluster.registry.create(PODS, {  # type: ignore[no-any-return]
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [container], **spec}})


async def test_spreads_replicas_over_nodes(cluster: Any, run_actors: Any) -> None:
    for i in (1, 2, 3):
        cluster.add_node(f"node-{i}")
    async with run_actors(scheduler(cluster.registry).run,
                          replication_controller(cluster.registry).run):
        cluster.add_rc("kubia", 3)
        await cluster.wait_until(lambda: len(bound(cluster)) == 3)
    pods = bound(cluster)
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["node-1", "node-2", "node-3"]
    for pod in pods:
        assert (condition(pod, "PodScheduled") or {}).get("status") == "True"
    messages = sorted(e["message"] for e in cluster.registry.list(EVENTS, "default")[0]
                      if e["reason"] == "Scheduled")
    assert messages == sorted(f"Successfully assigned default/{p['metadata']['name']} to "
                              f"{p['spec']['nodeName']}" for p in pods)


async def test_requests_must_fit_and_unschedulable_message(cluster: Any,
                                                           run_actors: Any) -> None:
    for i in (1, 2, 3):
        cluster.add_node(f"node-{i}", cpu="1", memory="1Gi")
    async with run_actors(scheduler(cluster.registry).run):
        for i in range(3):
            make_pod(cluster, f"big-{i}", cpu="700m", memory="100Mi")
        await cluster.wait_until(lambda: len(bound(cluster)) == 3)
        assert len({p["spec"]["nodeName"] for p in bound(cluster)}) == 3
        make_pod(cluster, "too-big", cpu="0.5")

        def unschedulable() -> Obj | None:
            pod = cluster.registry.get(PODS, "default", "too-big")
            cond = condition(pod, "PodScheduled")
            return cond if cond and cond.get("reason") == "Unschedulable" else None
        cond = await cluster.wait_until(unschedulable)
        assert cond["status"] == "False"
        assert cond["message"] == "0/3 nodes are available: 3 Insufficient cpu."
        warnings = [e for e in cluster.registry.list(EVENTS, "default")[0]
                    if e["reason"] == "FailedScheduling"]
        assert warnings and warnings[0]["type"] == "Warning"
        assert warnings[0]["message"] == "0/3 nodes are available: 3 Insufficient cpu."
        assert warnings[0]["source"]["component"] == "default-scheduler"

        # Capacity frees up: the waiting pod is retried and bound.
        cluster.registry.delete(PODS, "default", "big-1", grace_period_seconds=0)
        await cluster.wait_until(
            lambda: cluster.registry.get(PODS, "default", "too-big")["spec"].get("nodeName"))


async def test_max_pods_memory_and_mixed_reasons(cluster: Any, run_actors: Any) -> None:
    cluster.add_node("node-1", pods=2)
    cluster.add_node("node-2", memory="256Mi")
    cluster.add_node("node-3", labels={"disk": "hdd"}, taints=[
        {"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    async with run_actors(scheduler(cluster.registry).run):
        make_pod(cluster, "a", memory="200Mi", nodeSelector={"kubernetes.io/hostname": "node-2"})
        for name in ("b", "c"):
            make_pod(cluster, name, nodeSelector={"kubernetes.io/hostname": "node-1"})
        await cluster.wait_until(lambda: len(bound(cluster)) == 3)
        make_pod(cluster, "d", memory="100Mi")
        cond = await cluster.wait_until(lambda: condition(
            cluster.registry.get(PODS, "default", "d"), "PodScheduled"))
        assert cond["message"] == (
            "0/3 nodes are available: 1 Insufficient memory, 1 Too many pods, "
            "1 node(s) had untolerated taint {dedicated: db}.")
        # Tolerating the taint makes node-3 eligible.
        make_pod(cluster, "e", memory="100Mi", tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}])
        await cluster.wait_until(
            lambda: cluster.registry.get(PODS, "default", "e")["spec"].get("nodeName"))
        assert cluster.registry.get(PODS, "default", "e")["spec"]["nodeName"] == "node-3"


async def test_skips_not_ready_and_unschedulable_nodes_and_honours_node_name(
        cluster: Any, run_actors: Any) -> None:
    cluster.add_node("node-1", ready=False)
    cluster.add_node("node-2")

    def cordon(node: Obj) -> None:
        node["spec"]["unschedulable"] = True
    cluster.registry.mutate(NODES, "", "node-2", cordon)
    cluster.add_node("node-3")
    async with run_actors(scheduler(cluster.registry).run):
        make_pod(cluster, "pinned", nodeName="node-1", cpu="100m")
        make_pod(cluster, "free")
        await cluster.wait_until(
            lambda: cluster.registry.get(PODS, "default", "free")["spec"].get("nodeName"))
        assert cluster.registry.get(PODS, "default", "free")["spec"]["nodeName"] == "node-3"
        assert cluster.registry.get(PODS, "default", "pinned")["spec"]["nodeName"] == "node-1"
        make_pod(cluster, "other", schedulerName="someone-else")
    assert not cluster.registry.get(PODS, "default", "other")["spec"].get("nodeName")


async def test_burst_of_100_pods_is_bound(cluster: Any, run_actors: Any) -> None:
    for i in (1, 2, 3):
        cluster.add_node(f"node-{i}", cpu="8", memory="16Gi")
    ctl = scheduler(cluster.registry)
    async with run_actors(ctl.run):
        started = time.perf_counter()
        for i in range(100):
            make_pod(cluster, f"burst-{i}", cpu="10m")
        await cluster.wait_until(lambda: len(bound(cluster)) == 100, within=30)
        elapsed = time.perf_counter() - started
    spread = Counter(p["spec"]["nodeName"] for p in bound(cluster))
    assert sorted(spread.values()) == [33, 33, 34]  # least-requested balances them
    info = ctl.reconciler.cache.nodes  # type: ignore[attr-defined]
    assert sum(n.pods for n in info.values()) == 100
    assert sum(n.requested.cpu for n in info.values()) == 1000
    # The decision alone (filter + score over the cache), without the API writes.
    reconciler = ctl.reconciler
    pending = make_pod(cluster, "probe", cpu="10m")
    t0 = time.perf_counter()
    for _ in range(100):
        assert reconciler.pick(pending)[0]  # type: ignore[attr-defined]
    decide = (time.perf_counter() - t0) * 10
    print(f"\nbound 100 pods in {elapsed * 1000:.1f} ms ({elapsed * 10:.2f} ms per pod "
          f"end to end: create, bind, status, event, watches); decision {decide:.3f} ms/pod")


@pytest.mark.parametrize(("resources", "expected"), [
    pytest.param({"requests": {"cpu": "100m", "memory": "128Mi"}}, (100, 128 * 2**20), id="req"),
    pytest.param({"limits": {"cpu": "0.5", "memory": "1G"}}, (500, 10**9), id="limits"),
    pytest.param({}, (0, 0), id="none"),
])
def test_pod_request(resources: Obj, expected: tuple[int, int]) -> None:
    pod = {"spec": {"containers": [{"name": "a", "resources": resources},
                                   {"name": "b", "resources": resources}]}}
    req = pod_request(pod)
    assert (req.cpu, req.memory) == (expected[0] * 2, expected[1] * 2)


def test_tolerations() -> None:
    taint = {"key": "k", "value": "v", "effect": "NoSchedule"}
    assert tolerates([{"operator": "Exists"}], taint)
    assert tolerates([{"key": "k", "operator": "Exists"}], taint)
    assert tolerates([{"key": "k", "value": "v"}], taint)
    assert not tolerates([{"key": "k", "value": "w"}], taint)
    assert not tolerates([{"key": "k", "operator": "Exists", "effect": "NoExecute"}], taint)
    assert not tolerates([], taint)
