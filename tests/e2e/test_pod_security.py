"""Pod Security and host namespaces on a real cluster with the real kubectl: a
privileged / host-namespace pod is refused in `default` with Kubernetes' message, and
in a namespace that opts in it really gets the host's network, PID namespace and a
mount; its podIP is the node's, and hostPort reaches an ordinary pod.

Run alone (one cluster per machine):
    .venv/bin/python -m pytest tests/e2e/test_pod_security.py -q
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningCluster, wait_for

pytestmark = pytest.mark.e2e

NS = "psa-e2e"


def manifest(name: str, namespace: str, spec: dict[str, object],
             container: dict[str, object] | None = None) -> str:
    c = {"name": "main", "image": "busybox", "command": ["sleep", "3600"], **(container or {})}
    c = {k: v for k, v in c.items() if v is not None}
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "namespace": namespace},
                       "spec": {"containers": [c], "terminationGracePeriodSeconds": 0, **spec}})


@pytest.fixture(scope="module")
def ns(cluster: RunningCluster) -> Iterator[RunningCluster]:
    cluster.kubectl("create", "namespace", NS)
    try:
        yield cluster
    finally:
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def test_refused_in_default_with_kubernetes_message(cluster: RunningCluster) -> None:
    result = cluster.kubectl("apply", "-f", "-", check=False, input=manifest(
        "host", "default", {"hostNetwork": True}, {"securityContext": {"privileged": True}}))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": pods "host" is forbidden: '
        'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), '
        'privileged (container "main" must not set securityContext.privileged=true)')


def test_opted_in_pod_gets_the_host(ns: RunningCluster) -> None:
    ns.kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=privileged",
               "pod-security.kubernetes.io/warn=baseline")
    applied = ns.kubectl("apply", "-f", "-", input=manifest(
        "host", NS, {"hostNetwork": True, "hostPID": True},
        {"securityContext": {"privileged": True}}))
    assert 'Warning: would violate PodSecurity "baseline:latest"' in applied.stderr
    ns.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod/host", "--timeout=60s",
               timeout=70)
    pod = ns.get_json("pod", "host", "-n", NS)
    assert pod["status"]["podIP"] == pod["status"]["hostIP"]
    out = ns.kubectl("exec", "-n", NS, "host", "--", "sh", "-c",
                     "exec 2>&1; cat /proc/net/dev; readlink /proc/self/ns/pid;"
                     " ls -d /proc/1/; mkdir -p /mnt/t; mount -t tmpfs none /mnt/t;"
                     " echo mount=$?").stdout
    host_ifaces = {line.split(":")[0].strip() for line in
                   Path("/proc/net/dev").read_text().splitlines()[2:]}
    assert host_ifaces <= {line.split(":")[0].strip() for line in out.splitlines()
                           if ":" in line}, out
    assert os.readlink("/proc/self/ns/pid") in out
    assert "mount=0" in out, out


def test_host_port_reaches_an_ordinary_pod(ns: RunningCluster) -> None:
    ns.kubectl("apply", "-f", "-", input=manifest(
        "web", NS, {}, {"image": "kubia", "command": None,
                        "ports": [{"containerPort": 8080, "hostPort": 18080}]}))
    ns.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod/web", "--timeout=60s",
               timeout=70)
    host_ip = ns.get_json("pod", "web", "-n", NS)["status"]["hostIP"]

    def answer() -> str | None:
        try:
            with urllib.request.urlopen(f"http://{host_ip}:18080/", timeout=2) as resp:
                return str(resp.read().decode())
        except OSError:
            return None
    assert "You've hit web" in wait_for(answer, timeout=20, what="hostPort answers")
