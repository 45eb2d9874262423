"""StatefulSet (apps/v1): N pods with stable names `<set>-0 … <set>-(N-1)`.

    create/update ─► _default (replicas 1, podManagementPolicy OrderedReady,
                               updateStrategy RollingUpdate partition 0,
                               revisionHistoryLimit 10, PVC retention Retain/Retain)
                  ─► _validate (selector required, matches the template, immutable;
                                only replicas/template/updateStrategy/minReadySeconds/
                                ordinals change; no volumeClaimTemplates)
    sts/scale ─► autoscaling/v1 Scale over spec.replicas
    Table ─► stateful_set_cells (NAME READY AGE, wide: CONTAINERS IMAGES)
The controller that acts on it is `controllers/statefulset.py`.

miniorch has no persistent volumes: a StatefulSet with `volumeClaimTemplates` is
refused (422) rather than accepted and run without its storage.
"""

from __future__ import annotations

from datetime import datetime

from miniorch.api.errors import Cause
from miniorch.api.kinds.apps import (
    APPS,
    default_template,
    immutable_selector,
    non_negative,
    selector_string,
    validate_selector,
    validate_template,
)
from miniorch.api.kinds.base import Kind, ScaleSubresource
from miniorch.api.resource import Resource
from miniorch.api.tables import (
    AGE_COLUMN,
    NAME_COLUMN,
    Row,
    column,
    containers_and_images,
    since,
)
from miniorch.api.validation import forbidden, invalid, is_dns1123_label
from miniorch.core.objects import Obj, as_dict, as_list, ensure_dict

STATEFUL_SETS = Resource(
    group="apps", version="v1", plural="statefulsets", singular="statefulset",
    kind="StatefulSet", namespaced=True, short_names=("sts",), categories=("all",))

DEFINITIONS: dict[str, dict[str, str]] = {
    APPS + "StatefulSet": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "StatefulSetSpec", "status": "StatefulSetStatus",
    },
    APPS + "StatefulSetSpec": {
        "replicas": "int32", "selector": "LabelSelector!", "template": "PodTemplateSpec!",
        "volumeClaimTemplates": "[]any", "serviceName": "string",
        "podManagementPolicy": "string", "updateStrategy": "StatefulSetUpdateStrategy",
        "revisionHistoryLimit": "int32", "minReadySeconds": "int32",
        "persistentVolumeClaimRetentionPolicy":
            "StatefulSetPersistentVolumeClaimRetentionPolicy",
        "ordinals": "StatefulSetOrdinals",
    },
    APPS + "StatefulSetUpdateStrategy": {
        "type": "string", "rollingUpdate": "RollingUpdateStatefulSetStrategy",
    },
    APPS + "RollingUpdateStatefulSetStrategy": {
        "partition": "int32", "maxUnavailable": "int-or-string",
    },
    APPS + "StatefulSetPersistentVolumeClaimRetentionPolicy": {
        "whenDeleted": "string", "whenScaled": "string",
    },
    APPS + "StatefulSetOrdinals": {"start": "int32"},
    APPS + "StatefulSetStatus": {
        "observedGeneration": "int64", "replicas": "int32!", "readyReplicas": "int32",
        "currentReplicas": "int32", "updatedReplicas": "int32", "currentRevision": "string",
        "updateRevision": "string", "collisionCount": "int32",
        "conditions": "[]StatefulSetCondition@type", "availableReplicas": "int32!",
    },
    APPS + "StatefulSetCondition": {
        "type": "string!", "status": "string!", "lastTransitionTime": "time",
        "reason": "string", "message": "string",
    },
}

POLICIES = ("OrderedReady", "Parallel")
UPDATABLE = ("replicas", "ordinals", "template", "updateStrategy",
             "persistentVolumeClaimRetentionPolicy", "minReadySeconds")
"""The spec fields an update may change (ValidateStatefulSetUpdate)."""


def _default(obj: Obj) -> None:
    spec = ensure_dict(obj, "spec")
    if spec is None:
        return
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = ensure_dict(spec, "updateStrategy")
    if strategy is not None:
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = ensure_dict(strategy, "rollingUpdate")
            if rolling is not None:
                rolling.setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    retention = ensure_dict(spec, "persistentVolumeClaimRetentionPolicy")
    if retention is not None:
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")
    default_template(spec)
    status = ensure_dict(obj, "status")
    if status is not None:
        status.setdefault("replicas", 0)
        status.setdefault("availableReplicas", 0)


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes: list[Cause] = []
    policy = spec.get("podManagementPolicy")
    if policy not in POLICIES:
        causes.append(invalid("spec.podManagementPolicy", policy,
                              "must be 'OrderedReady' or 'Parallel'"))
    strategy = as_dict(spec.get("updateStrategy"))
    kind = strategy.get("type")
    if kind not in ("RollingUpdate", "OnDelete"):
        causes.append(invalid("spec.updateStrategy", kind,
                              "must be 'RollingUpdate' or 'OnDelete'"))
    elif kind == "OnDelete" and strategy.get("rollingUpdate") is not None:
        causes.append(invalid("spec.updateStrategy.rollingUpdate", strategy["rollingUpdate"],
                              "only allowed for updateStrategy 'RollingUpdate'"))
    else:
        partition = as_dict(strategy.get("rollingUpdate")).get("partition")
        if isinstance(partition, int) and partition < 0:
            causes.append(invalid("spec.updateStrategy.rollingUpdate.partition", partition,
                                  "must be greater than or equal to 0"))
    service = spec.get("serviceName")
    if isinstance(service, str) and service:
        causes.extend(invalid("spec.serviceName", service, m)
                      for m in is_dns1123_label(service))
    for field in ("replicas", "minReadySeconds", "revisionHistoryLimit"):
        causes.extend(non_negative(spec, field))
    ordinals = as_dict(spec.get("ordinals"))
    start = ordinals.get("start")
    if isinstance(start, int) and start < 0:
        causes.append(invalid("spec.ordinals.start", start,
                              "must be greater than or equal to 0"))
    if as_list(spec.get("volumeClaimTemplates")):
        causes.append(forbidden("spec.volumeClaimTemplates",
                                "persistent volumes are not supported yet (miniorch serves no "
                                "PersistentVolumeClaims); remove volumeClaimTemplates"))
    causes.extend(validate_selector(spec.get("selector"), "spec.selector", "statefulset"))
    causes.extend(validate_template(spec, spec.get("selector"), "StatefulSet"))
    if old is not None:
        old_spec = as_dict(old.get("spec"))
        fixed = {k: v for k, v in spec.items() if k not in UPDATABLE}
        old_fixed = {k: v for k, v in old_spec.items() if k not in UPDATABLE}
        if fixed != old_fixed:
            causes.append(forbidden(
                "spec", "updates to statefulset spec for fields other than 'replicas', "
                "'ordinals', 'template', 'updateStrategy', "
                "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
        else:
            causes.extend(immutable_selector(obj, old))
    return causes


def stateful_set_cells(sts: Obj, now: datetime) -> Row:
    meta = as_dict(sts.get("metadata"))
    spec = as_dict(sts.get("spec"))
    status = as_dict(sts.get("status"))
    replicas = spec.get("replicas")
    names, images = containers_and_images(as_dict(as_dict(spec.get("template")).get("spec"))
                                           .get("containers"))
    ready = f"{int(status.get('readyReplicas') or 0)}/{int(1 if replicas is None else replicas)}"
    return [str(meta.get("name", "")), ready, since(meta.get("creationTimestamp"), now),
            names, images], []


COLUMNS = (
    NAME_COLUMN,
    column("Ready", "Number of the pod with ready state"),
    AGE_COLUMN,
    column("Containers", "Names of each container in the template.", priority=1),
    column("Images", "Images referenced by each container in the template.", priority=1),
)

STATEFUL_SET = Kind(
    resource=STATEFUL_SETS, definitions=DEFINITIONS, default=_default, validate=_validate,
    columns=COLUMNS, cells=stateful_set_cells, status_subresource=True,
    scale=ScaleSubresource(selector=selector_string),
)
