"""Container env from ConfigMaps, Secrets, fieldRef and resourceFieldRef: the rules, and
the kubelet waiting in CreateContainerConfigError until a ConfigMap appears (on
ProcessRuntime: plain local processes)."""

from __future__ import annotations

import base64
import json

import pytest

from miniorch.api.kinds import CONFIGMAPS, PODS, SECRETS
from miniorch.api.registry import Registry
from miniorch.core import podfiles
from miniorch.core.objects import Obj
from miniorch.core.settings import Settings
from miniorch.node.envvars import ConfigError, PodFacts, container_env, skipped_message
from miniorch.node.processes import ProcessRuntime
from tests.node.nodehelpers import (
    PY,
    container_status,
    events_of,
    make_pod,
    pod_of,
    running_kubelet,
    wait_for,
)

FACTS = PodFacts(pod_ip="10.244.1.5", host_ip="127.0.1.1",
                 node_allocatable=lambda: {"cpu": "2", "memory": "4Gi"})
POD: Obj = {
    "metadata": {"name": "web", "namespace": "shop", "uid": "u-1",
                 "labels": {"app": "web"}, "annotations": {"team": "blue"}},
    "spec": {"nodeName": "node-1", "serviceAccountName": "default",
             "containers": [{"name": "main", "resources": {
                 "limits": {"cpu": "250m", "memory": "64Mi"},
                 "requests": {"cpu": "100m", "memory": "32Mi"}}}, {"name": "side"}]},
}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Objects:
    """Sources over plain dicts (keyed by name; the namespace is checked)."""

    def __init__(self, config_maps: dict[str, Obj] | None = None,
                 secrets: dict[str, Obj] | None = None) -> None:
        self.config_maps = config_maps or {}
        self.secrets = secrets or {}

    def config_map(self, namespace: str, name: str) -> Obj | None:
        assert namespace == "shop"
        return self.config_maps.get(name)

    def secret(self, namespace: str, name: str) -> Obj | None:
        assert namespace == "shop"
        return self.secrets.get(name)


SOURCES = Objects(
    config_maps={"cfg": {"data": {"mode": "fast", "1bad": "x", "level": "3"}}},
    secrets={"creds": {"data": {"user": b64("admin"), "pass": b64("s3cr=t\n")}}})


def env(container: Obj, sources: Objects = SOURCES) -> dict[str, str]:
    return container_env(container, POD, base={}, sources=sources, facts=FACTS).env


def ref(field: str) -> Obj:
    return {"valueFrom": {"fieldRef": {"fieldPath": field}}}


@pytest.mark.parametrize(("path", "value"), [
    pytest.param("metadata.name", "web", id="name"),
    pytest.param("metadata.namespace", "shop", id="namespace"),
    pytest.param("metadata.uid", "u-1", id="uid"),
    pytest.param("metadata.labels['app']", "web", id="label"),
    pytest.param("metadata.labels['nope']", "", id="missing-label"),
    pytest.param("metadata.annotations['team']", "blue", id="annotation"),
    pytest.param("spec.nodeName", "node-1", id="node-name"),
    pytest.param("spec.serviceAccountName", "default", id="service-account"),
    pytest.param("status.podIP", "10.244.1.5", id="pod-ip"),
    pytest.param("status.hostIP", "127.0.1.1", id="host-ip"),
])
def test_field_ref(path: str, value: str) -> None:
    assert env({"env": [{"name": "V", **ref(path)}]})["V"] == value


@pytest.mark.parametrize(("resource_ref", "value"), [
    pytest.param({"resource": "limits.cpu"}, "1", id="cpu-rounds-up"),
    pytest.param({"resource": "limits.cpu", "divisor": "1m"}, "250", id="cpu-millis"),
    pytest.param({"resource": "requests.cpu", "divisor": "1m"}, "100", id="cpu-request"),
    pytest.param({"resource": "limits.memory", "divisor": "1Mi"}, "64", id="memory-mi"),
    pytest.param({"resource": "requests.memory"}, str(32 * 2**20), id="memory-bytes"),
    pytest.param({"resource": "limits.memory", "divisor": "1Gi", "containerName": "side"},
                 "4", id="no-limit-is-node-allocatable"),
    pytest.param({"resource": "requests.cpu", "containerName": "side"}, "0",
                 id="no-request-is-zero"),
])
def test_resource_field_ref(resource_ref: Obj, value: str) -> None:
    container = POD["spec"]["containers"][0]
    item = {"name": "V", "valueFrom": {"resourceFieldRef": resource_ref}}
    assert env({**container, "env": [item]})["V"] == value


def test_config_map_and_secret_keys_with_expansion_and_decoding() -> None:
    result = env({"env": [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pass"}}},
        {"name": "URL", "value": "$(MODE)://$(PASS)"},
        {"name": "GONE", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k",
                                                            "optional": True}}},
        {"name": "NOKEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k",
                                                          "optional": True}}},
    ]})
    assert result == {"MODE": "fast", "PASS": "s3cr=t\n", "URL": "fast://s3cr=t\n"}


def test_env_from_with_prefix_skips_invalid_names_and_env_overrides() -> None:
    result = container_env({
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
                    {"configMapRef": {"name": "cfg"}},
                    {"secretRef": {"name": "creds"}},
                    {"secretRef": {"name": "absent", "optional": True}}],
        "env": [{"name": "level", "value": "override"}],
    }, POD, base={"PATH": "/bin"}, sources=SOURCES, facts=FACTS)
    assert result.env == {"PATH": "/bin", "CFG_mode": "fast", "CFG_1bad": "x", "CFG_level": "3",
                          "mode": "fast", "level": "override", "user": "admin",
                          "pass": "s3cr=t\n"}
    assert result.skipped == [("configMap", "shop/cfg", ["1bad"])]
    assert skipped_message(*result.skipped[0]) == (
        "Keys [1bad] from the EnvFrom configMap shop/cfg were skipped since they are "
        "considered invalid environment variable names.")


@pytest.mark.parametrize(("item", "message"), [
    pytest.param({"valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}},
                 'configmap "nope" not found', id="configmap"),
    pytest.param({"valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
                 "couldn't find key k in ConfigMap shop/cfg", id="configmap-key"),
    pytest.param({"valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}},
                 'secret "nope" not found', id="secret"),
    pytest.param({"valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}},
                 "couldn't find key k in Secret shop/creds", id="secret-key"),
])
def test_missing_required_reference_is_a_config_error(item: Obj, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        env({"env": [{"name": "V", **item}]})
    assert str(caught.value) == message


def test_env_from_a_missing_required_config_map_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r'^configmap "nope" not found$'):
        env({"envFrom": [{"configMapRef": {"name": "nope"}}]})


# ---- the kubelet --------------------------------------------------------------------

PRINT_ENV = ("import json, os; print(json.dumps({k: v for k, v in os.environ.items() "
             "if k.startswith(('APP_', 'MY_'))}))")


def logged_env(settings: Settings, pod: Obj) -> dict[str, str]:
    directory = podfiles.pod_dir(settings.pods_dir, "default", pod["metadata"]["name"],
                                 pod["metadata"]["uid"])
    log = podfiles.container_log(directory, "kubia", 0).read_text()
    line = log.splitlines()[0].split(" ", 3)[3]
    result: dict[str, str] = json.loads(line)
    return result


async def test_env_from_config_map_secret_and_field_ref(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    registry.create(CONFIGMAPS, {"metadata": {"name": "app-config"},
                                 "data": {"mode": "fast", "2x": "skipped"}})
    registry.create(SECRETS, {"metadata": {"name": "app-secret"},
                              "data": {"password": b64("hunter2")}})
    async with running_kubelet(registry, settings, runtime) as node:
        pod = make_pod(registry, node.name, image="python", restart_policy="Never",
                       command=[PY, "-c", PRINT_ENV],
                       envFrom=[{"configMapRef": {"name": "app-config"}, "prefix": "APP_"},
                                {"configMapRef": {"name": "app-config"}}],
                       env=[{"name": "MY_PASSWORD", "valueFrom": {"secretKeyRef": {
                                 "name": "app-secret", "key": "password"}}},
                            {"name": "MY_POD", "valueFrom": {"fieldRef": {
                                "fieldPath": "metadata.name"}}},
                            {"name": "MY_NODE", "valueFrom": {"fieldRef": {
                                "fieldPath": "spec.nodeName"}}},
                            {"name": "MY_IP", "valueFrom": {"fieldRef": {
                                "fieldPath": "status.podIP"}}},
                            {"name": "MY_MODE", "value": "$(APP_mode)!"}])
        await wait_for(lambda: "terminated" in container_status(registry, pod).get("state", {}),
                       what="terminated")
        current = pod_of(registry, pod)
        assert current is not None
        assert logged_env(settings, pod) == {
            "APP_mode": "fast", "APP_2x": "skipped", "MY_PASSWORD": "hunter2",
            "MY_POD": pod["metadata"]["name"], "MY_NODE": node.name,
            "MY_IP": current["status"]["podIP"], "MY_MODE": "fast!"}
        await wait_for(lambda: ("Warning", "InvalidEnvironmentVariableNames",
                                "Keys [2x] from the EnvFrom configMap default/app-config "
                                "were skipped since they are considered invalid environment "
                                "variable names.") in events_of(registry, pod),
                       what="the InvalidEnvironmentVariableNames event")


async def test_missing_config_map_waits_then_starts_once_created(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        pod = make_pod(registry, node.name, image="python", restart_policy="Never",
                       command=[PY, "-c", PRINT_ENV],
                       env=[{"name": "APP_LEVEL", "valueFrom": {"configMapKeyRef": {
                           "name": "later", "key": "level"}}}])
        await wait_for(lambda: container_status(registry, pod).get("state", {}).get("waiting",
                                                                                  {}).get("reason")
                       == "CreateContainerConfigError", what="CreateContainerConfigError")
        waiting = container_status(registry, pod)["state"]["waiting"]
        assert waiting["message"] == 'configmap "later" not found'
        await wait_for(lambda: ("Warning", "Failed", 'Error: configmap "later" not found')
                       in events_of(registry, pod), what="the Failed event")
        # The ConfigMap without the key: the message changes to the missing key.
        registry.create(CONFIGMAPS, {"metadata": {"name": "later"}, "data": {"other": "1"}})
        await wait_for(lambda: container_status(registry, pod).get("state", {}).get(
                           "waiting", {}).get("message")
                       == "couldn't find key level in ConfigMap default/later",
                       within=3, what="the missing-key message")

        def add_key(obj: Obj) -> None:
            obj["data"]["level"] = "7"
        registry.mutate(CONFIGMAPS, "default", "later", add_key)
        # A change wakes the waiting container at once (well before the back-off).
        await wait_for(lambda: "terminated" in container_status(registry, pod).get("state", {}),
                       within=3, what="started and finished once the key exists")
        assert logged_env(settings, pod) == {"APP_LEVEL": "7"}
        registry.delete(PODS, "default", pod["metadata"]["name"], grace_period_seconds=0)
        await wait_for(lambda: pod_of(registry, pod) is None, what="pod removed")
