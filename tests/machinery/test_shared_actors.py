"""The cluster process's actors on one informer factory: one watch per resource.

The controllers, three kubelets (plain local processes) and the service proxy share
the factory, as `Cluster` wires them; each still gets exactly its own events.
"""

from __future__ import annotations

import random
import secrets
from pathlib import Path
from typing import Any

import anyio

from miniorch.api import tls
from miniorch.api.kinds import PODS, RESOURCES
from miniorch.api.registry import Registry
from miniorch.api.store import Store
from miniorch.controllers.manager import ControllerManager
from miniorch.core.clock import SystemClock
from miniorch.core.objects import NodeName, Obj
from miniorch.core.settings import NetworkSettings, Settings
from miniorch.machinery.informer import SharedInformerFactory
from miniorch.node import Kubelet
from miniorch.node.processes import ProcessRuntime
from miniorch.proxy.service_proxy import NoLocalAddresses, ServiceProxy
from tests.leakcheck import leak_check
from tests.machinery.test_informer import open_watches
from tests.node.nodehelpers import FAST, images

WAIT = 10.0

WATCHED = {r.key: 1 for r in RESOURCES if r.plural != "events" and "watch" in r.verbs}
"""One watch per watchable kind (the garbage collector follows all but Events)."""


async def test_idle_cluster_actors_hold_one_watch_per_resource(tmp_path: Path,
                                                               run_actors: Any) -> None:
    a, b = random.randint(1, 254), random.randrange(0, 248, 4)
    bridge = f"mot{secrets.token_hex(3)}"
    with leak_check(prefixes=[bridge], mount_roots=[tmp_path]):
        await _run_cluster_actors(tmp_path, run_actors, bridge, a, b)


async def _run_cluster_actors(tmp_path: Path, run_actors: Any, bridge: str,
                              a: int, b: int) -> None:
    settings = Settings(home=tmp_path, node_heartbeat_seconds=0.2, network=NetworkSettings(
        bridge_name=bridge, service_cidr=f"127.{a}.{b}.0/24",
        loadbalancer_cidr=f"127.{a}.{b + 1}.0/24"))
    store = Store(None)
    registry = Registry(store, network=settings.network)
    registry.ensure_system_objects()
    # The CA the API server would make: published as kube-root-ca.crt for pods' tokens.
    tls.ensure_tls(settings.tls_dir)
    runtime = ProcessRuntime(images())
    informers = SharedInformerFactory(registry)
    first = random.randrange(10, 240)
    kubelets = [Kubelet(name=NodeName(f"node-{secrets.token_hex(3)}"), index=first + i,
                        registry=registry, settings=settings, clock=SystemClock(),
                        runtime=runtime, config=FAST, informers=informers)
                for i in range(3)]
    manager = ControllerManager(registry, settings, informers=informers)
    proxy = ServiceProxy(registry=registry, settings=settings,
                         local_addresses=NoLocalAddresses(), informers=informers)
    try:
        async with run_actors(informers.run, manager.run, *(k.run for k in kubelets),
                              proxy.run):
            # 7 watches where each actor's own loops held 20 (pods alone: 7).
            assert open_watches(store) == \
                WATCHED

            # A pod bound to the second node: only that kubelet runs it.
            target = kubelets[1]
            pod: Obj = registry.create(PODS, {
                "metadata": {"name": "once", "namespace": "default"},
                "spec": {"nodeName": target.name, "restartPolicy": "Never",
                         "containers": [{"name": "c", "image": "python"}]}})
            with anyio.fail_after(WAIT):
                async with registry.watch(PODS, "default") as watch:
                    async for event in watch:
                        if (event.object["metadata"]["name"] == "once" and
                                event.object.get("status", {}).get("phase") == "Succeeded"):
                            break
            uid = pod["metadata"]["uid"]
            assert uid in target.workers or uid in target._finished
            assert all(uid not in k.workers and uid not in k._finished
                       for k in kubelets if k is not target)
    finally:
        store.close()
    assert runtime.live_processes() == []
    assert open_watches(store) == {}

