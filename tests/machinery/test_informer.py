"""Shared informers: one watch per resource for many consumers, late handlers, Gone,
read-only objects."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import miniorch.api.store as store_module
from miniorch.api.kinds import NAMESPACES, PODS, RESOURCES, SERVICES
from miniorch.api.store import Store
from miniorch.controllers.manager import ControllerManager
from miniorch.core.objects import Obj
from miniorch.core.settings import Settings
from miniorch.machinery.controller import Controller, ObjectKey, Result, Source
from miniorch.machinery.informer import InformerEvent, SharedInformerFactory
from miniorch.machinery.readonly import FrozenDict, freeze, thaw

WAIT = 5.0

WATCHED = {r.key: 1 for r in RESOURCES if r.plural != "events" and "watch" in r.verbs}
"""One watch per watchable kind (the garbage collector follows all but Events)."""


def open_watches(store: Store) -> dict[str, int]:
    """Watches the store is feeding right now, per resource (the boundary we count)."""
    counts: dict[str, int] = {}
    for watcher in store._watchers:
        counts[watcher.resource_key] = counts.get(watcher.resource_key, 0) + 1
    return counts


def make_pod(cluster: Any, name: str, node: str = "") -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "x"}]}
    if node:
        spec["nodeName"] = node
    created: Obj = cluster.registry.create(
        PODS, {"metadata": {"name": name, "namespace": "default"}, "spec": spec})
    return created


class Seen:
    """A handler recording (type, name) of every event it gets."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.objects: list[Obj] = []
        self._changed = anyio.Event()

    def __call__(self, event: InformerEvent) -> None:
        self.events.append((event.type, event.object["metadata"]["name"]))
        self.objects.append(event.object)
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        with anyio.fail_after(WAIT):
            while not predicate():
                await self._changed.wait()


async def test_two_consumers_share_one_list_and_one_watch(cluster: Any,
                                                          run_actors: Any) -> None:
    factory = SharedInformerFactory(cluster.registry)
    first, second = Seen(), Seen()
    async with run_actors(factory.run):
        before = open_watches(cluster.store).get(PODS.key, 0)
        with factory.informer(PODS).add_handler(first), \
                factory.informer(PODS).add_handler(second):
            assert factory.informer(PODS) is factory.informer(PODS)
            assert open_watches(cluster.store)[PODS.key] == before + 1
            make_pod(cluster, "web")
            await first.wait_for(lambda: ("ADDED", "web") in first.events)
            await second.wait_for(lambda: ("ADDED", "web") in second.events)
            # One parse, shared, and nobody may edit it.
            assert first.objects[-1] is second.objects[-1]
            with pytest.raises(TypeError, match="read-only"):
                first.objects[-1]["metadata"]["labels"] = {"x": "y"}
            cluster.registry.delete(PODS, "default", "web")
            await second.wait_for(lambda: ("DELETED", "web") in second.events)
        assert first.events == second.events == [("ADDED", "web"), ("DELETED", "web")]
    # The factory stopped: its watches are closed.
    assert open_watches(cluster.store).get(PODS.key, 0) == before


async def test_handler_added_after_start_gets_the_cache_as_added(cluster: Any,
                                                                 run_actors: Any) -> None:
    factory = SharedInformerFactory(cluster.registry)
    early, late = Seen(), Seen()
    async with run_actors(factory.run):
        informer = factory.informer(PODS)
        with informer.add_handler(early):
            make_pod(cluster, "b", node="node-1")
            make_pod(cluster, "a")
            cluster.registry.delete(PODS, "default", "b")  # bound, so graceful: terminating
            await early.wait_for(lambda: len(early.events) >= 3)
            with informer.add_handler(late):
                # Synchronously, in namespace/name order, each object once.
                assert late.events == [("ADDED", "a"), ("ADDED", "b")]
                assert late.objects[1]["metadata"].get("deletionTimestamp")
                make_pod(cluster, "c")
                await late.wait_for(lambda: ("ADDED", "c") in late.events)
            make_pod(cluster, "d")  # after the subscription closed
            await early.wait_for(lambda: ("ADDED", "d") in early.events)
        assert ("ADDED", "d") not in late.events
        assert [e for e in late.events if e[1] == "a"] == [("ADDED", "a")]


async def test_relist_after_gone_reports_vanished_objects_to_every_handler(
        cluster: Any, run_actors: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        make_pod(cluster, f"old-{i}")
    # A tiny mailbox: the shared watch overflows and ends with Gone.
    monkeypatch.setattr(store_module, "WATCH_MAILBOX", 4)
    factory = SharedInformerFactory(cluster.registry)
    first, second = Seen(), Seen()
    async with run_actors(factory.run):
        informer = factory.informer(PODS)
        with informer.add_handler(first), informer.add_handler(second):
            cluster.registry.delete(PODS, "default", "old-0", grace_period_seconds=0)
            for i in range(10):  # no await in between: the watcher cannot keep up
                make_pod(cluster, f"new-{i}")
            await second.wait_for(lambda: informer.relists > 0
                                  and ("ADDED", "new-9") in second.events)
            store_pods, _ = cluster.registry.list(PODS)
            assert [p["metadata"]["name"] for p in informer.list()] == \
                [p["metadata"]["name"] for p in store_pods]
        for seen in (first, second):
            assert ("DELETED", "old-0") in seen.events
            assert {n for kind, n in seen.events if kind == "ADDED"} == \
                {"old-1", "old-2", *(f"new-{i}" for i in range(10)), "old-0"}
    assert informer.relists >= 1
    assert open_watches(cluster.store).get(PODS.key, 0) == 0


async def test_a_failing_handler_does_not_starve_the_others(cluster: Any,
                                                            run_actors: Any) -> None:
    factory = SharedInformerFactory(cluster.registry)
    good = Seen()

    def broken(event: InformerEvent) -> None:
        raise RuntimeError("bug in one consumer")
    async with run_actors(factory.run):
        informer = factory.informer(SERVICES)
        with informer.add_handler(broken), informer.add_handler(good):
            cluster.registry.create(SERVICES, {
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
            await good.wait_for(lambda: ("ADDED", "web") in good.events)


async def test_factory_must_run_before_informers_are_asked_for(cluster: Any) -> None:
    with pytest.raises(RuntimeError, match="not running"):
        SharedInformerFactory(cluster.registry).informer(PODS)


class Counting:
    def __init__(self) -> None:
        self.keys: list[ObjectKey] = []
        self.saw_default = anyio.Event()

    async def reconcile(self, key: ObjectKey) -> Result:
        self.keys.append(key)
        if key == ObjectKey("", "default"):
            self.saw_default.set()
        return Result()


async def test_controllers_on_one_factory_keep_their_own_queues(cluster: Any,
                                                                run_actors: Any) -> None:
    factory = SharedInformerFactory(cluster.registry)
    recs = [Counting(), Counting()]

    def keys(event: InformerEvent) -> list[ObjectKey]:
        return [ObjectKey.of(event.object)]
    ctls = [Controller(name=f"c{i}", registry=cluster.registry, reconciler=rec,
                       sources=[Source(NAMESPACES, keys)], informers=factory)
            for i, rec in enumerate(recs)]
    async with run_actors(factory.run, *(c.run for c in ctls)):
        assert open_watches(cluster.store)[NAMESPACES.key] == 1
        assert ctls[0].queue is not ctls[1].queue
        with anyio.fail_after(WAIT):
            for rec in recs:  # each controller reconciled the key from its own queue
                await rec.saw_default.wait()
    assert open_watches(cluster.store).get(NAMESPACES.key, 0) == 0


async def test_controller_manager_opens_one_watch_per_resource(cluster: Any, run_actors: Any,
                                                               tmp_path: Any) -> None:
    manager = ControllerManager(cluster.registry, Settings(home=tmp_path), cluster.clock)
    async with run_actors(manager.run):
        watched = open_watches(cluster.store)
        # The garbage collector follows every kind but Events; the others add none.
        assert watched == WATCHED
        assert manager.informers.resources == sorted(watched)


def test_frozen_objects_read_like_dicts_and_copy_into_plain_ones() -> None:
    obj = freeze({"metadata": {"name": "x", "labels": {"a": "1"}},
                  "spec": {"containers": [{"name": "c", "args": ["-v"]}]}})
    assert isinstance(obj, dict) and isinstance(obj, FrozenDict)
    assert json.loads(json.dumps(obj)) == obj
    for edit in (lambda: obj["spec"].update(x=1),
                 lambda: obj["spec"]["containers"].append({}),
                 lambda: obj["spec"]["containers"][0]["args"].__setitem__(0, "-q"),
                 lambda: obj["metadata"].setdefault("uid", "u"),
                 lambda: obj.pop("spec")):
        with pytest.raises(TypeError):
            edit()
    for plain in (thaw(obj), copy.deepcopy(obj)):
        plain["spec"]["containers"][0]["args"].append("-q")
        plain["metadata"]["labels"]["b"] = "2"
        assert type(plain) is dict and type(plain["spec"]["containers"]) is list
    assert obj["spec"]["containers"][0]["args"] == ["-v"]
    top = dict(obj)
    top["status"] = {}  # a plain top level over frozen values
    assert "status" not in obj
    assert freeze(obj) is obj
