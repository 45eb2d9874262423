"""ReplicaSets and Deployments: the RS controller (shared with RCs) and rollouts.

The RS and Deployment controllers run for real over the in-memory API; pods become
Ready only when the test says so (`ready_all`), or at once with `auto_kubelet`, so a
rolling update can be watched step by step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskStatus

from miniorch.api.errors import NotFound
from miniorch.api.kinds import DEPLOYMENTS, EVENTS, PODS, REPLICA_SETS
from miniorch.controllers.deployment import (
    DESIRED_REPLICAS,
    HASH_LABEL,
    MAX_REPLICAS,
    REVISION,
    REVISION_HISTORY,
    DeploymentReconciler,
    deployment_controller,
)
from miniorch.controllers.replicaset import replica_set_controller
from miniorch.core.objects import Obj, controller_ref
from miniorch.machinery.controller import ObjectKey

NS = "default"


def template(image: str = "kubia", labels: dict[str, str] | None = None) -> Obj:
    return {"metadata": {"labels": labels or {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image}]}}


def add_deployment(cluster: Any, replicas: int = 3, *, image: str = "kubia",
                   **spec: Any) -> Obj:
    return cluster.registry.create(DEPLOYMENTS, {
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": template(image), **spec}})


def deployment(cluster: Any) -> Obj:
    d: Obj = cluster.registry.get(DEPLOYMENTS, NS, "web")
    return d


def set_image(cluster: Any, image: str) -> None:
    def change(d: Obj) -> None:
        d["spec"]["template"]["spec"]["containers"][0]["image"] = image
    cluster.registry.mutate(DEPLOYMENTS, NS, "web", change)


def patch_spec(cluster: Any, **fields: Any) -> None:
    def change(d: Obj) -> None:
        d["spec"].update(fields)
    cluster.registry.mutate(DEPLOYMENTS, NS, "web", change)


def replica_sets(cluster: Any) -> list[Obj]:
    rss: list[Obj] = cluster.registry.list(REPLICA_SETS, NS)[0]
    return sorted(rss, key=lambda rs: int(rs["metadata"]["annotations"].get(REVISION, 0)))


def rs_with_image(cluster: Any, image: str) -> Obj | None:
    for rs in replica_sets(cluster):
        if rs["spec"]["template"]["spec"]["containers"][0]["image"] == image:
            return rs
    return None


def sizes(cluster: Any) -> dict[str, int]:
    """image → spec.replicas of its RS."""
    return {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["spec"]["replicas"]
            for rs in replica_sets(cluster)}


def condition(d: Obj, kind: str) -> Obj:
    return next((c for c in d.get("status", {}).get("conditions", []) if c["type"] == kind),
                {"reason": None})


def events(cluster: Any, reason: str) -> list[str]:
    return [e["message"] for e in cluster.registry.list(EVENTS, NS)[0] if e["reason"] == reason]


def ready_all(cluster: Any) -> int:
    """The fake kubelet, one step: every pod not yet Running is bound (so deleting it is
    graceful, as on a node) and becomes Running and Ready."""
    n = 0
    for pod in cluster.active_pods():
        if pod.get("status", {}).get("phase") != "Running":
            cluster.registry.bind(NS, pod["metadata"]["name"], "node-1")
            cluster.registry.update_status(PODS, NS, pod["metadata"]["name"],
                                           cluster.running_status(pod, ready=True))
            n += 1
    return n


def finish_deletions(cluster: Any) -> None:
    for pod in cluster.pods():
        if pod["metadata"].get("deletionTimestamp"):
            cluster.registry.delete(PODS, NS, pod["metadata"]["name"], grace_period_seconds=0)


def auto_kubelet(cluster: Any) -> Callable[..., Any]:
    """A fake kubelet that makes every pod Ready at once and finishes deletions."""
    async def run(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with cluster.registry.watch(PODS) as watch:
            task_status.started()
            async for event in watch:
                pod = event.object
                meta = pod["metadata"]
                if event.type == "DELETED":
                    continue
                try:
                    if meta.get("deletionTimestamp"):
                        cluster.registry.delete(PODS, NS, meta["name"], grace_period_seconds=0)
                    elif pod.get("status", {}).get("phase") != "Running":
                        cluster.registry.update_status(PODS, NS, meta["name"],
                                                       cluster.running_status(pod, ready=True))
                except NotFound:
                    pass
    return run


def controllers(cluster: Any) -> list[Callable[..., Any]]:
    return [replica_set_controller(cluster.registry, clock=cluster.clock).run,
            deployment_controller(cluster.registry, clock=cluster.clock).run]


# ---- ReplicaSets -----------------------------------------------------------------------

def add_rs(cluster: Any, replicas: int, selector: Obj) -> Obj:
    rs: Obj = cluster.registry.create(REPLICA_SETS, {
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"replicas": replicas, "selector": selector,
                 "template": template(labels={"app": "web", "tier": "front"})}})
    return rs


def rs_status(cluster: Any, *, deployment: bool = False) -> Obj:
    """The status of the RS named `web` (or of the one Deployment `web` made)."""
    rss = replica_sets(cluster) if deployment else [
        cluster.registry.get(REPLICA_SETS, NS, "web")]
    status: Obj = rss[0].get("status") or {} if rss else {}
    return status


async def test_replica_set_scales_and_owns_its_pods(cluster: Any, run_actors: Any) -> None:
    async with run_actors(replica_set_controller(cluster.registry).run):
        rs = add_rs(cluster, 3, {"matchLabels": {"app": "web"}})
        await cluster.wait_until(lambda: rs_status(cluster).get("replicas") == 3, REPLICA_SETS)
        for pod in cluster.pods():
            assert pod["metadata"]["name"].startswith("web-")
            assert pod["metadata"]["labels"] == {"app": "web", "tier": "front"}
            assert controller_ref(pod) == {
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                "uid": rs["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
        ready_all(cluster)
        await cluster.wait_until(lambda: rs_status(cluster).get("availableReplicas") == 3,
                                 REPLICA_SETS)
        assert rs_status(cluster) == {"replicas": 3, "fullyLabeledReplicas": 3,
                                      "readyReplicas": 3, "availableReplicas": 3,
                                      "observedGeneration": 1}

        def scale(n: int) -> None:
            def change(obj: Obj) -> None:
                obj["spec"]["replicas"] = n
            cluster.registry.mutate(REPLICA_SETS, NS, "web", change)
        scale(5)
        await cluster.wait_until(lambda: len(cluster.active_pods()) == 5)
        scale(1)
        await cluster.wait_until(lambda: rs_status(cluster).get("replicas") == 1, REPLICA_SETS)
        assert len(cluster.active_pods()) == 1
        deleted = events(cluster, "SuccessfulDelete")
        assert len(deleted) == 4
    component = {e["source"]["component"] for e in cluster.registry.list(EVENTS, NS)[0]}
    assert component == {"replicaset-controller"}


async def test_replica_set_adopts_by_match_expressions(cluster: Any, run_actors: Any) -> None:
    for name, labels in (("stray", {"app": "web", "tier": "front"}),
                         ("other-tier", {"app": "web", "tier": "back"})):
        cluster.registry.create(PODS, {
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "kubia"}]}})
    selector = {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}
    async with run_actors(replica_set_controller(cluster.registry).run):
        rs = add_rs(cluster, 2, selector)
        await cluster.wait_until(lambda: rs_status(cluster).get("replicas") == 2, REPLICA_SETS)
    assert controller_ref(cluster.registry.get(PODS, NS, "stray"))["uid"] == \
        rs["metadata"]["uid"]  # type: ignore[index]
    assert controller_ref(cluster.registry.get(PODS, NS, "other-tier")) is None
    assert len(cluster.pods()) == 3


# ---- Deployments -------------------------------------------------------------------------

async def test_deployment_creates_hashed_replica_set(cluster: Any, run_actors: Any) -> None:
    async with run_actors(*controllers(cluster), auto_kubelet(cluster)):
        d = add_deployment(cluster, 3)
        await cluster.wait_until(
            lambda: deployment(cluster).get("status", {}).get("availableReplicas") == 3,
            DEPLOYMENTS)
        await cluster.wait_until(lambda: condition(deployment(cluster), "Progressing")[
            "reason"] == "NewReplicaSetAvailable", DEPLOYMENTS)
    [rs] = replica_sets(cluster)
    pod_hash = rs["metadata"]["labels"][HASH_LABEL]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["spec"]["selector"] == {"matchLabels": {"app": "web", HASH_LABEL: pod_hash}}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", HASH_LABEL: pod_hash}
    assert controller_ref(rs)["uid"] == d["metadata"]["uid"]  # type: ignore[index]
    assert rs["metadata"]["annotations"] == {REVISION: "1", DESIRED_REPLICAS: "3",
                                             MAX_REPLICAS: "4"}
    for pod in cluster.pods():
        assert pod["metadata"]["labels"][HASH_LABEL] == pod_hash
    d = deployment(cluster)
    assert d["metadata"]["annotations"][REVISION] == "1"
    status = d["status"]
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
        "availableReplicas": 3}
    assert condition(d, "Available")["reason"] == "MinimumReplicasAvailable"
    assert condition(d, "Progressing")["message"] == \
        f'ReplicaSet "web-{pod_hash}" has successfully progressed.'
    assert events(cluster, "ScalingReplicaSet") == [
        f"Scaled up replica set web-{pod_hash} from 0 to 3"]


async def test_rolling_update_step_by_step(cluster: Any, run_actors: Any) -> None:
    """replicas 4, maxSurge 1, maxUnavailable 0: never more than 5 pods, never fewer
    than 4 available; each step waits for the new pods to be Ready."""
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    async with run_actors(*controllers(cluster)):
        add_deployment(cluster, 4, strategy=strategy)
        await cluster.wait_until(lambda: len(cluster.active_pods()) == 4)
        ready_all(cluster)
        await cluster.wait_until(
            lambda: deployment(cluster).get("status", {}).get("availableReplicas") == 4,
            DEPLOYMENTS)
        set_image(cluster, "kubia:v2")
        totals: list[int] = []
        available: list[int] = []

        def at(step: dict[str, int]) -> bool:
            totals.append(sum(sizes(cluster).values()))
            available.append(sum(1 for p in cluster.active_pods()
                                 if p.get("status", {}).get("phase") == "Running"))
            return sizes(cluster) == step and len(cluster.active_pods()) == sum(step.values())
        for step in ({"kubia": 4, "kubia:v2": 1}, {"kubia": 3, "kubia:v2": 2},
                     {"kubia": 2, "kubia:v2": 3}, {"kubia": 1, "kubia:v2": 4},
                     {"kubia": 0, "kubia:v2": 4}):
            await cluster.wait_until(lambda step=step: at(step), PODS, REPLICA_SETS)
            # Nothing moves on until the new pods are Ready.
            await anyio.sleep(0.05)
            assert sizes(cluster) == step
            ready_all(cluster)
            finish_deletions(cluster)
        assert max(totals) <= 5
        assert min(available) >= 4
        ready_all(cluster)
        await cluster.wait_until(lambda: condition(deployment(cluster), "Progressing")[
            "reason"] == "NewReplicaSetAvailable", DEPLOYMENTS)
    d = deployment(cluster)
    assert d["metadata"]["annotations"][REVISION] == "2"
    new = rs_with_image(cluster, "kubia:v2")
    assert new is not None and new["metadata"]["annotations"][REVISION] == "2"
    assert d["status"]["updatedReplicas"] == 4
    assert d["metadata"]["generation"] == d["status"]["observedGeneration"] == 2
    scaled = events(cluster, "ScalingReplicaSet")
    assert f"Scaled up replica set {new['metadata']['name']} from 0 to 1" in scaled
    assert any(m.startswith("Scaled down replica set web-") and m.endswith("from 4 to 3")
               for m in scaled)


async def test_recreate_stops_old_pods_first(cluster: Any, run_actors: Any) -> None:
    async with run_actors(*controllers(cluster)):
        add_deployment(cluster, 2, strategy={"type": "Recreate"})
        await cluster.wait_until(lambda: len(cluster.active_pods()) == 2)
        ready_all(cluster)
        set_image(cluster, "kubia:v2")
        await cluster.wait_until(lambda: sizes(cluster) == {"kubia": 0}, REPLICA_SETS)
        # The old pods are terminating but not gone: no new ReplicaSet yet.
        await cluster.wait_until(lambda: not cluster.active_pods())
        assert rs_with_image(cluster, "kubia:v2") is None
        finish_deletions(cluster)
        await cluster.wait_until(lambda: sizes(cluster) == {"kubia": 0, "kubia:v2": 2},
                                 REPLICA_SETS)
        await cluster.wait_until(lambda: len(cluster.active_pods()) == 2)
    assert {p["spec"]["containers"][0]["image"] for p in cluster.active_pods()} == {"kubia:v2"}


async def test_revision_history_limit_deletes_oldest(cluster: Any, run_actors: Any) -> None:
    async with run_actors(*controllers(cluster), auto_kubelet(cluster)):
        add_deployment(cluster, 1, revisionHistoryLimit=1)
        for image in ("kubia:v2", "kubia:v3", "kubia:v4"):
            await cluster.wait_until(lambda: condition(deployment(cluster), "Progressing")[
                "reason"] == "NewReplicaSetAvailable", DEPLOYMENTS)
            set_image(cluster, image)
        await cluster.wait_until(lambda: list(sizes(cluster)) == ["kubia:v3", "kubia:v4"],
                                 REPLICA_SETS)
    assert [rs["metadata"]["annotations"][REVISION] for rs in replica_sets(cluster)] == \
        ["3", "4"]


async def test_pause_holds_the_rollout_until_resume(cluster: Any, run_actors: Any) -> None:
    async with run_actors(*controllers(cluster), auto_kubelet(cluster)):
        add_deployment(cluster, 2)
        await cluster.wait_until(lambda: deployment(cluster).get("status", {}).get(
            "availableReplicas") == 2, DEPLOYMENTS)
        patch_spec(cluster, paused=True)
        await cluster.wait_until(lambda: condition(deployment(cluster), "Progressing")[
            "reason"] == "DeploymentPaused", DEPLOYMENTS)
        set_image(cluster, "kubia:v2")
        patch_spec(cluster, replicas=3)  # scaling still works while paused
        await cluster.wait_until(lambda: len(cluster.active_pods()) == 3)
        assert sizes(cluster) == {"kubia": 3}
        assert condition(deployment(cluster), "Progressing")["status"] == "Unknown"
        patch_spec(cluster, paused=False)
        await cluster.wait_until(lambda: sizes(cluster) == {"kubia": 0, "kubia:v2": 3},
                                 REPLICA_SETS)


async def test_rollback_reuses_the_old_replica_set(cluster: Any, run_actors: Any) -> None:
    async with run_actors(*controllers(cluster), auto_kubelet(cluster)):
        add_deployment(cluster, 2)
        await cluster.wait_until(lambda: rs_with_image(cluster, "kubia"), REPLICA_SETS)
        first = rs_with_image(cluster, "kubia")
        assert first is not None
        set_image(cluster, "kubia:v2")
        await cluster.wait_until(lambda: sizes(cluster) == {"kubia": 0, "kubia:v2": 2},
                                 REPLICA_SETS)
        set_image(cluster, "kubia")  # what `rollout undo` patches back
        await cluster.wait_until(lambda: sizes(cluster) == {"kubia:v2": 0, "kubia": 2},
                                 REPLICA_SETS)
    again = rs_with_image(cluster, "kubia")
    assert again is not None and again["metadata"]["uid"] == first["metadata"]["uid"]
    assert again["metadata"]["annotations"][REVISION] == "3"
    assert again["metadata"]["annotations"][REVISION_HISTORY] == "1"
    assert deployment(cluster)["metadata"]["annotations"][REVISION] == "3"
    assert len(replica_sets(cluster)) == 2


async def test_progress_deadline_exceeded(cluster: Any, run_actors: Any) -> None:
    reconciler = DeploymentReconciler(cluster.registry, clock=cluster.clock)
    key = ObjectKey(NS, "web")
    async with run_actors(replica_set_controller(cluster.registry, clock=cluster.clock).run):
        add_deployment(cluster, 2, progressDeadlineSeconds=30)
        result = await reconciler.reconcile(key)
        assert result.requeue_after is not None and 29 < result.requeue_after <= 30.1
        await cluster.wait_until(lambda: len(cluster.active_pods()) == 2)
        await cluster.wait_until(lambda: rs_status(cluster, deployment=True).get(
            "replicas") == 2, REPLICA_SETS)
        await reconciler.reconcile(key)  # the pods exist: that was progress
        progressing = condition(deployment(cluster), "Progressing")
        assert progressing["reason"] == "ReplicaSetUpdated"
        cluster.clock.advance(20)
        # Pods that never become Ready: no more progress, the deadline is not yet due.
        result = await reconciler.reconcile(key)
        assert condition(deployment(cluster), "Progressing") == progressing
        assert result.requeue_after is not None and 9 < result.requeue_after <= 10.1
        assert condition(deployment(cluster), "Available") == condition(
            deployment(cluster), "Available") | {"status": "False",
                                                  "reason": "MinimumReplicasUnavailable"}
        cluster.clock.advance(11)
        await reconciler.reconcile(key)
    cond = condition(deployment(cluster), "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert cond["message"].endswith("has timed out progressing.")
