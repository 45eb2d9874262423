"""Expectations: what a controller has asked for and not yet seen happen.

Kubernetes' `UIDTrackingControllerExpectations`, simplified. Before a controller
creates N pods it records "expect N creations"; before deleting pods it records their
keys. Its informer lowers the counts as it observes the ADDED events (and the
deletions: a pod marked terminating or gone). Until both reach zero, the controller
does not act on its count of pods again — so a burst of reconciles cannot create the
same replicas twice while earlier creates are still in flight. Expectations older
than `ttl` (5 minutes, as in kube-controller-manager) are treated as satisfied, so a
lost event delays a controller but never wedges it.

All methods are synchronous; callers are on the event loop thread, so the record →
write → observe sequence needs no locks.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from miniorch.core.clock import Clock

K = TypeVar("K", bound=Hashable)

EXPECTATIONS_TTL = 300.0


@dataclass
class _Expectation:
    adds: int
    deletes: set[str] = field(default_factory=set)
    timestamp: float = 0.0

    @property
    def fulfilled(self) -> bool:
        return self.adds <= 0 and not self.deletes


class Expectations(Generic[K]):
    def __init__(self, clock: Clock, *, ttl: float = EXPECTATIONS_TTL) -> None:
        self._clock = clock
        self._ttl = ttl
        self._by_key: dict[K, _Expectation] = {}

    def satisfied(self, key: K) -> bool:
        exp = self._by_key.get(key)
        if exp is None or exp.fulfilled:
            return True
        return self._clock.monotonic() - exp.timestamp > self._ttl

    def expect_creations(self, key: K, count: int) -> None:
        self._by_key[key] = _Expectation(count, set(), self._clock.monotonic())

    def expect_deletions(self, key: K, pod_keys: set[str]) -> None:
        self._by_key[key] = _Expectation(0, set(pod_keys), self._clock.monotonic())

    def creation_observed(self, key: K, count: int = 1) -> None:
        """An ADDED event arrived (or a create failed, so it never will)."""
        exp = self._by_key.get(key)
        if exp is not None:
            exp.adds -= count

    def deletion_observed(self, key: K, pod_key: str) -> None:
        exp = self._by_key.get(key)
        if exp is not None:
            exp.deletes.discard(pod_key)

    def forget(self, key: K) -> None:
        self._by_key.pop(key, None)

    def pending(self, key: K) -> tuple[int, int]:
        """(creations, deletions) still expected, for logs and tests."""
        exp = self._by_key.get(key)
        return (max(exp.adds, 0), len(exp.deletes)) if exp else (0, 0)
