"""kubectl 1.32's Deployment commands against a real ApiServer running the RS and
Deployment controllers and a fake kubelet (no cluster, no processes): what kubectl
reads for `rollout history`/`undo` (ReplicaSets' revision annotations, templates) must
be there, and what it writes (protobuf create, JSON patches, scale) must work."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from miniorch.api.errors import NotFound
from miniorch.api.kinds import DEPLOYMENTS, PODS, REPLICA_SETS
from miniorch.controllers.deployment import deployment_controller
from miniorch.controllers.garbage_collector import garbage_collector
from miniorch.controllers.replicaset import replica_set_controller
from miniorch.core.clock import SystemClock, rfc3339
from miniorch.core.objects import Obj
from tests.api.server_support import Cluster, running_cluster

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")


async def kubelet(cluster: Cluster) -> None:
    """Every pod Running and Ready at once; terminating pods finished at once."""
    registry = cluster.registry
    async with registry.watch(PODS) as watch:
        async for event in watch:
            pod, meta = event.object, event.object["metadata"]
            try:
                if event.type == "DELETED":
                    continue
                if meta.get("deletionTimestamp"):
                    registry.delete(PODS, meta["namespace"], meta["name"],
                                    grace_period_seconds=0)
                elif not pod["spec"].get("nodeName"):
                    registry.bind(meta["namespace"], meta["name"], "node-1")
                elif pod.get("status", {}).get("phase") != "Running":
                    now = rfc3339(SystemClock().now())
                    c = pod["spec"]["containers"][0]
                    registry.update_status(PODS, meta["namespace"], meta["name"], {
                        "phase": "Running", "podIP": "10.244.1.5", "hostIP": "10.0.0.1",
                        "conditions": [{"type": "Ready", "status": "True",
                                        "lastTransitionTime": now}],
                        "containerStatuses": [{"name": c["name"], "ready": True,
                                               "restartCount": 0, "image": c["image"],
                                               "imageID": "", "started": True,
                                               "state": {"running": {"startedAt": now}}}]})
            except NotFound:
                pass


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(tmp_path) as c:
        actors = [replica_set_controller(c.registry).run, deployment_controller(c.registry).run,
                  garbage_collector(c.registry).run]

        async def run_all() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(kubelet, c)
                for actor in actors:
                    await tg.start(actor)
        future = c.portal.start_task_soon(run_all)
        try:
            yield c
        finally:
            future.cancel()


def ok(cluster: Cluster, *args: str, timeout: float = 30) -> str:
    code, out, err = cluster.kubectl(*args, timeout=timeout)
    assert code == 0, f"kubectl {' '.join(args)}: {err}"
    return out


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def replica_sets(cluster: Cluster) -> list[Obj]:
    items: list[Obj] = cluster.call(cluster.registry.list, REPLICA_SETS, "default")[0]
    return items


def image(obj: Any) -> str:
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def test_rollout_history_undo_pause_scale(cluster: Cluster) -> None:
    out = ok(cluster, "create", "deployment", "kubia", "--image=kubia", "--replicas=3")
    assert out.strip() == "deployment.apps/kubia created"
    status = ok(cluster, "rollout", "status", "deployment/kubia", "--timeout=30s")
    assert status.strip().splitlines()[-1] == 'deployment "kubia" successfully rolled out'
    table = rows(ok(cluster, "get", "deploy,rs"))
    assert table[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1][:4] == ["deployment.apps/kubia", "3/3", "3", "3"]
    assert table[3] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    [first] = replica_sets(cluster)
    assert table[4][:4] == [f"replicaset.apps/{first['metadata']['name']}", "3", "3", "3"]

    assert ok(cluster, "set", "image", "deployment/kubia", "kubia=kubia:v2").strip() == \
        "deployment.apps/kubia image updated"
    ok(cluster, "rollout", "status", "deployment/kubia", "--timeout=30s")
    history = rows(ok(cluster, "rollout", "history", "deployment/kubia"))
    assert history == [["deployment.apps/kubia"], ["REVISION", "CHANGE-CAUSE"],
                       ["1", "<none>"], ["2", "<none>"]]
    detail = ok(cluster, "rollout", "history", "deployment/kubia", "--revision=1")
    assert "Image:\tkubia" in detail.replace("      ", "\t") or "kubia\n" in detail

    assert ok(cluster, "rollout", "undo", "deployment/kubia").strip() == \
        "deployment.apps/kubia rolled back"
    ok(cluster, "rollout", "status", "deployment/kubia", "--timeout=30s")
    d = cluster.call(cluster.registry.get, DEPLOYMENTS, "default", "kubia")
    assert image(d) == "kubia"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    back = next(rs for rs in replica_sets(cluster) if image(rs) == "kubia")
    assert back["metadata"]["uid"] == first["metadata"]["uid"]
    assert back["spec"]["replicas"] == 3
    assert [r[0] for r in rows(ok(cluster, "rollout", "history", "deployment/kubia"))[2:]] \
        == ["2", "3"]
    code, out, err = cluster.kubectl("rollout", "undo", "deployment/kubia", "--to-revision=3")
    assert code == 0 and "skipped rollback" in out + err

    assert ok(cluster, "rollout", "pause", "deployment/kubia").strip() == \
        "deployment.apps/kubia paused"
    code, _, err = cluster.kubectl("rollout", "undo", "deployment/kubia")
    assert code != 0 and "you cannot rollback a paused deployment" in err
    assert ok(cluster, "scale", "deployment", "kubia", "--replicas=2").strip() == \
        "deployment.apps/kubia scaled"
    ok(cluster, "set", "env", "deployment/kubia", "GREETING=hi")
    for _ in range(20):  # paused: scaled, but no new ReplicaSet
        if back["spec"]["replicas"] == 2:
            break
        anyio.run(anyio.sleep, 0.1)
        back = next(rs for rs in replica_sets(cluster) if image(rs) == "kubia")
    assert back["spec"]["replicas"] == 2 and len(replica_sets(cluster)) == 2
    ok(cluster, "rollout", "resume", "deployment/kubia")
    ok(cluster, "rollout", "status", "deployment/kubia", "--timeout=30s")
    assert len(replica_sets(cluster)) == 3
    assert ok(cluster, "rollout", "restart", "deployment/kubia").strip() == \
        "deployment.apps/kubia restarted"
    ok(cluster, "rollout", "status", "deployment/kubia", "--timeout=30s")
    d = cluster.call(cluster.registry.get, DEPLOYMENTS, "default", "kubia")
    assert "kubectl.kubernetes.io/restartedAt" in d["spec"]["template"]["metadata"][
        "annotations"]
    assert d["status"]["availableReplicas"] == 2 and len(replica_sets(cluster)) == 4
    assert ok(cluster, "get", "deploy", "kubia", "-o", "jsonpath={.status.conditions[*].reason}"
              ).split() == ["MinimumReplicasAvailable", "NewReplicaSetAvailable"]

    assert ok(cluster, "delete", "deployment", "kubia").strip() == \
        'deployment.apps "kubia" deleted'
    for _ in range(100):
        if not replica_sets(cluster) and not cluster.call(cluster.registry.list, PODS,
                                                          "default")[0]:
            break
        anyio.run(anyio.sleep, 0.1)
    assert replica_sets(cluster) == []
