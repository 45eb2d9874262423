"""What the apps/v1 workload kinds (Deployment, ReplicaSet, DaemonSet, StatefulSet)
share: the label-selector and pod-template rules, worded as `pkg/apis/apps/validation`
words them, and their printer columns.

    kinds/deployment.py, replicaset.py, daemonset.py, statefulset.py
        ─► default_template(spec)
        ─► validate_selector(...) + validate_template(...) + immutable_selector(...)
           (validate_workload_spec: all of them, for Deployment and ReplicaSet)
        ─► selector_of / selector_string (controllers, Tables, Scale)
        ─► workload_columns / template_cells (CONTAINERS, IMAGES, SELECTOR)

Unlike a ReplicationController, an apps/v1 workload's selector is a meta/v1
`LabelSelector` object, is required (never defaulted from the template's labels) and
is immutable once created.
"""

from __future__ import annotations

from typing import Any

from miniorch.api.defaults import pod_spec
from miniorch.api.errors import Cause
from miniorch.api.selectors import LabelSelector
from miniorch.api.tables import AGE_COLUMN, NAME_COLUMN, column, containers_and_images
from miniorch.api.validation import (
    forbidden,
    invalid,
    is_qualified_name,
    required,
    validate_labels,
    validate_pod_template,
)
from miniorch.core.objects import Obj, as_dict, as_list

APPS = "io.k8s.api.apps.v1."
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def default_template(spec: Obj) -> None:
    """Pod-spec defaults inside `spec.template` (SetDefaults_PodSpec)."""
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        pod_spec(template["spec"])


def validate_label_selector(selector: Obj, path: str) -> list[Cause]:
    """ValidateLabelSelector: matchLabels as labels, each expression's operator/values."""
    sel = as_dict(selector)
    causes: list[Cause] = []
    causes.extend(validate_labels(sel.get("matchLabels"), f"{path}.matchLabels"))
    for i, expr in enumerate(as_list(sel.get("matchExpressions"))):
        where = f"{path}.matchExpressions[{i}]"
        expr = as_dict(expr)
        op = expr.get("operator")
        values = as_list(expr.get("values"))
        if op in ("In", "NotIn") and not values:
            causes.append(required(f"{where}.values",
                                   "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist") and values:
            causes.append(forbidden(f"{where}.values",
                                    "may not be specified when `operator` is 'Exists' or "
                                    "'DoesNotExist'"))
        elif op not in SELECTOR_OPERATORS:
            causes.append(invalid(f"{where}.operator", op, "not a valid selector operator"))
        key = str(expr.get("key") or "")
        causes.extend(invalid(f"{where}.key", key, m) for m in is_qualified_name(key))
    return causes


def validate_selector(selector: Any, path: str, kind_word: str) -> list[Cause]:
    """ValidateLabelSelector plus apps' "empty selector is invalid for <kind>"."""
    if not isinstance(selector, dict):
        return [required(path)]
    causes = validate_label_selector(selector, path)
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        causes.append(invalid(path, selector, f"empty selector is invalid for {kind_word}"))
    return causes


def validate_template(spec: Obj, selector: Any, kind: str) -> list[Cause]:
    """ValidatePodTemplateSpecForX with an apps/v1 (meta/v1 LabelSelector) selector;
    `selector` None (or invalid, by the caller's choice) skips the label match."""
    parsed = LabelSelector.from_label_selector(as_dict(selector)) if selector else None
    return validate_pod_template(spec, parsed, kind)


def non_negative(spec: Obj, field: str) -> list[Cause]:
    value = spec.get(field)
    if isinstance(value, int) and value < 0:
        return [invalid(f"spec.{field}", value, "must be greater than or equal to 0")]
    return []


def immutable_selector(obj: Obj, old: Obj | None) -> list[Cause]:
    if old is None:
        return []
    new_sel = as_dict(obj.get("spec")).get("selector")
    old_sel = as_dict(old.get("spec")).get("selector")
    if new_sel != old_sel:
        return [invalid("spec.selector", new_sel, "field is immutable")]
    return []


def selector_of(obj: Obj) -> LabelSelector:
    """The object's `spec.selector` (a metav1.LabelSelector) parsed."""
    return LabelSelector.from_label_selector(as_dict(as_dict(obj.get("spec")).get("selector")))


def selector_string(obj: Obj) -> str:
    """`spec.selector` as `Selector.String()` prints it: the Scale's status.selector and
    the SELECTOR column (`app=web,tier in (a,b)`)."""
    return str(selector_of(obj))


def format_label_selector(obj: Obj) -> str:
    """metav1.FormatLabelSelector: `<none>` for an empty selector."""
    return selector_string(obj) or "<none>"


def validate_workload_spec(obj: Obj, old: Obj | None, *, kind: str) -> list[Cause]:
    """What ReplicaSets and Deployments share: replicas, minReadySeconds, the selector
    (required, non-empty, matching the template, immutable) and the pod template."""
    spec = as_dict(obj.get("spec"))
    causes = non_negative(spec, "replicas") + non_negative(spec, "minReadySeconds")
    selector = spec.get("selector")
    selector_causes = validate_selector(selector, "spec.selector", kind)
    causes.extend(selector_causes)
    causes.extend(immutable_selector(obj, old))
    # An invalid selector cannot be converted (LabelSelectorAsSelector fails), so
    # Kubernetes does not compare it with the template's labels either. Deployments are
    # validated with the ReplicaSet template rules, wording included.
    causes.extend(validate_template(spec, None if selector_causes else selector,
                                    "ReplicaSet"))
    return causes


_SELECTOR_DESCRIPTION = (
    "Selector is a label query over pods that should match the replica count. Label keys "
    "and values that must match in order to be controlled by this replica set. It must match "
    "the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/"
    "working-with-objects/labels/#label-selectors")


def workload_columns(*cells: Obj) -> tuple[Obj, ...]:
    """NAME, the kind's own cells, AGE, then the wide CONTAINERS IMAGES SELECTOR."""
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
