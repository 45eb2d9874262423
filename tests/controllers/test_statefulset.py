"""StatefulSet: stable names, ordered creation and reverse-ordered scale-down,
identity kept across deletion, Parallel policy, rolling update with a partition."""

from __future__ import annotations

import re
from typing import Any

import anyio
import anyio.lowlevel

from miniorch.api.kinds import EVENTS, PODS, STATEFUL_SETS
from miniorch.api.store import Watch
from miniorch.controllers.scheduler import scheduler
from miniorch.controllers.statefulset import statefulset_controller
from miniorch.core.objects import Obj


def add_sts(cluster: Any, replicas: int = 3, **spec: Any) -> Obj:
    return cluster.registry.create(STATEFUL_SETS, {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": replicas, "serviceName": "web",
                 "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "kubia", "image": "kubia"}]}},
                 **spec}})


def running(cluster: Any) -> list[str]:
    return sorted(p["metadata"]["name"] for p in cluster.active_pods()
                  if p.get("status", {}).get("phase") == "Running")


def sts_status(cluster: Any) -> Obj:
    status: Obj = cluster.registry.get(STATEFUL_SETS, "default", "web").get("status") or {}
    return status


def actors(cluster: Any) -> list[Any]:
    return [scheduler(cluster.registry).run, statefulset_controller(cluster.registry).run,
            cluster.kubelet]


class PodLog:
    """Records pod creations and deletions in the order the store made them."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.deleted: list[str] = []

    async def follow(self, watch: Watch) -> None:
        async with watch:
            async for event in watch:
                name = event.object["metadata"]["name"]
                if event.type == "ADDED":
                    self.created.append(name)
                elif event.type == "DELETED":
                    self.deleted.append(name)


async def test_ordered_creation_identity_and_events(cluster: Any, run_actors: Any) -> None:
    cluster.add_node("node-1")
    cluster.add_node("node-2")
    log = PodLog()
    async with run_actors(*actors(cluster)) as tg:
        tg.start_soon(log.follow, cluster.registry.watch(PODS))
        await anyio.lowlevel.checkpoint()
        add_sts(cluster)
        await cluster.wait_until(lambda: sts_status(cluster).get("readyReplicas") == 3,
                                 STATEFUL_SETS)
    assert log.created == ["web-0", "web-1", "web-2"]
    for pod in cluster.pods():
        name = pod["metadata"]["name"]
        assert pod["spec"]["hostname"] == name
        assert pod["spec"]["subdomain"] == "web"
        labels = pod["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == name
        assert re.fullmatch(r"web-[a-z0-9]+", labels["controller-revision-hash"])
    status = sts_status(cluster)
    assert status["replicas"] == 3 and status["currentReplicas"] == 3
    assert status["updatedReplicas"] == 3 and status["availableReplicas"] == 3
    assert status["currentRevision"] == status["updateRevision"]
    messages = sorted(e["message"] for e in cluster.registry.list(EVENTS, "default")[0]
                      if e["reason"] == "SuccessfulCreate")
    assert messages == [f"create Pod web-{i} in StatefulSet web successful" for i in range(3)]


async def test_waits_for_each_pod_to_be_ready(cluster: Any, run_actors: Any) -> None:
    cluster.add_node("node-1")
    async with run_actors(scheduler(cluster.registry).run,
                          statefulset_controller(cluster.registry).run,
                          lambda **kw: cluster.kubelet(ready=False, **kw)):
        add_sts(cluster)
        await cluster.wait_until(lambda: running(cluster) == ["web-0"])
        for _ in range(20):
            await anyio.lowlevel.checkpoint()
        assert [p["metadata"]["name"] for p in cluster.pods()] == ["web-0"]
        cluster.set_ready(cluster.registry.get(PODS, "default", "web-0"), True)
        await cluster.wait_until(lambda: running(cluster) == ["web-0", "web-1"])


async def test_scale_down_in_reverse_and_deleted_pod_returns(cluster: Any,
                                                             run_actors: Any) -> None:
    cluster.add_node("node-1")
    log = PodLog()
    async with run_actors(*actors(cluster)) as tg:
        add_sts(cluster)
        await cluster.wait_until(lambda: running(cluster) == ["web-0", "web-1", "web-2"])
        old_uid = cluster.registry.get(PODS, "default", "web-1")["metadata"]["uid"]
        cluster.registry.delete(PODS, "default", "web-1")
        await cluster.wait_until(
            lambda: running(cluster) == ["web-0", "web-1", "web-2"]
            and len(cluster.pods()) == 3
            and cluster.registry.get(PODS, "default", "web-1")["metadata"]["uid"] != old_uid
            and sts_status(cluster).get("readyReplicas") == 3, PODS, STATEFUL_SETS)
        tg.start_soon(log.follow, cluster.registry.watch(PODS))
        await anyio.lowlevel.checkpoint()
        cluster.registry.update_scale(STATEFUL_SETS, "default", "web",
                                      {"spec": {"replicas": 1}})
        await cluster.wait_until(lambda: [p["metadata"]["name"] for p in cluster.pods()]
                                 == ["web-0"])
    assert log.deleted == ["web-2", "web-1"]


async def test_parallel_creates_all_at_once(cluster: Any, run_actors: Any) -> None:
    cluster.add_node("node-1")
    async with run_actors(scheduler(cluster.registry).run,
                          statefulset_controller(cluster.registry).run):
        add_sts(cluster, podManagementPolicy="Parallel")
        await cluster.wait_until(lambda: len(cluster.pods()) == 3)  # none is Ready


async def test_rolling_update_from_the_top_honouring_partition(cluster: Any,
                                                               run_actors: Any) -> None:
    cluster.add_node("node-1")
    log = PodLog()
    async with run_actors(*actors(cluster)) as tg:
        add_sts(cluster, updateStrategy={"type": "RollingUpdate",
                                         "rollingUpdate": {"partition": 1}})
        await cluster.wait_until(lambda: sts_status(cluster).get("readyReplicas") == 3,
                                 STATEFUL_SETS)
        tg.start_soon(log.follow, cluster.registry.watch(PODS))
        await anyio.lowlevel.checkpoint()

        def new_image(sts: Obj) -> None:
            sts["spec"]["template"]["spec"]["containers"][0]["image"] = "kubia:v2"
        cluster.registry.mutate(STATEFUL_SETS, "default", "web", new_image)
        await cluster.wait_until(
            lambda: sts_status(cluster).get("updatedReplicas") == 2
            and sts_status(cluster).get("readyReplicas") == 3, STATEFUL_SETS)
        images = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
                  for p in cluster.pods()}
        assert images == {"web-0": "kubia", "web-1": "kubia:v2", "web-2": "kubia:v2"}
        assert log.deleted == ["web-2", "web-1"]
        status = sts_status(cluster)
        assert status["currentReplicas"] == 1
        assert status["currentRevision"] != status["updateRevision"]

        def no_partition(sts: Obj) -> None:
            sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 0
        cluster.registry.mutate(STATEFUL_SETS, "default", "web", no_partition)
        await cluster.wait_until(
            lambda: sts_status(cluster).get("currentRevision")
            == sts_status(cluster).get("updateRevision")
            and sts_status(cluster).get("currentReplicas") == 3, STATEFUL_SETS)
    assert log.deleted == ["web-2", "web-1", "web-0"]
