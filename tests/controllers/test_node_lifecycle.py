"""A node that stops heartbeating goes Unknown, is tainted, and loses its pods."""

from __future__ import annotations

from typing import Any

from miniorch.api.kinds import EVENTS, LEASES, NODES, PODS
from miniorch.controllers.node_lifecycle import NodeLifecycleController
from miniorch.controllers.pods import condition, is_ready
from miniorch.controllers.replication import replication_controller
from miniorch.controllers.scheduler import scheduler
from miniorch.core.clock import rfc3339, rfc3339_micro
from miniorch.core.objects import Obj
from miniorch.core.settings import Settings


def node(cluster: Any, name: str) -> Obj:
    return cluster.registry.get(NODES, "", name)  # type: ignore[no-any-return]


def renew_lease(cluster: Any, name: str) -> None:
    now = rfc3339_micro(cluster.clock.now())
    lease = cluster.registry.try_get(LEASES, "kube-node-lease", name)
    if lease is None:
        cluster.registry.create(LEASES, {
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}})
    else:
        cluster.registry.mutate(LEASES, "kube-node-lease", name,
                                lambda obj: obj["spec"].update({"renewTime": now}))


async def test_dead_node_is_marked_and_its_pods_replaced(cluster: Any, run_actors: Any) -> None:
    settings = Settings(node_grace_seconds=40, pod_eviction_seconds=5)
    lifecycle = NodeLifecycleController(cluster.registry, settings, cluster.clock, period=0.01)
    for i in (1, 2):
        cluster.add_node(f"node-{i}")
        renew_lease(cluster, f"node-{i}")
    async with run_actors(scheduler(cluster.registry).run,
                          replication_controller(cluster.registry).run,
                          cluster.kubelet, lifecycle.run):
        cluster.add_rc("kubia", 2)
        await cluster.wait_until(lambda: sum(is_ready(p) for p in cluster.pods()) == 2)
        on_node_1 = [p["metadata"]["name"] for p in cluster.pods()
                     if p["spec"]["nodeName"] == "node-1"]
        assert len(on_node_1) == 1

        # 30 s pass; only node-2 keeps renewing its lease: nothing happens yet.
        cluster.clock.advance(30)
        renew_lease(cluster, "node-2")
        lifecycle.check()
        assert condition(node(cluster, "node-1"), "Ready")["status"] == "True"  # type: ignore[index]

        # 15 s more: node-1's last sign of life is 45 s old (> 40 s grace).
        cluster.clock.advance(15)
        renew_lease(cluster, "node-2")
        ready = await cluster.wait_until(
            lambda: (c := condition(node(cluster, "node-1"), "Ready")) and
            c["status"] == "Unknown" and c, NODES)
        assert ready["reason"] == "NodeStatusUnknown"
        assert ready["message"] == "Kubelet stopped posting node status."
        taints = node(cluster, "node-1")["spec"]["taints"]
        assert {(t["key"], t["effect"]) for t in taints} == {
            ("node.kubernetes.io/unreachable", "NoSchedule"),
            ("node.kubernetes.io/unreachable", "NoExecute")}
        assert condition(node(cluster, "node-2"), "Ready")["status"] == "True"  # type: ignore[index]
        await cluster.wait_until(
            lambda: not is_ready(cluster.registry.get(PODS, "default", on_node_1[0])))
        assert cluster.registry.get(PODS, "default", on_node_1[0])["spec"]["nodeName"] == "node-1"

        # After the eviction timeout its pod is deleted and replaced on node-2.
        cluster.clock.advance(5)
        renew_lease(cluster, "node-2")
        await cluster.wait_until(
            lambda: cluster.registry.try_get(PODS, "default", on_node_1[0]) is None
            and len(cluster.pods()) == 2
            and all(p["spec"].get("nodeName") == "node-2" and is_ready(p)
                    for p in cluster.pods()))
        reasons = {e["reason"] for e in cluster.registry.list(EVENTS, "default")[0]}
        assert "TaintManagerEviction" in reasons

        # The node comes back: its taints go.
        now = rfc3339(cluster.clock.now())
        cluster.registry.update_status(NODES, "", "node-1", {
            **node(cluster, "node-1")["status"],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastHeartbeatTime": now, "lastTransitionTime": now}]})
        await cluster.wait_until(lambda: not node(cluster, "node-1")["spec"].get("taints"),
                                 NODES)


def test_restart_gives_old_nodes_a_full_grace_period(cluster: Any) -> None:
    cluster.add_node("node-1")
    cluster.clock.advance(600)  # the cluster was down for 10 minutes
    settings = Settings(node_grace_seconds=40, pod_eviction_seconds=5)
    lifecycle = NodeLifecycleController(cluster.registry, settings, cluster.clock)
    lifecycle.check()
    assert condition(node(cluster, "node-1"), "Ready")["status"] == "True"  # type: ignore[index]
    cluster.clock.advance(30)
    renew_lease(cluster, "node-1")  # the restarted kubelet checks in
    cluster.clock.advance(30)
    lifecycle.check()
    assert condition(node(cluster, "node-1"), "Ready")["status"] == "True"  # type: ignore[index]
    cluster.clock.advance(41)
    lifecycle.check()
    assert condition(node(cluster, "node-1"), "Ready")["status"] == "Unknown"  # type: ignore[index]
