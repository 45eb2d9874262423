"""`up` timings: bare cluster Ready, demo answering curl, the detached command itself.

cold: the first `up` in a fresh state dir (builds the kubia image into a new store).
warm: later `up`s after `down` with the store removed but images kept, so each is a
fresh cluster with a warm image cache. Times are wall-clock from launching the CLI.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.cluster import LB_URL, BenchCluster, free_port

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
