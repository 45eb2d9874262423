"""The floor under a pod burst: the same app processes started bare, in the same run.

Each of N `unshare --pid --net --fork --mount-proc <python> -u sample_app/app.py` is
started at once (a PID and a network namespace each, /proc remounted: the namespaces a
pod gets, without cgroups, veths, overlays or a kubelet), and timed from its spawn to
the app's "Kubia server starting" line (printed once its port is bound: what a pod's
Ready means for this app, which has no probe). Each app is stopped with SIGTERM (unshare
--fork ignores it; `--kill-child` ends the app should its unshare die), leaving nothing.
"""

from __future__ import annotations

import contextlib
import selectors
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

import psutil

from bench.cluster import ROOT
from bench.stats import summary

APP = ROOT / "sample_app" / "app.py"
READY_LINE = b"Kubia server starting"


def available() -> bool:
    import os
    return os.geteuid() == 0 and shutil.which("unshare") is not None


def measure(*, pods: int = 100, timeout: float = 60.0) -> dict[str, Any]:
    argv = ["unshare", "--pid", "--net", "--fork", "--mount-proc", "--kill-child=SIGTERM",
            sys.executable, "-u", str(APP)]
    selector = selectors.DefaultSelector()
    started: dict[int, float] = {}
    ready: dict[int, float] = {}
    procs: list[subprocess.Popen[bytes]] = []
    t0 = time.monotonic()
    try:
        for i in range(pods):
            started[i] = time.monotonic()
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    stdin=subprocess.DEVNULL)
            procs.append(proc)
            assert proc.stdout is not None
            selector.register(proc.stdout, selectors.EVENT_READ, i)
        deadline = time.monotonic() + timeout
        buffers: dict[int, bytes] = {}
        while len(ready) < pods and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                i = key.data
                chunk = key.fileobj.read1(4096) if hasattr(key.fileobj, "read1") else b""
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffers[i] = buffers.get(i, b"") + chunk
                if READY_LINE in buffers[i] and i not in ready:
                    ready[i] = time.monotonic()
                    selector.unregister(key.fileobj)
        all_ready = time.monotonic() - t0
    finally:
        for proc in procs:
            # unshare --fork ignores SIGTERM while it waits: the app (its child, PID 1
            # of the new namespace, with a SIGTERM handler) is told directly.
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in psutil.Process(proc.pid).children():
                    child.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        selector.close()
    samples = [ready[i] - started[i] for i in ready]
    return {"pods": pods, "ready_count": len(ready), "all_ready_s": round(all_ready, 4),
            "spawn_to_ready": summary(samples),
            "samples": [round(s, 4) for s in sorted(samples)]}
