"""Volumes in user-namespace pods (node.rootless.UsernsRuntime): the same binds and tmpfs
as root sandboxes, made inside the pod's own user and mount namespaces (where the
host's mounts are locked, so a read-only bind must keep their flags).

Run by root here (the pod's user namespace maps root inside to root outside): the
namespaces, the locked mounts and the code path are those of a rootless cluster.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from miniorch.api.kinds import CONFIGMAPS, PODS
from miniorch.api.registry import Registry
from miniorch.api.store import Store
from miniorch.core import podfiles
from miniorch.core.objects import Obj
from miniorch.core.settings import NetworkSettings, Settings
from miniorch.images.store import ImageStore
from miniorch.node.rootless import UsernsRuntime
from miniorch.sandbox.rootless import PodNetDialer
from tests.leakcheck import leak_check
from tests.node.nodehelpers import FAST, container_status, pod_of, running_kubelet, wait_for

SCRIPT = ("echo shared > /scratch/f; "
          "touch /etc/cfg/x 2>/dev/null && echo cfg-writable || echo cfg-read-only; "
          "grep ' /scratch ' /proc/mounts | cut -d' ' -f3; "
          "while true; do echo \"mode=$(cat /etc/cfg/mode) other=$(cat /other/f)\"; "
          "sleep 0.2; done")


def log_lines(directory: Path, container: str) -> list[str]:
    path = podfiles.container_log(directory, container, 0)
    if not path.exists():
        return []
    return [line.split(" ", 3)[3] for line in path.read_text().splitlines()]


@pytest.mark.root
async def test_userns_pod_gets_config_map_and_memory_empty_dir(tmp_path: Path) -> None:
    registry = Registry(Store(None))
    registry.ensure_system_objects()
    settings = Settings(home=tmp_path, node_heartbeat_seconds=0.5,
                        network=NetworkSettings(bridge_name=f"mor{secrets.token_hex(3)}"))
    runtime = UsernsRuntime(images=ImageStore(settings.images_dir), dialer=PodNetDialer(),
                            id_prefix=f"zr{secrets.token_hex(3)}")
    registry.create(CONFIGMAPS, {"metadata": {"name": "app"}, "data": {"mode": "slow"}})
    mounts = [{"name": "scratch", "mountPath": "/scratch"},
              {"name": "cfg", "mountPath": "/etc/cfg"}]
    with leak_check(mount_roots=[tmp_path]):
        async with running_kubelet(registry, settings, runtime, config=FAST) as node:
            pod = registry.create(PODS, {
                "metadata": {"name": "rl", "namespace": "default"},
                "spec": {"nodeName": node.name, "terminationGracePeriodSeconds": 1,
                         "containers": [
                             {"name": "main", "image": "busybox",
                              "command": ["sh", "-c", SCRIPT], "volumeMounts": [
                                  *mounts, {"name": "scratch", "mountPath": "/other"}]},
                             {"name": "idle", "image": "busybox",
                              "command": ["sh", "-c", "sleep 60"], "volumeMounts": mounts}],
                         "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory"}},
                                     {"name": "cfg", "configMap": {"name": "app"}}]}})
            directory = podfiles.pod_dir(settings.pods_dir, "default", "rl",
                                         pod["metadata"]["uid"])
            await wait_for(lambda: any(line.startswith("mode=")
                                       for line in log_lines(directory, "main")),
                           within=60, what="the container reading its volumes")
            lines = log_lines(directory, "main")
            assert lines[:2] == ["cfg-read-only", "tmpfs"], lines
            assert lines[-1] == "mode=slow other=shared"

            def faster(obj: Obj) -> None:
                obj["data"]["mode"] = "fast"
            registry.mutate(CONFIGMAPS, "default", "app", faster)
            await wait_for(lambda: log_lines(directory, "main")[-1].startswith("mode=fast"),
                           within=3, what="the update seen in place")
            assert container_status(registry, pod)["restartCount"] == 0
            registry.delete(PODS, "default", "rl", grace_period_seconds=1)
            await wait_for(lambda: pod_of(registry, pod) is None, within=10, what="removed")
            assert not directory.exists()
