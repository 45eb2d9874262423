"""Pure rules of the kubelet: command/args, env, limits, QoS, phase, IPs, durations."""

from __future__ import annotations

import ipaddress

import pytest

from miniorch.core.objects import Obj
from miniorch.node.cri import ImageInfo
from miniorch.node.envvars import PodFacts, container_env
from miniorch.node.ipam import IpAllocator, node_pod_cidr
from miniorch.node.podworker import (
    base_env,
    container_argv,
    go_duration,
    pod_limits,
)
from miniorch.node.status import ContainerView, phase, qos_class

IMAGE = ImageInfo(ref="kubia", id="sha256:x", entrypoint=("node", "app.js"), cmd=("--port", "80"),
                  env={"PATH": "/img/bin", "A": "image"})
FACTS = PodFacts(pod_ip="10.244.1.5", host_ip="127.0.1.1")


class NoObjects:
    """Sources with no ConfigMap or Secret at all."""

    def config_map(self, namespace: str, name: str) -> Obj | None:
        return None

    def secret(self, namespace: str, name: str) -> Obj | None:
        return None


def env_of(container: Obj, pod: Obj) -> dict[str, str]:
    return container_env(container, pod, base=base_env(IMAGE, pod), sources=NoObjects(),
                         facts=FACTS).env


@pytest.mark.parametrize(("container", "argv"), [
    pytest.param({}, ("node", "app.js", "--port", "80"), id="image-defaults"),
    pytest.param({"args": ["--port", "8080"]}, ("node", "app.js", "--port", "8080"),
                 id="args-replace-cmd"),
    pytest.param({"command": ["python"]}, ("python",), id="command-drops-cmd"),
    pytest.param({"command": ["sh", "-c"], "args": ["echo $(A) $$(A)"]},
                 ("sh", "-c", "echo image $(A)"), id="command-args-expansion"),
])
def test_command_and_args_follow_kubernetes_rules(container: Obj, argv: tuple[str, ...]) -> None:
    pod: Obj = {"metadata": {"name": "kubia-x"}}
    env = env_of(container, pod)
    assert container_argv(container, IMAGE, env) == argv


def test_env_is_image_env_then_container_env() -> None:
    pod: Obj = {"metadata": {"name": "kubia-x"}}
    env = env_of({"env": [{"name": "A", "value": "pod"}, {"name": "B", "value": "$(A)!"},
                          {"name": "C", "valueFrom": {"fieldRef": {
                              "fieldPath": "metadata.name"}}}]}, pod)
    assert env["A"] == "pod" and env["B"] == "pod!" and env["C"] == "kubia-x"
    assert env["PATH"] == "/img/bin" and env["HOSTNAME"] == "kubia-x"


def _pod(*resources: Obj) -> Obj:
    return {"spec": {"containers": [{"name": f"c{i}", "resources": r}
                                    for i, r in enumerate(resources)]}}


def test_pod_limits_sum_only_when_every_container_has_one() -> None:
    assert pod_limits(_pod({"limits": {"cpu": "500m", "memory": "64Mi"}},
                           {"limits": {"cpu": "1", "memory": "1G"}})) == (1500, 64 * 2**20 + 10**9)
    assert pod_limits(_pod({"limits": {"cpu": "250m"}}, {})) == (None, None)
    assert pod_limits(_pod({})) == (None, None)


@pytest.mark.parametrize(("resources", "qos"), [
    pytest.param([{}], "BestEffort", id="best-effort"),
    pytest.param([{"limits": {"cpu": "1", "memory": "1Gi"}}], "Guaranteed", id="limits-only"),
    pytest.param([{"limits": {"cpu": "1", "memory": "1Gi"},
                   "requests": {"cpu": "1", "memory": "1Gi"}}], "Guaranteed", id="equal"),
    pytest.param([{"requests": {"cpu": "100m"}}], "Burstable", id="requests-only"),
    pytest.param([{"limits": {"cpu": "1", "memory": "1Gi"}}, {}], "Burstable", id="mixed"),
])
def test_qos_class(resources: list[Obj], qos: str) -> None:
    assert qos_class(_pod(*resources)) == qos


def _view(state: Obj, last: Obj | None = None) -> ContainerView:
    return ContainerView(name="c", image="i", state=state, last_state=last or {})


@pytest.mark.parametrize(("policy", "views", "expected"), [
    pytest.param("Always", [_view({"waiting": {"reason": "ContainerCreating"}})], "Pending",
                 id="creating"),
    pytest.param("Always", [_view({"running": {}})], "Running", id="running"),
    pytest.param("Always", [_view({"waiting": {"reason": "CrashLoopBackOff"}},
                                  {"terminated": {"exitCode": 1}})], "Running",
                 id="crash-loop-is-running"),
    pytest.param("Never", [_view({"terminated": {"exitCode": 0}})], "Succeeded", id="done"),
    pytest.param("Never", [_view({"terminated": {"exitCode": 1}})], "Failed", id="failed"),
    pytest.param("OnFailure", [_view({"terminated": {"exitCode": 0}})], "Succeeded",
                 id="on-failure-done"),
    pytest.param("Never", [_view({"terminated": {"exitCode": 0}}), _view({"running": {}})],
                 "Running", id="one-still-running"),
])
def test_phase(policy: str, views: list[ContainerView], expected: str) -> None:
    assert phase({"spec": {"restartPolicy": policy}}, views) == expected


def test_ip_allocation_skips_gateway_and_reuses_reserved() -> None:
    network = node_pod_cidr("10.244.0.0/16", 3)
    assert network == ipaddress.IPv4Network("10.244.3.0/24")
    ipam = IpAllocator(network)
    assert ipam.reserve("old", "10.244.3.7")
    assert not ipam.reserve("other", "10.244.3.7")
    assert not ipam.reserve("x", "10.244.4.2")
    assert ipam.allocate("a") == "10.244.3.2"
    assert ipam.allocate("a") == "10.244.3.2"
    ipam.release("a")
    assert ipam.allocate("b") == "10.244.3.2"
    with pytest.raises(ValueError):
        node_pod_cidr("10.244.0.0/16", 256)


@pytest.mark.parametrize(("seconds", "text"), [
    (10, "10s"), (40, "40s"), (80, "1m20s"), (300, "5m0s"), (0.4, "1s")])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
