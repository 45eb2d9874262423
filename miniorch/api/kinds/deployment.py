"""Deployment (apps/v1): declarative rollouts of a pod template through ReplicaSets.

    create/update ─► _default (SetDefaults_Deployment: replicas 1, RollingUpdate 25%/25%,
                     revisionHistoryLimit 10, progressDeadlineSeconds 600, template)
                  ─► _validate (the workload checks shared with ReplicaSets, plus the
                     strategy, revisionHistoryLimit and progressDeadlineSeconds rules)
    deployments/scale ─► autoscaling/v1 Scale over spec.replicas
    Table ─► deployment_cells (printDeployment: READY is `ready/desired`)

The controller that rolls it out is `controllers/deployment.py`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from miniorch.api.errors import Cause
from miniorch.api.kinds.apps import (
    APPS,
    default_template,
    selector_string,
    template_cells,
    validate_workload_spec,
    workload_columns,
)
from miniorch.api.kinds.base import Kind, ScaleSubresource
from miniorch.api.resource import Resource
from miniorch.api.tables import Row, column, since
from miniorch.api.validation import forbidden, invalid, not_supported
from miniorch.core.objects import Obj, as_dict, ensure_dict

DEPLOYMENTS = Resource(
    group="apps", version="v1", plural="deployments", singular="deployment",
    kind="Deployment", namespaced=True, short_names=("deploy",), categories=("all",))


DEFINITIONS: dict[str, dict[str, str]] = {
    APPS + "Deployment": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "DeploymentSpec", "status": "DeploymentStatus",
    },
    APPS + "DeploymentSpec": {
        "replicas": "int32", "selector": "LabelSelector", "template": "PodTemplateSpec",
        "strategy": "DeploymentStrategy", "minReadySeconds": "int32",
        "revisionHistoryLimit": "int32", "paused": "boolean",
        "progressDeadlineSeconds": "int32",
    },
    APPS + "DeploymentStrategy": {
        "type": "string", "rollingUpdate": "RollingUpdateDeployment",
    },
    APPS + "RollingUpdateDeployment": {
        "maxUnavailable": "int-or-string", "maxSurge": "int-or-string",
    },
    APPS + "DeploymentStatus": {
        "observedGeneration": "int64", "replicas": "int32", "updatedReplicas": "int32",
        "readyReplicas": "int32", "availableReplicas": "int32",
        "unavailableReplicas": "int32", "terminatingReplicas": "int32",
        "conditions": "[]DeploymentCondition@type", "collisionCount": "int32",
    },
    APPS + "DeploymentCondition": {
        "type": "string!", "status": "string!", "lastUpdateTime": "time",
        "lastTransitionTime": "time", "reason": "string", "message": "string",
    },
}

_PERCENT = re.compile(r"^[0-9]+%$")


def _default(obj: Obj) -> None:
    spec = ensure_dict(obj, "spec")
    if spec is None:
        return
    if spec.get("replicas") is None:  # JSON null is unset
        spec["replicas"] = 1
    strategy = ensure_dict(spec, "strategy")
    if strategy is not None:
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = ensure_dict(strategy, "rollingUpdate")
            if rolling is not None:
                rolling.setdefault("maxUnavailable", "25%")
                rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    default_template(spec)


def _int_or_percent(value: Any, path: str) -> list[Cause]:
    """ValidatePositiveIntOrPercent + IsNotMoreThan100Percent's parse."""
    if isinstance(value, str):
        if not _PERCENT.match(value):
            return [invalid(path, value, "a valid percent string must be a numeric string "
                            "followed by an ending '%' (e.g. '1%',  or '93%', regex used for "
                            "validation is '[0-9]+%')")]
    elif isinstance(value, int) and value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def _is_zero(value: Any) -> bool:
    return value in (0, "0%")


def _percent_over_100(value: Any) -> bool:
    return isinstance(value, str) and bool(_PERCENT.match(value)) and int(value[:-1]) > 100


def _validate_strategy(strategy: Obj) -> list[Cause]:
    causes: list[Cause] = []
    kind = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            causes.append(forbidden("spec.strategy.rollingUpdate",
                                    "may not be specified when strategy `type` is 'Recreate'"))
    elif kind == "RollingUpdate":
        rolling = as_dict(rolling)
        surge = rolling.get("maxSurge")
        unavailable = rolling.get("maxUnavailable")
        where = "spec.strategy.rollingUpdate"
        causes.extend(_int_or_percent(unavailable, f"{where}.maxUnavailable"))
        causes.extend(_int_or_percent(surge, f"{where}.maxSurge"))
        if _is_zero(surge) and _is_zero(unavailable):
            # Both zero: the rollout could never make a step.
            causes.append(invalid(f"{where}.maxUnavailable", unavailable,
                                  "may not be 0 when `maxSurge` is 0"))
        if _percent_over_100(unavailable):
            causes.append(invalid(f"{where}.maxUnavailable", unavailable,
                                  "must not be greater than 100%"))
    elif kind is not None:
        causes.append(not_supported("spec.strategy.type", kind, ("Recreate", "RollingUpdate")))
    return causes


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes = validate_workload_spec(obj, old, kind="deployment")
    causes.extend(_validate_strategy(as_dict(spec.get("strategy"))))
    for name in ("revisionHistoryLimit", "progressDeadlineSeconds"):
        value = spec.get(name)
        if isinstance(value, int) and value < 0:
            causes.append(invalid(f"spec.{name}", value, "must be greater than or equal to 0"))
    deadline, min_ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds")
    if isinstance(deadline, int) and isinstance(min_ready, int) and deadline <= min_ready:
        causes.append(invalid("spec.progressDeadlineSeconds", deadline,
                              "must be greater than minReadySeconds"))
    return causes


def deployment_cells(d: Obj, now: datetime) -> Row:
    meta = as_dict(d.get("metadata"))
    spec = as_dict(d.get("spec"))
    status = as_dict(d.get("status"))
    desired = spec.get("replicas")
    return [
        str(meta.get("name", "")),
        f"{int(status.get('readyReplicas') or 0)}/{int(1 if desired is None else desired)}",
        int(status.get("updatedReplicas") or 0), int(status.get("availableReplicas") or 0),
        since(meta.get("creationTimestamp"), now), *template_cells(d),
    ], []


COLUMNS = workload_columns(
    column("Ready", "Number of the pod with ready state"),
    column("Up-to-date", "Total number of non-terminated pods targeted by this deployment "
           "that have the desired template spec."),
    column("Available", "Total number of available pods (ready for at least minReadySeconds) "
           "targeted by this deployment."),
)


DEPLOYMENT = Kind(
    resource=DEPLOYMENTS, definitions=DEFINITIONS, default=_default, validate=_validate,
    columns=COLUMNS, cells=deployment_cells, status_subresource=True,
    scale=ScaleSubresource(selector=selector_string),
)
