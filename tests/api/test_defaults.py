"""Defaulting fills exactly what kube-apiserver fills, and nothing the client sent."""

from __future__ import annotations

import copy

import pytest

from miniorch.api.kinds import (
    ENDPOINTS,
    EVENTS,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    REPLICATION_CONTROLLERS,
    SERVICES,
    kind_of,
)
from miniorch.core.objects import Obj


def bare_pod(image: str = "kubia") -> Obj:
    return {"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": image,
                                     "ports": [{"containerPort": 8080}]}]}}


def test_pod_defaults() -> None:
    pod = bare_pod()
    kind_of(PODS).apply_defaults(pod)
    assert pod["kind"] == "Pod" and pod["apiVersion"] == "v1"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True
    container = spec["containers"][0]
    assert container == {
        "name": "c", "image": "kubia", "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "imagePullPolicy": "Always", "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File", "resources": {}}
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


@pytest.mark.parametrize(("image", "policy"), [
    pytest.param("kubia", "Always", id="untagged"),
    pytest.param("kubia:latest", "Always", id="latest"),
    pytest.param("kubia:v2", "IfNotPresent", id="tagged"),
    pytest.param("localhost:5000/kubia", "Always", id="registry-port-untagged"),
    pytest.param("localhost:5000/kubia:1.0", "IfNotPresent", id="registry-port-tagged"),
    pytest.param("kubia@sha256:" + "a" * 64, "IfNotPresent", id="digest"),
])
def test_image_pull_policy(image: str, policy: str) -> None:
    pod = bare_pod(image)
    kind_of(PODS).apply_defaults(pod)
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_defaults_are_idempotent_and_keep_client_values() -> None:
    pod = bare_pod()
    pod["spec"]["restartPolicy"] = "Never"
    pod["spec"]["containers"][0]["imagePullPolicy"] = "Never"
    kind_of(PODS).apply_defaults(pod)
    once = copy.deepcopy(pod)
    kind_of(PODS).apply_defaults(pod)
    assert pod == once
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Never"


@pytest.mark.parametrize(("resources", "qos"), [
    pytest.param({}, "BestEffort", id="none"),
    pytest.param({"requests": {"cpu": "100m"}}, "Burstable", id="requests-only"),
    pytest.param({"limits": {"cpu": "1", "memory": "64Mi"}}, "Guaranteed",
                 id="limits-default-requests"),
    pytest.param({"limits": {"cpu": "1", "memory": "64Mi"},
                  "requests": {"cpu": "500m", "memory": "64Mi"}}, "Burstable",
                 id="requests-below-limits"),
    pytest.param({"limits": {"cpu": "1000m", "memory": "64Mi"},
                  "requests": {"cpu": "1"}}, "Guaranteed", id="equal-quantities"),
])
def test_qos_class(resources: Obj, qos: str) -> None:
    pod = bare_pod()
    pod["spec"]["containers"][0]["resources"] = resources
    kind_of(PODS).apply_defaults(pod)
    assert pod["status"]["qosClass"] == qos


def test_limits_default_requests() -> None:
    pod = bare_pod()
    pod["spec"]["containers"][0]["resources"] = {"limits": {"memory": "64Mi"}}
    kind_of(PODS).apply_defaults(pod)
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {"memory": "64Mi"}


def test_probe_defaults() -> None:
    pod = bare_pod()
    pod["spec"]["containers"][0]["readinessProbe"] = {"httpGet": {"port": 8080}}
    kind_of(PODS).apply_defaults(pod)
    assert pod["spec"]["containers"][0]["readinessProbe"] == {
        "httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
        "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}


def test_replication_controller_defaults_from_template() -> None:
    rc: Obj = {"metadata": {"name": "kubia", "namespace": "default"},
               "spec": {"template": {"metadata": {"labels": {"app": "kubia"}},
                                     "spec": {"containers": [{"name": "kubia",
                                                              "image": "kubia"}]}}}}
    kind_of(REPLICATION_CONTROLLERS).apply_defaults(rc)
    assert rc["spec"]["replicas"] == 1
    assert rc["spec"]["selector"] == {"app": "kubia"}
    assert rc["metadata"]["labels"] == {"app": "kubia"}
    template_spec = rc["spec"]["template"]["spec"]
    assert template_spec["restartPolicy"] == "Always"
    assert template_spec["containers"][0]["terminationMessagePolicy"] == "File"
    assert rc["status"] == {"replicas": 0}


def test_replication_controller_keeps_its_selector_and_labels() -> None:
    rc: Obj = {"metadata": {"name": "kubia", "labels": {"team": "a"}},
               "spec": {"replicas": 0, "selector": {"app": "kubia"},
                        "template": {"metadata": {"labels": {"app": "kubia", "v": "2"}}}}}
    kind_of(REPLICATION_CONTROLLERS).apply_defaults(rc)
    assert rc["spec"]["replicas"] == 0
    assert rc["spec"]["selector"] == {"app": "kubia"}
    assert rc["metadata"]["labels"] == {"team": "a"}


@pytest.mark.parametrize(("svc_type", "external_policy"), [
    pytest.param("ClusterIP", None, id="cluster-ip"),
    pytest.param("NodePort", "Cluster", id="node-port"),
    pytest.param("LoadBalancer", "Cluster", id="load-balancer"),
])
def test_service_defaults(svc_type: str, external_policy: str | None) -> None:
    svc: Obj = {"metadata": {"name": "kubia-http"},
                "spec": {"type": svc_type, "ports": [{"port": 8080}],
                         "selector": {"app": "kubia"}}}
    kind_of(SERVICES).apply_defaults(svc)
    spec = svc["spec"]
    assert spec["ports"] == [{"port": 8080, "protocol": "TCP", "targetPort": 8080}]
    assert spec["sessionAffinity"] == "None"
    assert spec["ipFamilies"] == ["IPv4"]
    assert spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec.get("externalTrafficPolicy") == external_policy
    assert svc["status"] == {"loadBalancer": {}}


def test_service_type_defaults_to_cluster_ip_and_keeps_named_target_port() -> None:
    svc: Obj = {"metadata": {"name": "s"},
                "spec": {"ports": [{"port": 80, "targetPort": "http"}]}}
    kind_of(SERVICES).apply_defaults(svc)
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"][0]["targetPort"] == "http"


def test_namespace_defaults() -> None:
    ns: Obj = {"metadata": {"name": "team-a"}}
    kind_of(NAMESPACES).apply_defaults(ns)
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}


def test_other_kinds() -> None:
    event: Obj = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod"}}
    kind_of(EVENTS).apply_defaults(event)
    assert event["count"] == 1
    node: Obj = {"metadata": {"name": "node-1"},
                 "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"}}}
    kind_of(NODES).apply_defaults(node)
    assert node["status"]["allocatable"] == {"cpu": "2", "memory": "4Gi", "pods": "110"}
    endpoints: Obj = {"metadata": {"name": "s"},
                      "subsets": [{"addresses": [{"ip": "10.244.1.5"}],
                                   "ports": [{"port": 8080}]}]}
    kind_of(ENDPOINTS).apply_defaults(endpoints)
    assert endpoints["subsets"][0]["ports"][0]["protocol"] == "TCP"
    lease: Obj = {"metadata": {"name": "node-1"}}
    kind_of(LEASES).apply_defaults(lease)
    assert lease["apiVersion"] == "coordination.k8s.io/v1" and lease["spec"] == {}


@pytest.mark.parametrize("spec", [
    pytest.param("nonsense", id="spec-string"),
    pytest.param({"containers": "x"}, id="containers-string"),
    pytest.param({"containers": [None, 3, {"ports": "x", "resources": []}]}, id="junk-items"),
])
def test_malformed_input_is_left_for_validation(spec: object) -> None:
    pod: Obj = {"metadata": {"name": "p"}, "spec": spec}
    kind_of(PODS).apply_defaults(pod)  # must not raise
