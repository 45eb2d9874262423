"""Shared informers: one list + one watch per resource for the whole process.

client-go's SharedInformerFactory / controller-runtime's cache, small. Every actor of
the cluster process (controllers, kubelets, the service proxy) asks the one factory
for the informer of a resource and registers its own handler on it:

    Registry.list + Registry.watch ──► SharedInformer(pods) ──► cache (read-only objects)
        (once per resource)                  │ InformerEvent(type, object, old)
                    ┌────────────────────────┼───────────────────────┐
                    ▼                        ▼                       ▼
          scheduler: map → keys      kubelet node-N: nodeName     proxy: its caches,
          → its own WorkQueue        filter → pod workers         its own dirty keys

Invariants:
- One informer per resource per factory. It lists and opens its watch at the first
  request, synchronously with no await in between (the store is synchronous), so no
  write can fall into the gap and the cache is synced when `informer()` returns.
- Handlers are synchronous and quick (map to keys, post to a mailbox): they run on
  the informer's task, one event at a time in resourceVersion order, and every handler
  sees every event. One that raises is logged; the others still get the event.
- A handler added after the informer started first gets an ADDED event for each
  cached object (in namespace/name order), then the live events: none missed, none
  doubled. Removing it (`Subscription.close()`, or leaving its `with`) stops delivery.
- Objects are parsed once and shared: every consumer gets the same read-only
  `FrozenDict` (readonly.py) and must copy it to edit it. `old` is the cache's
  previous copy, so a MODIFIED says what changed (a pod's labels, a node's IPs).
- `Gone` (the watch fell behind, or its resourceVersion is too old) → re-list; objects
  that vanished meanwhile are reported as DELETED with their last copy (client-go's
  `DeletedFinalStateUnknown`), changed ones as MODIFIED, new ones as ADDED.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

import anyio
import structlog
from anyio.abc import TaskGroup, TaskStatus

from miniorch.api.errors import Gone
from miniorch.api.registry import Registry
from miniorch.api.resource import Resource
from miniorch.api.store import Watch
from miniorch.core.objects import Obj, name_of, namespace_of
from miniorch.machinery.readonly import freeze

log = structlog.get_logger(__name__)

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
Ident = tuple[str, str]
"""(namespace, name); namespace is "" for cluster-scoped kinds."""


@dataclass(frozen=True)
class InformerEvent:
    """One change as the informer saw it; `old` is its previous copy (None on ADDED)."""

    type: EventType
    object: Obj
    old: Obj | None = None


Handler = Callable[[InformerEvent], None]


def _rv_of(obj: Obj) -> object:
    return obj.get("metadata", {}).get("resourceVersion")


class Subscription:
    """A registered handler; `close()` (or leaving `with`) unregisters it."""

    def __init__(self, informer: SharedInformer, handler: Handler) -> None:
        self._informer = informer
        self._handler = handler

    def close(self) -> None:
        self._informer._remove(self._handler)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class SharedInformer:
    """The cache and the handlers of one resource; made by `SharedInformerFactory`."""

    def __init__(self, registry: Registry, resource: Resource) -> None:
        self.resource = resource
        self._registry = registry
        self._known: dict[Ident, Obj] = {}
        self._handlers: list[Handler] = []
        self._watch: Watch | None = None
        self._rv = 0
        self.relists = 0
        """How many times a `Gone` made it list again (for logs and tests)."""

    # ---- the read-only cache ---------------------------------------------------------

    def list(self, namespace: str | None = None) -> list[Obj]:
        """Cached objects (read-only), sorted by (namespace, name)."""
        return [obj for ident, obj in sorted(self._known.items())
                if namespace is None or ident[0] == namespace]

    def get(self, namespace: str, name: str) -> Obj | None:
        return self._known.get((namespace if self.resource.namespaced else "", name))

    # ---- handlers --------------------------------------------------------------------

    def add_handler(self, handler: Handler) -> Subscription:
        """Replay the cache to `handler` as ADDED events, then deliver every change."""
        for _ident, obj in sorted(self._known.items()):
            self._call(handler, InformerEvent("ADDED", obj))
        self._handlers.append(handler)
        return Subscription(self, handler)

    def _remove(self, handler: Handler) -> None:
        if handler in self._handlers:
            self._handlers.remove(handler)

    def _call(self, handler: Handler, event: InformerEvent) -> None:
        try:
            handler(event)
        except Exception:
            # One consumer's bug must not starve the others of events.
            log.exception("informer handler failed", resource=self.resource.plural,
                          object=name_of(event.object), change=event.type)

    def _dispatch(self, event: InformerEvent) -> None:
        for handler in tuple(self._handlers):  # a handler may unregister itself
            self._call(handler, event)

    # ---- list and watch --------------------------------------------------------------

    def start(self) -> None:
        """List and open the watch (synchronous: no write can slip in between)."""
        self._relist()
        self._watch = self._registry.watch(self.resource, since=self._rv or None)

    def _relist(self) -> None:
        items, self._rv = self._registry.list(self.resource, shared=True)
        fresh = {(namespace_of(o), name_of(o)): freeze(o) for o in items}
        for ident, old in list(self._known.items()):
            if ident not in fresh:
                del self._known[ident]
                self._dispatch(InformerEvent("DELETED", old, old))
        for ident, obj in fresh.items():
            seen = self._known.get(ident)
            if seen is not None and _rv_of(seen) == _rv_of(obj):
                continue  # unchanged: keep the copy consumers may already hold
            self._known[ident] = obj
            self._dispatch(InformerEvent("ADDED", obj) if seen is None
                           else InformerEvent("MODIFIED", obj, seen))

    async def close(self) -> None:
        if self._watch is not None:
            await self._watch.aclose()
            self._watch = None

    async def run(self) -> None:
        """Deliver the watch's events until cancelled; re-list on `Gone`."""
        while True:
            try:
                watch = self._watch or self._registry.watch(self.resource,
                                                            since=self._rv or None)
                self._watch = None
                async with watch:
                    async for event in watch:
                        self._rv = event.rv
                        obj = event.frozen  # the store's shared copy: parsed once
                        ident = (namespace_of(obj), name_of(obj))
                        old = self._known.get(ident)
                        if event.type == "DELETED":
                            self._known.pop(ident, None)
                        else:
                            self._known[ident] = obj
                        self._dispatch(InformerEvent(event.type, obj, old))
                # The stream ended without Gone (the store is closing): watch again
                # shortly, from where we were, instead of spinning.
                await anyio.sleep(0.1)
            except Gone:
                self.relists += 1
                log.info("watch expired, re-listing", resource=self.resource.plural)
                self.start()


class SharedInformerFactory:
    """One `SharedInformer` per resource, their watch tasks in one task group (an actor).

    Run it before its consumers (`await tg.start(factory.run)`); `informer(resource)`
    then returns the shared informer, listing and starting it on first use.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._informers: dict[str, SharedInformer] = {}
        self._tg: TaskGroup | None = None

    @property
    def resources(self) -> list[str]:
        """Resources with a running informer (one store watch each)."""
        return sorted(self._informers)

    def informer(self, resource: Resource) -> SharedInformer:
        informer = self._informers.get(resource.key)
        if informer is not None:
            return informer
        if self._tg is None:
            raise RuntimeError("SharedInformerFactory is not running: "
                               "start it with `await tg.start(factory.run)` first")
        informer = SharedInformer(self.registry, resource)
        informer.start()
        self._informers[resource.key] = informer
        self._tg.start_soon(informer.run, name=f"informer {resource.plural}")
        return informer

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                await anyio.sleep_forever()
        finally:
            # Cancelled: the watch tasks are gone, and so are the informers. A watch
            # opened by `informer()` whose task never ran is closed here.
            self._tg = None
            informers, self._informers = list(self._informers.values()), {}
            with anyio.CancelScope(shield=True):
                for informer in informers:
                    await informer.close()
