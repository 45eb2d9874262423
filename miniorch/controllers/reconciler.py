"""Reconcile machinery: informers feed keys into a work queue, workers reconcile keys.

Data flow (controller-runtime's shape):

    Registry.list + Registry.watch ──► Informer ──map(event)──► keys ──► WorkQueue
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
- An informer survives `Gone` (its watch fell behind, or its resourceVersion is too
  old) by re-listing; objects that vanished meanwhile are reported as DELETED, as
  client-go's reflector does with `DeletedFinalStateUnknown`.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

import anyio
import structlog
from anyio.abc import TaskStatus

from miniorch.api.errors import Gone
from miniorch.api.registry import Registry
from miniorch.api.resource import Resource
from miniorch.core.objects import Obj, name_of, namespace_of

log = structlog.get_logger(__name__)

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


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


@dataclass(frozen=True)
class InformerEvent:
    """One change as an informer saw it; `old` is the informer's previous copy."""

    type: EventType
    object: Obj
    old: Obj | None = None


Mapper = Callable[[InformerEvent], Iterable[K]]


@dataclass(frozen=True)
class Source(Generic[K]):
    """What to list and watch, and how an event maps to keys to reconcile."""

    resource: Resource
    map: Mapper[K]
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None


class RateLimiter(Generic[K]):
    """client-go's ItemExponentialFailureRateLimiter: base * 2^failures, capped."""

    def __init__(self, *, base: float = 0.005, cap: float = 1000.0) -> None:
        self._base = base
        self._cap = cap
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        # Cap the exponent too: 2**1000 floats overflow long after the cap bites.
        return float(min(self._cap, self._base * 2 ** min(failures, 64)))

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)


class WorkQueue(Generic[K]):
    """De-duplicating key queue with delayed and rate-limited adds (client-go's
    workqueue). `run()` drives the delayed adds; `get()`/`done()` bracket a reconcile."""

    def __init__(self, *, rate_limiter: RateLimiter[K] | None = None) -> None:
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._ready = anyio.Event()
        self._limiter: RateLimiter[K] = rate_limiter or RateLimiter()
        # Delayed keys: earliest deadline wins; the heap may hold stale entries.
        self._deadlines: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._timer_wakeup = anyio.Event()
        self._idle = anyio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def processing(self) -> int:
        return len(self._processing)

    def add(self, key: K) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # `done()` queues it again, so no two workers hold it at once
        self._queue.append(key)
        self._ready.set()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        deadline = anyio.current_time() + delay
        current = self._deadlines.get(key)
        if current is not None and current <= deadline:
            return
        self._deadlines[key] = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), key))
        self._timer_wakeup.set()

    def add_rate_limited(self, key: K) -> float:
        delay = self._limiter.when(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        self._limiter.forget(key)

    def failures(self, key: K) -> int:
        return self._limiter.failures(key)

    async def get(self) -> K:
        while not self._queue:
            if self._ready.is_set():
                self._ready = anyio.Event()
            await self._ready.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._ready.set()
        elif not self._queue and not self._processing:
            self._idle.set()

    async def join(self) -> None:
        """Wait until nothing is queued or being reconciled (delayed keys aside)."""
        while self._queue or self._processing:
            if self._idle.is_set():
                self._idle = anyio.Event()
            await self._idle.wait()

    async def run(self) -> None:
        """Move delayed keys into the queue when their time comes (runs forever)."""
        while True:
            now = anyio.current_time()
            while self._heap and self._heap[0][0] <= now:
                deadline, _, key = heapq.heappop(self._heap)
                if self._deadlines.get(key) == deadline:
                    del self._deadlines[key]
                    self.add(key)
            if self._timer_wakeup.is_set():
                self._timer_wakeup = anyio.Event()
            timeout = self._heap[0][0] - now if self._heap else None
            with anyio.move_on_after(timeout):
                await self._timer_wakeup.wait()


class Informer(Generic[K]):
    """List, then watch from the list's resourceVersion; re-list on `Gone`.

    Keeps the last copy of every object it saw, so mappers get the old object on
    MODIFIED (a pod's labels changed: the services it left need a reconcile too) and
    a re-list can report what disappeared meanwhile.
    """

    def __init__(self, registry: Registry, source: Source[K],
                 emit: Callable[[K], None]) -> None:
        self._registry = registry
        self._source = source
        self._emit = emit
        self._known: dict[tuple[str, str], Obj] = {}
        self.relists = 0

    def _dispatch(self, event: InformerEvent) -> None:
        try:
            keys = list(self._source.map(event))
        except Exception:
            log.exception("mapping an event failed", resource=self._source.resource.plural,
                          object=name_of(event.object))
            return
        for key in keys:
            self._emit(key)

    def _list(self) -> int:
        src = self._source
        items, rv = self._registry.list(src.resource, src.namespace,
                                        label_selector=src.label_selector,
                                        field_selector=src.field_selector)
        fresh = {(namespace_of(o), name_of(o)): o for o in items}
        for ident, old in list(self._known.items()):
            if ident not in fresh:
                del self._known[ident]
                self._dispatch(InformerEvent("DELETED", old, old))
        for ident, obj in fresh.items():
            seen = self._known.get(ident)
            self._known[ident] = obj
            if seen is None:
                self._dispatch(InformerEvent("ADDED", obj))
            elif seen.get("metadata", {}).get("resourceVersion") != \
                    obj.get("metadata", {}).get("resourceVersion"):
                self._dispatch(InformerEvent("MODIFIED", obj, seen))
        return rv

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        src = self._source
        rv = self._list()
        task_status.started()
        while True:
            try:
                watch = self._registry.watch(src.resource, src.namespace, since=rv or None,
                                             label_selector=src.label_selector,
                                             field_selector=src.field_selector)
                async with watch:
                    async for event in watch:
                        rv = event.rv
                        obj = event.object
                        ident = (namespace_of(obj), name_of(obj))
                        old = self._known.get(ident)
                        if event.type == "DELETED":
                            self._known.pop(ident, None)
                        else:
                            self._known[ident] = obj
                        self._dispatch(InformerEvent(event.type, obj, old))
                # The stream ended without Gone (store closing): watch again shortly.
                await anyio.sleep(0.1)
            except Gone:
                self.relists += 1
                log.info("watch expired, re-listing", resource=src.resource.plural)
                rv = self._list()


class Controller(Generic[K]):
    """Informers + work queue + workers around one reconciler (an actor)."""

    def __init__(self, *, name: str, registry: Registry, reconciler: Reconciler[K],
                 sources: Sequence[Source[K]], workers: int = 1,
                 reconcile_timeout: float = 30.0,
                 rate_limiter: RateLimiter[K] | None = None) -> None:
        self.name = name
        self.queue: WorkQueue[K] = WorkQueue(rate_limiter=rate_limiter)
        self.informers = [Informer(registry, source, self.queue.add) for source in sources]
        self.reconciler = reconciler
        self._workers = workers
        self._timeout = reconcile_timeout
        self._log = log.bind(controller=name)

    def enqueue(self, key: K) -> None:
        self.queue.add(key)

    def enqueue_after(self, key: K, delay: float) -> None:
        self.queue.add_after(key, delay)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.queue.run)
            for informer in self.informers:
                await tg.start(informer.run)
            for _ in range(self._workers):
                tg.start_soon(self._worker)
            self._log.debug("controller started", workers=self._workers)
            task_status.started()

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self._process(key)
            finally:
                self.queue.done(key)

    async def _process(self, key: K) -> None:
        logger = self._log.bind(key=str(key), reconcile_id=uuid.uuid4().hex[:8])
        try:
            with anyio.fail_after(self._timeout):
                result = await self.reconciler.reconcile(key)
        except Exception as exc:
            delay = self.queue.add_rate_limited(key)
            logger.warning("reconcile failed, requeued", error=repr(exc),
                           retry_in=round(delay, 3), exc_info=not isinstance(exc, TimeoutError))
            return
        if result.requeue_after is not None:
            self.queue.forget(key)
            self.queue.add_after(key, result.requeue_after)
        elif result.requeue:
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)
