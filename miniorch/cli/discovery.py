"""Kind names resolved through the server's discovery, as kubectl's RESTMapper does.

    `pods`, `po`, `Pod`, `deploy`, `deployments.apps`, `all`
        │ Discovery.resolve / .category (one instance per CLI run, cached)
        ├─► GET /api/v1                      (first: the core group wins ties, and
        │                                     `get pods` needs nothing more)
        └─► GET /apis, then /apis/<group>/<preferred version> for each group, only
            when the core group does not know the name (or a group is named)

Like kubectl, the documents are kept on disk beside the kubeconfig —
`<kubeconfig's dir>/cache/discovery/<host_port>/`, i.e. `$MINIORCH_HOME/cache/...` for
miniorch's own and `~/.kube/cache/...` (kubectl's own cache, same files and format) for
`--kubeconfig ~/.kube/config` — as `v1/serverresources.json`, `servergroups.json` and
`<group>/<version>/serverresources.json`, and trusted for `CACHE_TTL`, so `get pods`
makes one request, not two. A cache is stale before its TTL
when the kubeconfig is newer than it (a new `up`), and a name or `/scale` the cached
documents do not know refetches them once before the answer is "no such kind" — a
kind served since (a new CRD) is found on first use, as kubectl finds it.

The CLI carries no table of kinds: whatever the server serves (built-in kinds, new
ones, custom resources) is resolved, printed (server-side Tables), described
(generically when no describer exists), deleted and scaled (where discovery lists a
`<plural>/scale` subresource). Subresources (`pods/log`) are never kinds.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from miniorch.api.resource import Resource
from miniorch.cli.client import Client
from miniorch.cli.errors import CliError

Obj = dict[str, Any]

CACHE_TTL = 600.0
"""Seconds a cached discovery document is trusted (kubectl: 6 h; shorter here, since a
cluster's kinds change with the code it runs, and the refetch costs ~5 ms)."""


class DiscoveryCache:
    """Discovery documents on disk, one JSON file per API path, valid for `ttl` seconds
    and never older than `not_before` (the kubeconfig's mtime: the cluster's start)."""

    def __init__(self, directory: Path, *, ttl: float = CACHE_TTL, not_before: float = 0.0,
                 now: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.ttl = ttl
        self.not_before = not_before
        self.now = now

    @staticmethod
    def for_server(hostport: str, kubeconfig: Path) -> DiscoveryCache:
        """kubectl's layout: the host:port with anything but [A-Za-z0-9.] made `_`."""
        name = "".join(c if c.isalnum() or c == "." else "_" for c in hostport)
        try:
            not_before = kubeconfig.stat().st_mtime
        except OSError:
            not_before = 0.0
        return DiscoveryCache(kubeconfig.parent / "cache" / "discovery" / name,
                              not_before=not_before)

    def _file(self, path: str) -> Path:
        """/api/v1 → v1/serverresources.json, /apis → servergroups.json,
        /apis/apps/v1 → apps/v1/serverresources.json."""
        parts = [p for p in path.split("/") if p and p not in ("api", "apis")]
        if not parts:
            return self.directory / "servergroups.json"
        return self.directory.joinpath(*parts, "serverresources.json")

    def get(self, path: str) -> Obj | None:
        file = self._file(path)
        try:
            mtime = file.stat().st_mtime
            if mtime < self.not_before or self.now() - mtime > self.ttl:
                return None
            doc = json.loads(file.read_bytes())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def put(self, path: str, doc: Obj) -> None:
        """Write atomically (a concurrent reader sees the old file or the new one); a
        cache that cannot be written only costs the next run a request."""
        file = self._file(path)
        tmp = file.with_name(f".{file.name}.{os.getpid()}")
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, file)
        except OSError:
            tmp.unlink(missing_ok=True)

    def clear(self) -> None:
        for file in self.directory.rglob("*.json"):
            file.unlink(missing_ok=True)


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
    def __init__(self, client: Client, cache: DiscoveryCache | None = None) -> None:
        self.client = client
        self.cache = cache
        self._from_cache = False
        """Whether anything known now came from the cache (a miss may then be stale)."""
        self._core: list[Resource] | None = None
        self._groups: list[Resource] | None = None
        self._scalable: set[str] = set()
        """`Resource.key`s that serve `/scale`."""

    def _fetch(self, path: str) -> Obj:
        if self.cache is not None:
            cached = self.cache.get(path)
            if cached is not None:
                self._from_cache = True
                return cached
        doc: Obj = self.client.get(path)
        if self.cache is not None:
            self.cache.put(path, doc)
        return doc

    def _load(self, path: str) -> list[Resource]:
        found, scalable = _resources_of(self._fetch(path))
        self._scalable.update(r.key for r in found if r.plural in scalable)
        return found

    def refresh(self, *, force: bool = False) -> bool:
        """Forget the cached documents. Unless `force`, False (and nothing done) when
        none was used: a caller retries a miss only when a fresh answer could differ."""
        if not (self._from_cache or force):
            return False
        if self.cache is not None:
            self.cache.clear()
        self._from_cache = False
        self._core = self._groups = None
        self._scalable = set()
        return True

    def core(self) -> list[Resource]:
        if self._core is None:
            self._core = self._load("/api/v1")
        return self._core

    def groups(self) -> list[Resource]:
        """Every named group's kinds, at the group's preferred version."""
        if self._groups is None:
            self._groups = []
            for group in self._fetch("/apis").get("groups") or []:
                preferred = (group.get("preferredVersion") or {}).get("groupVersion")
                if preferred:
                    self._groups.extend(self._load(f"/apis/{preferred}"))
        return self._groups

    def resources(self) -> list[Resource]:
        return self.core() + self.groups()

    def resolve(self, name: str) -> Resource:
        """The kind kubectl would pick for `name` (plural, singular, short name, kind,
        `plural.group` or `kind.group`)."""
        found = self._find(name.strip())
        if found is None and self.refresh():
            found = self._find(name.strip())
        if found is None:
            raise CliError(f'the server doesn\'t have a resource type "{name}"')
        return found

    def _find(self, wanted: str) -> Resource | None:
        for pool in (self.core, self.groups):
            for resource in pool():
                if resource.answers_to(wanted) or (
                        resource.group and wanted.lower() in (
                            f"{resource.kind.lower()}.{resource.group}",
                            f"{resource.singular}.{resource.group}")):
                    return resource
        return None

    def by_kind(self, api_version: str, kind: str) -> Resource | None:
        """The resource serving `apiVersion`/`kind` objects (a manifest's), if any."""
        found = self._by_kind(api_version, kind)
        if found is None and self.refresh():
            found = self._by_kind(api_version, kind)
        return found

    def _by_kind(self, api_version: str, kind: str) -> Resource | None:
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
        if resource.key not in self._scalable and self.refresh():
            self.resources()
        return resource.key in self._scalable
