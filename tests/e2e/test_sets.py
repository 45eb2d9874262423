"""DaemonSet and StatefulSet with the real kubectl 1.32 against a real 3-node cluster
(Kubernetes in Action, chapters 4 and 10): one daemon pod per node; `web-0..2`
created in order, stable hostnames, a deleted pod back under its name, scale-down
from the highest ordinal."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import RunningCluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]

NS = f"sets-{os.urandom(3).hex()}"

DAEMON_SET = """\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: sleeper
spec:
  selector:
    matchLabels:
      app: sleeper
  template:
    metadata:
      labels:
        app: sleeper
    spec:
      containers:
      - name: main
        image: busybox
        command: ["sleep", "3600"]
"""

STATEFUL_SET = """\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: None
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: kubia
        image: kubia
        ports:
        - containerPort: 8080
"""


def kubectl(cluster: RunningCluster, *args: str, check: bool = True,
            input: str | None = None) -> str:
    return cluster.kubectl("-n", NS, *args, check=check, input=input).stdout


def pods(cluster: RunningCluster, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(kubectl(cluster, "get", "pods", "-l", selector,
                                                     "-o", "json"))["items"]
    return items


def running_ready(pod: dict[str, Any]) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return (not pod["metadata"].get("deletionTimestamp")
            and pod.get("status", {}).get("phase") == "Running"
            and bool(statuses) and all(c.get("ready") for c in statuses))


@pytest.fixture(scope="module")
def ns(cluster: RunningCluster) -> Iterator[str]:
    cluster.kubectl("create", "namespace", NS)
    try:
        yield NS
    finally:
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def test_daemon_set_runs_one_pod_per_node(cluster: RunningCluster, ns: str) -> None:
    assert kubectl(cluster, "apply", "-f", "-", input=DAEMON_SET).strip() == \
        "daemonset.apps/sleeper created"

    def spread() -> list[str] | None:
        nodes = sorted(p["spec"].get("nodeName", "") for p in pods(cluster, "app=sleeper")
                       if running_ready(p))
        return nodes if len(nodes) == 3 and len(set(nodes)) == 3 else None
    nodes = wait_for(spread, timeout=90, what="a running daemon pod on each of the 3 nodes")
    node_names = sorted(json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)
                        ["items"], key=lambda n: n["metadata"]["name"])
    assert nodes == [n["metadata"]["name"] for n in node_names]
    wide = kubectl(cluster, "get", "pods", "-o", "wide", "-l", "app=sleeper").splitlines()
    assert wide[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert sorted(line.split()[6] for line in wide[1:]) == nodes

    def ds_line() -> list[str] | None:
        lines = kubectl(cluster, "get", "ds").splitlines()
        row = lines[1].split()
        return lines if row[1:6] == ["3", "3", "3", "3", "3"] else None
    lines = wait_for(ds_line, timeout=30, what="kubectl get ds to show 3 ready")
    assert lines[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE",
                                "AVAILABLE", "NODE", "SELECTOR", "AGE"]
    assert lines[1].split()[:7] == ["sleeper", "3", "3", "3", "3", "3", "<none>"]
    wide_ds = kubectl(cluster, "get", "ds", "-o", "wide").splitlines()
    assert wide_ds[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide_ds[1].split()[-3:] == ["main", "busybox", "app=sleeper"]
    history = kubectl(cluster, "rollout", "history", "ds/sleeper")
    assert history.split()[:5] == ["daemonset.apps/sleeper", "REVISION", "CHANGE-CAUSE", "1",
                                   "<none>"]
    assert kubectl(cluster, "delete", "ds", "sleeper").strip() == \
        'daemonset.apps "sleeper" deleted'
    wait_for(lambda: not pods(cluster, "app=sleeper"), timeout=60,
             what="the daemon pods to go with their DaemonSet")


def test_stateful_set_identity_order_and_scale_down(cluster: RunningCluster,
                                                    ns: str) -> None:
    assert kubectl(cluster, "apply", "-f", "-", input=STATEFUL_SET).split("\n")[:2] == [
        "service/web created", "statefulset.apps/web created"]

    def all_ready() -> list[dict[str, Any]] | None:
        found = [p for p in pods(cluster, "app=web") if running_ready(p)]
        return found if len(found) == 3 else None
    found = wait_for(all_ready, timeout=120, what="web-0, web-1, web-2 running and ready")
    assert sorted(p["metadata"]["name"] for p in found) == ["web-0", "web-1", "web-2"]
    by_name = {p["metadata"]["name"]: p for p in found}
    # Ordered: each pod was created only once the previous one was Running and Ready.
    for lower, higher in (("web-0", "web-1"), ("web-1", "web-2")):
        ready_at = next(c["lastTransitionTime"] for c in by_name[lower]["status"]["conditions"]
                        if c["type"] == "Ready")
        assert by_name[higher]["metadata"]["creationTimestamp"] >= ready_at
    lines = kubectl(cluster, "get", "sts").splitlines()
    assert lines[0].split() == ["NAME", "READY", "AGE"]
    assert lines[1].split()[:2] == ["web", "3/3"]
    assert kubectl(cluster, "exec", "web-1", "--", "hostname").strip() == "web-1"

    old_uid = by_name["web-1"]["metadata"]["uid"]
    assert kubectl(cluster, "delete", "pod", "web-1").strip() == 'pod "web-1" deleted'

    def back() -> bool:
        pod = next((p for p in pods(cluster, "app=web")
                    if p["metadata"]["name"] == "web-1"), None)
        return pod is not None and pod["metadata"]["uid"] != old_uid and running_ready(pod)
    wait_for(back, timeout=90, what="web-1 to come back as web-1")
    assert kubectl(cluster, "exec", "web-1", "--", "hostname").strip() == "web-1"

    assert kubectl(cluster, "scale", "sts", "web", "--replicas=1").strip() == \
        "statefulset.apps/web scaled"
    seen: list[list[str]] = []

    def scaled() -> bool:
        names = sorted(p["metadata"]["name"] for p in pods(cluster, "app=web")
                       if not p["metadata"].get("deletionTimestamp"))
        if not seen or seen[-1] != names:
            seen.append(names)
        return names == ["web-0"] and not [p for p in pods(cluster, "app=web")
                                           if p["metadata"]["name"] != "web-0"]
    wait_for(scaled, timeout=90, interval=0.05, what="scale down to web-0")
    # web-2 went first: no moment had web-2 without web-1.
    assert ["web-0", "web-2"] not in seen, seen
    assert kubectl(cluster, "delete", "sts", "web").strip() == 'statefulset.apps "web" deleted'
