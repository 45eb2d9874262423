"""Kind names resolved through the server's discovery, as kubectl's RESTMapper does.

    `pods`, `po`, `Pod`, `deploy`, `deployments.apps`, `all`
        │ Discovery.resolve / .category (one instance per CLI run, cached)
        ├─► GET /api/v1                      (first: the core group wins ties, and
        │                                     `get pods` needs nothing more)
        └─► GET /apis, then /apis/<group>/<preferred version> for each group, only
            when the core group does not know the name (or a group is named)

The CLI carries no table of kinds: whatever the server serves (built-in kinds, new
ones, custom resources) is resolved, printed (server-side Tables), described
(generically when no describer exists), deleted and scaled (where discovery lists a
`<plural>/scale` subresource). Subresources (`pods/log`) are never kinds.
"""

from __future__ import annotations

from typing import Any

from miniorch.api.resource import Resource
from miniorch.cli.client import Client
from miniorch.cli.errors import CliError

Obj = dict[str, Any]


def _resources_of(doc: Obj) -> tuple[list[Resource], set[str]]:
    """A group-version's APIResourceList → its kinds, and the plurals with /scale."""
    group_version = str(doc.get("groupVersion", "v1"))
    group, _, version = group_version.rpartition("/")
    found: list[Resource] = []
    scalable: set[str] = set()
    for entry in doc.get("resources") or []:
        name = str(entry.get("name", ""))
        if "/" in name:
            if name.endswith("/scale"):
                scalable.add(name.split("/", 1)[0])
            continue
        found.append(Resource(
            group=group, version=version, plural=name,
            singular=str(entry.get("singularName") or entry.get("kind", "").lower()),
            kind=str(entry.get("kind", "")), namespaced=bool(entry.get("namespaced")),
            short_names=tuple(entry.get("shortNames") or ()),
            categories=tuple(entry.get("categories") or ()),
            verbs=tuple(entry.get("verbs") or ())))
    return found, scalable


class Discovery:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._core: list[Resource] | None = None
        self._groups: list[Resource] | None = None
        self._scalable: set[str] = set()
        """`Resource.key`s that serve `/scale`."""

    def _load(self, path: str) -> list[Resource]:
        found, scalable = _resources_of(self.client.get(path))
        self._scalable.update(r.key for r in found if r.plural in scalable)
        return found

    def core(self) -> list[Resource]:
        if self._core is None:
            self._core = self._load("/api/v1")
        return self._core

    def groups(self) -> list[Resource]:
        """Every named group's kinds, at the group's preferred version."""
        if self._groups is None:
            self._groups = []
            for group in self.client.get("/apis").get("groups") or []:
                preferred = (group.get("preferredVersion") or {}).get("groupVersion")
                if preferred:
                    self._groups.extend(self._load(f"/apis/{preferred}"))
        return self._groups

    def resources(self) -> list[Resource]:
        return self.core() + self.groups()

    def resolve(self, name: str) -> Resource:
        """The kind kubectl would pick for `name` (plural, singular, short name, kind,
        `plural.group` or `kind.group`)."""
        wanted = name.strip()
        for pool in (self.core, self.groups):
            for resource in pool():
                if resource.answers_to(wanted) or (
                        resource.group and wanted.lower() in (
                            f"{resource.kind.lower()}.{resource.group}",
                            f"{resource.singular}.{resource.group}")):
                    return resource
        raise CliError(f'the server doesn\'t have a resource type "{name}"')

    def by_kind(self, api_version: str, kind: str) -> Resource | None:
        """The resource serving `apiVersion`/`kind` objects (a manifest's), if any."""
        path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        if api_version == "v1":
            pool = self.core()
        else:
            try:
                pool = self._load(path)
            except CliError:
                return None
        return next((r for r in pool if r.kind == kind), None)

    def category(self, name: str) -> list[Resource]:
        return [r for r in self.resources() if name in r.categories]

    def scalable(self, resource: Resource) -> bool:
        return resource.key in self._scalable
