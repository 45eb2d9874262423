"""ReplicaSet (apps/v1): keep N copies of a pod template running, by a LabelSelector.

    create/update ─► _default (replicas 1, pod-template defaults; apps/v1 does NOT
                     derive the selector from the template, unlike core/v1 RCs)
                  ─► _validate (selector required, valid, non-empty and matching the
                     template's labels; immutable on update; template for a workload)
    rs/scale ─► autoscaling/v1 Scale over spec.replicas (selector printed `k=v,k in (…)`)
    Table ─► replica_set_cells (printReplicaSet)

The selector and template checks here are shared with Deployments (`deployment.py`),
as Kubernetes' apps validation shares them. The controller is
`controllers/replicaset.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from miniorch.api.defaults import pod_spec
from miniorch.api.errors import Cause
from miniorch.api.kinds.base import Kind, ScaleSubresource
from miniorch.api.resource import Resource
from miniorch.api.selectors import LabelSelector
from miniorch.api.tables import (
    AGE_COLUMN,
    NAME_COLUMN,
    Row,
    column,
    containers_and_images,
    since,
)
from miniorch.api.validation import (
    invalid,
    is_qualified_name,
    not_supported,
    required,
    validate_annotations,
    validate_labels,
    validate_pod_spec,
)
from miniorch.core.objects import Obj, as_dict, as_list, ensure_dict

APPS = "io.k8s.api.apps.v1."

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

def selector_of(obj: Obj) -> LabelSelector:
    """The object's `spec.selector` (a metav1.LabelSelector) parsed."""
    return LabelSelector.from_label_selector(as_dict(as_dict(obj.get("spec")).get("selector")))


def selector_string(obj: Obj) -> str:
    """The Scale's `status.selector` and the SELECTOR column: `app=web,tier in (a,b)`."""
    return str(selector_of(obj))


def default_template(spec: Obj) -> None:
    template = spec.get("template")
    if isinstance(template, dict):
        t_spec = template.get("spec")
        if isinstance(t_spec, dict):
            pod_spec(t_spec)


def validate_label_selector(selector: Obj, path: str) -> list[Cause]:
    """ValidateLabelSelector: matchLabels as labels, each expression's operator/values."""
    causes = validate_labels(selector.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(as_list(selector.get("matchExpressions"))):
        expr = as_dict(expr)
        where = f"{path}.matchExpressions[{i}]"
        op, values = expr.get("operator"), as_list(expr.get("values"))
        if op in ("In", "NotIn"):
            if not values:
                causes.append(required(f"{where}.values",
                                       "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                causes.append(invalid(f"{where}.values", values, "may not be specified when "
                                      "`operator` is 'Exists' or 'DoesNotExist'"))
        else:
            causes.append(not_supported(f"{where}.operator", op,
                                        ("In", "NotIn", "Exists", "DoesNotExist")))
        causes.extend(invalid(f"{where}.key", expr.get("key"), m)
                      for m in is_qualified_name(str(expr.get("key") or "")))
    return causes


def validate_workload_spec(obj: Obj, old: Obj | None, *, kind: str) -> list[Cause]:
    """What ReplicaSets and Deployments share: replicas, minReadySeconds, the selector
    (required, non-empty, matching the template, immutable) and the pod template."""
    causes: list[Cause] = []
    spec = as_dict(obj.get("spec"))
    for name in ("replicas", "minReadySeconds"):
        value = spec.get(name)
        if isinstance(value, int) and value < 0:
            causes.append(invalid(f"spec.{name}", value, "must be greater than or equal to 0"))
    raw_selector = spec.get("selector")
    selector = LabelSelector()
    if not isinstance(raw_selector, dict):
        causes.append(required("spec.selector"))
    else:
        selector_causes = validate_label_selector(raw_selector, "spec.selector")
        causes.extend(selector_causes)
        # An invalid selector cannot be converted (LabelSelectorAsSelector fails), so
        # Kubernetes does not compare it with the template's labels either.
        selector = LabelSelector() if selector_causes else LabelSelector.from_label_selector(
            raw_selector)
        if selector.empty and not selector_causes:
            causes.append(invalid("spec.selector", raw_selector,
                                  f"empty selector is invalid for {kind}"))
    if old is not None:
        old_selector = as_dict(old.get("spec")).get("selector")
        if raw_selector != old_selector:
            # apps/v1 made the selector immutable: changing it would orphan every pod.
            causes.append(invalid("spec.selector", raw_selector, "field is immutable"))
    template = spec.get("template")
    if not isinstance(template, dict):
        causes.append(required("spec.template"))
        return causes
    t_meta = as_dict(template.get("metadata"))
    t_labels = as_dict(t_meta.get("labels"))
    if not selector.empty and not selector.matches(t_labels):
        causes.append(invalid("spec.template.metadata.labels", t_labels,
                              "`selector` does not match template `labels`"))
    # ValidatePodTemplateSpec names the template's labels `spec.template.labels`.
    causes.extend(validate_labels(t_labels, "spec.template.labels"))
    causes.extend(validate_annotations(t_meta.get("annotations"), "spec.template.annotations"))
    t_spec = as_dict(template.get("spec"))
    causes.extend(validate_pod_spec(t_spec, "spec.template.spec"))
    restart = t_spec.get("restartPolicy")
    if restart and restart != "Always":
        causes.append(not_supported("spec.template.spec.restartPolicy", restart, ("Always",)))
    if t_spec.get("activeDeadlineSeconds") is not None:
        causes.append(invalid("spec.template.spec.activeDeadlineSeconds",
                              t_spec["activeDeadlineSeconds"],
                              "activeDeadlineSeconds in ReplicaSet is not Supported"))
    return causes


def workload_columns(*cells: Obj) -> tuple[Obj, ...]:
    return (
        NAME_COLUMN, *cells, AGE_COLUMN,
        column("Containers", "Names of each container in the template.", priority=1),
        column("Images", "Images referenced by each container in the template.", priority=1),
        column("Selector", _SELECTOR_DESCRIPTION, priority=1),
    )


def template_cells(obj: Obj) -> tuple[str, str, str]:
    """CONTAINERS, IMAGES, SELECTOR of a workload."""
    spec = as_dict(obj.get("spec"))
    names, images = containers_and_images(
        as_dict(as_dict(spec.get("template")).get("spec")).get("containers"))
    return names, images, selector_string(obj)


_SELECTOR_DESCRIPTION = (
    "Selector is a label query over pods that should match the replica count. Label keys "
    "and values that must match in order to be controlled by this replica set. It must match "
    "the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/"
    "working-with-objects/labels/#label-selectors")


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
