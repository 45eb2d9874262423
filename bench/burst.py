"""A burst of pods: an RC scaled 0→N at once, each pod's time to Running and Ready.

A watch thread (started before the scale) stamps every pod's first appearance
(ADDED) and the moment it is first seen Running with condition Ready=True, on the
bench's monotonic clock. Two latencies per pod:
  created_to_ready — ADDED → Ready (the pod's own start path, the 0.5 s target);
  scale_to_ready   — the scale request → Ready (adds the RC's and scheduler's work).
Then the RC goes back to 0 and the teardown is timed until the last pod is DELETED.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.api import Api
from bench.stats import summary

NS = "default"


def _rc(name: str, replicas: int) -> dict[str, Any]:
    labels = {"bench": name}
    return {"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": labels, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "kubia",
                                         "ports": [{"containerPort": 8080}]}]}}}}


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in status.get("conditions") or [])


class _PodTimes(threading.Thread):
    def __init__(self, api: Api, selector: str, resource_version: str) -> None:
        super().__init__(daemon=True)
        self.api, self.selector, self.rv = api, selector, resource_version
        self.added: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.deleted: dict[str, float] = {}
        self.changed = threading.Condition()

    def run(self) -> None:
        path = f"/api/v1/namespaces/{NS}/pods?labelSelector={self.selector}"
        for t, event in self.api.watch(path, resource_version=self.rv):
            name = event["object"]["metadata"]["name"]
            with self.changed:
                if event["type"] == "ADDED":
                    self.added.setdefault(name, t)
                elif event["type"] == "DELETED":
                    self.deleted.setdefault(name, t)
                if event["type"] != "DELETED" and _ready(event["object"]):
                    self.ready.setdefault(name, t)
                self.changed.notify_all()

    def wait(self, predicate: Any, timeout: float) -> bool:
        with self.changed:
            return bool(self.changed.wait_for(predicate, timeout=timeout))


def one_burst(api: Api, *, pods: int, name: str, timeout: float = 120.0) -> dict[str, Any]:
    created = api.request("POST", f"/api/v1/namespaces/{NS}/replicationcontrollers",
                          _rc(name, 0))
    watcher = _PodTimes(api, f"bench%3D{name}", created["metadata"]["resourceVersion"])
    watcher.start()
    try:
        t0 = time.monotonic()
        api.scale_rc(NS, name, pods)
        all_ready = watcher.wait(lambda: len(watcher.ready) >= pods, timeout)
        t_ready = time.monotonic() - t0
        t1 = time.monotonic()
        api.scale_rc(NS, name, 0)
        all_gone = watcher.wait(lambda: len(watcher.deleted) >= len(watcher.added), timeout)
        t_gone = time.monotonic() - t1
    finally:
        api.request("DELETE", f"/api/v1/namespaces/{NS}/replicationcontrollers/{name}")
    ready = watcher.ready
    samples = [ready[p] - watcher.added[p] for p in ready if p in watcher.added]
    return {
        "pods": pods,
        "all_ready": all_ready,
        "ready_count": len(ready),
        "all_ready_s": round(t_ready, 4),
        "created_to_ready": summary(samples),
        "samples": [round(x, 4) for x in sorted(samples)],  # for bench/plot.py
        "scale_to_ready": summary([t - t0 for t in ready.values()]),
        "teardown_s": round(t_gone, 4),
        "teardown_complete": all_gone,
    }


def measure(api: Api, *, pods: int, repeat: int) -> list[dict[str, Any]]:
    return [one_burst(api, pods=pods, name=f"bench-burst-{i}") for i in range(repeat)]
