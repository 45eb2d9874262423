"""A pod worker's mailbox: the latest pod object, coalesced; a kill is sticky.

Kubernetes' pod workers keep only the newest update for a pod that is busy (there is no
point replaying three intermediate status versions), but a pending kill must never be
overwritten by a later ordinary update. A bounded memory stream cannot coalesce, so this
is a one-slot box plus an `anyio.Event` to wake the reader.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from miniorch.core.objects import Obj


@dataclass(frozen=True)
class PodUpdate:
    pod: Obj
    """The newest pod object seen (the last one, for a removed pod)."""
    removed: bool
    """The pod is gone from the store (a DELETED event, or missing from a re-list)."""


class Mailbox:
    def __init__(self, pod: Obj) -> None:
        self._pod = pod
        self._removed = False
        self._changed = anyio.Event()
        self._changed.set()

    def put(self, pod: Obj, *, removed: bool = False) -> None:
        self._pod = pod
        # Sticky: once removed, a late MODIFIED (re-list race) cannot resurrect it.
        self._removed = self._removed or removed
        self._changed.set()

    @property
    def latest(self) -> PodUpdate:
        return PodUpdate(self._pod, self._removed)

    async def get(self) -> PodUpdate:
        """Wait for something newer than what the last `get` returned."""
        await self._changed.wait()
        self._changed = anyio.Event()
        return PodUpdate(self._pod, self._removed)
