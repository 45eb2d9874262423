"""Start-up timings: `up` (bare cluster Ready, demo answering curl, the detached
command itself), and single commands against their peers measured in the same run.

cold: the first `up` in a fresh state dir (builds the kubia image into a new store).
warm: later `up`s after `down` with the store removed but images kept, so each is a
fresh cluster with a warm image cache. Times are wall-clock from launching the CLI.

commands (no cluster): `version --client` against `python -c pass` (the interpreter's
own start is the floor), and `container run --rm busybox true` against `podman run
--rm --runtime=runc` of the same image, copied from miniorch's OCI store into podman's
with `skopeo copy oci:... containers-storage:...` (and removed afterwards). Each pair
runs in turn, A B A B ..., and the ratio is taken pair by pair (`stats.paired`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.cluster import LB_URL, ROOT, BenchCluster, free_port
from bench.stats import paired

PODMAN_RUN = ["podman", "run", "--rm", "--runtime=runc", "--ulimit", "nofile=1024:1024",
              "--ulimit", "nproc=1024:1024"]
"""The peer: podman with runc (the reference runtime), ulimits as our containers get."""

_MARK = re.compile(r"^(.*?) \((\d+\.\d+)s\)$")


def _marks(stdout: str) -> dict[str, float]:
    """The cluster's own milestones, e.g. 'cluster Ready (0.61s)' → {'cluster Ready': .61}."""
    out = {}
    for line in stdout.splitlines():
        if m := _MARK.match(line.strip()):
            key = m.group(1).split(" at ")[0].split(" listening")[0]
            out[key] = float(m.group(2))
    return out


def _poll_curl(url: str, stop: threading.Event, t0: float, result: list[float]) -> None:
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=0.5) as resp:
                if resp.status == 200 and resp.read().startswith(b"You've hit"):
                    result.append(time.monotonic() - t0)
                    return
        except OSError:
            time.sleep(0.005)


def one_up(home: Path, *, demo: bool) -> dict[str, Any]:
    cluster = BenchCluster(home, free_port())
    stop = threading.Event()
    curl: list[float] = []
    t0 = time.monotonic()
    proc = cluster.start_up(demo=demo)
    t0 = time.monotonic()  # start_up may have waited for the slot
    poller = None
    if demo:
        poller = threading.Thread(target=_poll_curl, args=(LB_URL, stop, t0, curl))
        poller.start()
    out, err = proc.communicate(timeout=300)
    cmd_s = time.monotonic() - t0
    try:
        if proc.returncode != 0:
            raise RuntimeError(f"up failed ({proc.returncode}): {out}\n{err}")
        if poller is not None:
            poller.join(timeout=30)
        return {"cmd_s": round(cmd_s, 4), "first_curl_s": round(curl[0], 4) if curl else None,
                "marks": _marks(out)}
    finally:
        stop.set()
        if poller is not None:
            poller.join()
        cluster.down()
        cluster.forget_objects()


def measure(workdir: Path, *, repeat: int) -> dict[str, Any]:
    bare_home, demo_home = workdir / "bare", workdir / "demo"
    cold_bare = one_up(bare_home, demo=False)
    cold_demo = one_up(demo_home, demo=True)
    warm_bare = [one_up(bare_home, demo=False) for _ in range(repeat)]
    warm_demo = [one_up(demo_home, demo=True) for _ in range(repeat)]
    return {"cold": {"bare": cold_bare, "demo": cold_demo},
            "warm": {"bare": warm_bare, "demo": warm_demo}}


def _wall(argv: Sequence[str], *, env: dict[str, str] | None = None) -> float:
    start = time.monotonic()
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: "
                           f"{result.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def pair(a: Sequence[str], b: Sequence[str], *, runs: int,
         env: dict[str, str] | None = None) -> dict[str, Any]:
    """`a` against `b` in turn after one warm-up each: `stats.paired` of their walls."""
    _wall(a, env=env)
    _wall(b, env=env)
    walls_a, walls_b = [], []
    for _ in range(runs):
        walls_a.append(_wall(a, env=env))
        walls_b.append(_wall(b, env=env))
    return {"a": " ".join(a), "b": " ".join(b), **paired(walls_a, walls_b)}


def miniorch(*args: str) -> list[str]:
    return [sys.executable, "-m", "miniorch", *args]


def python_floor() -> list[str]:
    return [sys.executable, "-c", "pass"]


def container_vs_podman(home: Path, *, runs: int) -> dict[str, Any]:
    """`container run --rm busybox true` against podman+runc on the same image."""
    for tool in ("podman", "skopeo"):
        if shutil.which(tool) is None:
            return {"error": f"{tool} is not installed (make install adds it)"}
    env = dict(os.environ, MINIORCH_HOME=str(home))
    ours = miniorch("container", "run", "--rm", "busybox", "true")
    _wall(ours, env=env)  # makes the busybox image in this store
    image = f"localhost/miniorch-bench-busybox:{os.getpid()}"
    subprocess.run(["skopeo", "copy", "-q",
                    f"oci:{home / 'images'}:docker.io/library/busybox:latest",
                    f"containers-storage:{image}"], check=True, capture_output=True,
                   timeout=120)
    try:
        return pair(ours, [*PODMAN_RUN, image, "true"], runs=runs, env=env)
    finally:
        subprocess.run(["podman", "rmi", "-f", image], capture_output=True, timeout=120)


def commands(workdir: Path, *, runs: int) -> dict[str, Any]:
    """The commands that need no cluster, each with its peer."""
    out: dict[str, Any] = {"version_client": pair(miniorch("version", "--client"),
                                                  python_floor(), runs=runs)}
    try:
        out["container_run"] = container_vs_podman(workdir / "containers", runs=runs)
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        out["container_run"] = {"error": repr(exc)}
    return out
