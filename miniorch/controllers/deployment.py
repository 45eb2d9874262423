"""The Deployment controller: roll a pod template out through ReplicaSets.

A port of kube-controller-manager's `pkg/controller/deployment` (sync.go, rolling.go,
recreate.go, progress.go, util/deployment_util.go), on the reconcile machinery.

Data flow:

    Deployment events ──────────────────────► key of the Deployment
    ReplicaSet events ──► owner Deployment (controllerRef), or every Deployment whose
                          selector matches an orphan
    pod DELETED ──► owner RS ──► its Deployment (Recreate waits for old pods to go)
                         │
                         ▼
    reconcile(key): read the Deployment and its namespace's ReplicaSets
        1. claim ReplicaSets (adopt matching orphans, release mismatches)
        2. paused, or a scaling event (a `desired-replicas` annotation differs):
           sync() — scale (proportionally over active RSes), status, history cleanup
        3. Recreate: old RSes to 0, wait until no old pod runs, new RS to replicas
           RollingUpdate: new RS up within maxSurge, then old RSes down within
           maxUnavailable (counting only *available* pods: minReadySeconds is honoured
           through the RSes' `availableReplicas`)
        4. complete ─► delete the oldest unused RSes past revisionHistoryLimit
        5. status: replicas/updated/ready/available/unavailable, Available and
           Progressing conditions (the progress deadline re-queues the key)

Invariants:
- The "new" ReplicaSet is the oldest one whose template equals the Deployment's,
  ignoring the `pod-template-hash` label; a rollback therefore reuses the old RS and
  bumps its revision to max(other revisions) + 1.
- Every RS carries the revision (`deployment.kubernetes.io/revision`) and the
  desired/max replicas annotations kubectl's `rollout undo`/`history` read; the
  Deployment carries the revision of its new RS.
- Level-triggered: each reconcile takes one step from what the registry says now; an
  RS's own controller (`replicaset.py`) does the pods.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import structlog

from miniorch.api.errors import AlreadyExists, NotFound
from miniorch.api.kinds import DEPLOYMENTS, PODS, REPLICA_SETS
from miniorch.api.kinds.apps import selector_of
from miniorch.api.registry import Registry
from miniorch.controllers.ownership import claim, owner_reference
from miniorch.controllers.pods import TERMINAL_PHASES, phase_of
from miniorch.core.clock import Clock, SystemClock, parse_rfc3339, rfc3339
from miniorch.core.objects import Obj, controller_ref, is_terminating, uid_of
from miniorch.machinery.controller import Controller, ObjectKey, Result, Source
from miniorch.machinery.informer import InformerEvent, SharedInformerFactory

log = structlog.get_logger(__name__)

COMPONENT = "deployment-controller"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_NOT_COPIED = frozenset({"kubectl.kubernetes.io/last-applied-configuration", REVISION,
                         REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
                         "deprecated.deployment.rollback.to"})
"""Deployment annotations not copied onto its ReplicaSets (skipCopyAnnotation)."""

_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
"""rand.SafeEncodeString's alphabet: no vowels, no look-alikes (no bad words in names)."""


# ---- small readings ---------------------------------------------------------------------

def _spec(obj: Obj) -> Obj:
    spec: Obj = obj.setdefault("spec", {})
    return spec


def _status(obj: Obj) -> Obj:
    status: Obj = obj.get("status") or {}
    return status


def _annotations(obj: Obj) -> dict[str, str]:
    annotations: dict[str, str] = obj["metadata"].get("annotations") or {}
    return annotations


def replicas_of(obj: Obj) -> int:
    value = _spec(obj).get("replicas")
    return 1 if value is None else int(value)


def revision_of(obj: Obj) -> int:
    try:
        return int(_annotations(obj).get(REVISION, "0"))
    except ValueError:
        return 0


def template_hash(template: Obj, collision_count: int | None = None) -> str:
    """A stable hash of a pod template (Kubernetes' ComputeHash: FNV-1a 32 over the
    template, plus the collision count), encoded like rand.SafeEncodeString."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":"))
    if collision_count:
        data += str(collision_count)
    h = 0x811C9DC5
    for byte in data.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_ALPHANUMS[ord(c) % len(_ALPHANUMS)] for c in str(h))


def _without_hash(template: Obj) -> Obj:
    t = copy.deepcopy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return t


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    return _without_hash(a) == _without_hash(b)


def _scaled_value(value: Any, total: int, *, round_up: bool) -> int:
    """GetScaledValueFromIntOrPercent."""
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value or 0)


def _is_rolling(d: Obj) -> bool:
    return bool((_spec(d).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate")


def _fenceposts(d: Obj) -> tuple[int, int]:
    """ResolveFenceposts: (maxSurge, maxUnavailable) in pods; never both 0."""
    rolling = (_spec(d).get("strategy") or {}).get("rollingUpdate") or {}
    desired = replicas_of(d)
    surge = _scaled_value(rolling.get("maxSurge", "25%"), desired, round_up=True)
    unavailable = _scaled_value(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Obj) -> int:
    return _fenceposts(d)[0] if _is_rolling(d) else 0


def max_unavailable(d: Obj) -> int:
    if not _is_rolling(d) or replicas_of(d) == 0:
        return 0
    return min(_fenceposts(d)[1], replicas_of(d))


def _sum(rss: Iterable[Obj | None], field: str) -> int:
    """Spec replicas (`field="spec"`) or a status count over ReplicaSets."""
    total = 0
    for rs in rss:
        if rs is None:
            continue
        total += replicas_of(rs) if field == "spec" else int(_status(rs).get(field) or 0)
    return total


def _active(rss: Iterable[Obj | None]) -> list[Obj]:
    return [rs for rs in rss if rs is not None and replicas_of(rs) > 0]


def _by_creation(rs: Obj) -> tuple[str, str]:
    return (str(rs["metadata"].get("creationTimestamp") or ""), rs["metadata"]["name"])


def condition_of(status: Obj, kind: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def _set_condition(status: Obj, cond: Obj) -> None:
    """SetDeploymentCondition: same status and reason is no change at all; a new reason
    with the same status keeps lastTransitionTime."""
    current = condition_of(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] and \
            current.get("reason") == cond["reason"]:
        return
    if current is not None and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    status["conditions"] = [c for c in status.get("conditions") or []
                            if c.get("type") != cond["type"]] + [cond]


def _remove_condition(status: Obj, kind: str) -> None:
    kept = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def _has_deadline(d: Obj) -> bool:
    deadline = _spec(d).get("progressDeadlineSeconds")
    return deadline is not None and deadline != 2**31 - 1


def deployment_complete(d: Obj, status: Obj) -> bool:
    want = replicas_of(d)
    return (int(status.get("updatedReplicas") or 0) == want
            and int(status.get("replicas") or 0) == want
            and int(status.get("availableReplicas") or 0) == want
            and int(status.get("observedGeneration") or 0) >= int(
                d["metadata"].get("generation") or 0))


def _progressing(old: Obj, new: Obj) -> bool:
    """DeploymentProgressing: more updated, ready or available pods, or fewer old ones."""
    def old_pods(s: Obj) -> int:
        return int(s.get("replicas") or 0) - int(s.get("updatedReplicas") or 0)
    return (int(new.get("updatedReplicas") or 0) > int(old.get("updatedReplicas") or 0)
            or old_pods(new) < old_pods(old)
            or int(new.get("readyReplicas") or 0) > int(old.get("readyReplicas") or 0)
            or int(new.get("availableReplicas") or 0) > int(old.get("availableReplicas") or 0))


# ---- the reconciler -----------------------------------------------------------------------

class DeploymentReconciler:
    def __init__(self, registry: Registry, *, clock: Clock | None = None) -> None:
        self.registry = registry
        self.clock = clock or SystemClock()

    # ---- event mapping -------------------------------------------------------------

    def sources(self) -> list[Source[ObjectKey]]:
        return [Source(DEPLOYMENTS, self.map_deployment), Source(REPLICA_SETS, self.map_rs),
                Source(PODS, self.map_pod)]

    def map_deployment(self, event: InformerEvent) -> Iterable[ObjectKey]:
        return [ObjectKey.of(event.object)]

    def _owner(self, namespace: str, ref: Obj | None) -> ObjectKey | None:
        if ref is None or ref.get("kind") != "Deployment":
            return None
        d = self.registry.try_get(DEPLOYMENTS, namespace, str(ref.get("name", "")))
        if d is None or uid_of(d) != ref.get("uid"):
            return None
        return ObjectKey.of(d)

    def map_rs(self, event: InformerEvent) -> Iterable[ObjectKey]:
        rs = event.object
        ns = rs["metadata"].get("namespace", "")
        keys: set[ObjectKey] = set()
        for ref in (controller_ref(rs), controller_ref(event.old) if event.old else None):
            key = self._owner(ns, ref)
            if key is not None:
                keys.add(key)
        if controller_ref(rs) is None and event.type != "DELETED":
            deployments, _ = self.registry.list(DEPLOYMENTS, ns, shared=True)
            for d in deployments:
                selector = selector_of(d)
                if not selector.empty and selector.matches_object(rs):
                    keys.add(ObjectKey.of(d))
        return keys

    def map_pod(self, event: InformerEvent) -> Iterable[ObjectKey]:
        # Only a Recreate rollout waits on pods (for the old ones to be gone); every
        # other pod change reaches us through its ReplicaSet's status.
        if event.type != "DELETED":
            return []
        ref = controller_ref(event.object)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return []
        ns = event.object["metadata"].get("namespace", "")
        rs = self.registry.try_get(REPLICA_SETS, ns, str(ref.get("name", "")))
        if rs is None or uid_of(rs) != ref.get("uid"):
            return []
        key = self._owner(ns, controller_ref(rs))
        return [key] if key is not None else []

    # ---- reconcile (syncDeployment) --------------------------------------------------

    async def reconcile(self, key: ObjectKey) -> Result:
        stored = self.registry.try_get(DEPLOYMENTS, key.namespace, key.name)
        if stored is None:
            return Result()
        d = copy.deepcopy(stored)
        selector = selector_of(d)
        if selector.empty:
            self._event(d, "Warning", "SelectingAll", "This deployment is selecting all pods. "
                        "A non-empty selector is required.")
            return Result()
        candidates, _ = self.registry.list(REPLICA_SETS, key.namespace)
        rs_list = claim(self.registry, d, DEPLOYMENTS, selector, REPLICA_SETS, candidates)
        if is_terminating(d):
            new_rs, old_rss = self._all_replica_sets(d, rs_list, create=False)
            self._sync_status(d, [*old_rss, new_rs], new_rs)
            return Result()
        self._check_paused_conditions(d)
        if _spec(d).get("paused") or self._is_scaling_event(d, rs_list):
            return self._sync(d, rs_list)
        if (_spec(d).get("strategy") or {}).get("type") == "Recreate":
            return self._rollout_recreate(d, rs_list)
        return self._rollout_rolling(d, rs_list)

    # ---- writes ----------------------------------------------------------------------

    def _event(self, d: Obj, type: str, reason: str, message: str) -> None:
        self.registry.record_event(d, type=type, reason=reason, message=message,
                                   component=COMPONENT)

    def _write_status(self, d: Obj, status: Obj) -> None:
        if status == _status(d):
            return
        with contextlib.suppress(NotFound):
            updated = self.registry.update_status(DEPLOYMENTS, d["metadata"].get(
                "namespace", ""), d["metadata"]["name"], status)
            d["status"] = updated.get("status") or {}
            d["metadata"]["resourceVersion"] = updated["metadata"]["resourceVersion"]

    def _set_revision(self, d: Obj, revision: str) -> None:
        """SetDeploymentRevision: the Deployment carries its new RS's revision."""
        if _annotations(d).get(REVISION) == revision:
            return

        def change(obj: Obj) -> None:
            obj["metadata"].setdefault("annotations", {})[REVISION] = revision
        with contextlib.suppress(NotFound):
            updated = self.registry.mutate(DEPLOYMENTS, d["metadata"].get("namespace", ""),
                                           d["metadata"]["name"], change)
            d["metadata"]["annotations"] = updated["metadata"].get("annotations") or {}

    def _update_rs(self, rs: Obj, change: Any) -> None:
        """Apply `change` to the stored RS and refresh `rs` in place (the lists holding
        it then see the new state)."""
        updated = self.registry.mutate(REPLICA_SETS, rs["metadata"].get("namespace", ""),
                                       rs["metadata"]["name"], change)
        rs.clear()
        rs.update(updated)

    def _set_replicas_annotations(self, rs: Obj, d: Obj) -> bool:
        annotations = rs["metadata"].setdefault("annotations", {})
        wanted = {DESIRED_REPLICAS: str(replicas_of(d)),
                  MAX_REPLICAS: str(replicas_of(d) + max_surge(d))}
        if all(annotations.get(k) == v for k, v in wanted.items()):
            return False
        annotations.update(wanted)
        return True

    def _scale(self, rs: Obj, d: Obj, new_scale: int, operation: str = "") -> bool:
        """scaleReplicaSet: set the size and the replicas annotations; True if resized."""
        old_scale = replicas_of(rs)
        probe = copy.deepcopy(rs)
        if old_scale == new_scale and not self._set_replicas_annotations(probe, d):
            return False
        operation = operation or ("up" if new_scale > old_scale else "down")

        def change(obj: Obj) -> None:
            _spec(obj)["replicas"] = new_scale
            self._set_replicas_annotations(obj, d)
        self._update_rs(rs, change)
        if old_scale != new_scale:
            self._event(d, "Normal", "ScalingReplicaSet",
                        f"Scaled {operation} replica set {rs['metadata']['name']} from "
                        f"{old_scale} to {new_scale}")
            return True
        return False

    # ---- the new and the old ReplicaSets ---------------------------------------------

    def _all_replica_sets(self, d: Obj, rs_list: list[Obj], *, create: bool
                          ) -> tuple[Obj | None, list[Obj]]:
        """getAllReplicaSetsAndSyncRevision: (new RS or None, old RSes)."""
        existing = self._find_new(d, rs_list)
        old = [rs for rs in rs_list if existing is None or uid_of(rs) != uid_of(existing)]
        return self._new_replica_set(d, existing, old, create=create), old

    def _find_new(self, d: Obj, rs_list: list[Obj]) -> Obj | None:
        template = _spec(d).get("template") or {}
        for rs in sorted(rs_list, key=_by_creation):
            if equal_ignore_hash(_spec(rs).get("template") or {}, template):
                return rs
        return None

    def _annotate_new(self, d: Obj, rs: Obj, revision: str, *, exists: bool) -> bool:
        """SetNewReplicaSetAnnotations: the Deployment's annotations, the revision (and
        the history of revisions the RS had), the replicas annotations on creation."""
        annotations = rs["metadata"].setdefault("annotations", {})
        changed = False
        for k, v in _annotations(d).items():
            if k not in _NOT_COPIED and annotations.get(k) != v:
                annotations[k] = v
                changed = True
        old_revision = annotations.get(REVISION, "")
        try:
            old_number = int(old_revision or 0)
        except ValueError:
            old_number = 0
        if old_number < int(revision):
            annotations[REVISION] = revision
            changed = True
            if old_revision:
                history = annotations.get(REVISION_HISTORY)
                annotations[REVISION_HISTORY] = f"{history},{old_revision}" if history \
                    else old_revision
        if not exists and self._set_replicas_annotations(rs, d):
            changed = True
        return changed

    def _new_replica_set(self, d: Obj, existing: Obj | None, old_rss: list[Obj], *,
                         create: bool) -> Obj | None:
        revision = str(max((revision_of(rs) for rs in old_rss), default=0) + 1)
        min_ready = int(_spec(d).get("minReadySeconds") or 0)
        status = copy.deepcopy(_status(d))
        if existing is not None:
            probe = copy.deepcopy(existing)
            if self._annotate_new(d, probe, revision, exists=True) or \
                    int(_spec(probe).get("minReadySeconds") or 0) != min_ready:
                def change(obj: Obj) -> None:
                    self._annotate_new(d, obj, revision, exists=True)
                    _spec(obj)["minReadySeconds"] = min_ready
                self._update_rs(existing, change)
            self._set_revision(d, str(revision_of(existing)))
            if _has_deadline(d) and condition_of(status, "Progressing") is None:
                _set_condition(status, self._condition(
                    "Progressing", "True", "FoundNewReplicaSet",
                    f'Found new replica set "{existing["metadata"]["name"]}"'))
                self._write_status(d, status)
            return existing
        if not create:
            return None
        collisions = _status(d).get("collisionCount")
        template = copy.deepcopy(_spec(d).get("template") or {})
        pod_hash = template_hash(template, collisions)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy.deepcopy(_spec(d).get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        name = f"{d['metadata']['name']}-{pod_hash}"
        new_rs: Obj = {
            "apiVersion": REPLICA_SETS.api_version, "kind": REPLICA_SETS.kind,
            "metadata": {"name": name, "namespace": d["metadata"].get("namespace", "default"),
                         "labels": dict(template["metadata"]["labels"]),
                         "ownerReferences": [owner_reference(d, DEPLOYMENTS)]},
            "spec": {"replicas": 0, "minReadySeconds": min_ready, "selector": selector,
                     "template": template},
        }
        replicas = self._new_rs_replicas(d, [*old_rss, new_rs], new_rs)
        new_rs["spec"]["replicas"] = replicas
        self._annotate_new(d, new_rs, revision, exists=False)
        try:
            created = self.registry.create(REPLICA_SETS, new_rs)
        except AlreadyExists:
            found = self.registry.try_get(REPLICA_SETS, new_rs["metadata"]["namespace"], name)
            ref = controller_ref(found) if found else None
            if found is not None and ref is not None and ref.get("uid") == uid_of(d) and \
                    equal_ignore_hash(_spec(found).get("template") or {},
                                      _spec(d).get("template") or {}):
                return found  # our own, from an earlier pass whose event is not here yet
            # A hash collision: a different template already has this name.
            status["collisionCount"] = int(collisions or 0) + 1
            self._write_status(d, status)
            raise
        if replicas > 0:
            self._event(d, "Normal", "ScalingReplicaSet",
                        f"Scaled up replica set {name} from 0 to {replicas}")
        self._set_revision(d, revision)
        _set_condition(status, self._condition("Progressing", "True", "NewReplicaSetCreated",
                                               f'Created new replica set "{name}"'))
        self._write_status(d, status)
        return created

    def _new_rs_replicas(self, d: Obj, all_rss: list[Obj], new_rs: Obj) -> int:
        """NewRSNewReplicas: how big the new RS may be now."""
        if not _is_rolling(d):
            return replicas_of(d)
        current = _sum(all_rss, "spec")
        allowed = replicas_of(d) + max_surge(d)
        if current >= allowed:
            return replicas_of(new_rs)
        step = min(allowed - current, replicas_of(d) - replicas_of(new_rs))
        return replicas_of(new_rs) + step

    # ---- strategies ------------------------------------------------------------------

    def _rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> Result:
        new_rs, old_rss = self._all_replica_sets(d, rs_list, create=True)
        assert new_rs is not None  # create=True
        all_rss = [*old_rss, new_rs]
        if self._reconcile_new(d, all_rss, new_rs) or \
                self._reconcile_old(d, all_rss, _active(old_rss), new_rs):
            return self._sync_rollout_status(d, all_rss, new_rs)
        if deployment_complete(d, _status(d)):
            self._cleanup(d, old_rss)
        return self._sync_rollout_status(d, all_rss, new_rs)

    def _reconcile_new(self, d: Obj, all_rss: list[Obj], new_rs: Obj) -> bool:
        want = replicas_of(d)
        if replicas_of(new_rs) == want:
            return False
        if replicas_of(new_rs) > want:
            return self._scale(new_rs, d, want)
        return self._scale(new_rs, d, self._new_rs_replicas(d, all_rss, new_rs))

    def _reconcile_old(self, d: Obj, all_rss: list[Obj], old_rss: list[Obj],
                       new_rs: Obj) -> bool:
        if _sum(old_rss, "spec") == 0:
            return False
        min_available = replicas_of(d) - max_unavailable(d)
        new_unavailable = replicas_of(new_rs) - int(_status(new_rs).get("availableReplicas")
                                                    or 0)
        max_scaled_down = _sum(all_rss, "spec") - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        # First the old pods that are not available anyway: removing them costs nothing.
        cleaned = 0
        for rs in sorted(old_rss, key=_by_creation):
            if cleaned >= max_scaled_down:
                break
            available = int(_status(rs).get("availableReplicas") or 0)
            if replicas_of(rs) == 0 or replicas_of(rs) == available:
                continue
            count = min(max_scaled_down - cleaned, replicas_of(rs) - available)
            self._scale(rs, d, replicas_of(rs) - count)
            cleaned += count
        # Then available old pods, as far as the availability floor allows.
        available_total = _sum(all_rss, "availableReplicas")
        scaled = 0
        if available_total > min_available:
            budget = available_total - min_available
            for rs in sorted(old_rss, key=_by_creation):
                if scaled >= budget:
                    break
                if replicas_of(rs) == 0:
                    continue
                count = min(replicas_of(rs), budget - scaled)
                self._scale(rs, d, replicas_of(rs) - count)
                scaled += count
        return cleaned + scaled > 0

    def _rollout_recreate(self, d: Obj, rs_list: list[Obj]) -> Result:
        new_rs, old_rss = self._all_replica_sets(d, rs_list, create=False)
        all_rss = [*old_rss, new_rs]
        scaled_down = False
        for rs in _active(old_rss):
            scaled_down = self._scale(rs, d, 0) or scaled_down
        if scaled_down or self._old_pods_running(new_rs, old_rss):
            return self._sync_rollout_status(d, all_rss, new_rs)
        if new_rs is None:
            new_rs, old_rss = self._all_replica_sets(d, rs_list, create=True)
            all_rss = [*old_rss, new_rs]
        assert new_rs is not None
        self._scale(new_rs, d, replicas_of(d))
        if deployment_complete(d, _status(d)):
            self._cleanup(d, old_rss)
        return self._sync_rollout_status(d, all_rss, new_rs)

    def _old_pods_running(self, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
        if _sum(old_rss, "replicas") > 0:
            return True
        old_uids = {uid_of(rs) for rs in old_rss}
        if new_rs is not None:
            old_uids.discard(uid_of(new_rs))
        if not old_uids:
            return False
        ns = (new_rs or old_rss[0])["metadata"].get("namespace", "")
        pods, _ = self.registry.list(PODS, ns, shared=True)
        for pod in pods:
            ref = controller_ref(pod)
            if ref is not None and ref.get("uid") in old_uids and \
                    phase_of(pod) not in TERMINAL_PHASES:
                return True  # terminating pods still run: Recreate waits for them
        return False

    # ---- sync (paused, scaling events) -----------------------------------------------

    def _is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        new_rs, old_rss = self._all_replica_sets(d, rs_list, create=False)
        for rs in _active([*old_rss, new_rs]):
            desired = _annotations(rs).get(DESIRED_REPLICAS)
            if desired is not None and desired != str(replicas_of(d)):
                return True
        return False

    def _sync(self, d: Obj, rs_list: list[Obj]) -> Result:
        new_rs, old_rss = self._all_replica_sets(d, rs_list, create=False)
        self._proportional_scale(d, new_rs, old_rss)
        if _spec(d).get("paused"):
            self._cleanup(d, old_rss)
        self._sync_status(d, [*old_rss, new_rs], new_rs)
        return Result()

    def _proportional_scale(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        """scale(): one active RS takes the whole count; a saturated new RS leaves the old
        ones nothing; otherwise the change is spread in proportion to the RSes' sizes."""
        want = replicas_of(d)
        if new_rs is None and not old_rss:
            return
        newest_first = sorted(old_rss, key=_by_creation, reverse=True)
        active = _active([*newest_first, new_rs])
        if len(active) <= 1:
            target = active[0] if active else (new_rs or newest_first[0])
            if replicas_of(target) != want:
                self._scale(target, d, want)
            return
        if new_rs is not None and _annotations(new_rs).get(DESIRED_REPLICAS) == str(want) \
                and replicas_of(new_rs) == want and \
                int(_status(new_rs).get("availableReplicas") or 0) == want:
            for rs in _active(old_rss):
                self._scale(rs, d, 0)
            return
        if not _is_rolling(d):
            return
        allowed = want + max_surge(d) if want > 0 else 0
        to_add = allowed - _sum(active, "spec")
        if to_add > 0:
            active.sort(key=lambda rs: (-replicas_of(rs), _negated(_by_creation(rs))))
        elif to_add < 0:
            active.sort(key=lambda rs: (-replicas_of(rs), _by_creation(rs)))
        added = 0
        sizes: dict[str, int] = {}
        for rs in active:
            proportion = self._proportion(d, rs, to_add, added) if to_add else 0
            sizes[rs["metadata"]["name"]] = replicas_of(rs) + proportion
            added += proportion
        for i, rs in enumerate(active):
            name = rs["metadata"]["name"]
            if i == 0 and to_add:
                sizes[name] = max(sizes[name] + to_add - added, 0)  # leftovers: the largest
            self._scale(rs, d, sizes[name], "up" if to_add > 0 else "down")

    def _proportion(self, d: Obj, rs: Obj, to_add: int, added: int) -> int:
        """GetProportion: this RS's share of `to_add`, from its size and the max-replicas
        annotation of the last scale."""
        if replicas_of(rs) == 0 or to_add == added:
            return 0
        if replicas_of(d) == 0:
            fraction = -replicas_of(rs)
        else:
            try:
                annotated = int(_annotations(rs).get(MAX_REPLICAS, ""))
            except ValueError:
                annotated = int(_status(d).get("replicas") or 0)
            target = replicas_of(d) + max_surge(d)
            fraction = round(replicas_of(rs) * target / annotated) - replicas_of(rs) \
                if annotated else 0
        allowed = to_add - added
        return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)

    def _cleanup(self, d: Obj, old_rss: list[Obj]) -> None:
        """cleanupDeployment: delete the oldest revisions past revisionHistoryLimit, only
        those with no pods left (and whose status caught up)."""
        limit = _spec(d).get("revisionHistoryLimit")
        if limit is None:
            return
        alive = [rs for rs in old_rss if not is_terminating(rs)]
        excess = len(alive) - int(limit)
        if excess <= 0:
            return
        for rs in sorted(alive, key=lambda r: (revision_of(r), _by_creation(r)))[:excess]:
            if int(_status(rs).get("replicas") or 0) != 0 or replicas_of(rs) != 0 or \
                    int(rs["metadata"].get("generation") or 0) > int(
                        _status(rs).get("observedGeneration") or 0):
                continue
            log.info("deleting old replica set", deployment=d["metadata"]["name"],
                     rs=rs["metadata"]["name"])
            with contextlib.suppress(NotFound):
                self.registry.delete(REPLICA_SETS, rs["metadata"].get("namespace", ""),
                                     rs["metadata"]["name"])

    # ---- status ----------------------------------------------------------------------

    def _condition(self, kind: str, status: str, reason: str, message: str) -> Obj:
        now = rfc3339(self.clock.now())
        return {"type": kind, "status": status, "lastUpdateTime": now,
                "lastTransitionTime": now, "reason": reason, "message": message}

    def _check_paused_conditions(self, d: Obj) -> None:
        if not _has_deadline(d):
            return
        status = copy.deepcopy(_status(d))
        cond = condition_of(status, "Progressing")
        if cond is not None and cond.get("reason") == "ProgressDeadlineExceeded":
            return
        paused_now = cond is not None and cond.get("reason") == "DeploymentPaused"
        if _spec(d).get("paused") and not paused_now:
            _set_condition(status, self._condition("Progressing", "Unknown",
                                                   "DeploymentPaused", "Deployment is paused"))
        elif not _spec(d).get("paused") and paused_now:
            _set_condition(status, self._condition("Progressing", "Unknown",
                                                   "DeploymentResumed",
                                                   "Deployment is resumed"))
        else:
            return
        self._write_status(d, status)

    def _calculate_status(self, d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj | None
                          ) -> Obj:
        available = _sum(all_rss, "availableReplicas")
        unavailable = max(_sum(all_rss, "spec") - available, 0)
        old = _status(d)
        status: Obj = {"observedGeneration": int(d["metadata"].get("generation") or 0)}
        # omitempty, as kube-apiserver serialises them
        for field, value in (("replicas", _sum(all_rss, "replicas")),
                             ("updatedReplicas", _sum([new_rs], "replicas")),
                             ("readyReplicas", _sum(all_rss, "readyReplicas")),
                             ("availableReplicas", available),
                             ("unavailableReplicas", unavailable),
                             ("collisionCount", int(old.get("collisionCount") or 0))):
            if value:
                status[field] = value
        if old.get("conditions"):
            status["conditions"] = copy.deepcopy(old["conditions"])
        if available >= replicas_of(d) - max_unavailable(d):
            _set_condition(status, self._condition("Available", "True",
                                                   "MinimumReplicasAvailable",
                                                   "Deployment has minimum availability."))
        else:
            _set_condition(status, self._condition("Available", "False",
                                                   "MinimumReplicasUnavailable",
                                                   "Deployment does not have minimum "
                                                   "availability."))
        return status

    def _sync_status(self, d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj | None) -> None:
        self._write_status(d, self._calculate_status(d, all_rss, new_rs))

    def _sync_rollout_status(self, d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj | None
                             ) -> Result:
        """syncRolloutStatus: the Progressing condition, and when to look again."""
        status = self._calculate_status(d, all_rss, new_rs)
        if not _has_deadline(d):
            _remove_condition(status, "Progressing")
        current = condition_of(status, "Progressing")
        complete = status.get("replicas") == status.get("updatedReplicas") and \
            current is not None and current.get("reason") == "NewReplicaSetAvailable"
        name = new_rs["metadata"]["name"] if new_rs is not None else ""
        if _has_deadline(d) and not complete:
            if deployment_complete(d, status):
                _set_condition(status, self._condition(
                    "Progressing", "True", "NewReplicaSetAvailable",
                    f'ReplicaSet "{name}" has successfully progressed.'))
            elif _progressing(_status(d), status):
                cond = self._condition("Progressing", "True", "ReplicaSetUpdated",
                                       f'ReplicaSet "{name}" is progressing.')
                if current is not None and current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                _remove_condition(status, "Progressing")
                _set_condition(status, cond)
            elif self._timed_out(d, status):
                _set_condition(status, self._condition(
                    "Progressing", "False", "ProgressDeadlineExceeded",
                    f'ReplicaSet "{name}" has timed out progressing.'))
        failure = next((condition_of(_status(rs), "ReplicaFailure") for rs in all_rss
                        if rs is not None and condition_of(_status(rs), "ReplicaFailure")),
                       None)
        if failure is not None:
            _set_condition(status, {"type": "ReplicaFailure", "status": failure["status"],
                                    "lastUpdateTime": failure.get("lastTransitionTime"),
                                    "lastTransitionTime": failure.get("lastTransitionTime"),
                                    "reason": failure.get("reason", ""),
                                    "message": failure.get("message", "")})
        else:
            _remove_condition(status, "ReplicaFailure")
        self._write_status(d, status)
        return Result(requeue_after=self._stuck_requeue(d, status))

    def _timed_out(self, d: Obj, status: Obj) -> bool:
        cond = condition_of(status, "Progressing")
        if not _has_deadline(d) or cond is None:
            return False
        if cond.get("reason") == "NewReplicaSetAvailable":
            return False
        if cond.get("reason") == "ProgressDeadlineExceeded":
            return True
        since = cond.get("lastUpdateTime")
        if not since:
            return False
        waited = (self.clock.now() - parse_rfc3339(since)).total_seconds()
        return waited > int(_spec(d).get("progressDeadlineSeconds") or 0)

    def _stuck_requeue(self, d: Obj, status: Obj) -> float | None:
        """requeueStuckDeployment: look again when the progress deadline would pass."""
        cond = condition_of(status, "Progressing")
        if not _has_deadline(d) or cond is None or deployment_complete(d, status) or \
                cond.get("reason") in ("NewReplicaSetAvailable", "ProgressDeadlineExceeded") \
                or not cond.get("lastUpdateTime"):
            return None
        waited = (self.clock.now() - parse_rfc3339(cond["lastUpdateTime"])).total_seconds()
        left = int(_spec(d).get("progressDeadlineSeconds") or 0) - waited
        return max(left + 0.01, 0.01)


def _negated(key: tuple[str, str]) -> tuple[tuple[int, ...], ...]:
    """A sort key ordering `key` newest first (strings cannot be negated directly)."""
    return tuple(tuple(-ord(c) for c in part) for part in key)


def deployment_controller(registry: Registry, *, clock: Clock | None = None,
                          workers: int = 5, informers: SharedInformerFactory | None = None
                          ) -> Controller[ObjectKey]:
    """The controller actor: `await tg.start(deployment_controller(reg).run)`."""
    reconciler = DeploymentReconciler(registry, clock=clock)
    return Controller(name=COMPONENT, registry=registry, reconciler=reconciler,
                      sources=reconciler.sources(), workers=workers, informers=informers)
