"""DaemonSet: one pod per fitting node, bound by the scheduler through node affinity;
follows nodes added, removed and turning Ready; rolling update; status."""

from __future__ import annotations

from typing import Any

from miniorch.api.kinds import DAEMON_SETS, NODES, PODS
from miniorch.controllers.daemonset import daemonset_controller
from miniorch.controllers.scheduler import scheduler
from miniorch.core.objects import Obj, controller_ref


def add_ds(cluster: Any, name: str = "ssd-monitor",
           node_selector: dict[str, str] | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "main", "image": "busybox",
                                 "command": ["sleep", "3600"]}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    return cluster.registry.create(DAEMON_SETS, {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}})


def placement(cluster: Any) -> dict[str, str]:
    """node → pod name, for running, non-terminating pods."""
    return {p["spec"]["nodeName"]: p["metadata"]["name"] for p in cluster.active_pods()
            if p["spec"].get("nodeName") and p.get("status", {}).get("phase") == "Running"}


def ds_status(cluster: Any, name: str = "ssd-monitor") -> Obj:
    status: Obj = cluster.registry.get(DAEMON_SETS, "default", name).get("status") or {}
    return status


def actors(cluster: Any) -> list[Any]:
    return [scheduler(cluster.registry).run, daemonset_controller(cluster.registry).run,
            cluster.kubelet]


async def test_one_pod_per_node_bound_by_the_scheduler(cluster: Any, run_actors: Any) -> None:
    for n in ("node-1", "node-2", "node-3"):
        cluster.add_node(n)
    async with run_actors(*actors(cluster)):
        ds = add_ds(cluster)
        await cluster.wait_until(lambda: ds_status(cluster).get("numberReady") == 3,
                                 DAEMON_SETS)
    assert sorted(placement(cluster)) == ["node-1", "node-2", "node-3"]
    for pod in cluster.pods():
        node = pod["spec"]["nodeName"]
        assert pod["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"] == {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In",
                                  "values": [node]}]}]}
        keys = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
        assert ("node.kubernetes.io/not-ready", "NoExecute") in keys
        assert ("node.kubernetes.io/unreachable", "NoExecute") in keys
        assert controller_ref(pod)["uid"] == ds["metadata"]["uid"]
        assert pod["metadata"]["labels"]["controller-revision-hash"]
    status = ds_status(cluster)
    assert status == {"currentNumberScheduled": 3, "numberMisscheduled": 0,
                      "desiredNumberScheduled": 3, "numberReady": 3, "numberAvailable": 3,
                      "updatedNumberScheduled": 3, "observedGeneration": 1}


async def test_follows_nodes_added_removed_and_turning_ready(cluster: Any,
                                                             run_actors: Any) -> None:
    cluster.add_node("node-1")
    cluster.add_node("node-2", ready=False)
    async with run_actors(*actors(cluster)):
        add_ds(cluster)
        await cluster.wait_until(lambda: ds_status(cluster).get("numberReady") == 1,
                                 DAEMON_SETS)
        assert list(placement(cluster)) == ["node-1"]  # a not-ready node gets no new pod
        assert ds_status(cluster)["desiredNumberScheduled"] == 1

        def ready(node: Obj) -> None:
            node["status"]["conditions"][0]["status"] = "True"
        cluster.registry.mutate(NODES, "", "node-2", ready, subresource="status")
        await cluster.wait_until(lambda: sorted(placement(cluster)) == ["node-1", "node-2"])

        cluster.add_node("node-3")
        await cluster.wait_until(lambda: len(placement(cluster)) == 3)

        cluster.registry.delete(NODES, "", "node-1")
        await cluster.wait_until(lambda: sorted(placement(cluster)) == ["node-2", "node-3"]
                                 and len(cluster.pods()) == 2)
        await cluster.wait_until(lambda: ds_status(cluster).get("numberReady") == 2,
                                 DAEMON_SETS)


async def test_node_selector_and_relabelling(cluster: Any, run_actors: Any) -> None:
    cluster.add_node("node-1", labels={"disk": "ssd"})
    cluster.add_node("node-2")
    async with run_actors(*actors(cluster)):
        add_ds(cluster, node_selector={"disk": "ssd"})
        await cluster.wait_until(lambda: list(placement(cluster)) == ["node-1"])

        def label(node: Obj) -> None:
            node["metadata"]["labels"]["disk"] = "ssd"
        cluster.registry.mutate(NODES, "", "node-2", label)
        await cluster.wait_until(lambda: sorted(placement(cluster)) == ["node-1", "node-2"])

        def unlabel(node: Obj) -> None:
            del node["metadata"]["labels"]["disk"]
        cluster.registry.mutate(NODES, "", "node-1", unlabel)
        await cluster.wait_until(lambda: list(placement(cluster)) == ["node-2"]
                                 and len(cluster.pods()) == 1)


async def test_rolling_update_replaces_every_pod(cluster: Any, run_actors: Any) -> None:
    for n in ("node-1", "node-2", "node-3"):
        cluster.add_node(n)
    async with run_actors(*actors(cluster)):
        add_ds(cluster)
        await cluster.wait_until(lambda: ds_status(cluster).get("numberReady") == 3,
                                 DAEMON_SETS)
        before = set(placement(cluster).values())

        def new_image(ds: Obj) -> None:
            ds["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:1.36"
        cluster.registry.mutate(DAEMON_SETS, "default", "ssd-monitor", new_image)

        def rolled() -> bool:
            pods = [p for p in cluster.active_pods()
                    if p.get("status", {}).get("phase") == "Running"]
            return len(pods) == 3 and all(
                p["spec"]["containers"][0]["image"] == "busybox:1.36" for p in pods)
        await cluster.wait_until(rolled)
        await cluster.wait_until(
            lambda: ds_status(cluster).get("updatedNumberScheduled") == 3
            and ds_status(cluster).get("numberAvailable") == 3, DAEMON_SETS)
    assert not before & set(placement(cluster).values())
    assert len(cluster.pods()) == 3
    assert ds_status(cluster)["observedGeneration"] == 2


async def test_deleted_pod_is_replaced_on_its_node(cluster: Any, run_actors: Any) -> None:
    cluster.add_node("node-1")
    cluster.add_node("node-2")
    async with run_actors(*actors(cluster)):
        add_ds(cluster)
        await cluster.wait_until(lambda: len(placement(cluster)) == 2)
        victim = placement(cluster)["node-2"]
        cluster.registry.delete(PODS, "default", victim)
        await cluster.wait_until(lambda: len(placement(cluster)) == 2
                                 and victim not in placement(cluster).values())
