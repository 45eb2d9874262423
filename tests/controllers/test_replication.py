"""ReplicationController: counts, scaling, replacement, adoption, expectations, status."""

from __future__ import annotations

from typing import Any

import anyio

from miniorch.api.kinds import EVENTS, PODS, REPLICATION_CONTROLLERS
from miniorch.controllers.replication import (
    ReplicationControllerReconciler,
    _deletion_rank,
    replication_controller,
)
from miniorch.core.objects import Obj, controller_ref
from miniorch.machinery.controller import ObjectKey


def rc_status(cluster: Any, name: str = "kubia") -> Obj:
    status: Obj = cluster.registry.get(REPLICATION_CONTROLLERS, "default", name).get(
        "status") or {}
    return status


def events(cluster: Any, reason: str) -> list[Obj]:
    return [e for e in cluster.registry.list(EVENTS, "default")[0] if e["reason"] == reason]


async def test_creates_replicas_with_owner_refs_and_events(cluster: Any, run_actors: Any) -> None:
    async with run_actors(replication_controller(cluster.registry).run):
        rc = cluster.add_rc("kubia", 3)
        await cluster.wait_until(lambda: rc_status(cluster).get("replicas") == 3,
                                 REPLICATION_CONTROLLERS)
    pods = cluster.pods()
    assert len(pods) == 3
    for pod in pods:
        assert pod["metadata"]["name"].startswith("kubia-")
        assert len(pod["metadata"]["name"]) == len("kubia-") + 5
        assert pod["metadata"]["labels"] == {"app": "kubia"}
        assert controller_ref(pod) == {
            "apiVersion": "v1", "kind": "ReplicationController", "name": "kubia",
            "uid": rc["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
        assert pod["spec"]["containers"][0]["image"] == "kubia"
    created = events(cluster, "SuccessfulCreate")
    assert sorted(e["message"] for e in created) == sorted(
        f"Created pod: {p['metadata']['name']}" for p in pods)
    assert {e["source"]["component"] for e in created} == {"replication-controller"}
    assert {e["involvedObject"]["kind"] for e in created} == {"ReplicationController"}


async def test_scale_up_and_down(cluster: Any, run_actors: Any) -> None:
    def scale(n: int) -> None:
        def change(rc: Obj) -> None:
            rc["spec"]["replicas"] = n
        cluster.registry.mutate(REPLICATION_CONTROLLERS, "default", "kubia", change)

    async with run_actors(replication_controller(cluster.registry).run):
        cluster.add_rc("kubia", 2)
        await cluster.wait_until(lambda: len(cluster.pods()) == 2)
        scale(5)
        await cluster.wait_until(lambda: rc_status(cluster).get("replicas") == 5,
                                 REPLICATION_CONTROLLERS)
        assert len(cluster.pods()) == 5
        scale(1)
        await cluster.wait_until(lambda: rc_status(cluster).get("replicas") == 1,
                                 REPLICATION_CONTROLLERS)
        assert len(cluster.pods()) == 1
        assert len(events(cluster, "SuccessfulDelete")) == 4
        assert rc_status(cluster)["observedGeneration"] == 3


async def test_deleted_pod_is_replaced(cluster: Any, run_actors: Any) -> None:
    async with run_actors(replication_controller(cluster.registry).run):
        cluster.add_rc("kubia", 3)
        await cluster.wait_until(lambda: len(cluster.pods()) == 3)
        victim = cluster.pods()[0]["metadata"]["name"]
        cluster.registry.delete(PODS, "default", victim)
        def replaced() -> set[str] | None:
            names = {p["metadata"]["name"] for p in cluster.pods()}
            return names if len(names) == 3 and victim not in names else None
        assert victim not in await cluster.wait_until(replaced)


async def test_adopts_orphans_and_releases_relabelled_pods(cluster: Any,
                                                           run_actors: Any) -> None:
    cluster.registry.create(PODS, {
        "metadata": {"name": "stray", "namespace": "default", "labels": {"app": "kubia"}},
        "spec": {"containers": [{"name": "c", "image": "kubia"}]}})
    other = cluster.registry.create(PODS, {
        "metadata": {"name": "other", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "kubia"}]}})
    async with run_actors(replication_controller(cluster.registry).run):
        rc = cluster.add_rc("kubia", 2)
        await cluster.wait_until(lambda: rc_status(cluster).get("replicas") == 2,
                                 REPLICATION_CONTROLLERS)
        assert len(cluster.pods()) == 3  # the orphan + one new pod (+ the unrelated one)
        adopted = cluster.registry.get(PODS, "default", "stray")
        assert controller_ref(adopted)["uid"] == rc["metadata"]["uid"]  # type: ignore[index]
        assert controller_ref(cluster.registry.get(PODS, "default", "other")) is None

        # Relabel the adopted pod: it is released and replaced (kubia-in-action 4.2.4).
        def relabel(pod: Obj) -> None:
            pod["metadata"]["labels"] = {"app": "kubia", "app2": "x"} | {"app": "debug"}
        cluster.registry.mutate(PODS, "default", "stray", relabel)
        await cluster.wait_until(
            lambda: controller_ref(cluster.registry.get(PODS, "default", "stray")) is None
            and len(cluster.pods(label_selector="app=kubia")) == 2)
    assert other["metadata"]["name"] == "other"
    assert len(cluster.pods()) == 4


async def test_expectations_prevent_double_creation_in_a_burst(cluster: Any,
                                                               run_actors: Any) -> None:
    reconciler = ReplicationControllerReconciler(cluster.registry, clock=cluster.clock)
    from miniorch.machinery.controller import Controller
    ctl = Controller(name="rc", registry=cluster.registry, reconciler=reconciler,
                     sources=reconciler.sources(), workers=8)
    async with run_actors(ctl.run):
        cluster.add_rc("kubia", 100)
        key = ObjectKey("default", "kubia")
        # Hammer the key while creations are in flight: nothing may be created twice.
        for _ in range(50):
            ctl.enqueue(key)
            await anyio.lowlevel.checkpoint()
        await cluster.wait_until(lambda: rc_status(cluster).get("replicas") == 100,
                                 REPLICATION_CONTROLLERS, within=20)
        for _ in range(20):
            ctl.enqueue(key)
            await anyio.lowlevel.checkpoint()
        with anyio.fail_after(5):
            await ctl.queue.join()
    assert len(cluster.pods()) == 100
    assert reconciler.expectations.pending(key) == (0, 0)
    assert len(events(cluster, "SuccessfulCreate")) == 100


async def test_status_counts_ready_and_fully_labelled(cluster: Any, run_actors: Any) -> None:
    async with run_actors(replication_controller(cluster.registry).run):
        cluster.add_rc("kubia", 3)
        await cluster.wait_until(lambda: len(cluster.pods()) == 3)
        pods = cluster.pods()
        for pod in pods[:2]:
            cluster.registry.update_status(PODS, "default", pod["metadata"]["name"],
                                           cluster.running_status(pod, ready=True))
        cluster.registry.update_status(PODS, "default", pods[2]["metadata"]["name"],
                                       cluster.running_status(pods[2], ready=False))
        await cluster.wait_until(lambda: rc_status(cluster).get("readyReplicas") == 2,
                                 REPLICATION_CONTROLLERS)
        status = rc_status(cluster)
        assert status == {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 2,
                          "availableReplicas": 2, "observedGeneration": 1}
        # A failed pod is not active: it is replaced, and no longer counted.
        failed = dict(pods[2].get("status") or {}) | {"phase": "Failed"}
        cluster.registry.update_status(PODS, "default", pods[2]["metadata"]["name"], failed)
        await cluster.wait_until(lambda: len(cluster.pods()) == 4)
        await cluster.wait_until(lambda: rc_status(cluster).get("replicas") == 3,
                                 REPLICATION_CONTROLLERS)


async def test_scale_down_deletes_least_valuable_first(cluster: Any, run_actors: Any) -> None:
    cluster.add_node("node-1")
    async with run_actors(replication_controller(cluster.registry).run):
        cluster.add_rc("kubia", 3)
        await cluster.wait_until(lambda: len(cluster.pods()) == 3)
        pods = cluster.pods()
        keep = pods[0]["metadata"]["name"]

        def bind(pod: Obj) -> None:
            pod["spec"]["nodeName"] = "node-1"
        cluster.registry.mutate(PODS, "default", keep, bind)
        cluster.registry.update_status(PODS, "default", keep,
                                       cluster.running_status(pods[0], ready=True))

        def scale(rc: Obj) -> None:
            rc["spec"]["replicas"] = 1
        cluster.registry.mutate(REPLICATION_CONTROLLERS, "default", "kubia", scale)
        await cluster.wait_until(lambda: len(cluster.pods()) == 1)
        assert cluster.pods()[0]["metadata"]["name"] == keep


def test_deletion_rank_orders_like_active_pods() -> None:
    def pod(name: str, *, node: str = "", phase: str = "Pending", ready: bool = False,
            created: str = "2026-01-01T00:00:00Z") -> Obj:
        return {"metadata": {"name": name, "creationTimestamp": created},
                "spec": {"nodeName": node} if node else {},
                "status": {"phase": phase, "conditions": [
                    {"type": "Ready", "status": "True" if ready else "False"}]}}
    pods = [
        pod("ready-old", node="n", phase="Running", ready=True),
        pod("ready-new", node="n", phase="Running", ready=True, created="2026-01-02T00:00:00Z"),
        pod("running-not-ready", node="n", phase="Running"),
        pod("pending-bound", node="n"),
        pod("unscheduled"),
    ]
    order = [p["metadata"]["name"] for p in sorted(pods, key=_deletion_rank)]
    assert order == ["unscheduled", "pending-bound", "running-not-ready", "ready-new",
                     "ready-old"]


def test_expectations_lifecycle(cluster: Any) -> None:
    from miniorch.controllers.expectations import Expectations
    exp: Expectations[str] = Expectations(cluster.clock)
    assert exp.satisfied("rc")
    exp.expect_creations("rc", 2)
    assert not exp.satisfied("rc")
    exp.creation_observed("rc")
    assert exp.pending("rc") == (1, 0)
    exp.creation_observed("rc")
    assert exp.satisfied("rc")
    exp.expect_deletions("rc", {"default/a", "default/b"})
    exp.deletion_observed("rc", "default/a")
    assert not exp.satisfied("rc")
    cluster.clock.advance(301)  # a lost event never wedges the controller
    assert exp.satisfied("rc")


async def test_unsatisfied_expectations_hold_back_creation(cluster: Any) -> None:
    reconciler = ReplicationControllerReconciler(cluster.registry, clock=cluster.clock)
    cluster.add_rc("kubia", 3)
    key = ObjectKey("default", "kubia")
    reconciler.expectations.expect_creations(key, 3)  # creates in flight, not yet seen
    await reconciler.reconcile(key)
    assert cluster.pods() == []
    assert rc_status(cluster) == {"replicas": 0, "observedGeneration": 1}
    reconciler.expectations.creation_observed(key, 3)
    await reconciler.reconcile(key)
    assert len(cluster.pods()) == 3
