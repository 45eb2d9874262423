"""The ConfigMaps and Secrets one pod uses: reads, and a wake-up when one changes.

    registry ──watch configmaps + secrets in the pod's namespace──► ConfigWatch.run
                                  (names the pod references only)      │
        PodWorker: env of a waiting container (CreateContainerConfigError) ◄─ wait_change()
                   configMap/secret volumes (rewritten in place)           ◄─ on_change()

Kubernetes' kubelet has a watch-based ConfigMap/Secret manager per referenced object;
here each pod worker that references any watches its namespace (the store is in
process, a watch is a queue) and ignores the names it does not use.

Invariants: reads go to the registry each time (a container start and a volume rewrite
see the current object, never a cached one); a watch that falls behind (Gone) counts as
a change, so nothing is missed.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import structlog

from miniorch.api.errors import Gone
from miniorch.api.kinds import CONFIGMAPS, SECRETS, Resource
from miniorch.api.registry import Registry
from miniorch.core.objects import Obj, name_of
from miniorch.node.envvars import referenced_names


class ConfigWatch:
    def __init__(self, registry: Registry, pod: Obj) -> None:
        self.registry = registry
        meta = pod.get("metadata") or {}
        self.namespace = str(meta.get("namespace") or "default")
        self.config_maps, self.secrets = referenced_names(pod)
        self._changed = anyio.Event()
        self._listeners: list[Callable[[], None]] = []
        self.log = structlog.get_logger(__name__).bind(
            pod=f"{self.namespace}/{meta.get('name')}")

    @property
    def needed(self) -> bool:
        return bool(self.config_maps or self.secrets)

    def config_map(self, namespace: str, name: str) -> Obj | None:
        return self.registry.try_get(CONFIGMAPS, namespace, name)

    def secret(self, namespace: str, name: str) -> Obj | None:
        return self.registry.try_get(SECRETS, namespace, name)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener()` (synchronously, from `run`) after each relevant change."""
        self._listeners.append(listener)

    async def wait_change(self, at_most: float) -> None:
        """Until a referenced object changes, or `at_most` seconds."""
        with anyio.move_on_after(at_most):
            await self._changed.wait()

    def _fire(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                self.log.exception("config change handler failed")

    async def run(self) -> None:
        if not self.needed:
            return
        async with anyio.create_task_group() as tg:
            if self.config_maps:
                tg.start_soon(self._watch, CONFIGMAPS, self.config_maps)
            if self.secrets:
                tg.start_soon(self._watch, SECRETS, self.secrets)

    async def _watch(self, resource: Resource, names: set[str]) -> None:
        while True:
            # List + watch with no await between: nothing falls into the gap.
            _items, rv = self.registry.list(resource, self.namespace)
            watch = self.registry.watch(resource, self.namespace, since=rv or None)
            try:
                async with watch:
                    async for event in watch:
                        if name_of(event.object) in names:
                            self._fire()
            except Gone:
                self._fire()
                continue
            await anyio.sleep_forever()  # the store closed: shutting down
