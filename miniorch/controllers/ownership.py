"""Owner references and claiming (kube-controller-manager's `ControllerRefManager`),
shared by every workload controller: RC, ReplicaSet, Deployment (claiming ReplicaSets),
DaemonSet and StatefulSet.

    reconcile ─► claim(owner, selector, objects)
                   ├─ owned + matching          → kept
                   ├─ owned + no longer matching → released (ownerReference removed)
                   └─ orphan + matching          → adopted (atomic: the first owner wins)

Invariants: a terminating owner adopts nothing; a terminating pod is never adopted;
adoption and release are single atomic `mutate`s, so two controllers never both own
a pod.
"""

from __future__ import annotations

import structlog

from miniorch.api.errors import ApiError, NotFound
from miniorch.api.kinds import PODS
from miniorch.api.registry import Registry
from miniorch.api.resource import Resource
from miniorch.api.selectors import LabelSelector
from miniorch.core.objects import Obj, controller_ref, is_terminating, uid_of
from miniorch.machinery.controller import ObjectKey
from miniorch.machinery.informer import InformerEvent

log = structlog.get_logger(__name__)


def owner_reference(owner: Obj, resource: Resource) -> Obj:
    """The controllerRef put on what `owner` (an object of `resource`) creates."""
    return {"apiVersion": resource.api_version, "kind": resource.kind,
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def claim(registry: Registry, owner: Obj, owner_resource: Resource, selector: LabelSelector,
          resource: Resource, objects: list[Obj]) -> list[Obj]:
    """ControllerRefManager.Claim: the `objects` (of `resource`) `owner` controls, after
    adopting orphans its selector matches and releasing owned ones it no longer does.
    Each adoption and release is one atomic `mutate`, so two owners never both win."""
    uid = uid_of(owner)
    ns = owner["metadata"].get("namespace", "")
    owned: list[Obj] = []
    for obj in objects:
        name = obj["metadata"]["name"]
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if selector.matches_object(obj):
                owned.append(obj)
                continue

            def release(o: Obj) -> None:
                refs = o["metadata"].get("ownerReferences") or []
                kept = [r for r in refs if r.get("uid") != uid]
                if kept:
                    o["metadata"]["ownerReferences"] = kept
                else:
                    o["metadata"].pop("ownerReferences", None)
            try:
                registry.mutate(resource, ns, name, release)
                log.info("released", owner=owner["metadata"]["name"], kind=resource.kind,
                         name=name)
            except NotFound:
                pass
            continue
        if is_terminating(owner) or is_terminating(obj) or not selector.matches_object(obj):
            continue

        def adopt(o: Obj) -> None:
            if controller_ref(o) is not None:
                return  # someone else won: leave it (atomic, so no race)
            o["metadata"].setdefault("ownerReferences", []).append(
                owner_reference(owner, owner_resource))
        try:
            adopted = registry.mutate(resource, ns, name, adopt)
        except NotFound:
            continue
        mine = controller_ref(adopted)
        if mine is not None and mine.get("uid") == uid:
            log.info("adopted", owner=owner["metadata"]["name"], kind=resource.kind, name=name)
            owned.append(adopted)
    return owned




def owner_keys(registry: Registry, event: InformerEvent, kind: str,
               resource: Resource) -> set[ObjectKey]:
    """The workloads of `kind` a pod event concerns: its controller (old and new), or,
    for an orphan, every workload of the namespace whose selector matches it."""
    pod = event.object
    ns = pod["metadata"].get("namespace", "")
    keys: set[ObjectKey] = set()
    refs = [controller_ref(pod)] + ([controller_ref(event.old)] if event.old else [])
    for ref in refs:
        if ref is not None and ref.get("kind") == kind:
            keys.add(ObjectKey(ns, str(ref.get("name", ""))))
    if controller_ref(pod) is not None or event.type == "DELETED" or is_terminating(pod):
        return keys
    workloads, _ = registry.list(resource, ns, shared=True)
    for workload in workloads:
        sel = (workload.get("spec") or {}).get("selector") or {}
        selector = LabelSelector.from_label_selector(sel)
        if not selector.empty and selector.matches_object(pod):
            keys.add(ObjectKey.of(workload))
    return keys


def create_pod_for(registry: Registry, owner: Obj, pod: Obj, *, component: str) -> Obj:
    """Create a pod for a workload, with kube-controller-manager's events on the owner
    (`SuccessfulCreate: Created pod: x`, or `FailedCreate: Error creating: ...` and the
    error raised again)."""
    try:
        created = registry.create(PODS, pod)
    except ApiError as exc:
        registry.record_event(owner, type="Warning", reason="FailedCreate",
                              message=f"Error creating: {exc.message}", component=component)
        raise
    registry.record_event(owner, type="Normal", reason="SuccessfulCreate",
                          message=f"Created pod: {created['metadata']['name']}",
                          component=component)
    return created
