"""Every kind miniorch serves, one module each; this package assembles them.

    kinds/pod.py, service.py, … ──each exports one Kind──► BUILTIN_KINDS
                                                            │
    KindCatalog (one per Registry) ◄── built-in kinds + kinds added at run time
        │                               (custom resources, from their definitions)
        ├─► Registry: the record behind every write
        ├─► server: routes and discovery (`served(group, version)`)
        └─► CLI / completion / GC: `resource_for("rc")`, `resource_by_kind(...)`

The `Resource` constants (`PODS`, `SERVICES`, …) are re-exported here: they are the
names the rest of the code uses to talk about a kind.
"""

from __future__ import annotations

from collections.abc import Iterator

from miniorch.api.kinds.base import Kind
from miniorch.api.kinds.configmap import CONFIGMAP, CONFIGMAPS
from miniorch.api.kinds.controllerrevision import CONTROLLER_REVISION, CONTROLLER_REVISIONS
from miniorch.api.kinds.cronjob import CRONJOB, CRONJOBS
from miniorch.api.kinds.customresourcedefinition import (
    CUSTOM_RESOURCE_DEFINITION,
    CUSTOM_RESOURCE_DEFINITIONS,
)
from miniorch.api.kinds.daemonset import DAEMON_SET, DAEMON_SETS
from miniorch.api.kinds.deployment import DEPLOYMENT, DEPLOYMENTS
from miniorch.api.kinds.endpoints import ENDPOINTS, ENDPOINTS_KIND
from miniorch.api.kinds.event import EVENT, EVENTS
from miniorch.api.kinds.job import JOB, JOBS
from miniorch.api.kinds.lease import LEASE, LEASES
from miniorch.api.kinds.namespace import NAMESPACE, NAMESPACES, SYSTEM_NAMESPACES
from miniorch.api.kinds.node import NODE, NODES
from miniorch.api.kinds.pod import POD, PODS
from miniorch.api.kinds.replicaset import REPLICA_SET, REPLICA_SETS
from miniorch.api.kinds.replicationcontroller import (
    REPLICATION_CONTROLLER,
    REPLICATION_CONTROLLERS,
)
from miniorch.api.kinds.review import (
    SELF_SUBJECT_ACCESS_REVIEW,
    SELF_SUBJECT_ACCESS_REVIEWS,
    SELF_SUBJECT_REVIEW,
    SELF_SUBJECT_REVIEWS,
    SELF_SUBJECT_RULES_REVIEW,
    SELF_SUBJECT_RULES_REVIEWS,
)
from miniorch.api.kinds.secret import SECRET, SECRETS
from miniorch.api.kinds.service import SERVICE, SERVICES
from miniorch.api.kinds.serviceaccount import SERVICE_ACCOUNT, SERVICE_ACCOUNTS
from miniorch.api.kinds.statefulset import STATEFUL_SET, STATEFUL_SETS
from miniorch.api.resource import ALL_VERBS, Resource, UnknownResourceError

BUILTIN_KINDS: tuple[Kind, ...] = (
    POD, REPLICATION_CONTROLLER, SERVICE, ENDPOINTS_KIND, NODE, EVENT, NAMESPACE, CONFIGMAP,
    SECRET, SERVICE_ACCOUNT, DEPLOYMENT, REPLICA_SET, DAEMON_SET, STATEFUL_SET,
    CONTROLLER_REVISION, CRONJOB, JOB, LEASE, CUSTOM_RESOURCE_DEFINITION,
    SELF_SUBJECT_ACCESS_REVIEW, SELF_SUBJECT_RULES_REVIEW, SELF_SUBJECT_REVIEW,
)

RESOURCES: tuple[Resource, ...] = tuple(k.resource for k in BUILTIN_KINDS)
"""The built-in resources, in discovery order."""


class KindCatalog:
    """The kinds one API serves: the built-in ones, plus those added while it runs
    (custom resources). Owned by the Registry; read by the server and the GC."""

    def __init__(self, kinds: tuple[Kind, ...] = BUILTIN_KINDS) -> None:
        # By (store key, version): a custom resource serves one kind per version, all
        # over the same stored objects.
        self._by_key: dict[tuple[str, str], Kind] = {_key(k.resource): k for k in kinds}

    def __iter__(self) -> Iterator[Kind]:
        return iter(list(self._by_key.values()))

    def __contains__(self, resource: object) -> bool:
        return isinstance(resource, Resource) and _key(resource) in self._by_key

    def of(self, resource: Resource) -> Kind:
        """The record behind `resource` (UnknownResourceError if not served)."""
        try:
            return self._by_key[_key(resource)]
        except KeyError:
            raise UnknownResourceError(resource.key) from None

    def add(self, kind: Kind) -> None:
        self._by_key[_key(kind.resource)] = kind

    def remove(self, resource: Resource) -> None:
        """Stop serving `resource` (matched by group, version and plural)."""
        self._by_key.pop(_key(resource), None)

    @property
    def resources(self) -> list[Resource]:
        return [k.resource for k in self]

    def served(self, group: str, version: str) -> dict[str, Kind]:
        """plural → kind, for one group-version."""
        return {k.resource.plural: k for k in self
                if k.resource.group == group and k.resource.version == version}

    def group_versions(self) -> dict[str, list[str]]:
        """Named groups → their versions, in discovery order (the core group excluded)."""
        groups: dict[str, list[str]] = {}
        for k in self:
            r = k.resource
            if r.group and r.version not in groups.setdefault(r.group, []):
                groups[r.group].append(r.version)
        return groups

    def resource_for(self, name: str) -> Resource:
        for kind in self:
            if kind.resource.answers_to(name):
                return kind.resource
        raise UnknownResourceError(name)

    def resource_by_kind(self, api_version: str, kind: str) -> Resource:
        for k in self:
            if k.resource.kind == kind and k.resource.api_version == api_version:
                return k.resource
        raise UnknownResourceError(f"{api_version}/{kind}")


def _key(resource: Resource) -> tuple[str, str]:
    return resource.key, resource.version


_BUILTIN = KindCatalog()


def kind_of(resource: Resource) -> Kind:
    """The built-in record behind `resource`."""
    return _BUILTIN.of(resource)


def resource_for(name: str) -> Resource:
    """Find a built-in resource by plural, singular, short name or kind, as kubectl
    accepts them: `pods`, `pod`, `po`, `Pod`, `rc`, `leases.coordination.k8s.io`."""
    return _BUILTIN.resource_for(name)


def resource_by_kind(api_version: str, kind: str) -> Resource:
    """The built-in resource serving objects of `apiVersion`/`kind` (as in a manifest)."""
    return _BUILTIN.resource_by_kind(api_version, kind)


__all__ = [
    "ALL_VERBS", "BUILTIN_KINDS", "CONFIGMAPS", "CONTROLLER_REVISIONS", "CRONJOBS",
    "CUSTOM_RESOURCE_DEFINITIONS", "DAEMON_SETS", "DEPLOYMENTS", "ENDPOINTS", "EVENTS", "JOBS",
    "LEASES", "NAMESPACES", "NODES", "PODS", "REPLICATION_CONTROLLERS", "REPLICA_SETS",
    "RESOURCES", "SECRETS", "SELF_SUBJECT_ACCESS_REVIEWS", "SELF_SUBJECT_REVIEWS",
    "SELF_SUBJECT_RULES_REVIEWS", "SERVICES", "SERVICE_ACCOUNTS", "STATEFUL_SETS",
    "SYSTEM_NAMESPACES", "Kind", "KindCatalog", "Resource", "UnknownResourceError", "kind_of",
    "resource_by_kind", "resource_for",
]
