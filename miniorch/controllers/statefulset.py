"""The StatefulSet controller: pods `<set>-0 … <set>-(N-1)` with stable identities.

Data flow:

    StatefulSet events ──────► its key
    pod events ──► its controller's key (or, for an orphan, every matching set)
                         │
                         ▼
    reconcile(key): the set, its revisions, the pods of its namespace
        1. claim pods; revisions: current (status.currentRevision) and update (the
           template's); pods by ordinal (the `-<n>` suffix of their name)
        2. replicas 0..N-1, in order: delete a failed pod; create a missing one (with
           the update revision's template at or above the partition, else the current
           one); under OrderedReady stop at the first pod created, not yet Running and
           Ready, or terminating
        3. ordinals >= N: delete, highest first (OrderedReady: one at a time, and only
           once every lower pod is Running and Ready)
        4. RollingUpdate: from the highest ordinal down to the partition, delete the
           first pod not at the update revision (it comes back at the new one);
           wait while any of those pods is not Running and Ready
        5. status (replicas, ready, available, current, updated, both revisions)

Invariants:
- A pod's name is its identity: `web-1` is always recreated as `web-1`, with hostname
  `web-1` and subdomain `spec.serviceName`.
- Under OrderedReady no pod N+1 exists before pod N is Running and Ready, and no pod
  is removed while a pod with a higher ordinal still runs.
- Reads come from the registry itself and a key is never reconciled twice at once, so
  every decision sees the previous reconcile's writes.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Iterable

import structlog

from miniorch.api.errors import AlreadyExists, ApiError, NotFound
from miniorch.api.kinds import CONTROLLER_REVISIONS, PODS, STATEFUL_SETS
from miniorch.api.registry import Registry
from miniorch.api.selectors import LabelSelector
from miniorch.controllers.history import (
    REVISION_LABEL,
    ensure_revision,
    revisions_of,
    template_of,
    truncate,
)
from miniorch.controllers.ownership import claim, owner_keys, owner_reference
from miniorch.controllers.pods import is_ready, phase_of
from miniorch.core.clock import Clock, SystemClock
from miniorch.core.objects import Obj, controller_ref, is_terminating, name_of
from miniorch.machinery.controller import Controller, ObjectKey, Result, Source
from miniorch.machinery.informer import InformerEvent, SharedInformerFactory

log = structlog.get_logger(__name__)

COMPONENT = "statefulset-controller"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def ordinal_of(set_name: str, pod: Obj) -> int | None:
    match = re.fullmatch(re.escape(set_name) + r"-(\d+)", name_of(pod))
    return int(match.group(1)) if match else None


def running_and_ready(pod: Obj) -> bool:
    return phase_of(pod) == "Running" and is_ready(pod) and not is_terminating(pod)


class StatefulSetReconciler:
    def __init__(self, registry: Registry, *, clock: Clock | None = None) -> None:
        self.registry = registry
        self.clock = clock or SystemClock()

    def sources(self) -> list[Source[ObjectKey]]:
        return [Source(STATEFUL_SETS, self.map_set), Source(PODS, self.map_pod)]

    def map_set(self, event: InformerEvent) -> Iterable[ObjectKey]:
        return [ObjectKey.of(event.object)]

    def map_pod(self, event: InformerEvent) -> Iterable[ObjectKey]:
        return owner_keys(self.registry, event, "StatefulSet", STATEFUL_SETS)

    # ---- reconcile ---------------------------------------------------------------

    async def reconcile(self, key: ObjectKey) -> Result:
        sts = self.registry.try_get(STATEFUL_SETS, key.namespace, key.name)
        if sts is None or is_terminating(sts):
            return Result()
        spec = sts.get("spec") or {}
        selector = LabelSelector.from_label_selector(spec.get("selector"))
        if selector.empty:
            log.warning("stateful set without a selector", sts=str(key))
            return Result()
        pods, _ = self.registry.list(PODS, key.namespace, shared=True)
        owned = claim(self.registry, sts, STATEFUL_SETS, selector, PODS, pods)
        revisions = revisions_of(self.registry, sts)
        update_rev = ensure_revision(self.registry, sts, STATEFUL_SETS,
                                     spec.get("template") or {}, revisions)
        update_name = name_of(update_rev)
        status = sts.get("status") or {}
        current_name = str(status.get("currentRevision") or update_name)
        current_rev = self.registry.try_get(CONTROLLER_REVISIONS, key.namespace, current_name)
        if current_rev is None:
            current_name, current_rev = update_name, update_rev
        self._manage(sts, owned, current_rev, update_rev)
        pods, _ = self.registry.list(PODS, key.namespace, shared=True)
        owned = [p for p in pods if (controller_ref(p) or {}).get("uid") == sts["metadata"]["uid"]]
        in_use = {current_name, update_name} | {
            str((p["metadata"].get("labels") or {}).get(REVISION_LABEL)) for p in owned}
        truncate(self.registry, revisions_of(self.registry, sts), in_use,
                 int(spec.get("revisionHistoryLimit", 10)))
        self._update_status(sts, owned, current_name, update_name)
        return Result()

    def _manage(self, sts: Obj, owned: list[Obj], current_rev: Obj, update_rev: Obj) -> None:
        spec = sts.get("spec") or {}
        set_name = name_of(sts)
        replicas = int(spec.get("replicas", 1))
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        by_ordinal: dict[int, Obj] = {}
        for owned_pod in owned:
            ordinal = ordinal_of(set_name, owned_pod)
            if ordinal is not None:
                by_ordinal[ordinal] = owned_pod
        # 2. the replicas, lowest ordinal first
        for ordinal in range(replicas):
            pod = by_ordinal.get(ordinal)
            if pod is not None and phase_of(pod) == "Failed" and not is_terminating(pod):
                self._delete(sts, pod)  # recreated under its name once it is gone
                if ordered:
                    return
                continue
            if pod is None:
                revision = update_rev if not rolling or ordinal >= partition else current_rev
                self._create(sts, ordinal, revision)
                if ordered:
                    return  # wait for it to be Running and Ready
                continue
            if ordered and not running_and_ready(pod):
                return
        # 3. condemned pods, highest ordinal first
        condemned = sorted((o for o in by_ordinal if o >= replicas), reverse=True)
        for ordinal in condemned:
            pod = by_ordinal[ordinal]
            if is_terminating(pod):
                if ordered:
                    return
                continue
            if ordered and any(not running_and_ready(by_ordinal[o])
                               for o in by_ordinal if o < ordinal):
                return
            self._delete(sts, pod)
            if ordered:
                return
        # 4. rolling update, highest ordinal down to the partition
        if not rolling:
            return
        update_name = name_of(update_rev)
        for ordinal in range(replicas - 1, partition - 1, -1):
            if ordinal not in by_ordinal:
                return
            pod = by_ordinal[ordinal]
            if (pod["metadata"].get("labels") or {}).get(REVISION_LABEL) != update_name \
                    and not is_terminating(pod):
                self._delete(sts, pod)
                return
            if not running_and_ready(pod):
                return

    def _create(self, sts: Obj, ordinal: int, revision: Obj) -> None:
        spec = sts.get("spec") or {}
        set_name = name_of(sts)
        name = f"{set_name}-{ordinal}"
        template = template_of(revision) or (spec.get("template") or {})
        t_meta = template.get("metadata") or {}
        pod_spec: Obj = copy.deepcopy(template.get("spec") or {})
        pod_spec["hostname"] = name
        if spec.get("serviceName"):
            pod_spec["subdomain"] = spec["serviceName"]
        labels = {**(t_meta.get("labels") or {}), REVISION_LABEL: name_of(revision),
                  POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)}
        metadata: Obj = {"name": name, "namespace": sts["metadata"].get("namespace", "default"),
                         "labels": labels, "ownerReferences": [owner_reference(sts, STATEFUL_SETS)]}
        if t_meta.get("annotations"):
            metadata["annotations"] = dict(t_meta["annotations"])
        try:
            self.registry.create(PODS, {"apiVersion": "v1", "kind": "Pod",
                                        "metadata": metadata, "spec": pod_spec})
        except AlreadyExists:
            return  # its previous incarnation is still terminating: the next event retries
        except ApiError as exc:
            self.registry.record_event(
                sts, type="Warning", reason="FailedCreate",
                message=f"create Pod {name} in StatefulSet {set_name} failed error: "
                        f"{exc.message}", component=COMPONENT)
            raise
        self.registry.record_event(
            sts, type="Normal", reason="SuccessfulCreate",
            message=f"create Pod {name} in StatefulSet {set_name} successful",
            component=COMPONENT)

    def _delete(self, sts: Obj, pod: Obj) -> None:
        set_name = name_of(sts)
        try:
            self.registry.delete(PODS, pod["metadata"]["namespace"], name_of(pod))
        except NotFound:
            return
        self.registry.record_event(
            sts, type="Normal", reason="SuccessfulDelete",
            message=f"delete Pod {name_of(pod)} in StatefulSet {set_name} successful",
            component=COMPONENT)

    def _update_status(self, sts: Obj, owned: list[Obj], current: str, update: str) -> None:
        spec = sts.get("spec") or {}
        strategy = spec.get("updateStrategy") or {}
        live = [p for p in owned if not is_terminating(p) and phase_of(p) != "Failed"]
        ready = sum(1 for p in live if is_ready(p))
        revision_of = [(p["metadata"].get("labels") or {}).get(REVISION_LABEL) for p in live]
        current_count = sum(1 for r in revision_of if r == current)
        updated = sum(1 for r in revision_of if r == update)
        replicas = int(spec.get("replicas", 1))
        if strategy.get("type", "RollingUpdate") == "RollingUpdate" and \
                updated == replicas == len(live) and ready == replicas:
            # completeRollingUpdate: the update revision becomes the current one.
            current, current_count = update, updated
        status: Obj = {"observedGeneration": int(sts["metadata"].get("generation") or 0),
                       "replicas": len(live), "availableReplicas": ready,
                       "currentRevision": current, "updateRevision": update,
                       "collisionCount": int((sts.get("status") or {}).get("collisionCount")
                                             or 0)}
        for field, value in (("readyReplicas", ready), ("currentReplicas", current_count),
                             ("updatedReplicas", updated)):
            if value:
                status[field] = value
        old = sts.get("status") or {}
        if {k: v for k, v in old.items() if k != "conditions"} != status:
            if old.get("conditions"):
                status["conditions"] = old["conditions"]
            with contextlib.suppress(NotFound):
                self.registry.update_status(STATEFUL_SETS, sts["metadata"].get("namespace", ""),
                                            name_of(sts), status)


def statefulset_controller(registry: Registry, *, clock: Clock | None = None,
                           workers: int = 2,
                           informers: SharedInformerFactory | None = None
                           ) -> Controller[ObjectKey]:
    """The controller actor: `await tg.start(statefulset_controller(reg).run)`."""
    reconciler = StatefulSetReconciler(registry, clock=clock)
    return Controller(name=COMPONENT, registry=registry, reconciler=reconciler,
                      sources=reconciler.sources(), workers=workers,
                      informers=informers)
