"""Controllers: shared informers feed keys into a work queue, workers reconcile keys.

Data flow (controller-runtime's shape):

    SharedInformer (one per resource, shared) ──map(event)──► keys ──► WorkQueue (own)
                                                                             │
                        ┌────── error: rate-limited re-add ◄─────────────────┤
                        │       Result(requeue_after): delayed re-add ◄──────┤
                        ▼                                                    ▼
                     WorkQueue ◄────────────────────────────────── N workers: reconcile(key)

Invariants:
- The queue holds *keys*, never objects or events: a reconcile re-reads the state it
  needs from the registry, so a missed, repeated or reordered event cannot leave the
  cluster wrong (level-triggered).
- A key is queued at most once (de-duplicated), and is never reconciled by two workers
  at once; a key added while it is being reconciled is reconciled again afterwards.
- Errors back off per key exponentially (5 ms, 10 ms, ... capped at 1000 s, client-go's
  default item limiter); a success forgets the key's failures.
- Every reconcile runs under a timeout and a catch-all: one bad object never stops a
  controller.
- Informers are shared (informer.py): each controller only registers its mappers on
  them, so N controllers of pods cost one watch, and a watch that hits `Gone` re-lists
  and reports vanished objects as DELETED to every mapper. Each controller keeps its
  own queue, so one controller's back-log or back-off never delays another's.
- `run` reports started once every mapper has seen the cache (as ADDED events) and
  every worker runs; stopping unregisters the mappers.
- Each reconcile is timed into controller_runtime_reconcile_time_seconds{controller}
  and counted by result (success, error, requeue, requeue_after); the queue reports
  client-go's workqueue_* figures under the controller's name (`registry.metrics`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Hashable, Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import anyio
import structlog
from anyio.abc import TaskStatus

from miniorch.api.registry import Registry
from miniorch.api.resource import Resource
from miniorch.core.objects import Obj, name_of, namespace_of
from miniorch.machinery.informer import InformerEvent, SharedInformerFactory
from miniorch.machinery.workqueue import RateLimiter, WorkQueue

log = structlog.get_logger(__name__)

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


@dataclass(frozen=True, order=True)
class ObjectKey:
    """controller-runtime's `Request`: which object to reconcile, nothing more."""

    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Obj) -> ObjectKey:
        return cls(namespace_of(obj), name_of(obj))

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True)
class Result:
    """What a reconcile asks of the queue. The default: done, forget the key."""

    requeue_after: float | None = None
    """Reconcile again after this many seconds (and reset the key's back-off)."""
    requeue: bool = False
    """Reconcile again after the key's rate-limited back-off."""


class Reconciler(Protocol[K_contra]):
    async def reconcile(self, key: K_contra) -> Result:
        """Bring the world to the desired state for `key`; raise to retry with back-off."""
        ...


Mapper = Callable[[InformerEvent], Iterable[K]]


@dataclass(frozen=True)
class Source(Generic[K]):
    """What to watch, and how an event maps to keys to reconcile. The informer is
    shared and unfiltered: a mapper that wants a subset returns no keys for the rest."""

    resource: Resource
    map: Mapper[K]


class Controller(Generic[K]):
    """Mappers on shared informers + its own work queue + workers around one
    reconciler (an actor).

    `informers`: the process's shared factory (the cluster passes one to every actor);
    None gives the controller a private one, run inside `run` (tests, tools).
    """

    def __init__(self, *, name: str, registry: Registry, reconciler: Reconciler[K],
                 sources: Sequence[Source[K]], workers: int = 1,
                 reconcile_timeout: float = 30.0,
                 rate_limiter: RateLimiter[K] | None = None,
                 informers: SharedInformerFactory | None = None) -> None:
        self.name = name
        self.queue: WorkQueue[K] = WorkQueue(rate_limiter=rate_limiter, name=name,
                                             metrics=registry.metrics)
        # controller-runtime's reconcile figures, bound once (core/metrics.py).
        metrics = registry.metrics
        self._reconcile_time = metrics.reconcile_time.labels(name)
        self._reconcile_results = {result: metrics.reconcile_total.labels(name, result)
                                   for result in ("success", "error", "requeue",
                                                  "requeue_after")}
        self.sources = list(sources)
        self.reconciler = reconciler
        self.informers = informers or SharedInformerFactory(registry)
        self._own_informers = informers is None
        self._workers = workers
        self._timeout = reconcile_timeout
        self._subscriptions: ExitStack | None = None
        """Open while running: the handlers on the shared informers."""
        self._log = log.bind(controller=name)

    def add_source(self, source: Source[K]) -> None:
        """Follow one more resource, also while running (a kind that appeared later:
        one a CustomResourceDefinition serves)."""
        self.sources.append(source)
        if self._subscriptions is not None:
            informer = self.informers.informer(source.resource)
            self._subscriptions.enter_context(informer.add_handler(self._handler(source)))

    def enqueue(self, key: K) -> None:
        self.queue.add(key)

    def enqueue_after(self, key: K, delay: float) -> None:
        self.queue.add_after(key, delay)

    def _handler(self, source: Source[K]) -> Callable[[InformerEvent], None]:
        def handle(event: InformerEvent) -> None:
            try:
                keys = list(source.map(event))
            except Exception:
                self._log.exception("mapping an event failed", resource=source.resource.plural,
                                    object=name_of(event.object))
                return
            for key in keys:
                self.queue.add(key)
        return handle

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            if self._own_informers:
                await tg.start(self.informers.run)
            tg.start_soon(self.queue.run)
            with ExitStack() as subscriptions:
                self._subscriptions = subscriptions
                try:
                    for source in list(self.sources):
                        informer = self.informers.informer(source.resource)
                        subscriptions.enter_context(
                            informer.add_handler(self._handler(source)))
                    for _ in range(self._workers):
                        tg.start_soon(self._worker)
                    self._log.debug("controller started", workers=self._workers)
                    task_status.started()
                    await anyio.sleep_forever()
                finally:
                    self._subscriptions = None

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self._process(key)
            finally:
                self.queue.done(key)

    async def _process(self, key: K) -> None:
        logger = self._log.bind(key=str(key), reconcile_id=uuid.uuid4().hex[:8])
        started = time.perf_counter()
        try:
            with anyio.fail_after(self._timeout):
                result = await self.reconciler.reconcile(key)
        except Exception as exc:
            self._reconcile_time.observe(time.perf_counter() - started)
            self._reconcile_results["error"].inc()
            delay = self.queue.add_rate_limited(key)
            logger.warning("reconcile failed, requeued", error=repr(exc),
                           retry_in=round(delay, 3), exc_info=not isinstance(exc, TimeoutError))
            return
        self._reconcile_time.observe(time.perf_counter() - started)
        self._reconcile_results["requeue_after" if result.requeue_after is not None
                                else "requeue" if result.requeue else "success"].inc()
        if result.requeue_after is not None:
            self.queue.forget(key)
            self.queue.add_after(key, result.requeue_after)
        elif result.requeue:
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)
