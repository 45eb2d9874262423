"""`up --hollow-nodes`: a real cluster (one real node) with three hollow nodes, a
Deployment of 30 replicas applied with the real kubectl runs on the hollow nodes only.

Its own cluster (not the e2e package's: that one has no hollow nodes), started and
stopped through the real CLI, leaving nothing behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miniorch.cluster.machine_lock import ClusterRunningElsewhere, MachineLock
from tests.e2e.conftest import ROOT, _cluster_leftovers, free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "hollow-web", "namespace": "default"},
    "spec": {"replicas": 30, "selector": {"matchLabels": {"app": "hollow-web"}},
             "template": {"metadata": {"labels": {"app": "hollow-web"}}, "spec": {
                 "nodeSelector": {"miniorch.io/hollow": "true"},
                 "tolerations": [{"key": "miniorch.io/hollow", "operator": "Exists",
                                  "effect": "NoSchedule"}],
                 "containers": [{"name": "web", "image": "nginx:1.27"}]}}},
}


def miniorch(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "miniorch", "--state-dir", str(home), *args]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root (the real node's sandboxes)")
    wait_for(lambda: MachineLock().holder() is None, timeout=900, interval=1,
             what="the machine's cluster slot")
    home = tmp_path / "home"
    yield home
    if (home / "cluster.pid").exists():  # a failed test: stop what it started
        subprocess.run(miniorch(home, "down"), capture_output=True, timeout=120, cwd=ROOT)
    # Checked holding the slot: another cluster may take the machine the moment ours
    # left, and its bridge is not our leftover.
    slot = MachineLock()
    try:
        slot.acquire(home)
    except ClusterRunningElsewhere:
        return
    try:
        wait_for(lambda: not _cluster_leftovers(), timeout=10,
                 what=f"no leftovers ({_cluster_leftovers()})")
    finally:
        slot.release()


def test_deployment_runs_on_hollow_nodes(home: Path) -> None:
    up = subprocess.run(miniorch(home, "up", "--detach", "--no-demo", "--nodes", "1",
                                 "--hollow-nodes", "3", "--hollow-profile",
                                 "start=0-0.3,ready=0-0.2,seed=1",
                                 "--api-port", str(free_port()), "--dashboard-port", "0",
                                 "--dns-upstream", "none"),
                        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "3 hollow nodes Ready" in up.stdout

    def kubectl(*args: str, input: str | None = None) -> str:
        result = subprocess.run(["kubectl", "--kubeconfig", str(home / "kubeconfig"),
                                 "--cache-dir", str(home / "kubectl-cache"), *args],
                                capture_output=True, text=True, timeout=60, input=input)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    hollow = {n["metadata"]["name"] for n in nodes
              if n["metadata"]["labels"].get("miniorch.io/hollow") == "true"}
    assert hollow == {"hollow-node-1", "hollow-node-2", "hollow-node-3"}
    assert len(nodes) == 4
    kubectl("apply", "-f", "-", input=json.dumps(DEPLOYMENT))

    def running() -> list[dict[str, Any]] | None:
        pods = json.loads(kubectl("get", "pods", "-l", "app=hollow-web", "-o", "json"))["items"]
        ok = [p for p in pods if p["status"].get("phase") == "Running" and any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])]
        return pods if len(ok) == 30 == len(pods) else None
    pods = wait_for(running, timeout=60, interval=0.5, what="30 Ready pods")
    assert {p["spec"]["nodeName"] for p in pods} == hollow  # spread over all three
    assert len({p["status"]["podIP"] for p in pods}) == 30
    wait_for(lambda: '"availableReplicas":30' in kubectl(
        "get", "deployment", "hollow-web", "-o", "jsonpath={.status}").replace(" ", ""),
        timeout=30, what="the Deployment available")
    down = subprocess.run(miniorch(home, "down"), capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert down.returncode == 0, down.stdout + down.stderr
