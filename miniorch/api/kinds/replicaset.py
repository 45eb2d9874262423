"""ReplicaSet (apps/v1): keep N copies of a pod template running, by a LabelSelector.

    create/update ─► _default (replicas 1, pod-template defaults; apps/v1 does NOT
                     derive the selector from the template, unlike core/v1 RCs)
                  ─► _validate (selector required, valid, non-empty and matching the
                     template's labels; immutable on update; template for a workload)
    rs/scale ─► autoscaling/v1 Scale over spec.replicas (selector printed `k=v,k in (…)`)
    Table ─► replica_set_cells (printReplicaSet)

The selector and template checks are apps/v1's (`apps.py`), shared with Deployments,
DaemonSets and StatefulSets. The controller is `controllers/replicaset.py`.
"""

from __future__ import annotations

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
from miniorch.api.tables import (
    Row,
    column,
    since,
)
from miniorch.core.objects import Obj, as_dict, ensure_dict

REPLICA_SETS = Resource(
    group="apps", version="v1", plural="replicasets", singular="replicaset",
    kind="ReplicaSet", namespaced=True, short_names=("rs",), categories=("all",))


DEFINITIONS: dict[str, dict[str, str]] = {
    APPS + "ReplicaSet": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "ReplicaSetSpec", "status": "ReplicaSetStatus",
    },
    APPS + "ReplicaSetSpec": {
        "replicas": "int32", "minReadySeconds": "int32", "selector": "LabelSelector",
        "template": "PodTemplateSpec",
    },
    APPS + "ReplicaSetStatus": {
        "replicas": "int32!", "fullyLabeledReplicas": "int32", "readyReplicas": "int32",
        "availableReplicas": "int32", "terminatingReplicas": "int32",
        "observedGeneration": "int64", "conditions": "[]ReplicaSetCondition@type",
    },
    APPS + "ReplicaSetCondition": {
        "type": "string!", "status": "string!", "lastTransitionTime": "time",
        "reason": "string", "message": "string",
    },
}


# ---- shared with Deployments ------------------------------------------------------------

















# ---- ReplicaSet ---------------------------------------------------------------------------

def _default(obj: Obj) -> None:
    spec = ensure_dict(obj, "spec")
    if spec is None:
        return
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    default_template(spec)
    status = ensure_dict(obj, "status")
    if status is not None:
        # `replicas` is not omitempty in Go: clients require it.
        status.setdefault("replicas", 0)


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    return validate_workload_spec(obj, old, kind="replicaset")


def _int(value: Any, default: int = 0) -> int:
    return int(default if value is None else value)


def replica_set_cells(rs: Obj, now: datetime) -> Row:
    meta = as_dict(rs.get("metadata"))
    spec = as_dict(rs.get("spec"))
    status = as_dict(rs.get("status"))
    return [
        str(meta.get("name", "")), _int(spec.get("replicas"), 1), _int(status.get("replicas")),
        _int(status.get("readyReplicas")), since(meta.get("creationTimestamp"), now),
        *template_cells(rs),
    ], []


COLUMNS = workload_columns(
    column("Desired", "Replicas is the number of desired replicas. This is a pointer to "
           "distinguish between explicit zero and unspecified. Defaults to 1. More info: "
           "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/"
           "#what-is-a-replicationcontroller", type="integer"),
    column("Current", "Replicas is the most recently observed number of replicas. More info: "
           "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/"
           "#what-is-a-replicationcontroller", type="integer"),
    column("Ready", "readyReplicas is the number of pods targeted by this ReplicaSet with a "
           "Ready Condition.", type="integer"),
)


REPLICA_SET = Kind(
    resource=REPLICA_SETS, definitions=DEFINITIONS, default=_default, validate=_validate,
    columns=COLUMNS, cells=replica_set_cells, status_subresource=True,
    scale=ScaleSubresource(selector=selector_string),
)
