"""Volumes: the atomic writer's layout, configMap/secret payloads, a missing ConfigMap
holding a pod in FailedMount (ProcessRuntime), and real sandboxes (root) where two
busybox containers share an emptyDir and see ConfigMap updates in place."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from miniorch.api.kinds import CONFIGMAPS, PODS, SECRETS
from miniorch.api.registry import Registry
from miniorch.core import podfiles
from miniorch.core.objects import Obj
from miniorch.core.settings import Settings
from miniorch.node import atomicwriter
from miniorch.node.atomicwriter import FileProjection, PayloadError
from miniorch.node.processes import ProcessRuntime
from miniorch.node.runtime import SandboxRuntime
from miniorch.node.volumes import PodVolumes, VolumeError
from tests.node.nodehelpers import (
    FAST,
    PY,
    container_status,
    events_of,
    pod_of,
    running_kubelet,
    wait_for,
)
from tests.node.test_node_sandbox import cluster_net

__all__ = ["cluster_net"]  # the fixture, re-exported for pytest


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def files(directory: Path) -> dict[str, str]:
    """What a container sees: every visible name, through the symlinks."""
    return {name: (directory / name).read_text() for name in sorted(os.listdir(directory))
            if not name.startswith("..")}


# ---- the atomic writer ------------------------------------------------------------


def test_atomic_writer_layout_swap_and_no_op(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert atomicwriter.write(target, {"a": FileProjection(b"1", 0o644),
                                       "sub/b": FileProjection(b"2", 0o400)})
    version = os.readlink(target / "..data")
    assert version.startswith("..") and (target / version).is_dir()
    assert os.readlink(target / "a") == "..data/a" and os.readlink(target / "sub") == "..data/sub"
    assert (target / "a").read_text() == "1"
    assert (target / "sub/b").read_text() == "2"
    assert (target / version / "sub/b").stat().st_mode & 0o777 == 0o400
    inode = (target / "a").stat().st_ino
    # The same payload again changes nothing: same version, same inodes.
    assert not atomicwriter.write(target, {"a": FileProjection(b"1", 0o644),
                                           "sub/b": FileProjection(b"2", 0o400)})
    assert os.readlink(target / "..data") == version and (target / "a").stat().st_ino == inode
    # A new payload: a new version dir, the old one gone, a dropped key's link gone.
    assert atomicwriter.write(target, {"a": FileProjection(b"new", 0o644)})
    assert os.readlink(target / "..data") != version and not (target / version).exists()
    assert sorted(os.listdir(target)) == sorted(["..data", os.readlink(target / "..data"), "a"])
    assert (target / "a").read_text() == "new"


@pytest.mark.parametrize("path", [
    pytest.param("/abs", id="absolute"), pytest.param("a/../b", id="dotdot"),
    pytest.param("..data", id="writer-name"), pytest.param("", id="empty"),
])
def test_atomic_writer_refuses_bad_paths(tmp_path: Path, path: str) -> None:
    with pytest.raises(PayloadError):
        atomicwriter.write(tmp_path / "vol", {path: FileProjection(b"", 0o644)})


# ---- payloads ---------------------------------------------------------------------


class Objects:
    def __init__(self, config_maps: dict[str, Obj], secrets: dict[str, Obj]) -> None:
        self.config_maps = config_maps
        self.secrets = secrets

    def config_map(self, namespace: str, name: str) -> Obj | None:
        return self.config_maps.get(name)

    def secret(self, namespace: str, name: str) -> Obj | None:
        return self.secrets.get(name)


def volume_pod(*volumes: Obj) -> Obj:
    return {"metadata": {"name": "p", "namespace": "default"},
            "spec": {"volumes": list(volumes), "containers": [{"name": "c"}]}}


def test_payloads_items_modes_decoding_and_optional(tmp_path: Path) -> None:
    sources = Objects(
        config_maps={"cfg": {"data": {"a": "1", "b": "2"}, "binaryData": {"bin": b64("\x00x")}}},
        secrets={"sec": {"data": {"password": b64("hunter2")}}})
    pod = volume_pod(
        {"name": "all", "configMap": {"name": "cfg"}},
        {"name": "some", "configMap": {"name": "cfg", "defaultMode": 0o600,
                                       "items": [{"key": "b", "path": "dir/bee"},
                                                 {"key": "a", "path": "aa", "mode": 0o444}]}},
        {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o400}},
        {"name": "gone", "secret": {"secretName": "nope", "optional": True}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "ram", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}})
    volumes = PodVolumes(pod, tmp_path, sources)
    volumes.setup()
    root = tmp_path / ".volumes"
    assert files(root / "kubernetes.io~configmap/all") == {"a": "1", "b": "2", "bin": "\x00x"}
    some = root / "kubernetes.io~configmap/some"
    assert (some / "dir/bee").read_text() == "2" and (some / "aa").read_text() == "1"
    assert (some / "dir/bee").stat().st_mode & 0o777 == 0o600
    assert (some / "aa").stat().st_mode & 0o777 == 0o444
    secret = root / "kubernetes.io~secret/sec/password"
    assert secret.read_text() == "hunter2" and secret.stat().st_mode & 0o777 == 0o400
    assert files(root / "kubernetes.io~secret/gone") == {}
    assert (root / "kubernetes.io~empty-dir/scratch").stat().st_mode & 0o777 == 0o777
    [ram] = volumes.tmpfs()
    assert ram.path == root / "kubernetes.io~empty-dir/ram" and ram.size_bytes == 2**20
    # A change is picked up by refresh(), only where the data changed.
    sources.config_maps["cfg"]["data"]["a"] = "one"
    assert volumes.refresh() == ["all", "some"]
    assert (some / "aa").read_text() == "one"
    assert volumes.refresh() == []


@pytest.mark.parametrize(("volume", "message"), [
    pytest.param({"configMap": {"name": "nope"}}, 'configmap "nope" not found', id="configmap"),
    pytest.param({"secret": {"secretName": "nope"}}, 'secret "nope" not found', id="secret"),
    pytest.param({"configMap": {"name": "cfg", "items": [{"key": "k", "path": "k"}]}},
                 "configmap references non-existent config key: k", id="configmap-key"),
])
def test_missing_sources_are_volume_errors(tmp_path: Path, volume: Obj, message: str) -> None:
    volumes = PodVolumes(volume_pod({"name": "v", **volume}), tmp_path,
                         Objects({"cfg": {"data": {}}}, {}))
    with pytest.raises(VolumeError) as caught:
        volumes.setup()
    assert caught.value.event_message() == f'MountVolume.SetUp failed for volume "v" : {message}'


# ---- the kubelet, without mount namespaces -----------------------------------------


def create_pod(registry: Registry, node: str, name: str, containers: list[Obj],
               volumes: list[Obj], restart_policy: str = "Always") -> Obj:
    return registry.create(PODS, {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": containers, "volumes": volumes,
                 "restartPolicy": restart_policy, "terminationGracePeriodSeconds": 1}})


async def test_missing_config_map_volume_fails_mount_until_created(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        pod = create_pod(registry, node.name, "late-cfg", [
            {"name": "kubia", "image": "python", "command": [PY, "-c", "pass"],
             "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]}],
            [{"name": "cfg", "configMap": {"name": "late"}}], restart_policy="Never")
        failed = ("Warning", "FailedMount",
                  'MountVolume.SetUp failed for volume "cfg" : configmap "late" not found')
        await wait_for(lambda: failed in events_of(registry, pod), what="FailedMount")
        assert container_status(registry, pod)["state"] == {
            "waiting": {"reason": "ContainerCreating"}}
        registry.create(CONFIGMAPS, {"metadata": {"name": "late"}, "data": {"k": "v"}})
        await wait_for(lambda: "terminated" in container_status(registry, pod).get("state", {}),
                       within=3, what="started once the ConfigMap exists")
        directory = podfiles.pod_dir(settings.pods_dir, "default", "late-cfg",
                                     pod["metadata"]["uid"])
        assert (directory / ".volumes/kubernetes.io~configmap/cfg/k").read_text() == "v"
        # Plain processes have no mount namespace: the kubelet says so.
        await wait_for(lambda: any(r == "FailedMount" and "are not mounted: plain processes"
                                   in m for _t, r, m in events_of(registry, pod)),
                       what="the plain-mode warning")
        registry.delete(PODS, "default", "late-cfg", grace_period_seconds=0)
        await wait_for(lambda: pod_of(registry, pod) is None, what="pod removed")
        await wait_for(lambda: not directory.exists(), what="pod dir removed")


# ---- real sandboxes ----------------------------------------------------------------------

WRITER = ("echo hi > /mem/m; i=0; "
          "while true; do echo tick$i > /data/out; i=$((i+1)); sleep 0.2; done")
SIDECAR = (
    "touch /etc/cfg/x 2>/dev/null && echo cfg-writable || echo cfg-read-only; "
    "grep ' /mem ' /proc/mounts; "
    "while true; do echo \"data=$(cat /data/out) mode=$(cat /etc/cfg/mode) "
    "pinned=$(cat /etc/pinned) pass=$(cat /etc/sec/password) mem=$(cat /mem/m)\"; "
    "sleep 0.2; done")


def host_mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


def log_lines(directory: Path, container: str) -> list[str]:
    path = podfiles.container_log(directory, container, 0)
    if not path.exists():
        return []
    return [line.split(" ", 3)[3] for line in path.read_text().splitlines()]


@pytest.mark.root
async def test_sidecar_shares_an_empty_dir_and_sees_config_updates_in_place(
        registry: Registry, cluster_net: tuple[Settings, SandboxRuntime]) -> None:
    settings, runtime = cluster_net
    registry.create(CONFIGMAPS, {"metadata": {"name": "app"}, "data": {"mode": "slow"}})
    registry.create(SECRETS, {"metadata": {"name": "creds"},
                              "data": {"password": b64("hunter2")}})
    async with running_kubelet(registry, settings, runtime, config=FAST, index=5) as node:
        pod = create_pod(registry, node.name, "duo", [
            {"name": "writer", "image": "busybox", "command": ["sh", "-c", WRITER],
             "volumeMounts": [{"name": "data", "mountPath": "/data"},
                              {"name": "mem", "mountPath": "/mem"}]},
            {"name": "sidecar", "image": "busybox", "command": ["sh", "-c", SIDECAR],
             "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True},
                              {"name": "mem", "mountPath": "/mem"},
                              {"name": "cfg", "mountPath": "/etc/cfg"},
                              {"name": "cfg", "mountPath": "/etc/pinned", "subPath": "mode"},
                              {"name": "sec", "mountPath": "/etc/sec"}]}], [
            {"name": "data", "emptyDir": {}},
            {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            {"name": "cfg", "configMap": {"name": "app"}},
            {"name": "sec", "secret": {"secretName": "creds", "defaultMode": 0o400}}])
        directory = podfiles.pod_dir(settings.pods_dir, "default", "duo",
                                     pod["metadata"]["uid"])
        await wait_for(lambda: any(line.startswith("data=tick")
                                   for line in log_lines(directory, "sidecar")),
                       within=60, what="the sidecar reading the writer's file")
        lines = log_lines(directory, "sidecar")
        assert lines[0] == "cfg-read-only"
        assert lines[1].split()[:3] == ["tmpfs", "/mem", "tmpfs"] and "size=1024k" in lines[1]
        last = lines[-1].split()
        assert last[1:] == ["mode=slow", "pinned=slow", "pass=hunter2", "mem=hi"], lines[-1]
        secret = directory / ".volumes/kubernetes.io~secret/sec"
        assert (secret / "password").stat().st_mode & 0o777 == 0o400
        # The tmpfs is the pod's alone: the host sees an empty directory.
        mem = directory / ".volumes/kubernetes.io~empty-dir/mem"
        assert str(mem) not in host_mounts() and not any(mem.iterdir())

        def faster(obj: Obj) -> None:
            obj["data"]["mode"] = "fast"
        registry.mutate(CONFIGMAPS, "default", "app", faster)
        await wait_for(lambda: "mode=fast" in log_lines(directory, "sidecar")[-1], within=3,
                       what="the updated ConfigMap seen in the container")
        # The subPath mount keeps the version it was started with, as in Kubernetes.
        assert "pinned=slow" in log_lines(directory, "sidecar")[-1]
        assert (directory / ".volumes/kubernetes.io~configmap/cfg/mode").read_text() == "fast"
        assert container_status(registry, pod).get("restartCount") == 0
        registry.delete(PODS, "default", "duo", grace_period_seconds=1)
        await wait_for(lambda: pod_of(registry, pod) is None, within=10, what="pod removed")
        assert not directory.exists()
