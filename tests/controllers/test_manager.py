"""All the loops together: the seed's workflow in miniature, in process."""

from __future__ import annotations

from collections import Counter
from typing import Any

from miniorch.api.kinds import ENDPOINTS, PODS, REPLICATION_CONTROLLERS, SERVICES
from miniorch.controllers.manager import ControllerManager
from miniorch.controllers.pods import is_ready
from miniorch.core.objects import Obj
from miniorch.core.settings import Settings


def ready_addresses(cluster: Any) -> int:
    ep: Obj = cluster.registry.try_get(ENDPOINTS, "default", "kubia-http") or {}
    return sum(len(s.get("addresses") or []) for s in ep.get("subsets") or [])


async def test_manager_runs_the_seed_workflow(cluster: Any, run_actors: Any,
                                              tmp_path: Any) -> None:
    for i in (1, 2, 3):
        cluster.add_node(f"node-{i}")
    manager = ControllerManager(cluster.registry, Settings(home=tmp_path), cluster.clock)
    async with run_actors(manager.run, cluster.kubelet):
        # kubectl run kubia --image=kubia --port=8080; expose rc kubia --name kubia-http
        cluster.add_rc("kubia", 1)
        cluster.registry.create(SERVICES, {
            "metadata": {"name": "kubia-http", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "kubia"},
                     "ports": [{"port": 8080, "targetPort": 8080}]}})
        await cluster.wait_until(lambda: ready_addresses(cluster) == 1, ENDPOINTS)

        # kubectl scale rc kubia --replicas=3: one pod per node, all behind the service.
        cluster.registry.mutate(REPLICATION_CONTROLLERS, "default", "kubia",
                                lambda rc: rc["spec"].update({"replicas": 3}))
        await cluster.wait_until(lambda: ready_addresses(cluster) == 3, ENDPOINTS)
        assert Counter(p["spec"]["nodeName"] for p in cluster.pods()) == {
            "node-1": 1, "node-2": 1, "node-3": 1}
        rc = await cluster.wait_until(
            lambda: (cluster.registry.get(REPLICATION_CONTROLLERS, "default", "kubia")
                     .get("status", {}).get("readyReplicas") == 3), REPLICATION_CONTROLLERS)
        assert rc

        # kubectl delete pod: a replacement appears and the endpoints follow it.
        victim = cluster.pods()[0]["metadata"]["name"]
        cluster.registry.delete(PODS, "default", victim)
        await cluster.wait_until(
            lambda: victim not in {p["metadata"]["name"] for p in cluster.pods()}
            and sum(is_ready(p) for p in cluster.pods()) == 3)
        await cluster.wait_until(lambda: ready_addresses(cluster) == 3, ENDPOINTS)

        # kubectl delete rc kubia: the pods go too (graceful, finished by the kubelet).
        cluster.registry.delete(REPLICATION_CONTROLLERS, "default", "kubia")
        await cluster.wait_until(lambda: not cluster.pods())
        await cluster.wait_until(lambda: ready_addresses(cluster) == 0, ENDPOINTS)
