"""The official `kubernetes` Python client with the kinds past chapter 2: typed models
for apps/v1, batch/v1 and core ConfigMaps/Secrets (whose required fields the client's
models check on every response), the scale subresource, watches, and custom objects.
"""

from __future__ import annotations

import base64
import gc
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config, watch  # type: ignore[import-untyped]
from kubernetes.client.rest import ApiException  # type: ignore[import-untyped]

from tests.e2e.conftest import RunningCluster, wait_for

# The client's leaked sockets are its own (see test_python_client.py): ignored here and
# collected after each test.
pytestmark = [pytest.mark.e2e, pytest.mark.root,
              pytest.mark.filterwarnings("ignore::ResourceWarning",
                                         "ignore::pytest.PytestUnraisableExceptionWarning")]

NS = f"pyk-{os.urandom(3).hex()}"


@pytest.fixture(autouse=True)
def _collect_client_garbage() -> Iterator[None]:
    yield
    gc.collect()


@pytest.fixture(scope="module")
def api(cluster: RunningCluster) -> Iterator[Any]:
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    try:
        yield api_client
    finally:
        try:
            core.delete_namespace(NS)
        except ApiException as exc:
            assert exc.status == 404
        api_client.close()


def container(name: str = "kubia", image: str = "kubia", **extra: Any) -> Any:
    return client.V1Container(name=name, image=image, **extra)


def test_deployment_typed_create_scale_and_watch(api: Any) -> None:
    apps = client.AppsV1Api(api)
    labels = {"app": "py-web"}
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="py-web"),
        spec=client.V1DeploymentSpec(
            replicas=2, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[container(
                    ports=[client.V1ContainerPort(container_port=8080)])]))))
    created = apps.create_namespaced_deployment(NS, body)
    assert created.spec.strategy.type == "RollingUpdate"
    assert created.spec.strategy.rolling_update.max_surge == "25%"

    def available() -> Any:
        d = apps.read_namespaced_deployment_status("py-web", NS)
        return d if (d.status.available_replicas or 0) == 2 else None
    deployment = wait_for(available, timeout=60, what="2 available replicas")
    assert {c.type for c in deployment.status.conditions} == {"Available", "Progressing"}
    [rs] = apps.list_namespaced_replica_set(NS, label_selector="app=py-web").items
    assert rs.metadata.owner_references[0].kind == "Deployment"
    assert rs.metadata.annotations["deployment.kubernetes.io/revision"] == "1"

    scale = apps.read_namespaced_deployment_scale("py-web", NS)
    assert scale.spec.replicas == 2 and scale.status.selector == "app=py-web"
    events = watch.Watch()
    seen = []
    apps.patch_namespaced_deployment_scale("py-web", NS, {"spec": {"replicas": 3}})
    for event in events.stream(apps.list_namespaced_deployment, NS,
                               resource_version=deployment.metadata.resource_version,
                               timeout_seconds=30):
        seen.append(event["object"].spec.replicas)
        if (event["object"].status.ready_replicas or 0) == 3:
            events.stop()
    assert 3 in seen
    apps.delete_namespaced_deployment("py-web", NS, propagation_policy="Foreground")
    wait_for(lambda: not client.CoreV1Api(api).list_namespaced_pod(
        NS, label_selector="app=py-web").items, timeout=60, what="the pods collected")


def test_job_completes(api: Any) -> None:
    batch = client.BatchV1Api(api)
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name="py-job"),
        spec=client.V1JobSpec(completions=2, parallelism=2, template=client.V1PodTemplateSpec(
            spec=client.V1PodSpec(restart_policy="Never", containers=[container(
                name="main", image="busybox", command=["sh", "-c", "echo done"])]))))
    created = batch.create_namespaced_job(NS, job)
    assert created.spec.selector.match_labels["batch.kubernetes.io/controller-uid"] == \
        created.metadata.uid

    def complete() -> Any:
        status = batch.read_namespaced_job_status("py-job", NS).status
        return status if any(c.type == "Complete" and c.status == "True"
                             for c in status.conditions or []) else None
    status = wait_for(complete, timeout=60, what="the job to complete")
    assert status.succeeded == 2 and status.completion_time is not None


def test_configmap_and_secret_models(api: Any) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NS, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="py-cm"), data={"k": "v"}))
    secret = core.create_namespaced_secret(NS, client.V1Secret(
        metadata=client.V1ObjectMeta(name="py-secret"), string_data={"password": "pw"}))
    assert secret.data == {"password": base64.b64encode(b"pw").decode()}
    assert secret.type == "Opaque"
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_config_map(NS, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="bad"), data={"bad key": "v"}))
    assert refused.value.status == 422
    # Beside it only the namespace's CA bundle, which every namespace gets (as in Kubernetes).
    assert sorted(c.metadata.name for c in core.list_namespaced_config_map(NS).items) == \
        ["kube-root-ca.crt", "py-cm"]


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.py.example.com"},
    "spec": {"group": "py.example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {
                                   "size": {"type": "integer", "minimum": 1}}}}}}}]}}


def test_custom_objects(api: Any) -> None:
    extensions = client.ApiextensionsV1Api(api)
    custom = client.CustomObjectsApi(api)
    extensions.create_custom_resource_definition(CRD)
    try:
        deadline = time.monotonic() + 10
        while True:  # established at once, but give discovery a moment all the same
            try:
                created = custom.create_namespaced_custom_object(
                    "py.example.com", "v1", NS, "widgets",
                    {"apiVersion": "py.example.com/v1", "kind": "Widget",
                     "metadata": {"name": "w1"}, "spec": {"size": 3, "colour": "red"}})
                break
            except ApiException as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert created["spec"] == {"size": 3}  # unknown fields pruned
        with pytest.raises(ApiException) as refused:
            custom.create_namespaced_custom_object(
                "py.example.com", "v1", NS, "widgets",
                {"apiVersion": "py.example.com/v1", "kind": "Widget",
                 "metadata": {"name": "w2"}, "spec": {"size": 0}})
        assert refused.value.status == 422
        assert "should be greater than or equal to 1" in refused.value.body
        listed = custom.list_namespaced_custom_object("py.example.com", "v1", NS, "widgets")
        assert [w["metadata"]["name"] for w in listed["items"]] == ["w1"]
    finally:
        extensions.delete_custom_resource_definition("widgets.py.example.com")
