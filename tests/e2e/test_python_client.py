"""The official `kubernetes` Python client against the real cluster.

The suite loads the session cluster's kubeconfig, works in its own namespace (created
and deleted through the client), and uses the client as its users do: typed models,
watches resumed from a resourceVersion, followed logs, exec over the v4 channel
protocol into a real sandbox.
"""

from __future__ import annotations

import gc
import os
import queue
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config, watch  # type: ignore[import-untyped]
from kubernetes.client.rest import ApiException  # type: ignore[import-untyped]
from kubernetes.stream import stream  # type: ignore[import-untyped]

from tests.e2e.conftest import RunningCluster, wait_for

# The kubernetes client leaks TLS sockets in reference cycles (its WSClient, urllib3
# pools): their ResourceWarnings are its own, so they are ignored in this module, and
# each test collects them before it ends so none escape into another module.
pytestmark = [pytest.mark.e2e, pytest.mark.root,
              pytest.mark.filterwarnings("ignore::ResourceWarning",
                                         "ignore::pytest.PytestUnraisableExceptionWarning")]


@pytest.fixture(autouse=True)
def _collect_client_garbage() -> Iterator[None]:
    yield
    gc.collect()

NS = f"py-{os.urandom(3).hex()}"


def pod_manifest(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "kubia", "image": "kubia",
                                     "ports": [{"containerPort": 8080}]}]}}


def rc_manifest(name: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"app": name},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "kubia", "image": "kubia",
                                                           "ports": [{"containerPort":
                                                                      8080}]}]}}}}


def is_ready(pod: Any) -> bool:
    statuses = pod.status.container_statuses or []
    return bool(pod.status.phase == "Running" and statuses and all(s.ready for s in statuses)
                and not pod.metadata.deletion_timestamp)


@pytest.fixture(scope="module")
def v1(cluster: RunningCluster) -> Iterator[Any]:
    config.load_kube_config(config_file=str(cluster.kubeconfig))
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    created = api.create_namespace({"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": NS}})
    assert created.metadata.name == NS
    try:
        yield api
    finally:
        try:
            api.delete_namespace(NS)
        except ApiException as exc:
            assert exc.status == 404
        api.api_client.close()


@pytest.fixture(scope="module")
def pod(v1: Any) -> str:
    v1.create_namespaced_pod(NS, pod_manifest("py-pod", {"app": "py-pod"}))
    wait_for(lambda: is_ready(v1.read_namespaced_pod("py-pod", NS)), timeout=60,
             what="py-pod ready")
    return "py-pod"


def test_namespaces_and_nodes(v1: Any) -> None:
    assert NS in {n.metadata.name for n in v1.list_namespace().items}
    assert v1.read_namespace(NS).status.phase == "Active"
    nodes = v1.list_node().items
    assert sorted(n.metadata.name for n in nodes) == ["node-1", "node-2", "node-3"]
    info = nodes[0].status.node_info
    assert info.kubelet_version.startswith("v1.32") and info.operating_system == "linux"
    assert int(nodes[0].status.capacity["cpu"]) >= 1


def test_pod_crud(v1: Any, pod: str) -> None:
    read = v1.read_namespaced_pod(pod, NS)
    assert read.metadata.namespace == NS and read.spec.node_name.startswith("node-")
    assert read.status.pod_ip.startswith("10.244.")
    listed = v1.list_namespaced_pod(NS, label_selector="app=py-pod").items
    assert [p.metadata.name for p in listed] == [pod]
    assert pod in {p.metadata.name for p in v1.list_pod_for_all_namespaces(
        field_selector=f"metadata.namespace={NS}").items}
    patched = v1.patch_namespaced_pod(pod, NS, {"metadata": {"labels": {"extra": "yes"}}})
    assert patched.metadata.labels == {"app": "py-pod", "extra": "yes"}
    with pytest.raises(ApiException) as missing:
        v1.read_namespaced_pod("nope", NS)
    assert missing.value.status == 404 and missing.value.reason == "Not Found"
    with pytest.raises(ApiException) as exists:
        v1.create_namespaced_pod(NS, pod_manifest(pod, {"app": "py-pod"}))
    assert exists.value.status == 409 and '"reason":"AlreadyExists"' in \
        exists.value.body.replace(" ", "")


def test_rc_scale_and_service(v1: Any) -> None:
    rc = v1.create_namespaced_replication_controller(NS, rc_manifest("py-rc", 1))
    assert rc.spec.replicas == 1 and rc.spec.selector == {"app": "py-rc"}
    scale = v1.patch_namespaced_replication_controller_scale(
        "py-rc", NS, {"spec": {"replicas": 2}})
    assert scale.spec.replicas == 2 and scale.kind == "Scale"
    assert v1.read_namespaced_replication_controller_scale("py-rc", NS).spec.replicas == 2

    def two_ready() -> bool:
        pods = v1.list_namespaced_pod(NS, label_selector="app=py-rc").items
        return len([p for p in pods if is_ready(p)]) == 2
    wait_for(two_ready, timeout=60, what="2 py-rc pods ready")
    status = v1.read_namespaced_replication_controller_status("py-rc", NS).status
    assert status.replicas == 2
    assert [r.metadata.name for r in v1.list_namespaced_replication_controller(NS).items] == \
        ["py-rc"]
    v1.patch_namespaced_replication_controller(
        "py-rc", NS, {"metadata": {"annotations": {"by": "python"}}})

    svc = v1.create_namespaced_service(NS, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "py-svc"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "py-rc"},
                 "ports": [{"port": 8080, "targetPort": 8080}]}})
    assert svc.spec.cluster_ip.startswith("10.96.") and svc.spec.ports[0].node_port

    def ingress_ip() -> str | None:
        ingress = v1.read_namespaced_service("py-svc", NS).status.load_balancer.ingress
        return str(ingress[0].ip) if ingress else None
    ip = wait_for(ingress_ip, what="an external IP")

    def answered() -> bool:
        with urllib.request.urlopen(f"http://{ip}:8080", timeout=5) as response:
            return bool(response.read().decode().startswith("You've hit py-rc-"))
    wait_for(answered, what="the LoadBalancer answering")
    v1.patch_namespaced_service("py-svc", NS, {"metadata": {"labels": {"tier": "web"}}})
    assert [s.metadata.name for s in v1.list_namespaced_service(
        NS, label_selector="tier=web").items] == ["py-svc"]
    v1.delete_namespaced_service("py-svc", NS)
    v1.delete_namespaced_replication_controller("py-rc", NS)
    wait_for(lambda: not v1.list_namespaced_pod(NS, label_selector="app=py-rc").items,
             timeout=60, what="the RC's pods deleted with it")


def test_watch_resumes_from_a_resource_version(v1: Any, pod: str) -> None:
    start = v1.list_namespaced_pod(NS).metadata.resource_version
    v1.patch_namespaced_pod(pod, NS, {"metadata": {"labels": {"step": "one"}}})
    v1.patch_namespaced_pod(pod, NS, {"metadata": {"labels": {"step": "two"}}})
    w = watch.Watch()
    seen: list[tuple[str, str]] = []
    for event in w.stream(v1.list_namespaced_pod, NS, resource_version=start,
                          timeout_seconds=10):
        seen.append((event["type"], event["object"].metadata.labels.get("step", "")))
        if seen[-1] == ("MODIFIED", "two"):
            w.stop()
    # Only changes after `start`, in order (a status update may come in between).
    steps = [step for kind, step in seen if kind == "MODIFIED" and step]
    assert steps[0] == "one" and steps[-1] == "two", seen
    assert all(kind == "MODIFIED" for kind, _ in seen), seen

    # A live watch sees a change made while it runs.
    events: queue.Queue[tuple[str, str]] = queue.Queue()
    w2 = watch.Watch()

    def consume() -> None:
        for event in w2.stream(v1.list_namespaced_pod, NS, field_selector=f"metadata.name={pod}",
                               timeout_seconds=20):
            events.put((event["type"], event["object"].metadata.labels.get("step", "")))
            if event["object"].metadata.labels.get("step") == "three":
                w2.stop()
    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    assert events.get(timeout=10) == ("ADDED", "two")
    v1.patch_namespaced_pod(pod, NS, {"metadata": {"labels": {"step": "three"}}})
    assert events.get(timeout=10) == ("MODIFIED", "three")
    thread.join(timeout=10)


def test_logs(v1: Any, pod: str) -> None:
    ip = v1.read_namespaced_pod(pod, NS).status.pod_ip
    with urllib.request.urlopen(f"http://{ip}:8080", timeout=5) as response:
        assert response.read().decode().strip() == f"You've hit {pod}"
    logs = v1.read_namespaced_pod_log(pod, NS, container="kubia")
    assert "Received request from" in logs
    assert len(v1.read_namespaced_pod_log(pod, NS, tail_lines=1).splitlines()) == 1

    followed = v1.read_namespaced_pod_log(pod, NS, follow=True, _preload_content=False)
    try:
        with urllib.request.urlopen(f"http://{ip}:8080", timeout=5):
            pass
        lines: list[str] = []
        for chunk in followed.stream(64):
            lines.extend(chunk.decode().splitlines())
            if sum("Received request from" in line for line in lines) >= 2:
                break
    finally:
        followed.close()
        followed.release_conn()


# The client's WSClient leaves its socket open once the server closed the WebSocket
# first (it does, when the command exits): its leak, not ours.
@pytest.mark.filterwarnings("ignore::ResourceWarning",
                            "ignore::pytest.PytestUnraisableExceptionWarning")
def test_exec_v4(v1: Any, pod: str) -> None:
    _exec_v4_checks(v1, pod)
    # The client's sockets sit in reference cycles: collect them here, where their
    # warnings are ignored, not during some later test.
    gc.collect()


def _exec_v4_checks(v1: Any, pod: str) -> None:
    # The client leaves the socket of a preloaded exec open; close ours explicitly.
    hostname = stream(v1.connect_get_namespaced_pod_exec, pod, NS, command=["hostname"],
                      stderr=True, stdin=False, stdout=True, tty=False,
                      _preload_content=False)
    hostname.run_forever(timeout=10)
    assert hostname.read_stdout().strip() == pod and hostname.returncode == 0
    hostname.close()
    resp = stream(v1.connect_get_namespaced_pod_exec, pod, NS,
                  command=["sh", "-c", "cat; exit 3"], stderr=True, stdin=True, stdout=True,
                  tty=False, _preload_content=False)
    resp.write_stdin("from python\n")
    resp.update(timeout=1)
    def echoed() -> bool:
        resp.update(timeout=1)
        return "from python" in str(resp.peek_stdout())
    wait_for(echoed, what="stdin echoed")
    assert resp.read_stdout().strip() == "from python"
    resp.close()
    failing = stream(v1.connect_get_namespaced_pod_exec, pod, NS,
                     command=["sh", "-c", "echo bye; exit 3"], stderr=True, stdin=False,
                     stdout=True, tty=False, _preload_content=False)
    failing.run_forever(timeout=10)
    assert failing.returncode == 3
    failing.close()


def test_wrong_token_is_unauthorized(cluster: RunningCluster, v1: Any,
                                     tmp_path: Any) -> None:
    text = cluster.kubeconfig.read_text()
    token = next(line.split(":", 1)[1].strip() for line in text.splitlines()
                 if line.strip().startswith("token:"))
    bad = tmp_path / "kubeconfig"
    bad.write_text(text.replace(token, "not-the-token"))
    with config.new_client_from_config(config_file=str(bad)) as api_client, \
            pytest.raises(ApiException) as denied:
        client.CoreV1Api(api_client).list_namespaced_pod(NS)
    assert denied.value.status == 401 and denied.value.reason == "Unauthorized"
