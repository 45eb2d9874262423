"""Idle memory: the cluster process itself, and what each pod costs on top of its app.

The cluster process's RSS/PSS/USS exclude its children. A pod's overhead is its
shim (`_shim.py pod`, a child of the cluster process) plus the pod's init (PID 1 in
the pod, the shim's child); the app containers are the user's, so not counted.
PSS splits shared pages (the interpreter, libc) fairly between processes.
"""

from __future__ import annotations

import time
from typing import Any

import psutil


def _mem(proc: psutil.Process) -> dict[str, float | None]:
    try:
        full = proc.memory_full_info()
        return {"rss_mb": full.rss / 2**20, "pss_mb": getattr(full, "pss", 0) / 2**20,
                "uss_mb": full.uss / 2**20}
    except psutil.AccessDenied:
        return {"rss_mb": proc.memory_info().rss / 2**20, "pss_mb": None, "uss_mb": None}


def _is_pid1(pid: int) -> bool:
    """The pod's init is PID 1 in its own PID namespace (NSpid's last field)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return line.split()[-1] == "1"
    except OSError:
        pass
    return False


def measure(cluster_pid: int, *, idle_seconds: float = 5.0) -> dict[str, Any]:
    time.sleep(idle_seconds)
    cluster = psutil.Process(cluster_pid)
    result: dict[str, Any] = {k: round(v, 2) if v is not None else None
                              for k, v in _mem(cluster).items()}
    per_pod: list[dict[str, float]] = []
    for shim in cluster.children():
        try:
            if "_shim.py" not in " ".join(shim.cmdline()):
                continue
            shim_mem = _mem(shim)
            inits = [p for p in shim.children() if _is_pid1(p.pid)]
            init_pss = sum((_mem(p)["pss_mb"] or 0.0) for p in inits)
            init_rss = sum(_mem(p)["rss_mb"] or 0.0 for p in inits)
        except psutil.NoSuchProcess:
            continue
        per_pod.append({"pss_mb": (shim_mem["pss_mb"] or 0.0) + init_pss,
                        "rss_mb": (shim_mem["rss_mb"] or 0.0) + init_rss})
    if per_pod:
        result["pods"] = len(per_pod)
        result["per_pod_pss_mb"] = round(sum(p["pss_mb"] for p in per_pod) / len(per_pod), 2)
        result["per_pod_rss_mb"] = round(sum(p["rss_mb"] for p in per_pod) / len(per_pod), 2)
    return result
