"""One real cluster for the end-to-end suite, started and stopped through the real CLI.

The cluster runs detached (`up --detach`) from a temporary state dir on a free API
port, exactly as a user would start it; every test drives it with the real `miniorch`
CLI (a subprocess), real `kubectl`, or the official Python client. At the end `down`
must leave the machine as it found it: no process, netns, veth, bridge or cgroup.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from miniorch.cluster.machine_lock import ClusterRunningElsewhere, MachineLock
from tests.leakcheck import LeakChecker

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningCluster:
    home: Path
    api_port: int
    dashboard_port: int

    @property
    def kubeconfig(self) -> Path:
        return self.home / "kubeconfig"

    def cli(self, *args: str, check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `python -m miniorch --state-dir HOME ARGS...` and return its result."""
        result = subprocess.run(
            [sys.executable, "-m", "miniorch", "--state-dir", str(self.home), *args],
            capture_output=True, text=True, timeout=timeout, input=input, cwd=ROOT)
        if check and result.returncode != 0:
            raise AssertionError(f"miniorch {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def get_json(self, *args: str) -> Any:
        return json.loads(self.cli("get", *args, "-o", "json").stdout)

    def kubectl(self, *args: str, check: bool = True, timeout: float = 60,
                input: str | None = None, env: dict[str, str] | None = None,
                ) -> subprocess.CompletedProcess[str]:
        cache = self.home / "kubectl-cache"
        result = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(cache), *args],
            capture_output=True, text=True, timeout=timeout, input=input,
            env={**os.environ, **(env or {})})
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    @property
    def pid(self) -> int:
        return int((self.home / "cluster.pid").read_text())


def wait_for(condition: Callable[[], T | None], *, timeout: float = 30.0,
             interval: float = 0.1, what: str = "condition") -> T:
    """Re-check `condition` until it returns something truthy (test-side only)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def _cluster_leftovers() -> dict[str, list[str]]:
    """What a miniorch cluster could leave: its netns, links, bridge, cgroups."""
    links = [n for n in os.listdir("/sys/class/net") if n.startswith("mo-") or n == "miniorch0"]
    try:
        netns = [n for n in os.listdir("/run/netns") if n.startswith("mo-")]
    except FileNotFoundError:
        netns = []
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob("*/miniorch/mo-*") if p.is_dir()]
    cgroups += [str(p) for p in Path("/sys/fs/cgroup").glob("miniorch/mo-*") if p.is_dir()]
    return {k: v for k, v in {"links": links, "netns": netns, "cgroups": cgroups}.items() if v}


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
    if os.geteuid() != 0:
        pytest.skip("the end-to-end suite needs root (namespaces, veths, cgroups)")
    home = tmp_path_factory.mktemp("miniorch-home")
    running = RunningCluster(home=home, api_port=free_port(), dashboard_port=free_port())
    checker = LeakChecker(mount_roots=[home])
    deadline = time.monotonic() + 900
    while True:
        # One cluster per machine: if a developer's cluster runs, wait for it to stop
        # rather than fail (CI has none); one that takes the slot between our look and
        # our `up` is waited for too.
        wait_for(lambda: MachineLock().holder() is None,
                 timeout=max(1.0, deadline - time.monotonic()), interval=1,
                 what="the machine's cluster slot (another miniorch cluster is running)")
        before = _cluster_leftovers()
        assert not before, f"a miniorch cluster is already running on this machine: {before}"
        checker.start()
        # --dns-upstream none: the cluster DNS forwards no name off the machine (a pod's
        # lookup of an outside name is SERVFAIL at once).
        up = running.cli("up", "--detach", "--api-port", str(running.api_port),
                         "--dashboard-port", str(running.dashboard_port),
                         "--dns-upstream", "none", timeout=180, check=False)
        if up.returncode == 0 or "another miniorch cluster is running" not in up.stderr \
                or time.monotonic() > deadline:
            break
    try:
        assert up.returncode == 0, f"up --detach failed:\n{up.stdout}\n{up.stderr}"
        yield running
    finally:
        pid_file = home / "cluster.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        down = running.cli("down", check=False, timeout=180)
        if pid is not None and psutil.pid_exists(pid):
            os.kill(pid, 9)
        assert down.returncode == 0, f"down failed:\n{down.stdout}\n{down.stderr}"
        assert pid is None or not psutil.pid_exists(pid), "the cluster process outlived down"
        # Checked holding the machine's slot: a developer's cluster waiting for it could
        # otherwise start in between, and its bridge would look like our leftover.
        slot = MachineLock()
        try:
            slot.acquire(home)
        except ClusterRunningElsewhere:
            pass  # another cluster took the machine the moment ours left: not ours to judge
        else:
            try:
                assert not _cluster_leftovers(), f"down left: {_cluster_leftovers()}"
                checker.check(timeout=5)
            finally:
                slot.release()
