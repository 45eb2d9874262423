"""Small, pure readings of Pod JSON shared by the controllers and the scheduler.

Everything here reads defensively: defaulting may not have filled a field, and a
missing field means what Kubernetes' zero value means.
"""

from __future__ import annotations

from typing import Any

from miniorch.core.objects import Obj, is_terminating

TERMINAL_PHASES = ("Succeeded", "Failed")


def phase_of(pod: Obj) -> str:
    return str(pod.get("status", {}).get("phase") or "Pending")


def condition(obj: Obj, kind: str) -> Obj | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def is_ready(pod: Obj) -> bool:
    cond = condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def is_active(pod: Obj) -> bool:
    """Counts toward a controller's replicas: not finished, not on its way out."""
    return phase_of(pod) not in TERMINAL_PHASES and not is_terminating(pod)


def restart_count(pod: Obj) -> int:
    return sum(int(cs.get("restartCount") or 0)
               for cs in pod.get("status", {}).get("containerStatuses") or [])


def set_condition(status: Obj, cond: Obj) -> bool:
    """Insert or replace the condition of `cond["type"]` in `status["conditions"]`.
    Keeps `lastTransitionTime` when the status did not change. True if anything did."""
    conditions: list[Any] = status.setdefault("conditions", [])
    for i, existing in enumerate(conditions):
        if existing.get("type") != cond["type"]:
            continue
        if existing.get("status") == cond.get("status") and "lastTransitionTime" in existing:
            cond = {**cond, "lastTransitionTime": existing["lastTransitionTime"]}
        if existing == cond:
            return False
        conditions[i] = cond
        return True
    conditions.append(cond)
    return True
