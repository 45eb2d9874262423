"""The DaemonSet controller: one daemon pod on every node that should run one.

Data flow:

    DaemonSet events ─────────────► its key
    node events ──────────────────► every DaemonSet's key (a node came, went, changed)
    pod events ──► its controller's key (or, for an orphan, every matching DaemonSet)
                         │
                         ▼
    reconcile(key): the DaemonSet, its revisions, the nodes, the pods of its namespace
        1. claim pods (adopt matching orphans, release owned pods that stopped matching)
        2. revision: the template's ControllerRevision (`controller-revision-hash`)
        3. per node: should it run a daemon pod (node selector / affinity, taints, with
           the tolerations the controller adds), may an existing one stay (NoExecute)?
           create the missing pod, delete extras, failed pods and pods that must go
        4. RollingUpdate: delete pods of an old revision, unavailable ones first, then
           available ones while fewer than `maxUnavailable` nodes lack an available pod
        5. status (desired/current/ready/available/updated/misscheduled counts)

Pods are not bound here: like Kubernetes since 1.12, each pod carries the required
node affinity `metadata.name In [<node>]` and the default scheduler binds it.

Invariants:
- Reads come from the registry itself (not a cache) and a key is never reconciled by
  two workers at once, so a pod created by one reconcile is seen by the next: no
  node ever gets a second daemon pod from a burst of events.
- A node with a terminating daemon pod gets no new one until the old one is gone.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterable
from typing import Any

import structlog

from miniorch.api.errors import NotFound
from miniorch.api.kinds import DAEMON_SETS, NODES, PODS
from miniorch.api.registry import Registry
from miniorch.api.selectors import LabelSelector
from miniorch.controllers.history import (
    REVISION_LABEL,
    ensure_revision,
    revisions_of,
    truncate,
)
from miniorch.controllers.ownership import claim, create_pod_for, owner_keys, owner_reference
from miniorch.controllers.pods import condition, is_ready, phase_of
from miniorch.controllers.scheduler import matches_node_selection, tolerates
from miniorch.core.clock import Clock, SystemClock, parse_rfc3339
from miniorch.core.objects import Obj, controller_ref, is_terminating, name_of
from miniorch.machinery.controller import Controller, ObjectKey, Result, Source
from miniorch.machinery.informer import InformerEvent, SharedInformerFactory

log = structlog.get_logger(__name__)

COMPONENT = "daemonset-controller"
GENERATION_LABEL = "pod-template-generation"

DAEMON_TOLERATIONS: tuple[Obj, ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists",
     "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
"""What the DaemonSet controller adds to every daemon pod (`AddOrUpdateDaemonPodTolerations`):
a daemon keeps running on a node that is not ready or unreachable, and is placed on a
cordoned one."""
NETWORK_UNAVAILABLE: Obj = {"key": "node.kubernetes.io/network-unavailable",
                            "operator": "Exists", "effect": "NoSchedule"}


def daemon_tolerations(spec: Obj) -> list[Obj]:
    """The template's tolerations plus the controller's, without duplicates."""
    tolerations: list[Obj] = [dict(t) for t in spec.get("tolerations") or []]
    extra = list(DAEMON_TOLERATIONS) + ([NETWORK_UNAVAILABLE] if spec.get("hostNetwork")
                                        else [])
    for tol in extra:
        if not any(t.get("key") == tol["key"] and t.get("effect") == tol["effect"]
                   for t in tolerations):
            tolerations.append(dict(tol))
    return tolerations


def node_affinity_for(spec: Obj, node: str) -> Obj:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: the template's affinity with its required
    node terms replaced by `metadata.name In [node]` (the controller already checked the
    node satisfies them)."""
    affinity: Obj = copy.deepcopy(spec.get("affinity") or {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}
    return affinity


def target_node(pod: Obj) -> str | None:
    """The node a daemon pod is for: where it is bound, else its affinity's node."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            values = field.get("values") or []
            if field.get("key") == "metadata.name" and field.get("operator") == "In" \
                    and len(values) == 1:
                return str(values[0])
    return None


def _node_ready(node: Obj) -> bool:
    cond = condition(node, "Ready")
    return cond is not None and cond.get("status") == "True"


def should_run(node: Obj, template_spec: Obj) -> tuple[bool, bool]:
    """(should run a daemon pod here, may an existing one keep running here):
    `NodeShouldRunDaemonPod`. A node that is not Ready counts as tainted
    `not-ready:NoSchedule` (as the node lifecycle controller taints it in Kubernetes),
    so a new daemon pod waits for it, while a running one stays."""
    if not matches_node_selection({"spec": template_spec}, node):
        return False, False
    tolerations = daemon_tolerations(template_spec)
    taints: list[Obj] = list((node.get("spec") or {}).get("taints") or [])
    if not _node_ready(node) and not any(
            t.get("key") in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
            for t in taints):
        taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
    run = stay = True
    for taint in taints:
        if tolerates(tolerations, taint):
            continue
        if taint.get("effect") == "NoExecute":
            run = stay = False
        elif taint.get("effect") == "NoSchedule":
            run = False
    return run, stay


def _created(pod: Obj) -> float:
    stamp = pod["metadata"].get("creationTimestamp")
    return parse_rfc3339(stamp).timestamp() if stamp else 0.0


def scaled_max_unavailable(value: Any, desired: int) -> int:
    """`intstr.GetScaledValueFromIntOrPercent(value, desired, roundUp=true)`; 1 for a
    value validation would have refused."""
    if isinstance(value, str) and value.endswith("%"):
        try:
            return math.ceil(int(value[:-1]) * desired / 100)
        except ValueError:
            return 1
    if isinstance(value, int):
        return value
    return 1


class DaemonSetReconciler:
    def __init__(self, registry: Registry, *, clock: Clock | None = None) -> None:
        self.registry = registry
        self.clock = clock or SystemClock()

    def sources(self) -> list[Source[ObjectKey]]:
        return [Source(DAEMON_SETS, self.map_ds), Source(NODES, self.map_node),
                Source(PODS, self.map_pod)]

    def map_ds(self, event: InformerEvent) -> Iterable[ObjectKey]:
        return [ObjectKey.of(event.object)]

    def map_node(self, event: InformerEvent) -> Iterable[ObjectKey]:
        old, new = event.old, event.object
        if event.type == "MODIFIED" and old is not None and \
                old.get("spec") == new.get("spec") and \
                (old.get("metadata") or {}).get("labels") == \
                (new.get("metadata") or {}).get("labels") and \
                _node_ready(old) == _node_ready(new):
            return []  # a heartbeat: nothing a daemon set decides on changed
        items, _ = self.registry.list(DAEMON_SETS, shared=True)
        return [ObjectKey.of(ds) for ds in items]

    def map_pod(self, event: InformerEvent) -> Iterable[ObjectKey]:
        return owner_keys(self.registry, event, "DaemonSet", DAEMON_SETS)

    # ---- reconcile ---------------------------------------------------------------

    async def reconcile(self, key: ObjectKey) -> Result:
        ds = self.registry.try_get(DAEMON_SETS, key.namespace, key.name)
        if ds is None or is_terminating(ds):
            return Result()
        spec = ds.get("spec") or {}
        selector = LabelSelector.from_label_selector(spec.get("selector"))
        if selector.empty:
            log.warning("daemon set without a selector", ds=str(key))
            return Result()
        pods, _ = self.registry.list(PODS, key.namespace, shared=True)
        owned = claim(self.registry, ds, DAEMON_SETS, selector, PODS, pods)
        revisions = revisions_of(self.registry, ds)
        template = spec.get("template") or {}
        revision = ensure_revision(self.registry, ds, DAEMON_SETS, template, revisions)
        current_hash = revision["metadata"]["name"].rsplit("-", 1)[1]
        nodes, _ = self.registry.list(NODES, shared=True)
        changed = self._manage(ds, current_hash, nodes, owned)
        if changed:
            pods, _ = self.registry.list(PODS, key.namespace, shared=True)
            owned = [p for p in pods
                     if (controller_ref(p) or {}).get("uid") == ds["metadata"]["uid"]]
        in_use = {revision["metadata"]["name"]} | {
            f"{key.name}-{p['metadata'].get('labels', {}).get(REVISION_LABEL)}" for p in owned}
        truncate(self.registry, revisions_of(self.registry, ds), in_use,
                 int(spec.get("revisionHistoryLimit", 10)))
        requeue = self._update_status(ds, current_hash, nodes, owned)
        return Result(requeue_after=requeue)

    def _by_node(self, owned: list[Obj]) -> dict[str, list[Obj]]:
        by_node: dict[str, list[Obj]] = {}
        for pod in owned:
            node = target_node(pod)
            if node:
                by_node.setdefault(node, []).append(pod)
        return by_node

    def _available(self, pod: Obj, min_ready: float) -> bool:
        if not is_ready(pod) or is_terminating(pod):
            return False
        if min_ready <= 0:
            return True
        since = (condition(pod, "Ready") or {}).get("lastTransitionTime")
        if not since:
            return True
        return (self.clock.now() - parse_rfc3339(since)).total_seconds() >= min_ready

    def _manage(self, ds: Obj, current_hash: str, nodes: list[Obj],
                owned: list[Obj]) -> bool:
        spec = ds.get("spec") or {}
        t_spec = (spec.get("template") or {}).get("spec") or {}
        min_ready = float(spec.get("minReadySeconds") or 0)
        by_node = self._by_node(owned)
        node_names = {name_of(n) for n in nodes}
        to_create: list[str] = []
        to_delete: list[Obj] = []
        old_pods: list[Obj] = []
        unavailable = 0
        for node in nodes:
            name = name_of(node)
            run, stay = should_run(node, t_spec)
            here = by_node.get(name, [])
            failed = [p for p in here if phase_of(p) == "Failed" and not is_terminating(p)]
            to_delete.extend(failed)
            live = [p for p in here if p not in failed]
            active = [p for p in live if not is_terminating(p)]
            if run:
                if not live:
                    to_create.append(name)
                elif len(active) > 1:
                    active.sort(key=_created)
                    to_delete.extend(active[1:])
                    active = active[:1]
                if not any(self._available(p, min_ready) for p in active):
                    unavailable += 1
                old_pods.extend(p for p in active if
                                (p["metadata"].get("labels") or {}).get(REVISION_LABEL)
                                != current_hash)
            elif not stay:
                to_delete.extend(active)
        # Pods for nodes that are gone (the pod GC's work in Kubernetes; done here).
        for name, here in by_node.items():
            if name not in node_names:
                to_delete.extend(p for p in here if not is_terminating(p))
        strategy = spec.get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") == "RollingUpdate" and old_pods:
            desired = sum(1 for n in nodes if should_run(n, t_spec)[0])
            budget = scaled_max_unavailable(
                (strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1), desired)
            old_pods.sort(key=lambda p: (self._available(p, min_ready), _created(p)))
            for pod in old_pods:
                if not self._available(pod, min_ready):
                    to_delete.append(pod)  # already down: replacing it costs nothing
                elif unavailable < budget:
                    to_delete.append(pod)
                    unavailable += 1
        for node_name in to_create:
            self._create_pod(ds, node_name, current_hash)
        seen: set[str] = set()
        for pod in to_delete:
            if name_of(pod) not in seen:
                seen.add(name_of(pod))
                self._delete_pod(ds, pod)
        return bool(to_create or to_delete)

    def _create_pod(self, ds: Obj, node: str, revision_hash: str) -> None:
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        t_meta = template.get("metadata") or {}
        pod_spec: Obj = copy.deepcopy(template.get("spec") or {})
        pod_spec["tolerations"] = daemon_tolerations(pod_spec)
        pod_spec["affinity"] = node_affinity_for(pod_spec, node)
        labels = {**(t_meta.get("labels") or {}), REVISION_LABEL: revision_hash,
                  GENERATION_LABEL: str(ds["metadata"].get("generation") or 1)}
        metadata: Obj = {"generateName": f"{ds['metadata']['name']}-",
                         "namespace": ds["metadata"].get("namespace", "default"),
                         "labels": labels, "ownerReferences": [owner_reference(ds, DAEMON_SETS)]}
        if t_meta.get("annotations"):
            metadata["annotations"] = dict(t_meta["annotations"])
        create_pod_for(self.registry, ds, {"apiVersion": "v1", "kind": "Pod",
                                           "metadata": metadata, "spec": pod_spec},
                       component=COMPONENT)

    def _delete_pod(self, ds: Obj, pod: Obj) -> None:
        try:
            self.registry.delete(PODS, pod["metadata"]["namespace"], name_of(pod))
        except NotFound:
            return
        self.registry.record_event(ds, type="Normal", reason="SuccessfulDelete",
                                   message=f"Deleted pod: {name_of(pod)}", component=COMPONENT)

    def _update_status(self, ds: Obj, current_hash: str, nodes: list[Obj],
                       owned: list[Obj]) -> float | None:
        spec = ds.get("spec") or {}
        t_spec = (spec.get("template") or {}).get("spec") or {}
        min_ready = float(spec.get("minReadySeconds") or 0)
        by_node = self._by_node([p for p in owned if not is_terminating(p)
                                 and phase_of(p) != "Failed"])
        desired = current = misscheduled = ready = available = updated = 0
        requeue: float | None = None
        for node in nodes:
            run, _ = should_run(node, t_spec)
            here = by_node.get(name_of(node), [])
            if not run:
                misscheduled += 1 if here else 0
                continue
            desired += 1
            if not here:
                continue
            current += 1
            if any(is_ready(p) for p in here):
                ready += 1
            if any(self._available(p, min_ready) for p in here):
                available += 1
            elif any(is_ready(p) for p in here):
                requeue = min_ready if requeue is None else min(requeue, min_ready)
            if any((p["metadata"].get("labels") or {}).get(REVISION_LABEL) == current_hash
                   for p in here):
                updated += 1
        status: Obj = {"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
                       "desiredNumberScheduled": desired, "numberReady": ready,
                       "observedGeneration": int(ds["metadata"].get("generation") or 0)}
        # omitempty, as kube-apiserver serialises them
        for field, value in (("updatedNumberScheduled", updated),
                             ("numberAvailable", available),
                             ("numberUnavailable", desired - available)):
            if value:
                status[field] = value
        old = ds.get("status") or {}
        if {k: v for k, v in old.items() if k != "conditions"} != status:
            if old.get("conditions"):
                status["conditions"] = old["conditions"]
            with contextlib.suppress(NotFound):
                self.registry.update_status(DAEMON_SETS, ds["metadata"].get("namespace", ""),
                                            ds["metadata"]["name"], status)
        return requeue


def daemonset_controller(registry: Registry, *, clock: Clock | None = None,
                         workers: int = 2,
                         informers: SharedInformerFactory | None = None
                         ) -> Controller[ObjectKey]:
    """The controller actor: `await tg.start(daemonset_controller(reg).run)`."""
    reconciler = DaemonSetReconciler(registry, clock=clock)
    return Controller(name=COMPONENT, registry=registry, reconciler=reconciler,
                      sources=reconciler.sources(), workers=workers,
                      informers=informers)

