"""Server-side Tables: kubectl's columns and cell text, exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from miniorch.api import tables
from miniorch.api.kinds import (
    ENDPOINTS,
    EVENTS,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    REPLICATION_CONTROLLERS,
    SERVICES,
    Resource,
    kind_of,
)
from miniorch.core.clock import rfc3339
from miniorch.core.objects import Obj

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return rfc3339(NOW - timedelta(**delta))


@pytest.mark.parametrize(("seconds", "text"), [
    pytest.param(-5, "<invalid>", id="future"),
    pytest.param(-1, "0s", id="skew"),
    pytest.param(0, "0s", id="zero"),
    pytest.param(59, "59s", id="59s"),
    pytest.param(119, "119s", id="119s"),
    pytest.param(120, "2m", id="2m"),
    pytest.param(150, "2m30s", id="2m30s"),
    pytest.param(600, "10m", id="10m"),
    pytest.param(179 * 60 + 59, "179m", id="179m"),
    pytest.param(3 * 3600 + 15 * 60 + 10, "3h15m", id="3h15m"),
    pytest.param(5 * 3600, "5h", id="5h"),
    pytest.param(8 * 3600 + 59 * 60, "8h", id="8h"),
    pytest.param(47 * 3600, "47h", id="47h"),
    pytest.param(2 * 86400 + 5 * 3600, "2d5h", id="2d5h"),
    pytest.param(3 * 86400, "3d", id="3d"),
    pytest.param(8 * 86400 + 3600, "8d", id="8d"),
    pytest.param(400 * 86400, "400d", id="400d"),
    pytest.param((3 * 365 + 45) * 86400, "3y45d", id="3y45d"),
    pytest.param(4 * 365 * 86400, "4y", id="4y"),
    pytest.param(10 * 365 * 86400 + 86400 * 100, "10y", id="10y"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert tables.human_duration(seconds) == text


def names(resource: Resource) -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in list(kind_of(resource).columns)]


def test_columns() -> None:
    assert names(PODS) == [("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0),
                           ("Age", 0), ("IP", 1), ("Node", 1), ("Nominated Node", 1),
                           ("Readiness Gates", 1)]
    assert names(REPLICATION_CONTROLLERS) == [
        ("Name", 0), ("Desired", 0), ("Current", 0), ("Ready", 0), ("Age", 0),
        ("Containers", 1), ("Images", 1), ("Selector", 1)]
    assert names(SERVICES) == [("Name", 0), ("Type", 0), ("Cluster-IP", 0),
                               ("External-IP", 0), ("Port(s)", 0), ("Age", 0), ("Selector", 1)]
    assert names(NODES) == [("Name", 0), ("Status", 0), ("Roles", 0), ("Age", 0),
                            ("Version", 0), ("Internal-IP", 1), ("External-IP", 1),
                            ("OS-Image", 1), ("Kernel-Version", 1), ("Container-Runtime", 1)]
    assert names(EVENTS) == [("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0),
                             ("Subobject", 1), ("Source", 1), ("Message", 0),
                             ("First Seen", 1), ("Count", 1), ("Name", 1)]
    assert names(NAMESPACES) == [("Name", 0), ("Status", 0), ("Age", 0)]
    assert names(LEASES) == [("Name", 0), ("Holder", 0), ("Age", 0)]
    assert names(ENDPOINTS) == [("Name", 0), ("Endpoints", 0), ("Age", 0)]
    assert kind_of(PODS).columns[0]["format"] == "name"


def make_pod(phase: str = "Pending", *, statuses: list[Obj] | None = None,
             node: str = "", ip: str = "", deleting: bool = False, reason: str = "",
             conditions: list[Obj] | None = None, init: list[Obj] | None = None,
             init_statuses: list[Obj] | None = None) -> Obj:
    pod: Obj = {
        "metadata": {"name": "kubia-x7k2p", "namespace": "default",
                     "creationTimestamp": ago(minutes=5)},
        "spec": {"containers": [{"name": "kubia", "image": "kubia"}]},
        "status": {"phase": phase},
    }
    if node:
        pod["spec"]["nodeName"] = node
    if ip:
        pod["status"]["podIP"] = ip
        pod["status"]["podIPs"] = [{"ip": ip}]
    if statuses is not None:
        pod["status"]["containerStatuses"] = statuses
    if deleting:
        pod["metadata"]["deletionTimestamp"] = ago(seconds=3)
    if reason:
        pod["status"]["reason"] = reason
    if conditions is not None:
        pod["status"]["conditions"] = conditions
    if init is not None:
        pod["spec"]["initContainers"] = init
    if init_statuses is not None:
        pod["status"]["initContainerStatuses"] = init_statuses
    return pod


def status(state: Obj, *, ready: bool = False, restarts: int = 0,
           last: Obj | None = None) -> Obj:
    return {"name": "kubia", "image": "kubia", "imageID": "", "ready": ready,
            "restartCount": restarts, "state": state, "lastState": last or {}}


RUNNING = {"running": {"startedAt": "2024-06-01T11:55:00Z"}}


@pytest.mark.parametrize(("pod", "cells"), [
    pytest.param(make_pod(), ["kubia-x7k2p", "0/1", "Pending", "0", "5m", "<none>", "<none>",
                              "<none>", "<none>"], id="pending-unscheduled"),
    pytest.param(make_pod(node="node-1", statuses=[
        status({"waiting": {"reason": "ContainerCreating"}})]),
        ["kubia-x7k2p", "0/1", "ContainerCreating", "0", "5m", "<none>", "node-1", "<none>",
         "<none>"], id="container-creating"),
    pytest.param(make_pod("Running", node="node-1", ip="10.244.1.5",
                          statuses=[status(RUNNING, ready=True)]),
                 ["kubia-x7k2p", "1/1", "Running", "0", "5m", "10.244.1.5", "node-1", "<none>",
                  "<none>"], id="running"),
    pytest.param(make_pod("Running", node="node-1", ip="10.244.1.5", statuses=[status(
        {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}, restarts=2,
        last={"terminated": {"exitCode": 1, "reason": "Error",
                             "finishedAt": ago(minutes=1, seconds=30)}})]),
        ["kubia-x7k2p", "0/1", "CrashLoopBackOff", "2 (90s ago)", "5m", "10.244.1.5",
         "node-1", "<none>", "<none>"], id="crash-loop"),
    pytest.param(make_pod("Running", node="node-1", ip="10.244.1.5", deleting=True,
                          statuses=[status(RUNNING, ready=True)]),
                 ["kubia-x7k2p", "1/1", "Terminating", "0", "5m", "10.244.1.5", "node-1",
                  "<none>", "<none>"], id="terminating"),
    pytest.param(make_pod("Succeeded", node="node-1", statuses=[status(
        {"terminated": {"exitCode": 0, "reason": "Completed"}})]),
        ["kubia-x7k2p", "0/1", "Completed", "0", "5m", "<none>", "node-1", "<none>",
         "<none>"], id="completed"),
    pytest.param(make_pod("Failed", node="node-1", statuses=[status(
        {"terminated": {"exitCode": 137, "signal": 9}})]),
        ["kubia-x7k2p", "0/1", "Signal:9", "0", "5m", "<none>", "node-1", "<none>", "<none>"],
        id="signal"),
    pytest.param(make_pod("Failed", node="node-1", statuses=[status(
        {"terminated": {"exitCode": 2}})]),
        ["kubia-x7k2p", "0/1", "ExitCode:2", "0", "5m", "<none>", "node-1", "<none>",
         "<none>"], id="exit-code"),
    pytest.param(make_pod("Running", node="node-1", deleting=True, reason="NodeLost",
                          statuses=[status(RUNNING, ready=True)]),
                 ["kubia-x7k2p", "1/1", "Unknown", "0", "5m", "<none>", "node-1", "<none>",
                  "<none>"], id="node-lost"),
    pytest.param(make_pod("Succeeded", node="node-1", deleting=True, statuses=[status(
        {"terminated": {"exitCode": 0, "reason": "Completed"}})]),
        ["kubia-x7k2p", "0/1", "Completed", "0", "5m", "<none>", "node-1", "<none>",
         "<none>"], id="terminal-not-terminating"),
    pytest.param(make_pod("Pending", node="node-1", init=[{"name": "setup", "image": "x"}],
                          init_statuses=[{"name": "setup", "ready": False, "restartCount": 0,
                                          "image": "x", "imageID": "",
                                          "state": {"running": {}}}],
                          statuses=[status({"waiting": {"reason": "PodInitializing"}})]),
                 ["kubia-x7k2p", "0/1", "Init:0/1", "0", "5m", "<none>", "node-1", "<none>",
                  "<none>"], id="init-running"),
    pytest.param(make_pod("Pending", node="node-1", init=[{"name": "setup", "image": "x"}],
                          init_statuses=[{"name": "setup", "ready": False, "restartCount": 3,
                                          "image": "x", "imageID": "",
                                          "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
                 ["kubia-x7k2p", "0/1", "Init:CrashLoopBackOff", "3", "5m", "<none>", "node-1",
                  "<none>", "<none>"], id="init-crash-loop"),
    pytest.param(make_pod("Running", node="node-1", statuses=[status(
        {"terminated": {"exitCode": 0, "reason": "Completed"}}), dict(status(
            RUNNING, ready=True), name="side")],
        conditions=[{"type": "Ready", "status": "False"}]),
        ["kubia-x7k2p", "1/1", "NotReady", "0", "5m", "<none>", "node-1", "<none>", "<none>"],
        id="completed-with-running-sidecar"),
    pytest.param(make_pod("Pending", conditions=[{"type": "PodScheduled", "status": "False",
                                                  "reason": "SchedulingGated"}]),
                 ["kubia-x7k2p", "0/1", "SchedulingGated", "0", "5m", "<none>", "<none>",
                  "<none>", "<none>"], id="scheduling-gated"),
])
def test_pod_rows(pod: Obj, cells: list[object]) -> None:
    row = tables.row_for(kind_of(PODS), pod, now=NOW)
    assert row["cells"] == cells


def test_pod_readiness_gates_and_completed_condition() -> None:
    pod = make_pod("Succeeded", conditions=[{"type": "example.com/gate", "status": "True"}])
    pod["spec"]["readinessGates"] = [{"conditionType": "example.com/gate"},
                                     {"conditionType": "example.com/other"}]
    row = tables.row_for(kind_of(PODS), pod, now=NOW)
    assert row["cells"][-1] == "1/2"
    assert row["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                  "message": "The pod has completed successfully."}]


def test_replication_controller_row() -> None:
    rc: Obj = {"metadata": {"name": "kubia", "creationTimestamp": ago(hours=3, minutes=15)},
               "spec": {"replicas": 3, "selector": {"app": "kubia", "tier": "web"},
                        "template": {"spec": {"containers": [
                            {"name": "kubia", "image": "kubia"},
                            {"name": "side", "image": "busybox:1.36"}]}}},
               "status": {"replicas": 3, "readyReplicas": 2}}
    assert tables.row_for(kind_of(REPLICATION_CONTROLLERS), rc, now=NOW)["cells"] == [
        "kubia", 3, 3, 2, "3h15m", "kubia,side", "kubia,busybox:1.36", "app=kubia,tier=web"]


def make_service(svc_type: str, *, ingress: list[Obj] | None = None,
                 external_ips: list[str] | None = None) -> Obj:
    svc: Obj = {"metadata": {"name": "kubia-http", "creationTimestamp": ago(days=2, hours=5)},
                "spec": {"type": svc_type, "clusterIP": "10.96.0.12",
                         "clusterIPs": ["10.96.0.12"], "selector": {"app": "kubia"},
                         "ports": [{"port": 8080, "protocol": "TCP", "targetPort": 8080}]},
                "status": {"loadBalancer": {}}}
    if svc_type in ("NodePort", "LoadBalancer"):
        svc["spec"]["ports"][0]["nodePort"] = 31234
    if ingress is not None:
        svc["status"]["loadBalancer"]["ingress"] = ingress
    if external_ips is not None:
        svc["spec"]["externalIPs"] = external_ips
    return svc


@pytest.mark.parametrize(("svc", "external", "ports"), [
    pytest.param(make_service("ClusterIP"), "<none>", "8080/TCP", id="cluster-ip"),
    pytest.param(make_service("NodePort"), "<none>", "8080:31234/TCP", id="node-port"),
    pytest.param(make_service("LoadBalancer"), "<pending>", "8080:31234/TCP", id="lb-pending"),
    pytest.param(make_service("LoadBalancer", ingress=[{"ip": "127.0.100.2"},
                                                       {"ip": "127.0.100.1"}]),
                 "127.0.100.1,127.0.100.2", "8080:31234/TCP", id="lb-assigned"),
    pytest.param(make_service("LoadBalancer", ingress=[{"hostname": "lb.example"}],
                              external_ips=["1.2.3.4"]),
                 "lb.example,1.2.3.4", "8080:31234/TCP", id="lb-with-external-ips"),
    pytest.param(make_service("ClusterIP", external_ips=["1.2.3.4"]), "1.2.3.4", "8080/TCP",
                 id="cluster-ip-external-ips"),
])
def test_service_rows(svc: Obj, external: str, ports: str) -> None:
    svc_type = svc["spec"]["type"]
    assert tables.row_for(kind_of(SERVICES), svc, now=NOW)["cells"] == [
        "kubia-http", svc_type, "10.96.0.12", external, ports, "2d5h", "app=kubia"]


def test_headless_service_without_ports_or_selector() -> None:
    svc: Obj = {"metadata": {"name": "h"}, "spec": {"type": "ClusterIP", "clusterIP": "None",
                                                     "clusterIPs": ["None"]}}
    assert tables.row_for(kind_of(SERVICES), svc, now=NOW)["cells"] == [
        "h", "ClusterIP", "None", "<none>", "<none>", "<unknown>", "<none>"]


@pytest.mark.parametrize(("subsets", "text"), [
    pytest.param([], "<none>", id="none"),
    pytest.param([{"addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.2.3"}],
                   "ports": [{"port": 8080}]}], "10.244.1.5:8080,10.244.2.3:8080", id="two"),
    pytest.param([{"addresses": [{"ip": f"10.244.{i}.5"} for i in range(1, 5)],
                   "ports": [{"port": 8080}]}],
                 "10.244.1.5:8080,10.244.2.5:8080,10.244.3.5:8080 + 1 more...", id="more"),
    pytest.param([{"addresses": [{"ip": "10.244.1.5"}]}], "10.244.1.5", id="no-ports"),
    pytest.param([{"notReadyAddresses": [{"ip": "10.244.1.5"}], "ports": [{"port": 80}]}],
                 "<none>", id="only-not-ready"),
])
def test_endpoints_rows(subsets: list[Obj], text: str) -> None:
    ep: Obj = {"metadata": {"name": "kubia-http", "creationTimestamp": ago(seconds=59)},
               "subsets": subsets}
    assert tables.row_for(kind_of(ENDPOINTS), ep, now=NOW)["cells"] == ["kubia-http", text, "59s"]


def make_node(ready: str | None, *, unschedulable: bool = False,
              labels: dict[str, str] | None = None) -> Obj:
    node: Obj = {
        "metadata": {"name": "node-1", "creationTimestamp": ago(minutes=10),
                     "labels": labels or {}},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.244.1.1"},
                                 {"type": "Hostname", "address": "node-1"}],
                   "nodeInfo": {"kubeletVersion": "v1.32.0-miniorch",
                                "osImage": "Debian GNU/Linux 12 (bookworm)",
                                "kernelVersion": "6.1.0-18-amd64",
                                "containerRuntimeVersion": "miniorch://0.1.0"}},
    }
    if ready is not None:
        node["status"]["conditions"] = [
            {"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}]
    return node


@pytest.mark.parametrize(("node", "state", "roles"), [
    pytest.param(make_node("True"), "Ready", "<none>", id="ready"),
    pytest.param(make_node("False"), "NotReady", "<none>", id="not-ready"),
    pytest.param(make_node("Unknown"), "NotReady", "<none>", id="unknown-condition"),
    pytest.param(make_node(None), "Unknown", "<none>", id="no-condition"),
    pytest.param(make_node("True", unschedulable=True), "Ready,SchedulingDisabled", "<none>",
                 id="cordoned"),
    pytest.param(make_node("True", labels={"node-role.kubernetes.io/control-plane": "",
                                           "node-role.kubernetes.io/worker": "",
                                           "kubernetes.io/role": "edge"}),
                 "Ready", "control-plane,edge,worker", id="roles"),
])
def test_node_rows(node: Obj, state: str, roles: str) -> None:
    assert tables.row_for(kind_of(NODES), node, now=NOW)["cells"] == [
        "node-1", state, roles, "10m", "v1.32.0-miniorch", "10.244.1.1", "<none>",
        "Debian GNU/Linux 12 (bookworm)", "6.1.0-18-amd64", "miniorch://0.1.0"]


def test_event_rows() -> None:
    event: Obj = {
        "metadata": {"name": "kubia-x7k2p.17a2b3c4d5e6f708"},
        "involvedObject": {"kind": "Pod", "name": "kubia-x7k2p", "namespace": "default",
                           "fieldPath": "spec.containers{kubia}"},
        "reason": "Pulled", "message": "Container image \"kubia\" already present\n",
        "type": "Normal", "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(minutes=4), "lastTimestamp": ago(seconds=30), "count": 3,
    }
    assert tables.row_for(kind_of(EVENTS), event, now=NOW)["cells"] == [
        "30s", "Normal", "Pulled", "pod/kubia-x7k2p", "spec.containers{kubia}",
        "kubelet, node-1", 'Container image "kubia" already present', "4m", 3,
        "kubia-x7k2p.17a2b3c4d5e6f708"]
    new_style: Obj = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Node"},
                      "eventTime": "2024-06-01T11:59:00.000000Z", "type": "Normal",
                      "reason": "Starting", "reportingComponent": "kube-proxy"}
    assert tables.row_for(kind_of(EVENTS), new_style, now=NOW)["cells"] == [
        "60s", "Normal", "Starting", "node", "", "kube-proxy", "", "60s", 1, "e"]


def test_namespace_and_lease_rows() -> None:
    ns: Obj = {"metadata": {"name": "default", "creationTimestamp": ago(days=9)},
               "status": {"phase": "Active"}}
    assert tables.row_for(kind_of(NAMESPACES), ns, now=NOW)["cells"] == ["default", "Active", "9d"]
    lease: Obj = {"metadata": {"name": "node-1", "creationTimestamp": ago(seconds=20)},
                  "spec": {"holderIdentity": "node-1"}}
    assert tables.row_for(kind_of(LEASES), lease, now=NOW)["cells"] == ["node-1", "node-1", "20s"]


@pytest.mark.parametrize(("include", "expected"), [
    pytest.param("Metadata", "partial", id="metadata"),
    pytest.param("Object", "full", id="object"),
    pytest.param("None", "none", id="none"),
])
def test_table_shape_and_include_object(include: str, expected: str) -> None:
    pod = make_pod()
    table = tables.to_table(kind_of(PODS), [pod], resource_version="107", now=NOW,
                            include_object=include)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "107"}
    assert len(table["columnDefinitions"]) == 9
    obj = table["rows"][0]["object"]
    if expected == "partial":
        assert obj == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                       "metadata": pod["metadata"]}
    elif expected == "full":
        assert obj["kind"] == "Pod" and obj["apiVersion"] == "v1" and obj["spec"] == pod["spec"]
    else:
        assert obj is None
