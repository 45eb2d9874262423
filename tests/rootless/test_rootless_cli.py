"""`up` without root: the real CLI run as `nobody`, from the root test process.

The cluster gets its own API port, LoadBalancer pool, ClusterIP range and NodePort
range (`up --lb-cidr/--service-cidr/--node-port-range`), so it can run beside the root
clusters other tests start (a rootless cluster has no bridge and takes the per-user
lock, not the machine's). Everything it starts is in the detached cluster's session;
whatever is left at the end is killed by PID and fails the test.

The unprivileged user needs an interpreter it may execute: the venv's points into
/root, so the system's python of the same minor version runs the repo and the venv's
site-packages through PYTHONPATH. Skips (with the reason) when that is not possible or
when the kernel refuses unprivileged user namespaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534
T = TypeVar("T")


def _site_packages() -> str:
    return next(p for p in sys.path if p.endswith("site-packages") and ".venv" in p)


def _interpreter() -> str | None:
    minor = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (f"/usr/bin/{minor}", f"/usr/local/bin/{minor}"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _as_nobody(home: Path) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--",
            "env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}", f"MINIORCH_HOME={home / 'mo'}",
            f"PYTHONPATH={ROOT}:{_site_packages()}"]


def _skip_reason(tmp: Path) -> str | None:
    if os.geteuid() != 0:
        return "needs root to switch to an unprivileged user"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    python = _interpreter()
    if python is None:
        return "no system python of this minor version for the unprivileged user"
    probe = subprocess.run([*_as_nobody(tmp), python, "-c", "import aiohttp, miniorch"],
                           capture_output=True, text=True, timeout=60, check=False)
    if probe.returncode != 0:
        return f"the unprivileged user cannot import miniorch: {probe.stderr.strip()[-300:]}"
    trial = subprocess.run([*_as_nobody(tmp), python, "-I", "-S", "-c",
                            "import ctypes,sys;sys.exit(ctypes.CDLL(None,use_errno=True)"
                            ".unshare(0x10000000|0x40000000)!=0)"],
                           capture_output=True, timeout=30, check=False)
    if trial.returncode != 0:
        return "unprivileged user namespaces are disabled on this machine"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], T | None], *, timeout: float = 30.0,
             what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass
class RootlessCluster:
    home: Path
    python: str
    lb_prefix: str
    started: float = 0.0

    def cli(self, *args: str, check: bool = True, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*_as_nobody(self.home), self.python, "-m", "miniorch",
                                 *args], capture_output=True, text=True, timeout=timeout,
                                check=False, cwd="/")
        if check and result.returncode != 0:
            raise AssertionError(f"miniorch {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.cli("get", "pods", "-o", "json").stdout
                                                 )["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def ready_pods(self) -> list[str]:
        names = []
        for pod in self.pods():
            conditions = pod.get("status", {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                names.append(pod["metadata"]["name"])
        return sorted(names)

    @property
    def pid(self) -> int | None:
        try:
            return int((self.home / "mo" / "cluster.pid").read_text())
        except (OSError, ValueError):
            return None

    def curl(self, url: str) -> str:
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())


def _session_processes(sid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.info["uids"] and proc.info["uids"].real == NOBODY \
                    and os.getsid(proc.pid) == sid:
                found.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return found


@pytest.fixture
def nobody_home() -> Iterator[Path]:
    # Not under pytest's basetemp: that is root's (0700), and concurrent pytest runs of
    # other tests prune old basetemps while this one may still be running.
    base = Path(tempfile.mkdtemp(prefix="miniorch-rootless-"))
    try:
        base.chmod(0o755)
        os.chown(base, NOBODY, NOBODY)
        reason = _skip_reason(base)
        if reason:
            pytest.skip(reason)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def start(home: Path, *extra: str) -> Iterator[tuple[RootlessCluster, str]]:
    """`up --detach` as nobody (yields the cluster and what `up` printed); `down` at
    the end must leave no process of the cluster's session; any left is killed by PID."""
    python = _interpreter()
    assert python is not None
    lb_octet = random.randint(150, 199)
    cluster = RootlessCluster(home=home, python=python, lb_prefix=f"127.0.{lb_octet}.")
    node_low = random.randrange(41000, 49000, 1000)
    cluster.started = time.monotonic()
    sid: int | None = None
    try:
        up = cluster.cli("up", "--detach", "--api-port", str(_free_port()),
                         "--dashboard-port", "0", "--lb-cidr", f"127.0.{lb_octet}.0/24",
                         "--service-cidr", f"127.0.{lb_octet + 50}.0/24",
                         "--node-port-range", f"{node_low}-{node_low + 999}", *extra,
                         timeout=120)
        sid = cluster.pid  # the detached cluster is a session leader
        yield cluster, up.stdout
        down = cluster.cli("down", timeout=120)
        assert "cluster stopped" in down.stdout
        assert sid is not None
        session: int = sid
        wait_for(lambda: not _session_processes(session), timeout=10,
                 what="no process left by the cluster after down")
    finally:
        sid = sid or cluster.pid
        if sid is not None:
            if psutil.pid_exists(sid):
                cluster.cli("down", check=False, timeout=120)
            for proc in _session_processes(sid):
                proc.kill()


def _exactly(names: list[str], count: int) -> list[str] | None:
    return names if len(names) == count else None


def _hostnames(cluster: RootlessCluster, url: str, count: int) -> set[str]:
    return {cluster.curl(url).strip().removeprefix("You've hit ") for _ in range(count)}


def test_userns_mode_runs_the_walkthrough(nobody_home: Path) -> None:
    with start(nobody_home) as (cluster, output):
        elapsed = time.monotonic() - cluster.started
        assert "rootless mode: user namespaces" in output
        assert "no cgroup limits" in output
        url = f"http://{cluster.lb_prefix}1:8080"
        assert f"curl {url}" in output
        pods = wait_for(lambda: _exactly(cluster.ready_pods(), 3), what="3 Ready pods")
        table = cluster.cli("get", "pods", "-o", "wide").stdout
        assert table.count("1/1     Running") == 3, table
        # Round-robin over every replica, through the pods' shims (no veth, no root).
        assert _hostnames(cluster, url, 12) == set(pods)

        pod = pods[0]
        assert cluster.cli("exec", pod, "--", "hostname").stdout.strip() == pod
        ps = cluster.cli("exec", pod, "--", "ps", "-e", "-o", "pid=,comm=").stdout.split("\n")
        assert len([line for line in ps if line.strip()]) <= 4, ps  # init, app, ps (+sh)
        links = cluster.cli("exec", pod, "--", "cat", "/proc/net/dev").stdout
        assert [line.split(":")[0].strip() for line in links.splitlines()[2:]] == ["lo"]
        assert cluster.cli("exec", pod, "--", "id", "-u").stdout.strip() == "0"
        assert "Kubia server starting" in cluster.cli("logs", pod).stdout

        cluster.cli("delete", "pod", pod)
        replaced = wait_for(lambda: _exactly([p for p in cluster.ready_pods() if p != pod], 3),
                            what="a replacement pod")
        assert _hostnames(cluster, url, 12) == set(replaced)

        # kill -9 of an app from the host: the container restarts (a fresh writable
        # layer, though overlayfs left a mode-000 work dir in the old one).
        victim = replaced[0]
        state = json.loads(next((cluster.home / "mo" / "pods").glob(
            f"default_{victim}_*/sandbox.json")).read_text())
        os.kill(int(state["containers"]["kubia"]["pid"]), 9)

        def restarted() -> bool:
            pod = next(p for p in cluster.pods() if p["metadata"]["name"] == victim)
            status = pod["status"]["containerStatuses"][0]
            return bool(status["restartCount"] == 1 and status["ready"])
        wait_for(restarted, timeout=40, what="the killed container to restart")

        cluster.cli("scale", "rc", "kubia", "--replicas=1")
        wait_for(lambda: len(cluster.ready_pods()) == 1 and len(cluster.pods()) == 1,
                 what="scale down to 1")
        print(f"rootless up --detach took {elapsed:.2f}s")


def test_plain_mode_warns_and_still_serves(nobody_home: Path) -> None:
    with start(nobody_home, "--sandbox-mode", "plain") as (cluster, output):
        assert "WARNING: isolation is OFF" in output
        url = f"http://{cluster.lb_prefix}1:8080"
        wait_for(lambda: len(cluster.ready_pods()) == 3, what="3 Ready pods")
        # Each replica binds its own loopback alias (MINIORCH_POD_IP): all three serve.
        ips = {p["status"]["podIP"] for p in cluster.pods()}
        assert all(ip.startswith("127.244.") for ip in ips) and len(ips) == 3
        for _ in range(6):
            assert cluster.curl(url).startswith("You've hit ")
        served = [p["metadata"]["name"] for p in cluster.pods()
                  if "Received request" in cluster.cli("logs", p["metadata"]["name"]).stdout]
        assert len(served) == 3
