"""The resource table: every kind miniorch serves, with its REST names.

This is the single source for discovery (`/api/v1`), the CLI's kind aliases, the
store's table of kinds and the OpenAPI document. A `Resource` is a frozen reference;
look one up with `resource_for(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, kw_only=True)
class Resource:
    group: str
    """"" for the core group."""
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def key(self) -> str:
        """Store table key: `pods`, `leases.coordination.k8s.io`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def base_path(self, namespace: str | None = None) -> str:
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{prefix}/{self.plural}"


PODS = Resource(group="", version="v1", plural="pods", singular="pod", kind="Pod",
                namespaced=True, short_names=("po",), categories=("all",))
REPLICATION_CONTROLLERS = Resource(
    group="", version="v1", plural="replicationcontrollers", singular="replicationcontroller",
    kind="ReplicationController", namespaced=True, short_names=("rc",), categories=("all",))
SERVICES = Resource(group="", version="v1", plural="services", singular="service",
                    kind="Service", namespaced=True, short_names=("svc",), categories=("all",))
ENDPOINTS = Resource(group="", version="v1", plural="endpoints", singular="endpoints",
                     kind="Endpoints", namespaced=True, short_names=("ep",))
NODES = Resource(group="", version="v1", plural="nodes", singular="node", kind="Node",
                 namespaced=False, short_names=("no",))
EVENTS = Resource(group="", version="v1", plural="events", singular="event", kind="Event",
                  namespaced=True, short_names=("ev",))
NAMESPACES = Resource(group="", version="v1", plural="namespaces", singular="namespace",
                      kind="Namespace", namespaced=False, short_names=("ns",))
LEASES = Resource(group="coordination.k8s.io", version="v1", plural="leases", singular="lease",
                  kind="Lease", namespaced=True)

RESOURCES: tuple[Resource, ...] = (
    PODS, REPLICATION_CONTROLLERS, SERVICES, ENDPOINTS, NODES, EVENTS, NAMESPACES, LEASES,
)

# Namespaces that always exist (created at first start, refused for deletion).
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class UnknownResourceError(LookupError):
    """No served resource is called that."""


def resource_for(name: str) -> Resource:
    """Find a resource by plural, singular, short name or kind, as kubectl accepts them.

    Accepts `pods`, `pod`, `po`, `Pod`, `rc`, `replicationcontrollers`, and the
    group-qualified `leases.coordination.k8s.io`.
    """
    wanted = name.strip().lower()
    for resource in RESOURCES:
        names = {resource.plural, resource.singular, resource.kind.lower(), resource.key,
                 *resource.short_names}
        if wanted in names:
            return resource
    raise UnknownResourceError(name)


def resource_by_kind(api_version: str, kind: str) -> Resource:
    """The resource serving objects of `apiVersion`/`kind` (as found in a manifest)."""
    for resource in RESOURCES:
        if resource.kind == kind and resource.api_version == api_version:
            return resource
    raise UnknownResourceError(f"{api_version}/{kind}")
