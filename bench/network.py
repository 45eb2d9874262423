"""The data path: endpoint propagation into the proxy, and the proxy's throughput.

Propagation: the kubia RC is scaled up by one while a thread sends short requests to
the EXTERNAL-IP (a new connection each, so every request picks a backend afresh). A
pod watch stamps the moment the new pod is seen Ready; the first answer from the new
pod ("You've hit <name>") is when the proxy routes to it. Both stamps are on the
bench's clock, so `ready_to_routed` = routed - Ready-seen (it can be a little
negative: the proxy may learn of the endpoint before the bench's watch delivers the
pod). The Ready condition's lastTransitionTime has only 1 s resolution, so it is not used.

Throughput: `wrk` for 5 s with 16 connections on the EXTERNAL-IP (loopback only).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
import urllib.request
from typing import Any

from bench.api import Api
from bench.burst import _ready
from bench.cluster import LB_URL


class _Hitter(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.first_seen: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=0.5) as resp:
                    body = resp.read().decode()
            except OSError:
                continue
            t = time.monotonic()
            name = body.strip().rsplit(" ", 1)[-1]
            self.first_seen.setdefault(name, t)


def _one(api: Api, rc: str, selector: str, replicas: int) -> dict[str, Any]:
    pods = api.request("GET", f"/api/v1/namespaces/default/pods?labelSelector={selector}")
    known = {p["metadata"]["name"] for p in pods["items"]}
    hitter = _Hitter(LB_URL)
    hitter.start()
    ready_seen: dict[str, float] = {}
    try:
        api.scale_rc("default", rc, replicas + 1)
        path = f"/api/v1/namespaces/default/pods?labelSelector={selector}"
        for t, event in api.watch(path, resource_version=pods["metadata"]["resourceVersion"]):
            name = event["object"]["metadata"]["name"]
            if name not in known and event["type"] != "DELETED" and _ready(event["object"]):
                ready_seen[name] = t
                break
        new = next(iter(ready_seen))
        deadline = time.monotonic() + 10
        while new not in hitter.first_seen and time.monotonic() < deadline:
            time.sleep(0.001)
        routed = hitter.first_seen.get(new)
    finally:
        hitter.stop.set()
        hitter.join()
        api.scale_rc("default", rc, replicas)
    return {"pod": new, "ready_to_routed_s": None if routed is None
            else round(routed - ready_seen[new], 4)}


def endpoint_propagation(api: Api, *, repeat: int) -> list[dict[str, Any]]:
    runs = []
    for _ in range(repeat):
        runs.append(_one(api, "kubia", "run%3Dkubia", 3))
        time.sleep(1.0)  # let the extra pod finish terminating
    return runs


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_P99 = re.compile(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def wrk(url: str = LB_URL, *, seconds: int = 5, connections: int = 16) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        return {"error": "wrk not installed (apt-get install -y wrk)"}
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    rps, p99 = _RPS.search(out), _P99.search(out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"requests_per_s": float(rps.group(1)) if rps else None,
            "p99_s": float(p99.group(1)) * _UNITS[p99.group(2)] if p99 else None,
            "connections": connections, "seconds": seconds,
            "socket_errors": errors.group(1) if errors else None}
