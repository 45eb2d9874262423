"""Work queues: de-duplicating key queues with delayed and rate-limited adds.

client-go's workqueue, ported: consumers (controllers, the proxy, anything with a
reconcile loop) put *keys* in, workers take them out with `get()` and give them back
with `done()`.

Invariants:
- A key is queued at most once (de-duplicated), and is never handed to two workers at
  once; a key added while it is being processed is handed out again after `done()`.
- `add_rate_limited` backs a key off exponentially (5 ms, 10 ms, ... capped at
  1000 s, client-go's default item limiter) until `forget` resets it.
- `add_after` keeps the earliest deadline per key; `run()` (one task per queue) moves
  due keys into the queue.
- With `metrics` (a named queue), client-go's figures: workqueue_adds_total,
  _queue_duration_seconds (add → get), _work_duration_seconds (get → done),
  _retries_total, and workqueue_depth, read from `len()` when scraped.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

import anyio

from miniorch.core.metrics import ControlPlaneMetrics

K = TypeVar("K", bound=Hashable)


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

    def __init__(self, *, rate_limiter: RateLimiter[K] | None = None, name: str = "",
                 metrics: ControlPlaneMetrics | None = None) -> None:
        """`name` and `metrics`: report client-go's workqueue_* figures as `name`."""
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
        self._metrics = None
        if metrics is not None:
            metrics.track_queue(name, self)
            self._metrics = (metrics.queue_adds.labels(name),
                             metrics.queue_duration.labels(name),
                             metrics.work_duration.labels(name),
                             metrics.queue_retries.labels(name))
        self._added_at: dict[K, float] = {}
        self._started_at: dict[K, float] = {}

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def processing(self) -> int:
        return len(self._processing)

    def add(self, key: K) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if self._metrics is not None:
            self._metrics[0].inc()
            self._added_at.setdefault(key, time.perf_counter())
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
        if self._metrics is not None:
            self._metrics[3].inc()
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
        if self._metrics is not None:
            now = time.perf_counter()
            added = self._added_at.pop(key, None)
            if added is not None:
                self._metrics[1].observe(now - added)
            self._started_at[key] = now
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if self._metrics is not None:
            started = self._started_at.pop(key, None)
            if started is not None:
                self._metrics[2].observe(time.perf_counter() - started)
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
