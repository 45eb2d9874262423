"""DaemonSet (apps/v1): one copy of a pod template on every node that fits it.

    create/update ─► _default (updateStrategy RollingUpdate maxUnavailable 1, maxSurge 0,
                               revisionHistoryLimit 10, the template's pod-spec defaults)
                  ─► _validate (selector required, matches the template, immutable; …)
    Table ─► daemon_set_cells (NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE
                               NODE SELECTOR AGE, wide: CONTAINERS IMAGES SELECTOR)
The controller that acts on it is `controllers/daemonset.py`.
"""

from __future__ import annotations

import re
from datetime import datetime

from miniorch.api.errors import Cause
from miniorch.api.kinds.apps import (
    APPS,
    default_template,
    format_label_selector,
    immutable_selector,
    non_negative,
    validate_selector,
    validate_template,
)
from miniorch.api.kinds.base import Kind
from miniorch.api.resource import Resource
from miniorch.api.tables import (
    AGE_COLUMN,
    NAME_COLUMN,
    Row,
    column,
    containers_and_images,
    format_labels,
    since,
)
from miniorch.api.validation import invalid, not_supported
from miniorch.core.objects import Obj, as_dict, ensure_dict

DAEMON_SETS = Resource(
    group="apps", version="v1", plural="daemonsets", singular="daemonset", kind="DaemonSet",
    namespaced=True, short_names=("ds",), categories=("all",))

DEFINITIONS: dict[str, dict[str, str]] = {
    APPS + "DaemonSet": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "DaemonSetSpec", "status": "DaemonSetStatus",
    },
    APPS + "DaemonSetSpec": {
        "selector": "LabelSelector!", "template": "PodTemplateSpec!",
        "updateStrategy": "DaemonSetUpdateStrategy", "minReadySeconds": "int32",
        "revisionHistoryLimit": "int32",
    },
    APPS + "DaemonSetUpdateStrategy": {"type": "string", "rollingUpdate": "RollingUpdateDaemonSet"},
    APPS + "RollingUpdateDaemonSet": {
        "maxUnavailable": "int-or-string", "maxSurge": "int-or-string",
    },
    APPS + "DaemonSetStatus": {
        "currentNumberScheduled": "int32!", "numberMisscheduled": "int32!",
        "desiredNumberScheduled": "int32!", "numberReady": "int32!",
        "observedGeneration": "int64", "updatedNumberScheduled": "int32",
        "numberAvailable": "int32", "numberUnavailable": "int32", "collisionCount": "int32",
        "conditions": "[]DaemonSetCondition@type",
    },
    APPS + "DaemonSetCondition": {
        "type": "string!", "status": "string!", "lastTransitionTime": "time",
        "reason": "string", "message": "string",
    },
}

_STATUS_COUNTS = ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled",
                  "numberReady")


def _default(obj: Obj) -> None:
    spec = ensure_dict(obj, "spec")
    if spec is None:
        return
    strategy = ensure_dict(spec, "updateStrategy")
    if strategy is not None:
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = ensure_dict(strategy, "rollingUpdate")
            if rolling is not None:
                rolling.setdefault("maxUnavailable", 1)
                rolling.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    default_template(spec)
    status = ensure_dict(obj, "status")
    if status is not None:
        # Not omitempty in Go: clients require these four.
        for field in _STATUS_COUNTS:
            status.setdefault(field, 0)


_PERCENT = re.compile(r"^(\d+)%$")


def _int_or_percent(value: object, path: str) -> tuple[list[Cause], int | None]:
    """(causes, the value if it is a plain int; percentages count as unknown)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            return [invalid(path, value, "must be greater than or equal to 0")], value
        return [], value
    if isinstance(value, str):
        match = _PERCENT.match(value)
        if not match:
            return [invalid(path, value, "a valid percent string must be a numeric string "
                                         "followed by an ending '%' (e.g. '1%',  or '93%', "
                                         "regex used for validation is '[0-9]+%')")], None
        if int(match.group(1)) > 100:
            return [invalid(path, value, "must not be greater than 100%")], None
        return [], 0 if int(match.group(1)) == 0 else None
    return [], None


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes = validate_selector(spec.get("selector"), "spec.selector", "daemonset")
    causes.extend(validate_template(spec, spec.get("selector"), "DaemonSet"))
    causes.extend(non_negative(spec, "minReadySeconds"))
    causes.extend(non_negative(spec, "revisionHistoryLimit"))
    strategy = as_dict(spec.get("updateStrategy"))
    kind = strategy.get("type")
    if kind not in ("RollingUpdate", "OnDelete"):
        causes.append(not_supported("spec.updateStrategy", kind, ("OnDelete", "RollingUpdate")))
    elif kind == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        if rolling is None:
            causes.append(invalid("spec.updateStrategy.rollingUpdate", None,
                                  "rollingUpdate is required when type is RollingUpdate"))
        else:
            path = "spec.updateStrategy.rollingUpdate"
            bad_u, unavailable = _int_or_percent(as_dict(rolling).get("maxUnavailable"),
                                                 f"{path}.maxUnavailable")
            bad_s, surge = _int_or_percent(as_dict(rolling).get("maxSurge", 0),
                                           f"{path}.maxSurge")
            causes.extend(bad_u + bad_s)
            if not bad_u and not bad_s and unavailable == 0 and surge == 0:
                causes.append(invalid(f"{path}.maxUnavailable", 0,
                                      "may not be 0 when `maxSurge` is 0"))
    causes.extend(immutable_selector(obj, old))
    return causes


def daemon_set_cells(ds: Obj, now: datetime) -> Row:
    meta = as_dict(ds.get("metadata"))
    spec = as_dict(ds.get("spec"))
    status = as_dict(ds.get("status"))
    t_spec = as_dict(as_dict(spec.get("template")).get("spec"))
    names, images = containers_and_images(t_spec.get("containers"))
    return [
        str(meta.get("name", "")), int(status.get("desiredNumberScheduled") or 0),
        int(status.get("currentNumberScheduled") or 0), int(status.get("numberReady") or 0),
        int(status.get("updatedNumberScheduled") or 0),
        int(status.get("numberAvailable") or 0), format_labels(t_spec.get("nodeSelector")),
        since(meta.get("creationTimestamp"), now), names, images, format_label_selector(ds),
    ], []


COLUMNS = (
    NAME_COLUMN,
    column("Desired", "The total number of nodes that should be running the daemon pod "
           "(including nodes correctly running the daemon pod). More info: "
           "https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
           type="integer"),
    column("Current", "The number of nodes that are running at least 1 daemon pod and are "
           "supposed to run the daemon pod. More info: "
           "https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
           type="integer"),
    column("Ready", "numberReady is the number of nodes that should be running the daemon "
           "pod and have one or more of the daemon pod running with a Ready Condition.",
           type="integer"),
    column("Up-to-date", "The total number of nodes that are running updated daemon pod",
           type="integer"),
    column("Available", "The number of nodes that should be running the daemon pod and have "
           "one or more of the daemon pod running and available (ready for at least "
           "spec.minReadySeconds)", type="integer"),
    column("Node Selector", "NodeSelector is a selector which must be true for the pod to fit "
           "on a node. Selector which must match a node's labels for the pod to be scheduled "
           "on that node. More info: "
           "https://kubernetes.io/docs/concepts/configuration/assign-pod-node/"),
    AGE_COLUMN,
    column("Containers", "Names of each container in the template.", priority=1),
    column("Images", "Images referenced by each container in the template.", priority=1),
    column("Selector", "A label query over pods that are managed by the daemon set. Must "
           "match in order to be controlled. It must match the pod template's labels. More "
           "info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/"
           "#label-selectors", priority=1),
)

DAEMON_SET = Kind(
    resource=DAEMON_SETS, definitions=DEFINITIONS, default=_default, validate=_validate,
    columns=COLUMNS, cells=daemon_set_cells, status_subresource=True,
)
