"""The seed's Kubernetes walkthrough (K1-K18), step by step, with the real CLI.

Tests run in file order against the one session cluster: each step starts from the
state the previous one left, as in the book.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import urllib.request
from typing import Any

import psutil
import pytest

from tests.e2e.conftest import RunningCluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def curl(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return str(response.read().decode())


def demo_url(cluster: RunningCluster) -> str:
    svc = cluster.get_json("svc", "kubia-http")
    ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    return f"http://{ip}:8080"


def running_pods(cluster: RunningCluster, selector: str = "run=kubia") -> list[dict[str, Any]]:
    pods = cluster.get_json("pods", "-l", selector)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")
            and p.get("status", {}).get("phase") == "Running"
            and all(c.get("ready") for c in p["status"].get("containerStatuses", []))]


def test_k1_k3_cluster_info_and_nodes(cluster: RunningCluster) -> None:
    info = cluster.cli("cluster-info").stdout
    assert f"https://127.0.0.1:{cluster.api_port}" in info
    assert f"Dashboard is running at http://127.0.0.1:{cluster.dashboard_port}/" in info
    nodes = cluster.cli("get", "nodes").stdout.splitlines()
    assert nodes[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert sorted(line.split()[0] for line in nodes[1:]) == ["node-1", "node-2", "node-3"]
    assert all(line.split()[1] == "Ready" for line in nodes[1:])


def test_k4_describe_node_shows_real_capacity(cluster: RunningCluster) -> None:
    out = cluster.cli("describe", "node", "node-1").stdout
    for section in ("Capacity:", "Allocatable:", "System Info:", "Kernel Version:"):
        assert section in out
    capacity = out.split("Capacity:", 1)[1].split("Allocatable:", 1)[0]
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1)
                                                for line in capacity.strip().splitlines())}
    assert fields["cpu"] == str(psutil.cpu_count())
    memory_ki = int(fields["memory"].removesuffix("Ki"))
    assert abs(memory_ki * 1024 - psutil.virtual_memory().total) < 1024 * 1024


def test_k7_k17_three_pods_running_spread(cluster: RunningCluster) -> None:
    pods = wait_for(lambda: len(running_pods(cluster)) == 3 and running_pods(cluster),
                    what="3 running kubia pods")
    table = cluster.cli("get", "pods", "-o", "wide").stdout.splitlines()
    assert table[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    # A restarted pod's RESTARTS reads "1 (5s ago)", as kubectl prints it: one column.
    rows = [re.sub(r"(\d+) \((\S+) ago\)", r"\1(\2-ago)", line).split()
            for line in table[1:] if line.startswith("kubia-")]
    assert len(rows) == 3
    assert all(row[1] == "1/1" and row[2] == "Running" for row in rows)
    assert len({row[5] for row in rows}) == 3, "pod IPs must differ"
    assert len({row[6] for row in rows}) >= 2, "replicas must spread over nodes"
    assert {p["metadata"]["name"] for p in pods} == {row[0] for row in rows}


def test_k10_k11_k16_service_balances_over_all_pods(cluster: RunningCluster) -> None:
    svc = cluster.cli("get", "svc", "kubia-http").stdout.splitlines()
    assert svc[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert svc[1].split()[1] == "LoadBalancer"
    assert svc[1].split()[3].startswith("127.0.100.")
    url = demo_url(cluster)
    names = {p["metadata"]["name"] for p in running_pods(cluster)}
    answers = [curl(url) for _ in range(12)]
    assert all(a.startswith("You've hit ") for a in answers)
    assert {a.removeprefix("You've hit ").strip() for a in answers} == names


def test_exec_runs_inside_the_pod(cluster: RunningCluster) -> None:
    pod = running_pods(cluster)[0]["metadata"]["name"]
    assert cluster.cli("exec", pod, "--", "hostname").stdout.strip() == pod
    ps = cluster.cli("exec", pod, "--", "ps", "-o", "pid,comm").stdout
    # Only the pod's own processes: its init, the app, and ps itself.
    assert len(ps.strip().splitlines()) - 1 <= 4, ps
    assert "python" in ps


def test_k13_killed_app_restarts(cluster: RunningCluster) -> None:
    pod = running_pods(cluster)[0]
    name = pod["metadata"]["name"]
    cluster_proc = psutil.Process(cluster.pid)
    ip = pod["status"]["podIP"]
    # Find the app's host PID: a python process of the cluster's tree serving that pod.
    sandbox = (cluster.home / "pods").glob(f"default_{name}_*/sandbox.json")
    import json
    data = json.loads(next(iter(sandbox)).read_text())
    app_pid = int(data["containers"]["kubia"]["pid"])
    assert psutil.Process(app_pid).is_running()
    assert cluster_proc.is_running()
    os.kill(app_pid, signal.SIGKILL)

    def restarted() -> bool:
        status = cluster.get_json("pod", name)["status"]
        cs = status["containerStatuses"][0]
        return bool(cs["restartCount"] == 1 and cs.get("ready"))
    wait_for(restarted, what="restartCount 1 and ready again")
    row = next(r for r in cluster.cli("get", "pods").stdout.splitlines() if r.startswith(name))
    assert row.split()[3] == "1" and row.split()[2] == "Running"
    assert curl(f"http://{ip}:8080").strip() == f"You've hit {name}"


def test_k13_deleted_pod_is_replaced_and_routed(cluster: RunningCluster) -> None:
    before = {p["metadata"]["name"] for p in running_pods(cluster)}
    victim = sorted(before)[0]
    out = cluster.cli("delete", "pod", victim).stdout
    assert f'pod "{victim}" deleted' in out
    after = wait_for(lambda: (lambda names: len(names) == 3 and victim not in names and names)(
        {p["metadata"]["name"] for p in running_pods(cluster)}), what="a replacement pod")
    new = (after - before).pop()
    url = demo_url(cluster)
    wait_for(lambda: any(curl(url).strip() == f"You've hit {new}" for _ in range(6)),
             what="the service routing to the replacement")


def test_k15_scale_up_and_down(cluster: RunningCluster) -> None:
    assert "scaled" in cluster.cli("scale", "rc", "kubia", "--replicas=5").stdout

    def rc_row() -> list[str]:
        rows = cluster.cli("get", "rc").stdout.splitlines()
        return next(r.split() for r in rows if r.startswith("kubia "))
    wait_for(lambda: rc_row()[1:4] == ["5", "5", "5"], what="get rc showing 5 5 5")
    cluster.cli("scale", "rc", "kubia", "--replicas=1")
    wait_for(lambda: rc_row()[1:4] == ["1", "1", "1"] and len(cluster.get_json(
        "pods", "-l", "run=kubia")["items"]) == 1, what="back to one replica")
    cluster.cli("scale", "rc", "kubia", "--replicas=3")
    wait_for(lambda: len(running_pods(cluster)) == 3, what="three replicas again")


def test_k18_describe_pod(cluster: RunningCluster) -> None:
    pod = running_pods(cluster)[0]["metadata"]["name"]
    out = cluster.cli("describe", "pod", pod).stdout
    for field in ("Name:", "Node:", "Start Time:", "Labels:", "run=kubia", "Status:",
                  "Running", "IP:", "Controlled By:", "ReplicationController/kubia",
                  "Containers:", "Conditions:", "Events:", "Scheduled", "Started"):
        assert field in out, f"{field!r} missing from describe:\n{out}"


def test_logs_show_requests(cluster: RunningCluster) -> None:
    pod = running_pods(cluster)[0]
    ip = pod["status"]["podIP"]
    curl(f"http://{ip}:8080")
    logs = cluster.cli("logs", pod["metadata"]["name"]).stdout
    assert "Received request from" in logs


def test_bad_input_changes_nothing(cluster: RunningCluster) -> None:
    before = cluster.get_json("pods")["items"]
    bad = cluster.cli("create", "-f", "-", check=False, input="kind: Pod\nmetadata: [\n")
    assert bad.returncode != 0 and "error" in bad.stderr.lower()
    unknown = cluster.cli("get", "foos", check=False)
    assert unknown.returncode != 0
    assert 'the server doesn\'t have a resource type "foos"' in unknown.stderr
    invalid = cluster.cli("scale", "rc", "kubia", "--replicas=-1", check=False)
    assert invalid.returncode != 0
    missing = cluster.cli("get", "pod", "nope", check=False)
    assert 'Error from server (NotFound): pods "nope" not found' in missing.stderr
    after = cluster.get_json("pods")["items"]
    assert {p["metadata"]["uid"] for p in before} == {p["metadata"]["uid"] for p in after}


def test_unknown_image_reports_errimagepull(cluster: RunningCluster) -> None:
    cluster.cli("run", "ghost", "--image=no-such-image", "--port=8080")
    try:
        def waiting_reason() -> str | None:
            pods = cluster.get_json("pods", "-l", "run=ghost")["items"]
            for p in pods:
                for cs in p.get("status", {}).get("containerStatuses", []):
                    reason = cs.get("state", {}).get("waiting", {}).get("reason")
                    if reason in ("ErrImagePull", "ImagePullBackOff"):
                        return str(reason)
            return None
        wait_for(waiting_reason, what="ErrImagePull")
    finally:
        cluster.cli("delete", "rc", "ghost")
        wait_for(lambda: not cluster.get_json("pods", "-l", "run=ghost")["items"],
                 what="ghost pods gone")


def test_cluster_survives_kill_9_and_restores(cluster: RunningCluster) -> None:
    """kill -9 of the cluster process: the next `up` cleans up and restores objects."""
    rc_uid = cluster.get_json("rc", "kubia")["metadata"]["uid"]
    os.kill(cluster.pid, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(cluster.pid) or
             psutil.Process(cluster.pid).status() == psutil.STATUS_ZOMBIE,
             what="the cluster process to die")
    up = cluster.cli("up", "--detach", "--api-port", str(cluster.api_port),
                     "--dashboard-port", str(cluster.dashboard_port), timeout=180)
    assert "curl" in up.stdout or "ready" in up.stdout.lower()
    assert cluster.get_json("rc", "kubia")["metadata"]["uid"] == rc_uid
    wait_for(lambda: len(running_pods(cluster)) == 3, what="3 pods after the restart")
    names = {p["metadata"]["name"] for p in running_pods(cluster)}
    answers = {curl(demo_url(cluster)).removeprefix("You've hit ").strip() for _ in range(12)}
    assert answers <= names and answers
    # No process of the dead cluster's sandboxes survived next to the new ones.
    ps = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert len([line for line in ps.splitlines() if line.startswith("mo")]) == 3
