"""The control plane at scale: 100 hollow nodes, 10,000 pods (`--pods 1000` in short mode).

    up --nodes 0 --hollow-nodes 100 (no processes: node/hollow.py)
      1. create   N pods over HTTPS from `clients` threads → pods/s of the POSTs,
                  and the time until a watch has seen every pod Running and Ready
      2. list     LIST /api/v1/pods (every pod) x `lists` → p50/p99, bytes
      3. watch    10 watchers on pods; a label patched `watch_writes` times, paced →
                  write sent → event received, per watcher and write: p50/p99
      4. memory   the cluster process' RSS/PSS with N pods
      5. delete   every pod at once (deletecollection, graceful: the hollow kubelets
                  finish them) → until the last one is gone
      6. rollout  a Deployment of `replicas` → all available; then a new image → the
                  rolling update complete
Anchors quoted beside the figures (not run here): kwok documents ~20 pods/s created
and scheduled per second on its fake nodes; the Kubernetes SLOs ask LIST p99 ≤ 1 s
(≤ 30 s for cluster-wide lists at 5,000 nodes) and pod startup p99 ≤ 5 s.

    python -m bench.scale [--pods 10000] [--hollow-nodes 100] [--profile PROFILE]
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from bench.api import Api
from bench.cluster import BenchCluster, free_port, wait_for_slot
from bench.stats import summary

NS = "default"
TOLERATION = {"key": "miniorch.io/hollow", "operator": "Exists", "effect": "NoSchedule"}
# Hollow pods start fast: the figures are the control plane's, not a runtime's.
DEFAULT_PROFILE = "start=0-0.2,ready=0-0.2,seed=1"


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"bench": "scale"}},
            "spec": {"tolerations": [TOLERATION],
                     "containers": [{"name": "app", "image": "kubia"}]}}


def deployment(name: str, replicas: int, image: str) -> dict[str, Any]:
    labels = {"bench": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "strategy": {"rollingUpdate": {"maxSurge": "25%",
                                                    "maxUnavailable": "25%"}},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "tolerations": [TOLERATION],
                         "containers": [{"name": "app", "image": image}]}}}}


def _ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or [])


class PodCounter(threading.Thread):
    """Follows a pod watch: which pods exist, are scheduled, are Ready (and when)."""

    def __init__(self, kubeconfig: Path, path: str, resource_version: str) -> None:
        super().__init__(daemon=True)
        self.api_kubeconfig = kubeconfig
        self.api, self.path, self.rv = Api(kubeconfig), path, resource_version
        self.relists = 0
        self.added: dict[str, float] = {}
        self.scheduled: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.deleted: dict[str, float] = {}
        self.changed = threading.Condition()

    def run(self) -> None:
        while self._follow():
            # The watch expired (410: it fell behind a burst, as a client of
            # kube-apiserver can): list again, what vanished meanwhile is deleted.
            listed = Api(self.api_kubeconfig).request("GET", self.path)
            present = {p["metadata"]["name"] for p in listed["items"]}
            now = time.monotonic()
            with self.changed:
                for name in self.added:
                    if name not in present:
                        self.deleted.setdefault(name, now)
                self.relists += 1
                self.changed.notify_all()
            self.rv = listed["metadata"]["resourceVersion"]

    def _follow(self) -> bool:
        """Follow the watch; True if it ended with an ERROR (to re-list)."""
        for t, event in self.api.watch(self.path, resource_version=self.rv,
                                       idle_timeout=300):
            if event["type"] == "ERROR":
                return True
            obj = event["object"]
            name = obj["metadata"]["name"]
            with self.changed:
                if event["type"] == "ADDED":
                    self.added.setdefault(name, t)
                if event["type"] == "DELETED":
                    self.deleted.setdefault(name, t)
                elif (obj.get("spec") or {}).get("nodeName"):
                    self.scheduled.setdefault(name, t)
                    if _ready(obj):
                        self.ready.setdefault(name, t)
                self.changed.notify_all()
        return False

    def wait(self, predicate: Any, timeout: float) -> bool:
        with self.changed:
            return bool(self.changed.wait_for(predicate, timeout=timeout))


def create_pods(kubeconfig: Path, *, pods: int, clients: int) -> dict[str, Any]:
    names: queue.SimpleQueue[str] = queue.SimpleQueue()
    for i in range(pods):
        names.put(f"scale-{i:05d}")
    errors: list[str] = []
    latencies: list[float] = []

    def client() -> None:
        api = Api(kubeconfig)
        while True:
            try:
                name = names.get_nowait()
            except queue.Empty:
                return
            t = time.monotonic()
            try:
                api.request("POST", f"/api/v1/namespaces/{NS}/pods", pod(name))
            except RuntimeError as exc:
                errors.append(str(exc)[:200])
            latencies.append(time.monotonic() - t)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - t0
    return {"t0": t0, "created_s": round(elapsed, 3),
            "pods_per_s": round(pods / elapsed, 1), "errors": len(errors),
            "first_errors": errors[:3], "post_latency": summary(latencies)}


def list_all(api: Api, *, times: int) -> dict[str, Any]:
    samples = []
    size = 0
    conn = api._connect(timeout=120)
    for _ in range(times):
        t = time.monotonic()
        conn.request("GET", "/api/v1/pods",
                     headers={"Authorization": f"Bearer {api.token}",
                              "Accept": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
        samples.append(time.monotonic() - t)
        size = len(body)
    conn.close()
    return {**summary(samples), "bytes": size}


def watch_fanout(api: Api, kubeconfig: Path, *, target: str, watchers: int,
                 writes: int, pace: float = 0.05) -> dict[str, Any]:
    """Write sent → event received at each of `watchers` pod watches (label `probe=i`)."""
    rv = api.request("GET", f"/api/v1/namespaces/{NS}/pods?limit=1")["metadata"][
        "resourceVersion"]
    received: list[dict[int, float]] = [{} for _ in range(watchers)]
    done = threading.Event()

    def watcher(i: int) -> None:
        own = Api(kubeconfig)
        for t, event in own.watch(f"/api/v1/namespaces/{NS}/pods", resource_version=rv,
                                  idle_timeout=60):
            probe = (event["object"]["metadata"].get("labels") or {}).get("probe")
            if probe is not None and event["object"]["metadata"]["name"] == target:
                received[i].setdefault(int(probe), t)
                if len(received[i]) >= writes:
                    return
            if done.is_set():
                return

    threads = [threading.Thread(target=watcher, args=(i,), daemon=True)
               for i in range(watchers)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # every watch open
    sent: dict[int, float] = {}
    for n in range(writes):
        sent[n] = time.monotonic()
        api.request("PATCH", f"/api/v1/namespaces/{NS}/pods/{target}",
                    {"metadata": {"labels": {"probe": str(n)}}},
                    content_type="application/merge-patch+json")
        time.sleep(pace)
    for thread in threads:
        thread.join(timeout=10)
    done.set()
    delays = [got[n] - sent[n] for got in received for n in got if n in sent]
    return {"watchers": watchers, "writes": writes, "delivered": len(delays),
            "expected": watchers * writes, **summary(delays)}


def memory(pid: int) -> dict[str, Any]:
    full = psutil.Process(pid).memory_full_info()
    return {"rss_mb": round(full.rss / 2**20, 1), "pss_mb": round(full.pss / 2**20, 1),
            "uss_mb": round(full.uss / 2**20, 1)}


def delete_all(api: Api, counter: PodCounter, *, pods: int, timeout: float
               ) -> dict[str, Any]:
    t0 = time.monotonic()
    api.request("DELETE", f"/api/v1/namespaces/{NS}/pods?labelSelector=bench%3Dscale")
    gone = counter.wait(lambda: len(counter.deleted) >= pods, timeout)
    elapsed = time.monotonic() - t0
    return {"all_gone": gone, "deleted": len(counter.deleted), "seconds": round(elapsed, 3),
            "pods_per_s": round(len(counter.deleted) / elapsed, 1)}


def rollout(api: Api, *, replicas: int, timeout: float) -> dict[str, Any]:
    name = "scale-deploy"
    path = f"/apis/apps/v1/namespaces/{NS}/deployments"

    def done(image: str) -> bool:
        d = api.request("GET", f"{path}/{name}")
        status = d.get("status") or {}
        return (d["spec"]["template"]["spec"]["containers"][0]["image"] == image
                and status.get("observedGeneration") == d["metadata"]["generation"]
                and status.get("updatedReplicas") == replicas
                and status.get("availableReplicas") == replicas
                and status.get("replicas") == replicas)

    def wait(image: str) -> float | None:
        t = time.monotonic()
        while time.monotonic() - t < timeout:
            if done(image):
                return round(time.monotonic() - t, 3)
            time.sleep(0.25)
        return None

    t0 = time.monotonic()
    api.request("POST", path, deployment(name, replicas, "kubia"))
    created = wait("kubia")
    t1 = time.monotonic()
    api.request("PATCH", f"{path}/{name}",
                {"spec": {"template": {"spec": {"containers": [
                    {"name": "app", "image": "kubia:v2"}]}}}},
                content_type="application/strategic-merge-patch+json")
    updated = wait("kubia:v2")
    result = {"replicas": replicas, "available_s": created,
              "rolling_update_s": updated, "total_s": round(time.monotonic() - t0, 3),
              "update_started_after_s": round(t1 - t0, 3)}
    api.request("DELETE", f"{path}/{name}")
    return result


@contextmanager
def hollow_cluster(home: Path, *, hollow_nodes: int, profile: str) -> Iterator[BenchCluster]:
    cluster = BenchCluster(home, free_port())
    wait_for_slot()
    t = time.monotonic()
    result = cluster.cli("up", "--detach", "--no-demo", "--nodes", "0", "--hollow-nodes",
                         str(hollow_nodes), f"--hollow-profile={profile}", "--api-port",
                         str(cluster.api_port), "--dashboard-port", "0", "--dns-upstream",
                         "none", timeout=300)
    print(f"  up with {hollow_nodes} hollow nodes: {time.monotonic() - t:.1f}s "
          f"({result.stdout.count('hollow nodes Ready')} report)", flush=True)
    try:
        yield cluster
    finally:
        cluster.down()


def measure(home: Path, *, pods: int = 10_000, hollow_nodes: int = 100, clients: int = 4,
            replicas: int = 1000, lists: int = 20, watchers: int = 10,
            watch_writes: int = 50, profile: str = DEFAULT_PROFILE,
            timeout: float = 600.0) -> dict[str, Any]:
    results: dict[str, Any] = {"pods": pods, "hollow_nodes": hollow_nodes,
                               "clients": clients, "profile": profile}
    with hollow_cluster(home, hollow_nodes=hollow_nodes, profile=profile) as cluster:
        api = Api(cluster.kubeconfig)
        results["memory_idle"] = memory(cluster.pid)
        rv = api.request("GET", f"/api/v1/namespaces/{NS}/pods?limit=1")["metadata"][
            "resourceVersion"]
        counter = PodCounter(cluster.kubeconfig,
                             f"/api/v1/namespaces/{NS}/pods?labelSelector=bench%3Dscale", rv)
        counter.start()
        print(f"  creating {pods} pods from {clients} clients...", flush=True)
        create = create_pods(cluster.kubeconfig, pods=pods, clients=clients)
        t0 = create.pop("t0")
        all_ready = counter.wait(lambda: len(counter.ready) >= pods, timeout)
        create["all_scheduled_s"] = round(max(counter.scheduled.values(), default=t0) - t0, 3)
        create["all_ready"] = all_ready
        create["ready"] = len(counter.ready)
        create["all_ready_s"] = round(max(counter.ready.values(), default=t0) - t0, 3)
        create["created_to_ready"] = summary([counter.ready[p] - counter.added[p]
                                              for p in counter.ready if p in counter.added])
        results["create"] = create
        print(f"  {create}", flush=True)
        results["memory"] = memory(cluster.pid)
        print(f"  memory at {pods} pods: {results['memory']}", flush=True)
        results["list"] = list_all(api, times=lists)
        print(f"  list: {results['list']}", flush=True)
        results["watch"] = watch_fanout(api, cluster.kubeconfig, target="scale-00000",
                                        watchers=watchers, writes=watch_writes)
        print(f"  watch: {results['watch']}", flush=True)
        results["delete"] = delete_all(api, counter, pods=pods, timeout=timeout)
        results["delete"]["watch_relists"] = counter.relists
        print(f"  delete: {results['delete']}", flush=True)
        results["rollout"] = rollout(api, replicas=replicas, timeout=timeout)
        print(f"  rollout: {results['rollout']}", flush=True)
        results["memory_after"] = memory(cluster.pid)
    return results


def headline_rows(scale: dict[str, Any]) -> list[tuple[str, Any, Any, str, bool]]:
    """(figure, value, target, unit, lower is better) for report.headline."""
    pods = scale.get("pods")
    create = scale.get("create") or {}
    return [
        (f"scale: {pods} pods created (POST) per s", create.get("pods_per_s"), 500, "pods/s",
         False),
        (f"scale: {pods} pods all Running+Ready after", create.get("all_ready_s"), None, "s",
         True),
        ("scale: LIST all pods p99", (scale.get("list") or {}).get("p99"), 1.0, "s", True),
        ("scale: watch event → 10 watchers p99", (scale.get("watch") or {}).get("p99"), 0.1,
         "s", True),
        (f"scale: control plane RSS at {pods} pods", (scale.get("memory") or {}).get("rss_mb"),
         300, "MB", True),
        (f"scale: Deployment {(scale.get('rollout') or {}).get('replicas')} available",
         (scale.get("rollout") or {}).get("available_s"), None, "s", True),
        ("scale: its rolling update complete", (scale.get("rollout") or {}).get(
            "rolling_update_s"), None, "s", True),
    ]


def main(argv: list[str] | None = None) -> int:
    import tempfile
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pods", type=int, default=10_000)
    p.add_argument("--hollow-nodes", type=int, default=100)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--replicas", type=int, default=1000)
    p.add_argument("--profile", default=DEFAULT_PROFILE)
    p.add_argument("--home", type=Path, default=None, help="state dir (default: a temp dir)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mo-scale-") as tmp:
        home = args.home or Path(tmp)
        results = measure(home, pods=args.pods, hollow_nodes=args.hollow_nodes,
                          clients=args.clients, replicas=args.replicas, profile=args.profile)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
