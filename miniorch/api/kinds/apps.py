"""What the apps/v1 workload kinds (DaemonSet, StatefulSet) share: the label-selector
rules and the pod-template rules, worded as `pkg/apis/apps/validation` words them.

    kinds/daemonset.py, statefulset.py ─► default_template(spec)
                                       ─► validate_selector(...) + validate_template(...)
                                       ─► selector_text(obj)  (Tables, Scale)

Unlike a ReplicationController, an apps/v1 workload's selector is a meta/v1
`LabelSelector` object, is required (never defaulted from the template's labels) and
is immutable once created.
"""

from __future__ import annotations

from typing import Any

from miniorch.api.defaults import pod_spec
from miniorch.api.errors import Cause
from miniorch.api.selectors import LabelSelector
from miniorch.api.validation import (
    forbidden,
    invalid,
    is_qualified_name,
    not_supported,
    required,
    validate_annotations,
    validate_labels,
    validate_pod_spec,
)
from miniorch.core.objects import Obj, as_dict, as_list

APPS = "io.k8s.api.apps.v1."
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def default_template(spec: Obj) -> None:
    """Pod-spec defaults inside `spec.template` (SetDefaults_PodSpec)."""
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        pod_spec(template["spec"])


def validate_selector(selector: Any, path: str, kind_word: str) -> list[Cause]:
    """ValidateLabelSelector plus apps' "empty selector is invalid for <kind>"."""
    if selector is None:
        return [required(path)]
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
    if not sel.get("matchLabels") and not sel.get("matchExpressions"):
        causes.append(invalid(path, sel, f"empty selector is invalid for {kind_word}"))
    return causes


def validate_template(spec: Obj, selector: Any, kind: str) -> list[Cause]:
    """ValidatePodTemplateSpecForX: present, labelled to match the selector, a valid pod
    spec that restarts `Always` and has no activeDeadlineSeconds."""
    template = spec.get("template")
    if not isinstance(template, dict):
        return [required("spec.template")]
    causes: list[Cause] = []
    t_meta = as_dict(template.get("metadata"))
    t_labels = as_dict(t_meta.get("labels"))
    sel = LabelSelector.from_label_selector(as_dict(selector))
    if selector and not sel.empty and not sel.matches(t_labels):
        causes.append(invalid("spec.template.metadata.labels", t_labels,
                              "`selector` does not match template `labels`"))
    causes.extend(validate_labels(t_labels, "spec.template.labels"))
    causes.extend(validate_annotations(t_meta.get("annotations"), "spec.template.annotations"))
    t_spec = as_dict(template.get("spec"))
    causes.extend(validate_pod_spec(t_spec, "spec.template.spec"))
    restart = t_spec.get("restartPolicy")
    if restart and restart != "Always":
        causes.append(not_supported("spec.template.spec.restartPolicy", restart, ("Always",)))
    if t_spec.get("activeDeadlineSeconds") is not None:
        causes.append(forbidden("spec.template.spec.activeDeadlineSeconds",
                                f"activeDeadlineSeconds in {kind} is not Supported"))
    return causes


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


def selector_text(obj: Obj) -> str:
    """`spec.selector` as `Selector.String()` prints it (the Scale's status.selector)."""
    return str(LabelSelector.from_label_selector(as_dict(as_dict(obj.get("spec"))
                                                         .get("selector"))))


def format_label_selector(obj: Obj) -> str:
    """metav1.FormatLabelSelector: `<none>` for an empty selector."""
    return selector_text(obj) or "<none>"
