"""The garbage collector: delete objects whose owners are gone.

Data flow:

    every namespaced kind's events ──► index: owner uid → dependents (from ownerReferences)
        dependent ADDED / MODIFIED with ownerReferences ──► key of the dependent
        any object DELETED ──► keys of its dependents (from the index)
                         │
                         ▼
    reconcile(dependent): read it; look every owner up by kind, name and uid
        all owners gone   → delete it (Background: its own dependents follow, pods
                            terminate gracefully)
        some owners gone  → strip the dangling references, keep the object
        owner kind unknown→ keep the reference (it cannot be verified)

Every watchable kind is followed, custom resources included: a CustomResourceDefinition
event makes the collector follow the kinds it began to serve, while it runs.

Invariants:
- Level-triggered: the index only decides *which* objects to check; the check itself
  re-reads the registry, so a stale index costs a no-op reconcile, never a wrong
  deletion. An owner recreated under the same name has a new uid and does not
  own the old dependents.
- `kubectl delete --cascade=orphan` works because the registry strips the
  references before deleting the owner: nothing is left for the collector to find.
- `--cascade=foreground`: the registry keeps the owner with the `foregroundDeletion`
  finalizer; the collector deletes its dependents (in the foreground too), and once
  none with `blockOwnerDeletion` is left, removes the finalizer, which deletes it.
  Every dependent's deletion re-queues its owners.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from miniorch.api.errors import NotFound
from miniorch.api.kinds import CUSTOM_RESOURCE_DEFINITIONS, EVENTS, Resource, UnknownResourceError
from miniorch.api.registry import FOREGROUND_FINALIZER, Registry
from miniorch.core.objects import Obj, is_terminating, name_of, namespace_of, uid_of
from miniorch.machinery.controller import Controller, Result, Source
from miniorch.machinery.informer import InformerEvent, SharedInformerFactory

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DependentKey:
    resource: Resource
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.resource.plural}/{where}{self.name}"


def _owner_uids(obj: Obj | None) -> set[str]:
    if obj is None:
        return set()
    return {str(r.get("uid")) for r in obj.get("metadata", {}).get("ownerReferences") or []
            if r.get("uid")}


class GarbageCollector:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._dependents: dict[str, set[DependentKey]] = {}
        self._followed: set[str] = set()
        self.controller: Controller[DependentKey] | None = None
        """The collector's own controller, to follow kinds that appear while it runs."""

    def sources(self) -> list[Source[DependentKey]]:
        sources = [Source(resource, self._mapper(resource))
                   for resource in self._followable()]
        self._followed.update(s.resource.key for s in sources)
        return sources

    def _followable(self) -> list[Resource]:
        # Events are never owners nor dependents here, and they are the busiest kind;
        # kinds that cannot be watched (the reviews) are never stored.
        return [r for r in self.registry.kinds.resources
                if r is not EVENTS and "watch" in r.verbs]

    def _follow_new_kinds(self) -> None:
        """A CustomResourceDefinition changed: follow the kinds it began to serve."""
        if self.controller is None:
            return
        for resource in self._followable():
            if resource.key not in self._followed:
                self._followed.add(resource.key)
                self.controller.add_source(Source(resource, self._mapper(resource)))

    def _mapper(self, resource: Resource) -> Callable[[InformerEvent], list[DependentKey]]:
        def map_event(event: InformerEvent) -> list[DependentKey]:
            return self.map(resource, event)
        return map_event

    def map(self, resource: Resource, event: InformerEvent) -> list[DependentKey]:
        obj = event.object
        if resource == CUSTOM_RESOURCE_DEFINITIONS:
            self._follow_new_kinds()
        key = DependentKey(resource, namespace_of(obj), name_of(obj))
        before, after = _owner_uids(event.old), _owner_uids(obj)
        if event.type == "DELETED":
            after = set()
        for uid in before - after:
            deps = self._dependents.get(uid)
            if deps is not None:
                deps.discard(key)
                if not deps:
                    del self._dependents[uid]
        for uid in after:
            self._dependents.setdefault(uid, set()).add(key)
        keys: list[DependentKey] = []
        if event.type == "DELETED":
            keys.extend(self._dependents.pop(uid_of(obj), set()))
        elif after or _deleting_in_foreground(obj):
            keys.append(key)
        if event.type == "DELETED" or is_terminating(obj):
            # An owner deleted in the foreground waits for this one: look at it again.
            keys.extend(self._owner_keys(obj, key.namespace))
        return keys

    def _owner_keys(self, obj: Obj, namespace: str) -> list[DependentKey]:
        keys = []
        for ref in obj.get("metadata", {}).get("ownerReferences") or []:
            try:
                owner = self.registry.kinds.resource_by_kind(str(ref.get("apiVersion", "")),
                                                             str(ref.get("kind", "")))
            except UnknownResourceError:
                continue
            keys.append(DependentKey(owner, namespace if owner.namespaced else "",
                                     str(ref.get("name", ""))))
        return keys

    def _owner_exists(self, ref: Obj, dependent: DependentKey) -> bool | None:
        """True/False, or None when the owner's kind is not one we serve."""
        try:
            resource = self.registry.kinds.resource_by_kind(str(ref.get("apiVersion", "")),
                                                            str(ref.get("kind", "")))
        except UnknownResourceError:
            return None
        namespace = dependent.namespace if resource.namespaced else ""
        if resource.namespaced and not namespace:
            return None  # a cluster-scoped object cannot have a namespaced owner
        owner = self.registry.try_get(resource, namespace, str(ref.get("name", "")))
        return owner is not None and uid_of(owner) == ref.get("uid")

    async def reconcile(self, key: DependentKey) -> Result:
        obj = self.registry.try_get(key.resource, key.namespace, key.name)
        if obj is not None and _deleting_in_foreground(obj):
            return self._delete_dependents_first(key, obj)
        if obj is None or is_terminating(obj):
            return Result()
        refs: list[Obj] = obj["metadata"].get("ownerReferences") or []
        if not refs:
            return Result()
        dangling = [r for r in refs if self._owner_exists(r, key) is False]
        if not dangling:
            return Result()
        if len(dangling) == len(refs):
            try:
                self.registry.delete(key.resource, key.namespace, key.name,
                                     propagation_policy="Background")
            except NotFound:
                return Result()
            log.info("deleted object whose owner is gone", object=str(key),
                     owner=f"{dangling[0].get('kind')}/{dangling[0].get('name')}")
            return Result()
        gone = {r.get("uid") for r in dangling}

        def strip(dependent: Obj) -> None:
            dependent["metadata"]["ownerReferences"] = [
                r for r in dependent["metadata"].get("ownerReferences") or []
                if r.get("uid") not in gone]
        with contextlib.suppress(NotFound):  # deleted meanwhile: nothing to strip
            self.registry.mutate(key.resource, key.namespace, key.name, strip)
        return Result()


    def _delete_dependents_first(self, key: DependentKey, owner: Obj) -> Result:
        """Foreground deletion: delete every dependent (in the foreground too), wait
        for those with `blockOwnerDeletion`, then release the owner's finalizer."""
        uid = uid_of(owner)
        blocking = 0
        for dep in list(self._dependents.get(uid, ())):
            dependent = self.registry.try_get(dep.resource, dep.namespace, dep.name)
            refs = [r for r in (dependent or {}).get("metadata", {}).get("ownerReferences")
                    or [] if r.get("uid") == uid]
            if dependent is None or not refs:
                continue
            if not is_terminating(dependent):
                with contextlib.suppress(NotFound):
                    self.registry.delete(dep.resource, dep.namespace, dep.name,
                                         propagation_policy="Foreground")
            if refs[0].get("blockOwnerDeletion"):
                blocking += 1
        if blocking:
            # Each dependent's deletion requeues the owner; the delay is a safety net.
            return Result(requeue_after=2.0)

        def release(obj: Obj) -> None:
            obj["metadata"]["finalizers"] = [
                f for f in obj["metadata"].get("finalizers") or []
                if f != FOREGROUND_FINALIZER]
        with contextlib.suppress(NotFound):
            self.registry.mutate(key.resource, key.namespace, key.name, release)
        log.info("foreground deletion done", object=str(key))
        return Result()


def _deleting_in_foreground(obj: Obj) -> bool:
    meta = obj.get("metadata", {})
    return bool(meta.get("deletionTimestamp")) and \
        FOREGROUND_FINALIZER in (meta.get("finalizers") or [])


def garbage_collector(registry: Registry, *, workers: int = 2,
                      informers: SharedInformerFactory | None = None
                      ) -> Controller[DependentKey]:
    """The collector actor: `await tg.start(garbage_collector(registry).run)`."""
    collector = GarbageCollector(registry)
    controller = Controller(name="garbage-collector", registry=registry, reconciler=collector,
                            sources=collector.sources(), workers=workers, informers=informers)
    collector.controller = controller
    return controller
