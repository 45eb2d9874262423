"""A served resource's REST names: what a URL, a store key and discovery call a kind.

    Resource (frozen) ──► store keys, URL paths, discovery entries, CLI kind aliases

A `Resource` is only the naming half of a kind; what a kind *is* (schema, defaulting,
validation, subresources, table columns) is its `Kind` record in `api/kinds/`. The
store, selectors and the low-level helpers need only the names, so they import this
module and never the kinds package.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

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

    @cached_property
    def key(self) -> str:
        """Store table key: `pods`, `leases.coordination.k8s.io` (cached: every store
        read and watch fan-out asks for it)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """`Pod`, `Deployment.apps`: how kube-apiserver names a kind in errors."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def base_path(self, namespace: str | None = None) -> str:
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{prefix}/{self.plural}"

    def answers_to(self, name: str) -> bool:
        """Whether kubectl's `name` (plural, singular, short name, kind or
        `plural.group`) designates this resource."""
        wanted = name.strip().lower()
        return wanted in {self.plural, self.singular, self.kind.lower(), self.key,
                          *self.short_names}


class UnknownResourceError(LookupError):
    """No served resource is called that."""
