"""The namespace controller: a Terminating namespace goes once it is empty.

    Namespace events (Terminating ones) ──► key of the namespace
        │
        ▼
    reconcile(ns): delete it again through the registry, which deletes what is still
        inside (new objects cannot be created there) and removes the namespace when
        nothing is left; while something is (a pod in its grace period, an object
        waiting for its finalizers), look again in a second.

Level-triggered, as kube-controller-manager's namespace controller: a restarted cluster
finishes the deletions it found under way.
"""

from __future__ import annotations

from miniorch.api.errors import NotFound
from miniorch.api.kinds import NAMESPACES
from miniorch.api.registry import Registry
from miniorch.machinery.controller import Controller, ObjectKey, Result, Source
from miniorch.machinery.informer import InformerEvent, SharedInformerFactory

RECHECK_SECONDS = 1.0
"""How often a Terminating namespace is looked at while something inside it remains."""


def _terminating(event: InformerEvent) -> list[ObjectKey]:
    phase = (event.object.get("status") or {}).get("phase")
    if event.type == "DELETED" or phase != "Terminating":
        return []
    return [ObjectKey("", str(event.object["metadata"]["name"]))]


class NamespaceReconciler:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def sources(self) -> list[Source[ObjectKey]]:
        return [Source(NAMESPACES, _terminating)]

    async def reconcile(self, key: ObjectKey) -> Result:
        namespace = self.registry.try_get(NAMESPACES, "", key.name)
        if namespace is None or (namespace.get("status") or {}).get("phase") != "Terminating":
            return Result()
        try:
            self.registry.delete(NAMESPACES, "", key.name)
        except NotFound:
            return Result()
        if self.registry.try_get(NAMESPACES, "", key.name) is not None:
            return Result(requeue_after=RECHECK_SECONDS)
        return Result()


def namespace_controller(registry: Registry, *,
                         informers: SharedInformerFactory | None = None
                         ) -> Controller[ObjectKey]:
    """The controller actor: `await tg.start(namespace_controller(registry).run)`."""
    reconciler = NamespaceReconciler(registry)
    return Controller(name="namespace-controller", registry=registry, reconciler=reconciler,
                      sources=reconciler.sources(), informers=informers)
