"""Endpoints follow readiness, named ports and label changes; they go with the Service."""

from __future__ import annotations

from typing import Any

from miniorch.api.kinds import ENDPOINTS, PODS, SERVICES
from miniorch.controllers.endpoints import endpoints_controller
from miniorch.controllers.replication import replication_controller
from miniorch.controllers.scheduler import scheduler
from miniorch.core.objects import Obj


def endpoints(cluster: Any, name: str = "kubia-http") -> Obj | None:
    return cluster.registry.try_get(ENDPOINTS, "default", name)  # type: ignore[no-any-return]


def addresses(cluster: Any, field: str = "addresses") -> set[str]:
    ep = endpoints(cluster) or {}
    return {a["targetRef"]["name"] for s in ep.get("subsets") or [] for a in s.get(field) or []}


def make_service(cluster: Any, ports: list[Obj], selector: dict[str, str] | None = None) -> Obj:
    return cluster.registry.create(SERVICES, {  # type: ignore[no-any-return]
        "metadata": {"name": "kubia-http", "namespace": "default", "labels": {"app": "kubia"}},
        "spec": {"selector": selector or {"app": "kubia"}, "ports": ports}})


async def test_endpoints_follow_readiness_and_named_ports(cluster: Any, run_actors: Any) -> None:
    for i in (1, 2):
        cluster.add_node(f"node-{i}")
    async with run_actors(scheduler(cluster.registry).run,
                          replication_controller(cluster.registry).run,
                          endpoints_controller(cluster.registry).run, cluster.kubelet):
        cluster.add_rc("kubia", 2, ports=[{"name": "http", "containerPort": 8080,
                                           "protocol": "TCP"}])
        make_service(cluster, [{"name": "web", "port": 80, "targetPort": "http",
                                "protocol": "TCP"},
                               {"name": "admin", "port": 9000, "targetPort": 9001}])
        await cluster.wait_until(lambda: len(addresses(cluster)) == 2, ENDPOINTS)
        ep = endpoints(cluster)
        assert ep is not None
        assert ep["metadata"]["labels"] == {"app": "kubia"}
        [subset] = ep["subsets"]
        assert subset["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"},
                                   {"name": "admin", "port": 9001, "protocol": "TCP"}]
        pods = {p["metadata"]["name"]: p for p in cluster.pods()}
        for address in subset["addresses"]:
            pod = pods[address["targetRef"]["name"]]
            assert address == {"ip": pod["status"]["podIP"], "nodeName": pod["spec"]["nodeName"],
                               "targetRef": {"kind": "Pod", "namespace": "default",
                                             "name": pod["metadata"]["name"],
                                             "uid": pod["metadata"]["uid"]}}

        # Readiness lost: the pod moves to notReadyAddresses.
        victim = next(iter(pods.values()))
        cluster.set_ready(victim, False)
        await cluster.wait_until(
            lambda: addresses(cluster, "notReadyAddresses") == {victim["metadata"]["name"]},
            ENDPOINTS)
        assert len(addresses(cluster)) == 1
        cluster.set_ready(victim, True)
        await cluster.wait_until(lambda: len(addresses(cluster)) == 2, ENDPOINTS)

        # Relabelled away: it leaves the Endpoints (and the RC replaces it).
        def relabel(pod: Obj) -> None:
            pod["metadata"]["labels"] = {"app": "debug"}
        cluster.registry.mutate(PODS, "default", victim["metadata"]["name"], relabel)
        await cluster.wait_until(
            lambda: victim["metadata"]["name"] not in addresses(cluster)
            and len(addresses(cluster)) == 2, ENDPOINTS)

        # An idle reconcile writes nothing.
        rv = endpoints(cluster)["metadata"]["resourceVersion"]  # type: ignore[index]
        cluster.registry.mutate(SERVICES, "default", "kubia-http",
                                lambda s: s["metadata"].setdefault("annotations", {}).update(
                                    {"touched": "yes"}))
        await cluster.wait_until(lambda: True, ENDPOINTS)
        assert endpoints(cluster)["metadata"]["resourceVersion"] == rv  # type: ignore[index]

        cluster.registry.delete(SERVICES, "default", "kubia-http")
        await cluster.wait_until(lambda: endpoints(cluster) is None, ENDPOINTS)


async def test_services_without_selector_are_left_alone(cluster: Any, run_actors: Any) -> None:
    cluster.registry.create(SERVICES, {
        "metadata": {"name": "external", "namespace": "default"},
        "spec": {"ports": [{"port": 80}]}})
    cluster.registry.create(ENDPOINTS, {
        "metadata": {"name": "external", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 80}]}]})
    ctl = endpoints_controller(cluster.registry)
    async with run_actors(ctl.run):
        make_service(cluster, [{"port": 80, "targetPort": 8080}])
        await cluster.wait_until(lambda: endpoints(cluster) is not None, ENDPOINTS)
        await ctl.queue.join()
    assert "subsets" not in (endpoints(cluster) or {})  # no pods yet: omitted
    kept = cluster.registry.get(ENDPOINTS, "default", "external")
    assert kept["subsets"][0]["addresses"] == [{"ip": "127.0.0.1"}]
    assert cluster.registry.try_get(ENDPOINTS, "default", "kubernetes") is None


def _pod(name: str, ip: str, *, ready: bool, terminating: bool = False) -> Obj:
    meta: Obj = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": "n1"}, "status": {
        "phase": "Running", "podIP": ip,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_terminating_pods_leave_and_publish_not_ready_keeps_everyone() -> None:
    from miniorch.controllers.endpoints import build_subsets

    pods = [_pod("a", "10.0.0.1", ready=True), _pod("b", "10.0.0.2", ready=False),
            _pod("c", "10.0.0.3", ready=True, terminating=True)]
    svc: Obj = {"spec": {"ports": [{"port": 80}]}}
    [subset] = build_subsets(svc, pods)
    assert [a["ip"] for a in subset["addresses"]] == ["10.0.0.1"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.0.0.2"]  # expected back
    svc["spec"]["publishNotReadyAddresses"] = True
    [subset] = build_subsets(svc, pods)
    assert [a["ip"] for a in subset["addresses"]] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert "notReadyAddresses" not in subset
