"""ReplicationController (core/v1): keep N copies of a pod template running.

    create/update ─► _default (selector and labels from the template, replicas 1)
                  ─► _validate (selector matches the template's labels, …)
    rc/scale ─► autoscaling/v1 Scale over spec.replicas (selector printed `k=v,…`)
    Table ─► replication_controller_cells
The controller that acts on it is `controllers/replication.py`.
"""

from __future__ import annotations

from datetime import datetime

from miniorch.api.defaults import pod_spec
from miniorch.api.errors import Cause
from miniorch.api.kinds.base import Kind, ScaleSubresource
from miniorch.api.resource import Resource
from miniorch.api.schema import CORE
from miniorch.api.selectors import LabelSelector
from miniorch.api.tables import (
    AGE_COLUMN,
    NAME_COLUMN,
    Row,
    column,
    containers_and_images,
    format_labels,
    since,
)
from miniorch.api.validation import (
    invalid,
    required,
    validate_pod_template,
)
from miniorch.core.objects import Obj, as_dict, ensure_dict

REPLICATION_CONTROLLERS = Resource(
    group="", version="v1", plural="replicationcontrollers", singular="replicationcontroller",
    kind="ReplicationController", namespaced=True, short_names=("rc",), categories=("all",))


DEFINITIONS: dict[str, dict[str, str]] = {
    CORE + "ReplicationController": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "ReplicationControllerSpec", "status": "ReplicationControllerStatus",
    },
    CORE + "ReplicationControllerSpec": {
        "replicas": "int32", "minReadySeconds": "int32", "selector": "{}string",
        "template": "PodTemplateSpec",
    },
    CORE + "ReplicationControllerStatus": {
        "replicas": "int32!", "fullyLabeledReplicas": "int32", "readyReplicas": "int32",
        "availableReplicas": "int32", "observedGeneration": "int64",
        "conditions": "[]ReplicationControllerCondition@type",
    },
    CORE + "ReplicationControllerCondition": {
        "type": "string!", "status": "string!", "lastTransitionTime": "time",
        "reason": "string", "message": "string",
    },
}


def _default(obj: Obj) -> None:
    spec = ensure_dict(obj, "spec")
    if spec is None:
        return
    template = spec.get("template")
    if isinstance(template, dict):
        t_meta = template.get("metadata")
        t_labels = t_meta.get("labels") if isinstance(t_meta, dict) else None
        if isinstance(t_labels, dict) and t_labels:
            if not spec.get("selector"):
                spec["selector"] = dict(t_labels)
            meta = obj["metadata"]
            if not meta.get("labels"):
                meta["labels"] = dict(t_labels)
        t_spec = template.get("spec")
        if isinstance(t_spec, dict):
            pod_spec(t_spec)
    spec.setdefault("replicas", 1)
    status = ensure_dict(obj, "status")
    if status is not None:
        # `replicas` is not omitempty in Go: clients (the Python client) require it.
        status.setdefault("replicas", 0)


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    spec = as_dict(obj.get("spec"))
    min_ready = spec.get("minReadySeconds")
    if isinstance(min_ready, int) and min_ready < 0:
        causes.append(invalid("spec.minReadySeconds", min_ready,
                              "must be greater than or equal to 0"))
    selector = as_dict(spec.get("selector"))
    if not selector:
        causes.append(required("spec.selector"))
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        causes.append(invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
    matched = LabelSelector.from_label_selector({"matchLabels": selector}) if selector else None
    causes.extend(validate_pod_template(spec, matched, "ReplicationController"))
    return causes


def replication_controller_cells(rc: Obj, now: datetime) -> Row:
    meta = as_dict(rc.get("metadata"))
    spec = as_dict(rc.get("spec"))
    status = as_dict(rc.get("status"))
    replicas = spec.get("replicas")
    names, images = containers_and_images(as_dict(as_dict(spec.get("template")).get("spec"))
                                           .get("containers"))
    return [
        str(meta.get("name", "")), int(1 if replicas is None else replicas),
        int(status.get("replicas") or 0), int(status.get("readyReplicas") or 0),
        since(meta.get("creationTimestamp"), now), names, images,
        format_labels(spec.get("selector")),
    ], []


COLUMNS = (
    NAME_COLUMN,
    column("Desired", "Replicas is the number of desired replicas.", type="integer"),
    column("Current", "Replicas is the most recently observed number of replicas.",
         type="integer"),
    column("Ready", "The number of ready replicas for this replication controller.",
         type="integer"),
    AGE_COLUMN,
    column("Containers", "Names of each container in the template.", priority=1),
    column("Images", "Images referenced by each container in the template.", priority=1),
    column("Selector", "Selector is a label query over pods that should match the Replicas "
                     "count.", priority=1),
)


def _selector_string(rc: Obj) -> str:
    selector = as_dict(as_dict(rc.get("spec")).get("selector"))
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


REPLICATION_CONTROLLER = Kind(
    resource=REPLICATION_CONTROLLERS, definitions=DEFINITIONS, default=_default,
    validate=_validate, columns=COLUMNS, cells=replication_controller_cells,
    status_subresource=True, scale=ScaleSubresource(selector=_selector_string),
)
