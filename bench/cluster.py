"""Start and stop real clusters for the bench, one at a time on this machine.

Only one miniorch cluster can run on a machine (fixed bridge, pod CIDR, LB pool),
and `up` removes whatever it takes for leftovers — so before each `up` the bench
waits until no bridge `miniorch0` exists and no other `miniorch ... up` process runs
(other people's e2e suites may hold the slot); it never stops anything it did not start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
BRIDGE = "miniorch0"
LB_URL = "http://127.0.100.1:8080/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_taken(host: str, port: int) -> bool:
    with socket.socket() as s:
        # Connections of a cluster that just stopped linger in TIME_WAIT: they do not
        # make the port taken (the proxy binds with SO_REUSEADDR too).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _other_cluster_running() -> bool:
    """Any sign of another cluster: the bridge, pod netns, the LB address bound, or an
    `up` process (in-process test clusters show only the first three)."""
    if Path(f"/sys/class/net/{BRIDGE}").exists() or _port_taken("127.0.100.1", 8080):
        return True
    netns = Path("/run/netns")
    if netns.is_dir() and any(p.name.startswith("mo-") for p in netns.iterdir()):
        return True
    me = os.getpid()
    for proc in psutil.process_iter(["pid", "cmdline", "uids"]):
        cmd = proc.info["cmdline"] or []
        # A rootless cluster (another uid) has no bridge and its own ranges: no clash.
        same_user = proc.info["uids"] is not None and proc.info["uids"].real == os.getuid()
        if proc.info["pid"] != me and same_user and "miniorch" in cmd and "up" in cmd:
            return True
    return False


def wait_for_slot(*, timeout: float = 900.0, say: object = print) -> None:
    deadline = time.monotonic() + timeout
    told = False
    while _other_cluster_running():
        if not told:
            print("another miniorch cluster runs on this machine; waiting for it to stop",
                  file=sys.stderr, flush=True)
            told = True
        if time.monotonic() > deadline:
            raise RuntimeError("no free cluster slot (bridge miniorch0 stays up)")
        time.sleep(1.0)


@dataclass
class BenchCluster:
    home: Path
    api_port: int

    @property
    def kubeconfig(self) -> Path:
        return self.home / "kubeconfig"

    @property
    def pid(self) -> int:
        return int((self.home / "cluster.pid").read_text())

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "miniorch", "--state-dir", str(self.home), *args]

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.command(*args), capture_output=True, text=True,
                                timeout=timeout, cwd=ROOT)
        if result.returncode != 0:
            raise RuntimeError(f"miniorch {' '.join(args)} failed:\n{result.stdout}\n"
                               f"{result.stderr}\n(log: {self.home / 'cluster.log'})")
        return result

    def up_args(self, *, demo: bool) -> list[str]:
        args = ["up", "--detach", "--api-port", str(self.api_port), "--dashboard-port", "0"]
        return args if demo else [*args, "--no-demo"]

    def start_up(self, *, demo: bool) -> subprocess.Popen[str]:
        """Launch `up --detach` (the caller times it); the slot must be free."""
        wait_for_slot()
        return subprocess.Popen(self.command(*self.up_args(demo=demo)), cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def down(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.cli("down", timeout=120)

    def forget_objects(self) -> None:
        """Drop the store and pod dirs but keep images and TLS: a fresh cluster with a
        warm image cache."""
        for name in ("store.db", "store.db-wal", "store.db-shm"):
            (self.home / name).unlink(missing_ok=True)
        shutil.rmtree(self.home / "pods", ignore_errors=True)


@contextlib.contextmanager
def running(home: Path, *, demo: bool) -> Iterator[BenchCluster]:
    """A cluster up for the duration of the block (down even on failure)."""
    cluster = BenchCluster(home, free_port())
    proc = cluster.start_up(demo=demo)
    out, err = proc.communicate(timeout=300)
    if proc.returncode != 0:
        cluster.down()
        raise RuntimeError(f"up failed: {out}\n{err}")
    try:
        yield cluster
    finally:
        cluster.down()
