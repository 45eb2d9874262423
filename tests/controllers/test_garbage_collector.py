"""Cascading deletion: dependents of a deleted owner go; orphaned ones stay."""

from __future__ import annotations

from typing import Any

from miniorch.api.kinds import PODS, REPLICATION_CONTROLLERS
from miniorch.controllers.garbage_collector import garbage_collector
from miniorch.controllers.replication import replication_controller
from miniorch.core.objects import controller_ref


async def test_deleting_an_rc_deletes_its_pods(cluster: Any, run_actors: Any) -> None:
    async with run_actors(replication_controller(cluster.registry).run,
                          garbage_collector(cluster.registry).run):
        cluster.add_rc("kubia", 3)
        cluster.add_rc("other", 1)
        await cluster.wait_until(lambda: len(cluster.pods()) == 4)
        cluster.registry.delete(REPLICATION_CONTROLLERS, "default", "kubia")
        await cluster.wait_until(lambda: len(cluster.pods()) == 1)
    assert cluster.pods()[0]["metadata"]["name"].startswith("other-")


async def test_bound_pods_terminate_gracefully(cluster: Any, run_actors: Any) -> None:
    cluster.add_node("node-1")
    async with run_actors(replication_controller(cluster.registry).run,
                          garbage_collector(cluster.registry).run):
        cluster.add_rc("kubia", 2)
        await cluster.wait_until(lambda: len(cluster.pods()) == 2)
        for pod in cluster.pods():
            cluster.registry.mutate(PODS, "default", pod["metadata"]["name"],
                                    lambda p: p["spec"].update({"nodeName": "node-1"}))
        cluster.registry.delete(REPLICATION_CONTROLLERS, "default", "kubia")
        await cluster.wait_until(lambda: all(p["metadata"].get("deletionTimestamp")
                                             for p in cluster.pods()))
    assert len(cluster.pods()) == 2  # the node finishes the graceful deletion


async def test_orphan_cascade_keeps_pods(cluster: Any, run_actors: Any) -> None:
    async with run_actors(replication_controller(cluster.registry).run,
                          garbage_collector(cluster.registry).run):
        cluster.add_rc("kubia", 2)
        await cluster.wait_until(lambda: len(cluster.pods()) == 2)
        cluster.registry.delete(REPLICATION_CONTROLLERS, "default", "kubia",
                                propagation_policy="Orphan")
        await cluster.wait_until(lambda: all(controller_ref(p) is None for p in cluster.pods()))
        # A new RC with the same selector adopts them instead of creating more.
        rc = cluster.add_rc("kubia", 2)
        await cluster.wait_until(lambda: all(
            (controller_ref(p) or {}).get("uid") == rc["metadata"]["uid"]
            for p in cluster.pods()))
    assert len(cluster.pods()) == 2


async def test_dependents_of_owners_deleted_before_start_are_collected(
        cluster: Any, run_actors: Any) -> None:
    cluster.registry.create(PODS, {
        "metadata": {"name": "leftover", "namespace": "default", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ReplicationController", "name": "gone",
             "uid": "0000", "controller": True}]},
        "spec": {"containers": [{"name": "c", "image": "kubia"}]}})
    cluster.registry.create(PODS, {
        "metadata": {"name": "unknown-owner", "namespace": "default", "ownerReferences": [
            {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": "1"}]},
        "spec": {"containers": [{"name": "c", "image": "kubia"}]}})
    ctl = garbage_collector(cluster.registry)
    async with run_actors(ctl.run):
        await cluster.wait_until(lambda: cluster.registry.try_get(
            PODS, "default", "leftover") is None)
        await ctl.queue.join()
    assert cluster.registry.try_get(PODS, "default", "unknown-owner") is not None


async def test_foreground_deletion_waits_for_blocking_dependents(cluster: Any,
                                                                 run_actors: Any) -> None:
    cluster.add_node("node-1")
    async with run_actors(replication_controller(cluster.registry).run,
                          garbage_collector(cluster.registry).run):
        cluster.add_rc("kubia", 2)
        await cluster.wait_until(lambda: len(cluster.pods()) == 2)
        for pod in cluster.pods():
            cluster.registry.mutate(PODS, "default", pod["metadata"]["name"],
                                    lambda p: p["spec"].update({"nodeName": "node-1"}))
        cluster.registry.delete(REPLICATION_CONTROLLERS, "default", "kubia",
                                propagation_policy="Foreground")
        rc = cluster.registry.get(REPLICATION_CONTROLLERS, "default", "kubia")
        assert rc["metadata"]["deletionTimestamp"]
        assert rc["metadata"]["finalizers"] == ["foregroundDeletion"]
        # The pods are asked to terminate; the RC stays while a node still runs them.
        await cluster.wait_until(lambda: all(p["metadata"].get("deletionTimestamp")
                                             for p in cluster.pods()))
        assert cluster.registry.try_get(REPLICATION_CONTROLLERS, "default", "kubia")
        assert len(cluster.pods()) == 2  # terminating pods are not replaced
        # The node finishes: the pods go, then the collector releases the RC.
        for pod in cluster.pods():
            cluster.registry.delete(PODS, "default", pod["metadata"]["name"],
                                    grace_period_seconds=0)
        await cluster.wait_until(
            lambda: cluster.registry.try_get(REPLICATION_CONTROLLERS, "default",
                                             "kubia") is None, REPLICATION_CONTROLLERS)
    assert cluster.pods() == []


async def test_custom_resources_defined_while_running_are_collected(cluster: Any,
                                                                   run_actors: Any) -> None:
    """A CRD created after the collector started: its objects are owners and
    dependents like any other kind's."""
    from miniorch.api.kinds import CONFIGMAPS, CUSTOM_RESOURCE_DEFINITIONS
    from tests.api.test_crds import CRONTABS, crontab, crontab_crd

    registry = cluster.registry
    async with run_actors(garbage_collector(registry).run):
        registry.create(CUSTOM_RESOURCE_DEFINITIONS, crontab_crd())
        owner = registry.create(CRONTABS, crontab("owner"))
        ref = {"apiVersion": "stable.example.com/v1", "kind": "CronTab", "name": "owner",
               "uid": owner["metadata"]["uid"], "controller": True,
               "blockOwnerDeletion": True}
        registry.create(CONFIGMAPS, {"metadata": {"name": "of-owner", "namespace": "default",
                                                  "ownerReferences": [ref]}})
        registry.create(CRONTABS, {**crontab("child"), "metadata": {
            "name": "child", "namespace": "default", "ownerReferences": [ref]}})
        registry.delete(CRONTABS, "default", "owner")
        await cluster.wait_until(
            lambda: registry.try_get(CONFIGMAPS, "default", "of-owner") is None
            and registry.try_get(CRONTABS, "default", "child") is None,
            CONFIGMAPS, CRONTABS)
