"""Replica management: keep `spec.replicas` pods alive per ReplicationController or
ReplicaSet — one implementation, parametrised by a `ReplicaKind` (which resource, how
its selector reads: an RC's `{k: v}` map, a ReplicaSet's metav1.LabelSelector), as
kube-controller-manager runs one ReplicaSetController for both.

Data flow:

    RC/RS events ───────────► key of the RC
    pod events ──► owner RC's key (controllerRef), or every RC whose selector matches
                   an orphan; ADDED / terminating / DELETED lower the owner's expectations
                         │
                         ▼
    reconcile(key): read the RC and the pods of its namespace from the registry
        1. claim: adopt orphans that match the selector, release owned pods that no
           longer match (kube-controller-manager's ControllerRefManager)
        2. if expectations are satisfied: diff = len(active) - replicas;
           create (slow-start batches 1, 2, 4, ...) or delete (least valuable first)
        3. write status (replicas, fullyLabeledReplicas, readyReplicas,
           availableReplicas, observedGeneration) when it changed

Invariants:
- Expectations are recorded *before* pods are created or deleted, and the count of
  pods is not acted on again until those writes have been observed through the
  watch (or 5 minutes passed): a burst of events never creates a replica twice.
- Terminating pods and finished (Succeeded/Failed) pods are not active: they are
  replaced, not counted.
- An RC never adopts while it is being deleted, and never adopts a terminating pod.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

from miniorch.api.errors import ApiError, NotFound
from miniorch.api.kinds import PODS, REPLICATION_CONTROLLERS, Resource
from miniorch.api.registry import Registry
from miniorch.api.selectors import LabelSelector
from miniorch.controllers.expectations import Expectations
from miniorch.controllers.ownership import claim, create_pod_for, owner_reference
from miniorch.controllers.pods import (
    condition,
    is_active,
    is_ready,
    phase_of,
    restart_count,
)
from miniorch.core.clock import Clock, SystemClock, parse_rfc3339, rfc3339
from miniorch.core.objects import Obj, controller_ref, is_terminating, labels_of, uid_of
from miniorch.machinery.controller import Controller, ObjectKey, Result, Source
from miniorch.machinery.informer import InformerEvent, SharedInformerFactory

log = structlog.get_logger(__name__)

COMPONENT = "replication-controller"
BURST_REPLICAS = 500
"""At most this many creates or deletes per reconcile (kube-controller-manager's)."""




def pod_key(pod: Obj) -> str:
    return str(ObjectKey.of(pod))


def _selector_labels(rc: Obj) -> dict[str, str]:
    """`spec.selector`, defaulting to the template's labels as kube-apiserver does."""
    spec = rc.get("spec") or {}
    selector: dict[str, str] = spec.get("selector") or {}
    if selector:
        return selector
    template_labels: dict[str, str] = \
        (spec.get("template") or {}).get("metadata", {}).get("labels") or {}
    return template_labels


def rc_selector(rc: Obj) -> LabelSelector:
    return LabelSelector.from_match_labels(_selector_labels(rc))


@dataclass(frozen=True)
class ReplicaKind:
    """What differs between the kinds whose pods a `ReplicaManager` keeps."""

    resource: Resource
    component: str
    """The events' source component, and the controller's name."""
    selector: Callable[[Obj], LabelSelector]
    """The owner's pod selector (empty: act on nothing)."""


REPLICATION_CONTROLLER_KIND = ReplicaKind(REPLICATION_CONTROLLERS, COMPONENT, rc_selector)




def _deletion_rank(pod: Obj) -> tuple[Any, ...]:
    """Sort key: the pod to delete first sorts first (k8s `ActivePods`, simplified):
    unscheduled < scheduled, Pending < Unknown < Running, not ready < ready,
    more restarts first, newer first."""
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(phase_of(pod), 0)
    created = pod.get("metadata", {}).get("creationTimestamp")
    age = -parse_rfc3339(created).timestamp() if created else float("-inf")
    return (1 if pod.get("spec", {}).get("nodeName") else 0, phase_rank,
            1 if is_ready(pod) else 0, -restart_count(pod), age)


async def slow_start(count: int, create: Callable[[], Awaitable[None]], *,
                     initial: int = 1) -> tuple[int, Exception | None]:
    """Call `create` `count` times in batches of 1, 2, 4, ...; stop after the first
    batch with a failure (a quota or a bad template fails fast, not `count` times).
    Returns (successes, first error)."""
    done, batch = 0, min(initial, count)
    while batch > 0:
        errors: list[Exception] = []
        for _ in range(batch):
            try:
                await create()
                done += 1
            except Exception as exc:
                errors.append(exc)
        if errors:
            return done, errors[0]
        # Let watchers drain between batches so a big burst does not overflow them.
        await anyio.lowlevel.checkpoint()
        remaining = count - done
        batch = min(2 * batch, remaining)
    return done, None


class ReplicaManager:
    """The reconciler for one `ReplicaKind` (RCs or ReplicaSets)."""

    def __init__(self, registry: Registry, kind: ReplicaKind, *, clock: Clock | None = None,
                 burst: int = BURST_REPLICAS) -> None:
        self.registry = registry
        self.kind = kind
        self.clock = clock or SystemClock()
        self.expectations: Expectations[ObjectKey] = Expectations(self.clock)
        self._burst = burst

    # ---- event mapping -----------------------------------------------------------

    def sources(self) -> list[Source[ObjectKey]]:
        return [Source(self.kind.resource, self.map_rc), Source(PODS, self.map_pod)]

    def map_rc(self, event: InformerEvent) -> Iterable[ObjectKey]:
        key = ObjectKey.of(event.object)
        if event.type == "DELETED":
            self.expectations.forget(key)
        return [key]

    def _owner_key(self, pod: Obj, ref: Obj) -> ObjectKey | None:
        if ref.get("kind") != self.kind.resource.kind or \
                ref.get("apiVersion") != self.kind.resource.api_version:
            return None
        key = ObjectKey(pod["metadata"].get("namespace", ""), str(ref.get("name", "")))
        rc = self.registry.try_get(self.kind.resource, key.namespace, key.name)
        if rc is None or uid_of(rc) != ref.get("uid"):
            return None  # its owner is gone: the garbage collector's business
        return key

    def map_pod(self, event: InformerEvent) -> Iterable[ObjectKey]:
        pod = event.object
        keys: set[ObjectKey] = set()
        ref = controller_ref(pod)
        old_ref = controller_ref(event.old) if event.old else None
        if old_ref and (ref is None or ref.get("uid") != old_ref.get("uid")):
            old_key = self._owner_key(pod, old_ref)
            if old_key:
                keys.add(old_key)  # released or stripped: the old owner recounts
        if ref is not None:
            key = self._owner_key(pod, ref)
            if key is None:
                return keys
            if event.type == "ADDED":
                self.expectations.creation_observed(key)
            if event.type == "DELETED" or is_terminating(pod):
                self.expectations.deletion_observed(key, pod_key(pod))
            keys.add(key)
            return keys
        if event.type == "DELETED" or is_terminating(pod):
            return keys
        # An orphan: every RC that could adopt it.
        rcs, _ = self.registry.list(self.kind.resource, pod["metadata"].get("namespace"),
                                    shared=True)
        for rc in rcs:
            selector = self.kind.selector(rc)
            if not selector.empty and selector.matches_object(pod):
                keys.add(ObjectKey.of(rc))
        return keys

    # ---- reconcile ---------------------------------------------------------------

    async def reconcile(self, key: ObjectKey) -> Result:
        rc = self.registry.try_get(self.kind.resource, key.namespace, key.name)
        if rc is None:
            self.expectations.forget(key)
            return Result()
        selector = self.kind.selector(rc)
        if selector.empty:
            # An empty selector would match every pod in the namespace; validation
            # refuses it, but never act on one that slipped through.
            log.warning("no selector", kind=self.kind.resource.kind, name=str(key))
            return Result()
        # Read expectations before the pods: an event observed in between then only
        # causes one more reconcile, never an action on a stale count.
        satisfied = self.expectations.satisfied(key)
        # Shared, read-only pod objects: this runs on every pod event of the namespace.
        pods, _ = self.registry.list(PODS, key.namespace, shared=True)
        owned = self._claim(rc, selector, pods)
        active = [p for p in owned if is_active(p)]
        error: Exception | None = None
        if satisfied and not is_terminating(rc):
            try:
                await self._manage(rc, key, active)
            except Exception as exc:
                error = exc
        requeue = self._update_status(rc, active, error)
        if error is not None:
            raise error
        return Result(requeue_after=requeue)

    def _claim(self, rc: Obj, selector: LabelSelector, pods: list[Obj]) -> list[Obj]:
        return claim(self.registry, rc, self.kind.resource, selector, PODS, pods)

    async def _manage(self, rc: Obj, key: ObjectKey, active: list[Obj]) -> None:
        spec = rc.get("spec") or {}
        replicas = spec.get("replicas")
        wanted = 1 if replicas is None else int(replicas)
        diff = len(active) - wanted
        if diff < 0:
            count = min(-diff, self._burst)
            self.expectations.expect_creations(key, count)
            log.info("creating pods", rc=str(key), count=count, want=wanted, have=len(active))

            async def create() -> None:
                self._create_pod(rc)
            done, error = await slow_start(count, create)
            if done < count:
                # Neither the failed nor the skipped creates will ever be observed.
                self.expectations.creation_observed(key, count - done)
            if error is not None:
                raise error
        elif diff > 0:
            count = min(diff, self._burst)
            victims = sorted(active, key=_deletion_rank)[:count]
            self.expectations.expect_deletions(key, {pod_key(p) for p in victims})
            log.info("deleting pods", rc=str(key), count=count, want=wanted, have=len(active))
            first_error: Exception | None = None
            for pod in victims:
                name = pod["metadata"]["name"]
                try:
                    self.registry.delete(PODS, key.namespace, name)
                except NotFound:
                    self.expectations.deletion_observed(key, pod_key(pod))
                    continue
                except ApiError as exc:
                    self.expectations.deletion_observed(key, pod_key(pod))
                    self.registry.record_event(rc, type="Warning", reason="FailedDelete",
                                               message=f"Error deleting: {exc.message}",
                                               component=self.kind.component)
                    first_error = first_error or exc
                    continue
                self.registry.record_event(rc, type="Normal", reason="SuccessfulDelete",
                                           message=f"Deleted pod: {name}",
                                           component=self.kind.component)
            if first_error is not None:
                raise first_error

    def _create_pod(self, rc: Obj) -> Obj:
        spec = rc.get("spec") or {}
        template = spec.get("template") or {}
        template_meta = template.get("metadata") or {}
        metadata: Obj = {
            "generateName": f"{rc['metadata']['name']}-",
            "namespace": rc["metadata"].get("namespace", "default"),
            "labels": dict(template_meta.get("labels") or {}),
            "ownerReferences": [owner_reference(rc, self.kind.resource)],
        }
        if template_meta.get("annotations"):
            metadata["annotations"] = dict(template_meta["annotations"])
        pod: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
                    "spec": copy.deepcopy(template.get("spec") or {})}
        return create_pod_for(self.registry, rc, pod, component=self.kind.component)

    def _update_status(self, rc: Obj, active: list[Obj], error: Exception | None) -> float | None:
        """Write the counts if they changed; returns when to look again (a ready pod
        becomes available after `minReadySeconds`), if ever."""
        spec = rc.get("spec") or {}
        template_labels = (spec.get("template") or {}).get("metadata", {}).get("labels") or {}
        min_ready = float(spec.get("minReadySeconds") or 0)
        now = self.clock.now()
        ready = available = fully_labeled = 0
        requeue: float | None = None
        for pod in active:
            labels = labels_of(pod)
            if all(labels.get(k) == v for k, v in template_labels.items()):
                fully_labeled += 1
            if not is_ready(pod):
                continue
            ready += 1
            since = (condition(pod, "Ready") or {}).get("lastTransitionTime")
            waited = (now - parse_rfc3339(since)).total_seconds() if since else min_ready
            if min_ready <= 0 or waited >= min_ready:
                available += 1
            else:
                left = min_ready - waited
                requeue = left if requeue is None else min(requeue, left)
        old: Obj = rc.get("status") or {}
        status: Obj = {"replicas": len(active)}
        # omitempty, as kube-apiserver serialises them
        for field, value in (("fullyLabeledReplicas", fully_labeled), ("readyReplicas", ready),
                             ("availableReplicas", available),
                             ("observedGeneration", int(rc["metadata"].get("generation") or 0))):
            if value:
                status[field] = value
        conditions = [c for c in old.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
        failure = next((c for c in old.get("conditions") or []
                        if c.get("type") == "ReplicaFailure"), None)
        if error is not None:
            message = error.message if isinstance(error, ApiError) else str(error)
            since = (failure or {}).get("lastTransitionTime") or rfc3339(now)
            conditions.append({"type": "ReplicaFailure", "status": "True",
                               "lastTransitionTime": since, "reason": "FailedCreate",
                               "message": message})
        if conditions:
            status["conditions"] = conditions
        if status != old:
            with contextlib.suppress(NotFound):  # deleted meanwhile: nothing to report on
                self.registry.update_status(self.kind.resource, rc["metadata"].get(
                    "namespace", ""), rc["metadata"]["name"], status)
        return None if requeue is None else max(requeue, 0.01)


class ReplicationControllerReconciler(ReplicaManager):
    def __init__(self, registry: Registry, *, clock: Clock | None = None,
                 burst: int = BURST_REPLICAS) -> None:
        super().__init__(registry, REPLICATION_CONTROLLER_KIND, clock=clock, burst=burst)


def replica_controller(registry: Registry, kind: ReplicaKind, *, clock: Clock | None = None,
                       workers: int = 5, informers: SharedInformerFactory | None = None
                       ) -> Controller[ObjectKey]:
    reconciler = ReplicaManager(registry, kind, clock=clock)
    return Controller(name=kind.component, registry=registry, reconciler=reconciler,
                      sources=reconciler.sources(), workers=workers, informers=informers)


def replication_controller(registry: Registry, *, clock: Clock | None = None,
                           workers: int = 5, informers: SharedInformerFactory | None = None
                           ) -> Controller[ObjectKey]:
    """The controller actor: `await tg.start(replication_controller(reg).run)`."""
    return replica_controller(registry, REPLICATION_CONTROLLER_KIND, clock=clock,
                              workers=workers, informers=informers)
