"""Seeing the cluster: the real kubectl's `top` over metrics.k8s.io, and the control
plane's Prometheus `/metrics` through `kubectl get --raw`.

A pod spinning under a 300m CPU limit (the pod cgroup's quota: its two containers'
limits summed) must show about 300m in `kubectl top pod` (the cgroup's counter over
the scrape window), the demo's kubia pods
must be listed with -A and --containers, and the nodes with CPU and memory
percentages. /metrics must hold the request, watch, work-queue, reconcile and pod start
figures, under Kubernetes' names.
"""

from __future__ import annotations

import os
import re

import pytest

from tests.e2e.conftest import RunningCluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]

NS = f"top-{os.urandom(3).hex()}"
SPINNER = f"""
apiVersion: v1
kind: Pod
metadata: {{name: spinner, namespace: {NS}, labels: {{app: spinner}}}}
spec:
  containers:
  - name: spin
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "while :; do :; done"]
    resources: {{limits: {{cpu: 200m, memory: 32Mi}}}}
  - name: idle
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sleep", "3600"]
    resources: {{limits: {{cpu: 100m, memory: 16Mi}}}}
"""


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()]


def _millicores(text: str) -> int:
    return int(text.removesuffix("m")) if text.endswith("m") else int(float(text) * 1000)


def test_kubectl_top(cluster: RunningCluster) -> None:
    cluster.kubectl("create", "namespace", NS)
    try:
        cluster.kubectl("apply", "-f", "-", input=SPINNER)
        cluster.kubectl("wait", "-n", NS, "--for=condition=Ready", "pod/spinner",
                        "--timeout=60s")

        # Nodes: every node of the machine, with both percentages.
        def nodes() -> list[list[str]] | None:
            result = cluster.kubectl("top", "nodes", check=False)
            return _rows(result.stdout) if result.returncode == 0 else None
        rows = wait_for(nodes, timeout=30, interval=1, what="kubectl top nodes")
        assert rows[0] == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
        assert sorted(r[0] for r in rows[1:]) == ["node-1", "node-2", "node-3"]
        for row in rows[1:]:
            assert re.fullmatch(r"\d+m", row[1]) and re.fullmatch(r"\d+%", row[2])
            assert re.fullmatch(r"\d+Mi", row[3]) and int(row[3][:-2]) > 0

        # The spinner, per container, once a window covers its whole run: its CPU is
        # the pod quota's 300m (the idle container's ~0).
        def spinner() -> list[list[str]] | None:
            result = cluster.kubectl("top", "pod", "spinner", "-n", NS, "--containers",
                                     check=False)
            if result.returncode != 0:
                return None
            found = _rows(result.stdout)
            spin = next(r for r in found if r[1] == "spin")
            return found if _millicores(spin[2]) >= 250 else None
        rows = wait_for(spinner, timeout=30, interval=1, what="the spinner's usage")
        assert rows[0] == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
        usage = {r[1]: (_millicores(r[2]), r[3]) for r in rows[1:]}
        assert set(usage) == {"spin", "idle"}
        assert 250 <= usage["spin"][0] <= 330, usage  # the 300m quota, over the window
        assert usage["idle"][0] <= 10, usage
        assert all(re.fullmatch(r"\d+Mi", mem) for _cpu, mem in usage.values())

        # -A lists the demo's pods too; a selector narrows to the spinner.
        every = _rows(cluster.kubectl("top", "pods", "-A").stdout)
        assert every[0] == ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
        listed = {(r[0], r[1]) for r in every[1:]}
        assert (NS, "spinner") in listed
        assert sum(1 for ns, name in listed if ns == "default" and
                   name.startswith("kubia-")) == 3
        selected = _rows(cluster.kubectl("top", "pods", "-n", NS, "-l", "app=spinner"
                                         ).stdout)
        assert [r[0] for r in selected[1:]] == ["spinner"]
        missing = cluster.kubectl("top", "pod", "nope", "-n", NS, check=False)
        assert missing.returncode != 0
        assert f'podmetrics.metrics.k8s.io "{NS}/nope" not found' in missing.stderr
    finally:
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def test_prometheus_metrics(cluster: RunningCluster) -> None:
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    samples = {line.split(" ")[0] for line in text.splitlines() if not line.startswith("#")}

    def has(prefix: str, *labels: str) -> bool:
        return any(s.startswith(prefix) and all(label in s for label in labels)
                   for s in samples)
    assert has("apiserver_request_duration_seconds_bucket{", 'verb="LIST"', 'resource="pods"')
    assert has("apiserver_request_total{", 'verb="GET"', 'code="200"')
    assert has("apiserver_watch_events_total{")
    assert has("miniorch_apiserver_watch_delivery_seconds_count{")
    assert has("workqueue_depth{", 'name="default-scheduler"')
    assert has("workqueue_queue_duration_seconds_bucket{", 'name="default-scheduler"')
    assert has("workqueue_adds_total{", 'name="replication-controller"')
    assert has("controller_runtime_reconcile_time_seconds_count{")
    for phase in ("scheduled", "sandbox", "running", "ready"):
        assert has("miniorch_pod_start_phase_duration_seconds_count{", f'phase="{phase}"'), \
            phase
    assert has("kubelet_pod_start_duration_seconds_count")
