"""The cluster's lifecycle as a user drives it: Ctrl-C of a foreground `up`, a busy
API port, a second `up` on the same machine. Each test needs the machine's single
cluster slot (the e2e package's cluster is gone by the time these run) and checks
that nothing is left behind: no process, netns, veth, bridge or cgroup.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from miniorch.cluster.machine_lock import MachineLock
from tests.e2e.conftest import ROOT, _cluster_leftovers, free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def miniorch(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "miniorch", "--state-dir", str(home), *args]


@pytest.fixture
def slot(tmp_path: Path) -> Iterator[Path]:
    """A state dir, with the machine's cluster slot free before and after the test."""
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, veths, cgroups)")
    wait_for(lambda: MachineLock().holder() is None, timeout=900, interval=1,
             what="the machine's cluster slot")
    assert not _cluster_leftovers()
    home = tmp_path / "home"
    yield home
    pid_file = home / "cluster.pid"
    if pid_file.exists():  # a failed test: stop what it started, by its pid
        subprocess.run(miniorch(home, "down"), capture_output=True, timeout=120, cwd=ROOT)
    wait_for(lambda: not _cluster_leftovers(), timeout=10, what="no leftovers")


def test_ctrl_c_of_a_foreground_up_stops_everything(slot: Path) -> None:
    with subprocess.Popen(miniorch(slot, "up", "--no-demo", "--api-port", str(free_port())),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          cwd=ROOT) as proc:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if "kubectl get pods" in line:  # the last line `up` prints once Ready
                break
        else:
            pytest.fail("up ended before it was ready:\n" + "".join(seen))
        assert any("nodes Ready" in line for line in seen)
        assert "miniorch0" in _cluster_leftovers().get("links", [])
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert proc.wait(timeout=60) in (0, 130)
    wait_for(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE
                             for c in children), timeout=10, what="every child process gone")
    assert not _cluster_leftovers()
    assert not (slot / "cluster.pid").exists()
    assert MachineLock().holder() is None


@pytest.mark.parametrize("which", ["api", "dashboard"])
def test_a_busy_port_is_a_clear_error_and_leaves_nothing(slot: Path, which: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"api": str(free_port()), "dashboard": str(free_port()), which: str(port)}
        result = subprocess.run(miniorch(slot, "up", "--detach", "--no-demo",
                                         "--api-port", ports["api"],
                                         "--dashboard-port", ports["dashboard"]),
                                capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode != 0
    assert str(port) in result.stderr and "error" in result.stderr.lower(), result.stderr
    assert f"--{which}-port" in result.stderr, result.stderr  # says how to move it
    assert not (slot / "dashboard.url").exists()
    wait_for(lambda: not _cluster_leftovers(), timeout=10, what="no leftovers")
    wait_for(lambda: MachineLock().holder() is None, timeout=10, what="the slot released")


def test_second_cluster_on_the_machine_is_refused(slot: Path, tmp_path: Path) -> None:
    first = subprocess.run(miniorch(slot, "up", "--detach", "--no-demo",
                                    "--api-port", str(free_port())),
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    try:
        other = tmp_path / "other"
        second = subprocess.run(miniorch(other, "up", "--detach", "--no-demo",
                                         "--api-port", str(free_port())),
                                capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert second.returncode == 1
        assert "another miniorch cluster is running on this machine" in second.stderr
        assert str(slot) in second.stderr
        # The first cluster was not disturbed: its nodes are still Ready.
        nodes = subprocess.run(miniorch(slot, "get", "nodes"), capture_output=True,
                               text=True, timeout=60, cwd=ROOT).stdout
        assert nodes.count(" Ready ") == 3, nodes
    finally:
        down = subprocess.run(miniorch(slot, "down"), capture_output=True, text=True,
                              timeout=120, cwd=ROOT)
    assert down.returncode == 0, down.stderr
    assert not _cluster_leftovers()
