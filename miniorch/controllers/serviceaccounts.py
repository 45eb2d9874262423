"""The service-account controller: a `default` ServiceAccount in every namespace, and
the `kube-root-ca.crt` ConfigMap (the cluster CA, which pods' projected service-account
volumes read `ca.crt` from).

    Namespace events ──► key of the namespace
    ServiceAccount events (`default` only) ──► key of its namespace
    ConfigMap events (`kube-root-ca.crt` only) ──► key of its namespace
        │
        ▼
    reconcile(ns): namespace Active → create the `default` ServiceAccount if missing;
                   create or correct `kube-root-ca.crt` (when a CA file is given)

Level-triggered, as kube-controller-manager's serviceaccounts-controller and its
root-ca-cert-publisher (folded in here: both keep one object per namespace): deleting
either brings it back, an edited CA bundle is put back; a terminating namespace gets
none.
"""

from __future__ import annotations

from pathlib import Path

from miniorch.api.errors import AlreadyExists, ApiError, NotFound
from miniorch.api.kinds import CONFIGMAPS, NAMESPACES, SERVICE_ACCOUNTS
from miniorch.api.kinds.serviceaccount import ROOT_CA_CONFIG_MAP
from miniorch.api.registry import Registry
from miniorch.core.objects import Obj, name_of, namespace_of
from miniorch.machinery.controller import Controller, ObjectKey, Result, Source
from miniorch.machinery.informer import InformerEvent, SharedInformerFactory

DEFAULT_NAME = "default"
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters.")


class ServiceAccountsReconciler:
    def __init__(self, registry: Registry, ca_path: Path | None = None) -> None:
        self.registry = registry
        self.ca_path = ca_path
        """The cluster CA certificate to publish (None: no ConfigMap, as in tests
        without an API server)."""

    def sources(self) -> list[Source[ObjectKey]]:
        def namespaces(event: InformerEvent) -> list[ObjectKey]:
            return [] if event.type == "DELETED" else [ObjectKey("", name_of(event.object))]

        def accounts(event: InformerEvent) -> list[ObjectKey]:
            if event.type != "DELETED" or name_of(event.object) != DEFAULT_NAME:
                return []
            return [ObjectKey("", namespace_of(event.object))]

        def root_ca(event: InformerEvent) -> list[ObjectKey]:
            if name_of(event.object) != ROOT_CA_CONFIG_MAP or event.type == "ADDED":
                return []
            return [ObjectKey("", namespace_of(event.object))]
        sources = [Source(NAMESPACES, namespaces), Source(SERVICE_ACCOUNTS, accounts)]
        if self.ca_path is not None:
            sources.append(Source(CONFIGMAPS, root_ca))
        return sources

    async def reconcile(self, key: ObjectKey) -> Result:
        namespace = self.registry.try_get(NAMESPACES, "", key.name)
        if namespace is None or (namespace.get("status") or {}).get("phase") == "Terminating":
            return Result()
        try:
            if self.registry.try_get(SERVICE_ACCOUNTS, key.name, DEFAULT_NAME) is None:
                self.registry.create(SERVICE_ACCOUNTS, {
                    "metadata": {"name": DEFAULT_NAME, "namespace": key.name}})
            self._publish_root_ca(key.name)
        except (AlreadyExists, NotFound):
            return Result()
        except ApiError:
            # e.g. the namespace started terminating in between: look again later.
            return Result(requeue=True)
        return Result()

    def _publish_root_ca(self, namespace: str) -> None:
        if self.ca_path is None or not self.ca_path.exists():
            return
        data = {"ca.crt": self.ca_path.read_text()}
        current = self.registry.try_get(CONFIGMAPS, namespace, ROOT_CA_CONFIG_MAP)
        if current is None:
            self.registry.create(CONFIGMAPS, {
                "metadata": {"name": ROOT_CA_CONFIG_MAP, "namespace": namespace,
                             "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
                "data": data})
        elif current.get("data") != data:
            def put(obj: Obj) -> None:
                obj["data"] = data
            self.registry.mutate(CONFIGMAPS, namespace, ROOT_CA_CONFIG_MAP, put)


def service_accounts_controller(registry: Registry, *,
                                informers: SharedInformerFactory | None = None,
                                ca_path: Path | None = None) -> Controller[ObjectKey]:
    """The controller actor: `await tg.start(service_accounts_controller(registry).run)`;
    `ca_path`: the CA certificate `kube-root-ca.crt` publishes."""
    reconciler = ServiceAccountsReconciler(registry, ca_path)
    return Controller(name="serviceaccounts-controller", registry=registry,
                      reconciler=reconciler, sources=reconciler.sources(), informers=informers)
