"""The service-account controller: a `default` ServiceAccount in every namespace.

    Namespace events ──► key of the namespace
    ServiceAccount events (`default` only) ──► key of its namespace
        │
        ▼
    reconcile(ns): namespace Active and no `default` ServiceAccount → create it

Level-triggered, as kube-controller-manager's serviceaccounts-controller: deleting the
`default` ServiceAccount brings it back; a terminating namespace gets none.
"""

from __future__ import annotations

from miniorch.api.errors import AlreadyExists, ApiError, NotFound
from miniorch.api.kinds import NAMESPACES, SERVICE_ACCOUNTS
from miniorch.api.registry import Registry
from miniorch.core.objects import name_of, namespace_of
from miniorch.machinery.controller import Controller, ObjectKey, Result, Source
from miniorch.machinery.informer import InformerEvent, SharedInformerFactory

DEFAULT_NAME = "default"


class ServiceAccountsReconciler:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def sources(self) -> list[Source[ObjectKey]]:
        def namespaces(event: InformerEvent) -> list[ObjectKey]:
            return [] if event.type == "DELETED" else [ObjectKey("", name_of(event.object))]

        def accounts(event: InformerEvent) -> list[ObjectKey]:
            if event.type != "DELETED" or name_of(event.object) != DEFAULT_NAME:
                return []
            return [ObjectKey("", namespace_of(event.object))]
        return [Source(NAMESPACES, namespaces), Source(SERVICE_ACCOUNTS, accounts)]

    async def reconcile(self, key: ObjectKey) -> Result:
        namespace = self.registry.try_get(NAMESPACES, "", key.name)
        if namespace is None or (namespace.get("status") or {}).get("phase") == "Terminating":
            return Result()
        if self.registry.try_get(SERVICE_ACCOUNTS, key.name, DEFAULT_NAME) is not None:
            return Result()
        try:
            self.registry.create(SERVICE_ACCOUNTS, {
                "metadata": {"name": DEFAULT_NAME, "namespace": key.name}})
        except (AlreadyExists, NotFound):
            return Result()
        except ApiError:
            # e.g. the namespace started terminating in between: look again later.
            return Result(requeue=True)
        return Result()


def service_accounts_controller(registry: Registry, *,
                                informers: SharedInformerFactory | None = None
                                ) -> Controller[ObjectKey]:
    """The controller actor: `await tg.start(service_accounts_controller(registry).run)`."""
    reconciler = ServiceAccountsReconciler(registry)
    return Controller(name="serviceaccounts-controller", registry=registry,
                      reconciler=reconciler, sources=reconciler.sources(), informers=informers)
