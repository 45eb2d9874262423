"""Claiming pods for an apps/v1 workload (kube-controller-manager's
`PodControllerRefManager`), shared by the DaemonSet and StatefulSet controllers.

    reconcile ─► claim_pods(owner, selector, pods)
                   ├─ owned + matching          → kept
                   ├─ owned + no longer matching → released (ownerReference removed)
                   └─ orphan + matching          → adopted (atomic: the first owner wins)

Invariants: a terminating owner adopts nothing; a terminating pod is never adopted;
adoption and release are single atomic `mutate`s, so two controllers never both own
a pod.
"""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from miniorch.api.errors import NotFound
from miniorch.api.kinds import PODS
from miniorch.api.registry import Registry
from miniorch.api.resource import Resource
from miniorch.api.selectors import LabelSelector
from miniorch.core.objects import Obj, controller_ref, is_terminating, uid_of
from miniorch.machinery.controller import ObjectKey
from miniorch.machinery.informer import InformerEvent

log = structlog.get_logger(__name__)


def claim_pods(registry: Registry, owner: Obj, owner_ref: Obj, selector: LabelSelector,
               pods: Iterable[Obj]) -> list[Obj]:
    uid = uid_of(owner)
    ns = owner["metadata"].get("namespace", "")
    owned: list[Obj] = []
    for pod in pods:
        name = pod["metadata"]["name"]
        ref = controller_ref(pod)
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if selector.matches_object(pod):
                owned.append(pod)
                continue

            def release(obj: Obj) -> None:
                kept = [r for r in obj["metadata"].get("ownerReferences") or []
                        if r.get("uid") != uid]
                if kept:
                    obj["metadata"]["ownerReferences"] = kept
                else:
                    obj["metadata"].pop("ownerReferences", None)
            try:
                registry.mutate(PODS, ns, name, release)
                log.info("released pod", owner=owner["metadata"]["name"], pod=name)
            except NotFound:
                pass
            continue
        if is_terminating(owner) or is_terminating(pod) or not selector.matches_object(pod):
            continue

        def adopt(obj: Obj) -> None:
            if controller_ref(obj) is None:
                obj["metadata"].setdefault("ownerReferences", []).append(dict(owner_ref))
        try:
            adopted = registry.mutate(PODS, ns, name, adopt)
        except NotFound:
            continue
        if (controller_ref(adopted) or {}).get("uid") == uid:
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
