"""The machinery: queue semantics, back-off, requeue, timeouts, informers and Gone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import miniorch.api.store as store_module
from miniorch.api.kinds import NAMESPACES, PODS
from miniorch.machinery.controller import Controller, ObjectKey, Result, Source
from miniorch.machinery.informer import InformerEvent
from miniorch.machinery.workqueue import RateLimiter, WorkQueue


def test_rate_limiter_backs_off_exponentially_and_caps() -> None:
    limiter: RateLimiter[str] = RateLimiter()
    delays = [limiter.when("k") for _ in range(4)]
    assert delays == [0.005, 0.01, 0.02, 0.04]
    for _ in range(100):
        last = limiter.when("k")
    assert last == 1000.0
    assert limiter.when("other") == 0.005
    limiter.forget("k")
    assert limiter.when("k") == 0.005


async def test_queue_deduplicates_and_requeues_keys_added_while_processing() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    key = await queue.get()
    assert key == "a"
    queue.add("a")  # while "a" is being processed: not handed out again yet
    assert await queue.get() == "b"
    assert len(queue) == 0
    queue.done("a")
    assert await queue.get() == "a"  # ...but processed again after
    queue.done("a")
    queue.done("b")
    await queue.join()


async def test_delayed_adds_arrive_after_their_delay() -> None:
    queue: WorkQueue[str] = WorkQueue()
    async with anyio.create_task_group() as tg:
        tg.start_soon(queue.run)
        start = anyio.current_time()
        queue.add_after("late", 0.05)
        queue.add_after("late", 0.5)  # the earlier deadline wins
        with anyio.fail_after(2):
            assert await queue.get() == "late"
        assert anyio.current_time() - start >= 0.045
        tg.cancel_scope.cancel()


class Recorder:
    """A reconciler that records calls and does what each test asks."""

    def __init__(self) -> None:
        self.calls: Counter[ObjectKey] = Counter()
        self.successes: Counter[ObjectKey] = Counter()
        self.active: set[ObjectKey] = set()
        self.overlap = False
        self.failures: Counter[ObjectKey] = Counter()
        self.hang_once = False
        self.requeue_after: float | None = None
        self._changed = anyio.Event()

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        with anyio.fail_after(within):
            while not predicate():
                self._changed = anyio.Event()
                await self._changed.wait()

    async def reconcile(self, key: ObjectKey) -> Result:
        if key in self.active:
            self.overlap = True
        self.active.add(key)
        try:
            self.calls[key] += 1
            await anyio.sleep(0.001)
            if self.hang_once:
                self.hang_once = False
                await anyio.sleep(10)
            if self.failures[key]:
                self.failures[key] -= 1
                raise RuntimeError("boom")
            self.successes[key] += 1
            if self.requeue_after is not None and self.calls[key] < 3:
                return Result(requeue_after=self.requeue_after)
            return Result()
        finally:
            self.active.discard(key)
            self._changed.set()


def ns_source() -> Source[ObjectKey]:
    def keys(event: InformerEvent) -> list[ObjectKey]:
        return [ObjectKey.of(event.object)]
    return Source(NAMESPACES, keys)


async def test_errors_retry_with_backoff_and_never_overlap(cluster: Any,
                                                           run_actors: Any) -> None:
    rec = Recorder()
    key = ObjectKey("", "default")
    rec.failures[key] = 3
    ctl = Controller(name="t", registry=cluster.registry, reconciler=rec,
                     sources=[ns_source()], workers=4)
    async with run_actors(ctl.run):
        for _ in range(20):
            ctl.enqueue(key)
            await anyio.lowlevel.checkpoint()
        await rec.wait_for(lambda: rec.successes[key] >= 1)
        assert ctl.queue.failures(key) == 0  # success forgets the back-off
    assert not rec.overlap
    assert rec.calls[key] >= 4
    assert set(rec.calls) == {ObjectKey("", ns) for ns in
                              ("default", "kube-system", "kube-public", "kube-node-lease")}


async def test_timeout_is_caught_and_requeued(cluster: Any, run_actors: Any) -> None:
    rec = Recorder()
    rec.hang_once = True
    ctl = Controller(name="t", registry=cluster.registry, reconciler=rec,
                     sources=[], workers=1, reconcile_timeout=0.05)
    async with run_actors(ctl.run):
        ctl.enqueue(ObjectKey("", "x"))
        await rec.wait_for(lambda: rec.successes[ObjectKey("", "x")] == 1)
        assert rec.calls[ObjectKey("", "x")] == 2


async def test_requeue_after(cluster: Any, run_actors: Any) -> None:
    rec = Recorder()
    rec.requeue_after = 0.01
    ctl = Controller(name="t", registry=cluster.registry, reconciler=rec,
                     sources=[], workers=1)
    async with run_actors(ctl.run):
        ctl.enqueue(ObjectKey("", "x"))
        await rec.wait_for(lambda: rec.calls[ObjectKey("", "x")] == 3)


async def test_informer_relists_after_gone(cluster: Any, run_actors: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []
    rec = Recorder()

    def record(event: InformerEvent) -> list[ObjectKey]:
        seen.append((event.type, event.object["metadata"]["name"]))
        return [ObjectKey.of(event.object)]
    for i in range(3):
        cluster.registry.create(PODS, {"metadata": {"name": f"old-{i}", "namespace": "default"},
                                       "spec": {"containers": [{"name": "c", "image": "x"}]}})
    # A tiny mailbox: the informer's watch overflows and ends with Gone.
    monkeypatch.setattr(store_module, "WATCH_MAILBOX", 4)
    ctl = Controller(name="t", registry=cluster.registry, reconciler=rec,
                     sources=[Source(PODS, record)], workers=1)
    async with run_actors(ctl.run):
        informer = ctl.informers.informer(PODS)
        cluster.registry.delete(PODS, "default", "old-0")
        for i in range(10):  # no await in between: the watcher cannot keep up
            cluster.registry.create(PODS, {
                "metadata": {"name": f"new-{i}", "namespace": "default"},
                "spec": {"containers": [{"name": "c", "image": "x"}]}})
        await rec.wait_for(lambda: informer.relists > 0 and ("ADDED", "new-9") in seen)
    assert ("DELETED", "old-0") in seen
    assert {name for kind, name in seen if kind == "ADDED"} >= {f"new-{i}" for i in range(10)}


def _sample(cluster: Any, sample: str, **labels: str) -> float:
    value = cluster.registry.metrics.registry.get_sample_value(sample, labels)
    return 0.0 if value is None else float(value)


async def test_reconciles_and_queue_are_measured(cluster: Any, run_actors: Any) -> None:
    """controller-runtime's reconcile figures and client-go's queue figures, by name."""
    rec = Recorder()
    key = ObjectKey("", "default")
    rec.failures[key] = 2
    ctl = Controller(name="measured", registry=cluster.registry, reconciler=rec,
                     sources=[ns_source()], workers=1)
    async with run_actors(ctl.run):
        await rec.wait_for(lambda: rec.successes[key] >= 1)
        await ctl.queue.join()
    errors = _sample(cluster, "controller_runtime_reconcile_total", controller="measured",
                     result="error")
    successes = _sample(cluster, "controller_runtime_reconcile_total",
                        controller="measured", result="success")
    assert errors == 2 and successes == sum(rec.successes.values())
    assert _sample(cluster, "controller_runtime_reconcile_time_seconds_count",
                   controller="measured") == errors + successes
    assert _sample(cluster, "workqueue_retries_total", name="measured") == 2
    adds = _sample(cluster, "workqueue_adds_total", name="measured")
    assert adds == errors + successes  # each reconcile was one add (4 namespaces + 2 retries)
    assert _sample(cluster, "workqueue_queue_duration_seconds_count", name="measured") == adds
    assert _sample(cluster, "workqueue_work_duration_seconds_count", name="measured") == adds
    assert _sample(cluster, "workqueue_depth", name="measured") == 0


def test_queue_depth_is_read_when_scraped() -> None:
    from miniorch.core.metrics import ControlPlaneMetrics
    metrics = ControlPlaneMetrics()
    queue: WorkQueue[str] = WorkQueue(name="q", metrics=metrics)
    for key in ("a", "b", "a", "c"):
        queue.add(key)
    assert metrics.registry.get_sample_value("workqueue_depth", {"name": "q"}) == 3
    assert metrics.registry.get_sample_value("workqueue_adds_total", {"name": "q"}) == 3
    assert b'workqueue_depth{name="q"} 3.0' in metrics.exposition()
    del queue  # a stopped controller's queue leaves the figures
    assert metrics.registry.get_sample_value("workqueue_depth", {"name": "q"}) is None
