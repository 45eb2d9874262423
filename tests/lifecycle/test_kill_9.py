"""`kill -9` of the cluster process in the middle of a burst of pod creations, then `up`:
every object is restored, nothing of the dead run is left (processes, netns, veths,
cgroups, mounts), and the pods run again — one sandbox each, no more.

tests/e2e/test_walkthrough.py kills a settled cluster; this one kills it while 20
sandboxes are being made, when a netns may exist without its veth, a cgroup without
its process, an overlay without its pod. Run alone (it takes the machine's cluster slot):
    .venv/bin/python -m pytest tests/lifecycle/test_kill_9.py -q
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from aiohttp import web

from tests.e2e.conftest import ROOT, _cluster_leftovers, free_port, wait_for
from tests.images.ociserver import OciServer, image_config, member, tar_layer
from tests.leakcheck import LeakChecker
from tests.lifecycle.test_up_down import miniorch, slot

pytestmark = [pytest.mark.e2e, pytest.mark.root]
__all__ = ["slot"]  # the fixture, shared with test_up_down

REPLICAS = 20
RC: dict[str, Any] = {
    "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "burst"},
    "spec": {"replicas": REPLICAS, "selector": {"app": "burst"}, "template": {
        "metadata": {"labels": {"app": "burst"}},
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
            "name": "main", "image": "busybox", "command": ["sleep", "3600"],
            "resources": {"requests": {"cpu": "10m"}}}]}}},
}


def kubectl(home: Path, *args: str, input: str | None = None) -> str:
    result = subprocess.run(["kubectl", "--kubeconfig", str(home / "kubeconfig"),
                             "--cache-dir", str(home / "kubectl-cache"), *args],
                            capture_output=True, text=True, input=input, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def up(home: Path, api_port: int, dashboard_port: int) -> None:
    result = subprocess.run(miniorch(home, "up", "--detach", "--no-demo", "--api-port",
                                     str(api_port), "--dashboard-port", str(dashboard_port),
                                     "--dns-upstream", "none"),
                            capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def running_pods(home: Path) -> list[str]:
    pods = json.loads(kubectl(home, "get", "pods", "-l", "app=burst", "-o", "json"))["items"]
    return [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"]


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_kill_9_mid_burst_then_up_restores_everything(slot: Path) -> None:
    home = slot
    checker = LeakChecker(mount_roots=[home])
    checker.start()
    api_port, dashboard_port = free_port(), free_port()
    up(home, api_port, dashboard_port)
    kubectl(home, "apply", "-f", "-", input=json.dumps(RC))
    rc_uid = json.loads(kubectl(home, "get", "rc", "burst", "-o", "json"))["metadata"]["uid"]
    # Mid-burst: the first pods run, the rest are being scheduled, pulled, sandboxed.
    wait_for(lambda: running_pods(home) or None, timeout=60, interval=0.1,
             what="the first pod of the burst running")
    pid = int((home / "cluster.pid").read_text())
    cluster = psutil.Process(pid)
    dead_run = [p for p in cluster.children(recursive=True)]
    assert len(running_pods(home)) < REPLICAS, "the burst ended before the kill: not mid-burst"
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(cluster) or None, timeout=30, what="the cluster process dead")

    up(home, api_port, dashboard_port)
    assert json.loads(kubectl(home, "get", "rc", "burst", "-o", "json"))["metadata"][
        "uid"] == rc_uid
    wait_for(lambda: len(running_pods(home)) == REPLICAS or None, timeout=120, interval=1,
             what=f"{REPLICAS} pods Running after the restart")
    # Nothing of the dead run survived next to the new one: no process, and exactly one
    # netns, veth and cgroup per pod (the bridge is the new run's).
    survivors = [f"{p.pid} {p.name()}" for p in dead_run if alive(p)]
    assert not survivors, survivors
    pods = json.loads(kubectl(home, "get", "pods", "-o", "json"))["items"]
    assert len(pods) == REPLICAS, [p["metadata"]["name"] for p in pods]
    left = _cluster_leftovers()
    assert len(left.get("netns", [])) == REPLICAS, left
    assert len([n for n in left.get("links", []) if n != "miniorch0"]) == REPLICAS, left

    down = subprocess.run(miniorch(home, "down"), capture_output=True, text=True,
                          timeout=180, cwd=ROOT)
    assert down.returncode == 0, down.stderr
    wait_for(lambda: not _cluster_leftovers(), timeout=10, what="no leftovers after down")
    checker.check(timeout=10)


@dataclass
class SlowRegistry(OciServer):
    """Serves the first 64 kB of each blob, then holds the rest until `release`."""

    started: threading.Event = field(default_factory=threading.Event)
    release: asyncio.Event | None = None

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        d = request.match_info["digest"]
        if d not in self.blobs or self.release is None or self.release.is_set():
            return await super()._blob(request)
        data = self.blobs[d]
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream",
                                               "Content-Length": str(len(data))})
        await response.prepare(request)
        await response.write(data[:65536])
        self.started.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.release.wait(), 60)
        await response.write(data[65536:])
        return response


@contextlib.contextmanager
def slow_registry() -> Iterator[tuple[SlowRegistry, str, Callable[[], None]]]:
    server = SlowRegistry()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    host: list[str] = []
    stop: list[asyncio.Event] = []

    async def serve() -> None:
        server.release = asyncio.Event()
        stop.append(asyncio.Event())
        async with server.running() as h:
            host.append(h)
            ready.set()
            await stop[0].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)

    def release() -> None:
        assert server.release is not None
        loop.call_soon_threadsafe(server.release.set)
    try:
        yield server, host[0], release
    finally:
        release()
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(10)
        loop.close()


def partial_blobs(home: Path) -> list[str]:
    """The blobs in the image store whose content does not hash to their name."""
    blobs = list((home / "images" / "blobs" / "sha256").glob("*"))
    assert len(blobs) >= 3, blobs  # the layer, the config and the manifest at least
    bad = []
    for blob in blobs:
        if hashlib.sha256(blob.read_bytes()).hexdigest() != blob.name:
            bad.append(blob.name)
    return bad


def test_kill_9_mid_pull_then_up_leaves_no_partial_image(slot: Path) -> None:
    home = slot
    checker = LeakChecker(mount_roots=[home])
    checker.start()
    api_port, dashboard_port = free_port(), free_port()
    with slow_registry() as (hub, host, release):
        busybox = Path("/bin/busybox").read_bytes()
        layer = tar_layer([member("bin/", type=b"5", mode=0o755),
                           member("bin/busybox", busybox, mode=0o755),
                           member("bin/sh", type=b"2", linkname="busybox"),
                           member("bin/sleep", type=b"2", linkname="busybox")])
        hub.add_image("library/slowpoke", "latest", [layer],
                      image_config([layer[1]], Cmd=["/bin/sleep", "3600"]))
        home.mkdir(parents=True, exist_ok=True)
        (home / "registries.json").write_text(
            json.dumps({"mirrors": {"docker.io": [f"http://{host}"]}}))
        up(home, api_port, dashboard_port)
        kubectl(home, "run", "slowpoke", "--image=slowpoke")
        assert hub.started.wait(60), "the pull never reached the layer"
        pid = int((home / "cluster.pid").read_text())
        cluster = psutil.Process(pid)
        dead_run = cluster.children(recursive=True)
        os.kill(pid, signal.SIGKILL)  # mid-pull: 64 kB of the layer received
        wait_for(lambda: not alive(cluster) or None, timeout=30, what="the cluster dead")
        release()

        up(home, api_port, dashboard_port)
        phase = lambda: json.loads(kubectl(home, "get", "pod", "slowpoke", "-o", "json")  # noqa: E731
                                   )["status"].get("phase")
        wait_for(lambda: phase() == "Running" or None, timeout=120, interval=1,
                 what="slowpoke Running after the restart")
        assert not [p.pid for p in dead_run if alive(p)]
        assert not partial_blobs(home)
        assert kubectl(home, "exec", "slowpoke", "--", "/bin/sh", "-c", "echo whole") \
            == "whole\n"

    down = subprocess.run(miniorch(home, "down"), capture_output=True, text=True,
                          timeout=180, cwd=ROOT)
    assert down.returncode == 0, down.stderr
    wait_for(lambda: not _cluster_leftovers(), timeout=10, what="no leftovers after down")
    checker.check(timeout=10)
