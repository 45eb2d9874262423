"""Deployments with the real kubectl 1.32 against the real cluster (Kubernetes in Action,
chapter 9): create, expose, rolling update under load, history, undo, restart,
pause/resume, scale, and deletion of everything the Deployment made.

The tests run in order in their own namespace and build on one another (one
Deployment `kubia`); each step checks what a real cluster prints.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import RunningCluster, wait_for
from tests.e2e.test_kubectl import Kubectl, ready_pods, table

pytestmark = [pytest.mark.e2e, pytest.mark.root]

NS = f"dp-{os.urandom(3).hex()}"


class K(Kubectl):
    def __call__(self, *args: str, check: bool = True, timeout: float = 60,
                 input: str | None = None, env: dict[str, str] | None = None) -> Any:
        return self.cluster.kubectl("-n", NS, *args, check=check, timeout=timeout,
                                    input=input, env=env)


def curl(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


@pytest.fixture(scope="module")
def k(cluster: RunningCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[K]:
    kubectl = K(cluster, tmp_path_factory.mktemp("deployments"))
    assert cluster.kubectl("create", "namespace", NS).stdout.strip() == f"namespace/{NS} created"
    try:
        yield kubectl
    finally:
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def replica_sets(k: K) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = k.json("get", "rs", "-l", "app=kubia")["items"]
    return items


def rollout_status(k: K) -> None:
    out = k.out("rollout", "status", "deployment/kubia", "--timeout=180s")
    assert out.strip().splitlines()[-1] == 'deployment "kubia" successfully rolled out'


def images(k: K) -> set[str]:
    return {p["spec"]["containers"][0]["image"] for p in ready_pods(k, "app=kubia")}


@pytest.fixture(scope="module")
def lb_ip(k: K) -> str:
    out = k.out("create", "deployment", "kubia", "--image=kubia", "--replicas=3")
    assert out.strip() == "deployment.apps/kubia created"
    wait_for(lambda: len(ready_pods(k, "app=kubia")) == 3, timeout=90, what="3 kubia pods")
    assert k.out("expose", "deployment", "kubia", "--type=LoadBalancer",
                 "--port=8080").strip() == "service/kubia exposed"

    def external_ip() -> str | None:
        row = table(k.out("get", "svc", "kubia"))[1]
        return row[3] if row[3].startswith("127.0.100.") else None
    ip: str = wait_for(external_ip, what="an EXTERNAL-IP")
    return ip


def test_create_expose_and_curl(k: K, lb_ip: str) -> None:
    pods = {p["metadata"]["name"] for p in ready_pods(k, "app=kubia")}
    [rs] = replica_sets(k)
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert all(name.startswith(f"kubia-{pod_hash}-") for name in pods)

    def answered_by_all() -> bool:
        hits = {curl(f"http://{lb_ip}:8080").removeprefix("You've hit ").strip()
                for _ in range(15)}
        return hits == pods
    wait_for(answered_by_all, timeout=30, what="the LoadBalancer answering from 3 pods")


def test_get_deploy_rs_columns(k: K, lb_ip: str) -> None:
    wait_for(lambda: "3/3" in k.out("get", "deploy"), what="3/3 ready")
    rows = table(k.out("get", "deploy,rs"))
    [rs] = replica_sets(k)
    name = rs["metadata"]["name"]
    assert rows[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert rows[1][:4] == ["deployment.apps/kubia", "3/3", "3", "3"]
    assert rows[3] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert rows[4][:4] == [f"replicaset.apps/{name}", "3", "3", "3"]
    wide = table(k.out("get", "deploy", "-o", "wide"))
    assert wide[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS",
                       "IMAGES", "SELECTOR"]
    assert wide[1][5:] == ["kubia", "kubia", "app=kubia"]


def test_rolling_update_keeps_answering(cluster: RunningCluster, k: K, lb_ip: str) -> None:
    cluster.cli("image", "tag", "kubia", "kubia:v2")
    answers: list[float] = []
    failures: list[float] = []
    stop = threading.Event()

    def load() -> None:
        # Bounded: at most 600 requests, only to the cluster's loopback LB address.
        for _ in range(600):
            if stop.is_set():
                return
            try:
                curl(f"http://{lb_ip}:8080", timeout=1.0)
                answers.append(time.monotonic())
            except OSError:
                failures.append(time.monotonic())
            time.sleep(0.1)
    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        assert k.out("set", "image", "deployment/kubia", "kubia=kubia:v2").strip() == \
            "deployment.apps/kubia image updated"
        rollout_status(k)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert images(k) == {"kubia:v2"}
    assert answers, "no answer during the rollout"
    assert len(failures) <= max(2, len(answers) // 10), (len(failures), len(answers))
    gaps = [b - a for a, b in itertools.pairwise(answers)]
    assert max(gaps, default=0) < 5.0
    rows = table(k.out("rollout", "history", "deployment/kubia"))
    assert rows[0] == ["deployment.apps/kubia"]
    assert rows[1] == ["REVISION", "CHANGE-CAUSE"]
    assert rows[2:] == [["1", "<none>"], ["2", "<none>"]]
    d = k.json("get", "deploy", "kubia")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    conditions = {c["type"]: c["reason"] for c in d["status"]["conditions"]}
    assert conditions == {"Available": "MinimumReplicasAvailable",
                          "Progressing": "NewReplicaSetAvailable"}
    events = k.out("get", "events", "--field-selector", "reason=ScalingReplicaSet")
    assert "Scaled up replica set kubia-" in events and "Scaled down replica set" in events


def test_rollout_undo_reuses_the_first_replica_set(k: K, lb_ip: str) -> None:
    before = {rs["metadata"]["name"] for rs in replica_sets(k)}
    assert k.out("rollout", "undo", "deployment/kubia").strip() == \
        "deployment.apps/kubia rolled back"
    rollout_status(k)
    wait_for(lambda: images(k) == {"kubia"} and len(ready_pods(k, "app=kubia")) == 3,
             timeout=60, what="the old image back")
    assert {rs["metadata"]["name"] for rs in replica_sets(k)} == before
    rows = table(k.out("rollout", "history", "deployment/kubia"))
    assert [r[0] for r in rows[2:]] == ["2", "3"]


def test_rollout_restart(k: K, lb_ip: str) -> None:
    old = {p["metadata"]["name"] for p in ready_pods(k, "app=kubia")}
    assert k.out("rollout", "restart", "deployment/kubia").strip() == \
        "deployment.apps/kubia restarted"
    rollout_status(k)
    wait_for(lambda: len(ready_pods(k, "app=kubia")) == 3, timeout=60, what="3 pods")
    assert not old & {p["metadata"]["name"] for p in ready_pods(k, "app=kubia")}
    template = k.json("get", "deploy", "kubia")["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]


def test_pause_and_resume(k: K, lb_ip: str) -> None:
    assert k.out("rollout", "pause", "deployment/kubia").strip() == \
        "deployment.apps/kubia paused"
    count = len(replica_sets(k))
    k("set", "image", "deployment/kubia", "kubia=kubia:v2")
    time.sleep(2)
    assert len(replica_sets(k)) == count  # paused: no new ReplicaSet
    assert images(k) == {"kubia"}
    assert k.out("rollout", "resume", "deployment/kubia").strip() == \
        "deployment.apps/kubia resumed"
    rollout_status(k)
    wait_for(lambda: images(k) == {"kubia:v2"} and len(ready_pods(k, "app=kubia")) == 3,
             timeout=60, what="the resumed rollout")


def test_scale(k: K, lb_ip: str) -> None:
    assert k.out("scale", "deployment", "kubia", "--replicas=2").strip() == \
        "deployment.apps/kubia scaled"
    wait_for(lambda: len(ready_pods(k, "app=kubia")) == 2 and
             table(k.out("get", "deploy", "kubia"))[1][1] == "2/2", timeout=60,
             what="2 replicas")


def test_delete_removes_replica_sets_and_pods(k: K, lb_ip: str) -> None:
    assert k.out("delete", "deployment", "kubia").strip() == 'deployment.apps "kubia" deleted'
    wait_for(lambda: not replica_sets(k) and not k.json(
        "get", "pods", "-l", "app=kubia")["items"], timeout=90,
        what="the garbage collector removing ReplicaSets and pods")
    k("delete", "svc", "kubia")
