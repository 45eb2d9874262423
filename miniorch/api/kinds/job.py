"""Job (batch/v1): run a pod template to a number of successful completions.

    create ─► _default: completions/parallelism 1, backoffLimit 6, NonIndexed, suspend
              false, manualSelector false, podReplacementPolicy; unless manualSelector,
              the generated selector `batch.kubernetes.io/controller-uid=<uid>` and the
              four batch labels on the template (and, if the Job has none, its labels)
           ─► _validate: ValidateJob (restartPolicy Never/OnFailure, selector matches the
              template, the generated labels are the Job's own, Indexed needs completions)
    update ─► _validate also refuses changes to the selector, the template, the
              completion mode and (NonIndexed) completions: "field is immutable"
    Table  ─► job_cells: NAME STATUS COMPLETIONS DURATION AGE (+ CONTAINERS IMAGES SELECTOR)

The controller that runs it is `controllers/job.py`. `validate_job_spec` is shared
with CronJob's `jobTemplate` (which has no selector: it is generated per Job).

Invariant: the selector is generated from `metadata.uid`. Kubernetes fills the UID
before its strategy generates the selector (in Validate); our store fills it only when
it stores, so this kind's defaulter assigns the UID of a new Job itself. The registry
never lets a client choose it (it drops a sent uid before defaulting) and keeps the
stored one on every update, so the selector stays the Job's own.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from miniorch.api.defaults import pod_spec
from miniorch.api.errors import Cause
from miniorch.api.kinds.base import Kind
from miniorch.api.resource import Resource
from miniorch.api.tables import (
    AGE_COLUMN,
    NAME_COLUMN,
    Row,
    column,
    containers_and_images,
    human_duration,
    parse_time,
    since,
)
from miniorch.api.validation import (
    invalid,
    not_supported,
    required,
    validate_annotations,
    validate_labels,
    validate_pod_spec,
)
from miniorch.core.objects import Obj, as_dict, as_list, ensure_dict

JOBS = Resource(group="batch", version="v1", plural="jobs", singular="job", kind="Job",
                namespaced=True, categories=("all",))

BATCH = "io.k8s.api.batch.v1."

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
MAX_PARALLELISM_FOR_INDEXED = 100_000

DEFINITIONS: dict[str, dict[str, str]] = {
    BATCH + "Job": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "JobSpec", "status": "JobStatus",
    },
    BATCH + "JobSpec": {
        "parallelism": "int32", "completions": "int32", "activeDeadlineSeconds": "int64",
        "podFailurePolicy": "any", "successPolicy": "any", "backoffLimit": "int32",
        "backoffLimitPerIndex": "int32", "maxFailedIndexes": "int32",
        "selector": "LabelSelector", "manualSelector": "boolean",
        "template": "PodTemplateSpec!", "ttlSecondsAfterFinished": "int32",
        "completionMode": "string", "suspend": "boolean", "podReplacementPolicy": "string",
        "managedBy": "string",
    },
    BATCH + "JobStatus": {
        "conditions": "[]JobCondition@type", "startTime": "time", "completionTime": "time",
        "active": "int32", "succeeded": "int32", "failed": "int32", "terminating": "int32",
        "completedIndexes": "string", "failedIndexes": "string",
        "uncountedTerminatedPods": "UncountedTerminatedPods", "ready": "int32",
    },
    BATCH + "JobCondition": {
        "type": "string!", "status": "string!", "lastProbeTime": "time",
        "lastTransitionTime": "time", "reason": "string", "message": "string",
    },
    BATCH + "UncountedTerminatedPods": {"succeeded": "[]string@", "failed": "[]string@"},
}


# ---- defaults -----------------------------------------------------------------------------


def default_job_spec(spec: Obj) -> None:
    """SetDefaults_Job's spec half. (Only Jobs get it: a CronJob's job template has its
    pod spec defaulted, nothing else, as kube-apiserver does.)"""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    if spec.get("backoffLimit") is None:
        # With a per-index limit the global one is effectively off (MaxInt32).
        spec["backoffLimit"] = 2**31 - 1 if spec.get("backoffLimitPerIndex") is not None else 6
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", False)
    spec.setdefault("podReplacementPolicy",
                    "Failed" if spec.get("podFailurePolicy") is not None else "TerminatingOrFailed")


def _generate_selector(meta: Obj, spec: Obj, template: Obj) -> None:
    """generateSelector: the batch labels on the template (labels the user set are left
    for validation to judge), and `controller-uid` in the selector."""
    uid = str(meta.get("uid") or "")
    name = str(meta.get("name") or "")
    t_meta = ensure_dict(template, "metadata")
    if t_meta is None:
        return
    labels = ensure_dict(t_meta, "labels")
    if labels is None:
        return
    for key in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
        labels.setdefault(key, name)
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        labels.setdefault(key, uid)
    selector = ensure_dict(spec, "selector")
    if selector is None:
        return
    match = ensure_dict(selector, "matchLabels")
    if match is not None:
        match.setdefault(CONTROLLER_UID_LABEL, uid)


def _default(obj: Obj) -> None:
    spec = ensure_dict(obj, "spec")
    if spec is None:
        return
    default_job_spec(spec)
    meta = obj["metadata"]
    template = spec.get("template")
    if not isinstance(template, dict):
        return
    if spec.get("manualSelector") is not True and meta.get("name"):
        meta.setdefault("uid", str(uuid.uuid4()))  # see the module docstring
        _generate_selector(meta, spec, template)
    t_labels = as_dict(template.get("metadata")).get("labels")
    if isinstance(t_labels, dict) and t_labels and not meta.get("labels"):
        meta["labels"] = dict(t_labels)
    t_spec = template.get("spec")
    if isinstance(t_spec, dict):
        pod_spec(t_spec)


# ---- validation ---------------------------------------------------------------------------


def _non_negative(spec: Obj, field: str, path: str) -> list[Cause]:
    value = spec.get(field)
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return [invalid(f"{path}.{field}", value, "must be greater than or equal to 0")]
    return []


def _selector_matches(selector: Obj, labels: dict[str, Any]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a label set."""
    for key, value in as_dict(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for item in as_list(selector.get("matchExpressions")):
        req = as_dict(item)
        name, op = str(req.get("key", "")), req.get("operator")
        values = [str(v) for v in as_list(req.get("values"))]
        present = name in labels
        if op == "In" and not (present and str(labels[name]) in values):
            return False
        if op == "NotIn" and present and str(labels[name]) in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def format_label_selector(selector: Any) -> str:
    """metav1.FormatLabelSelector: `k=v,k2 in (a,b)`, `<none>` when empty."""
    selector = as_dict(selector)
    parts = [f"{k}={v}" for k, v in sorted(as_dict(selector.get("matchLabels")).items())]
    for item in as_list(selector.get("matchExpressions")):
        req = as_dict(item)
        name, op = str(req.get("key", "")), req.get("operator")
        values = ",".join(sorted(str(v) for v in as_list(req.get("values"))))
        if op == "In":
            parts.append(f"{name} in ({values})")
        elif op == "NotIn":
            parts.append(f"{name} notin ({values})")
        elif op == "Exists":
            parts.append(name)
        elif op == "DoesNotExist":
            parts.append(f"!{name}")
    if not parts:
        return "<none>"
    return ",".join(parts)


def validate_job_spec(spec: Obj, path: str, *, in_template: bool = False) -> list[Cause]:
    """validateJobSpec: the numbers, the completion mode and the pod template."""
    causes: list[Cause] = []
    for field in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                  "ttlSecondsAfterFinished", "backoffLimitPerIndex", "maxFailedIndexes"):
        causes.extend(_non_negative(spec, field, path))
    mode = spec.get("completionMode")
    if mode is not None and mode not in ("NonIndexed", "Indexed"):
        causes.append(not_supported(f"{path}.completionMode", mode, ("NonIndexed", "Indexed")))
    if mode == "Indexed":
        if spec.get("completions") is None:
            causes.append(required(f"{path}.completions", "when completion mode is Indexed"))
        parallelism = spec.get("parallelism")
        if isinstance(parallelism, int) and parallelism > MAX_PARALLELISM_FOR_INDEXED:
            causes.append(invalid(f"{path}.parallelism", parallelism,
                                  f"must be less than or equal to "
                                  f"{MAX_PARALLELISM_FOR_INDEXED} when completion mode is "
                                  "Indexed"))
    policy = spec.get("podReplacementPolicy")
    if policy is not None and policy not in ("TerminatingOrFailed", "Failed"):
        causes.append(not_supported(f"{path}.podReplacementPolicy", policy,
                                    ("Failed", "TerminatingOrFailed")))
    template = spec.get("template")
    if not isinstance(template, dict):
        causes.append(required(f"{path}.template"))
        return causes
    t_meta = as_dict(template.get("metadata"))
    t_labels = as_dict(t_meta.get("labels"))
    selector = spec.get("selector")
    if not in_template:
        if not isinstance(selector, dict):
            causes.append(required(f"{path}.selector"))
        elif not _selector_matches(selector, t_labels):
            causes.append(invalid(f"{path}.template.metadata.labels", t_labels,
                                  "`selector` does not match template `labels`"))
    else:
        # ValidateJobTemplateSpec: each Job made from the template gets its own selector.
        if selector is not None:
            causes.append(invalid(f"{path}.selector", selector,
                                  "`selector` will be auto-generated"))
        if spec.get("manualSelector") is True:
            causes.append(not_supported(f"{path}.manualSelector", True, ("nil", "false")))
    causes.extend(validate_labels(t_labels, f"{path}.template.labels"))
    causes.extend(validate_annotations(t_meta.get("annotations"), f"{path}.template.annotations"))
    t_spec = as_dict(template.get("spec"))
    causes.extend(validate_pod_spec(t_spec, f"{path}.template.spec"))
    restart = t_spec.get("restartPolicy")
    if restart not in ("OnFailure", "Never"):
        causes.append(not_supported(f"{path}.template.spec.restartPolicy", restart,
                                    ("OnFailure", "Never")))
    return causes


def _has_label(labels: dict[str, Any], key: str, expected: str, path: str) -> list[Cause]:
    """apivalidation.ValidateHasLabel."""
    if key not in labels:
        return [required(f"{path}.labels[{key}]", expected)]
    if labels[key] != expected:
        return [invalid(f"{path}.labels[{key}]", labels, f"must be '{expected}'")]
    return []


def _validate_generated_selector(obj: Obj) -> list[Cause]:
    """validateGeneratedSelector: a generated selector selects this Job's pods only."""
    meta = as_dict(obj.get("metadata"))
    spec = as_dict(obj.get("spec"))
    if spec.get("manualSelector") is True:
        return []
    template = as_dict(spec.get("template"))
    labels = as_dict(as_dict(template.get("metadata")).get("labels"))
    uid, name = str(meta.get("uid") or ""), str(meta.get("name") or "")
    causes: list[Cause] = []
    if not uid:
        causes.append(required("metadata.uid"))
    path = "spec.template.metadata"
    for key, value in ((LEGACY_CONTROLLER_UID_LABEL, uid), (LEGACY_JOB_NAME_LABEL, name),
                       (CONTROLLER_UID_LABEL, uid), (JOB_NAME_LABEL, name)):
        causes.extend(_has_label(labels, key, value, path))
    selector = spec.get("selector")
    if isinstance(selector, dict) and not _selector_matches(
            selector, {CONTROLLER_UID_LABEL: uid, JOB_NAME_LABEL: name,
                       LEGACY_CONTROLLER_UID_LABEL: uid, LEGACY_JOB_NAME_LABEL: name}):
        causes.append(invalid("spec.selector", selector, "`selector` not auto-generated"))
    return causes


def _immutable(new: Any, old: Any, path: str) -> list[Cause]:
    return [] if new == old else [invalid(path, new, "field is immutable")]


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes = _validate_generated_selector(obj)
    causes.extend(validate_job_spec(spec, "spec"))
    if old is None:
        return causes
    old_spec = as_dict(old.get("spec"))
    causes.extend(_immutable(spec.get("selector"), old_spec.get("selector"), "spec.selector"))
    causes.extend(_immutable(spec.get("template"), old_spec.get("template"), "spec.template"))
    causes.extend(_immutable(spec.get("completionMode"), old_spec.get("completionMode"),
                             "spec.completionMode"))
    causes.extend(_immutable(spec.get("podFailurePolicy"), old_spec.get("podFailurePolicy"),
                             "spec.podFailurePolicy"))
    causes.extend(_immutable(spec.get("backoffLimitPerIndex"),
                             old_spec.get("backoffLimitPerIndex"), "spec.backoffLimitPerIndex"))
    # Elastic Indexed Jobs may change completions together with parallelism (1.27+).
    elastic = (spec.get("completionMode") == "Indexed"
               and spec.get("completions") == spec.get("parallelism"))
    if not elastic:
        causes.extend(_immutable(spec.get("completions"), old_spec.get("completions"),
                                 "spec.completions"))
    return causes


# ---- printing -----------------------------------------------------------------------------


def has_condition(obj: Obj, kind: str) -> bool:
    """A condition of `kind` with status True (hasJobCondition)."""
    return any(as_dict(c).get("type") == kind and as_dict(c).get("status") == "True"
               for c in as_list(as_dict(obj.get("status")).get("conditions")))


def job_status_text(job: Obj) -> str:
    if has_condition(job, "Complete"):
        return "Complete"
    if has_condition(job, "Failed"):
        return "Failed"
    if as_dict(job.get("metadata")).get("deletionTimestamp"):
        return "Terminating"
    for kind in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if has_condition(job, kind):
            return kind
    return "Running"


def job_cells(job: Obj, now: datetime) -> Row:
    meta = as_dict(job.get("metadata"))
    spec = as_dict(job.get("spec"))
    status = as_dict(job.get("status"))
    succeeded = int(status.get("succeeded") or 0)
    completions = spec.get("completions")
    if completions is not None:
        done = f"{succeeded}/{completions}"
    else:
        parallelism = int(spec.get("parallelism") or 0)
        done = f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    duration = ""
    if start is not None:
        duration = human_duration(((end or now) - start).total_seconds())
    names, images = containers_and_images(
        as_dict(as_dict(spec.get("template")).get("spec")).get("containers"))
    return [str(meta.get("name", "")), job_status_text(job), done, duration,
            since(meta.get("creationTimestamp"), now), names, images,
            format_label_selector(spec.get("selector"))], []


SELECTOR_DESCRIPTION = ("A label query over pods that should match the pod count. Normally, "
                        "the system sets this field for you. More info: https://kubernetes.io/"
                        "docs/concepts/overview/working-with-objects/labels/#label-selectors")

COLUMNS = (
    NAME_COLUMN,
    column("Status", "Status of the job."),
    column("Completions", "The number of pods which reached phase Succeeded. The value "
                          "increases monotonically for a given spec. However, it may decrease "
                          "in reaction to scale down of elastic indexed jobs."),
    column("Duration", "Time required to complete the job."),
    AGE_COLUMN,
    column("Containers", "Names of each container in the template.", priority=1),
    column("Images", "Images referenced by each container in the template.", priority=1),
    column("Selector", SELECTOR_DESCRIPTION, priority=1),
)

JOB = Kind(resource=JOBS, definitions=DEFINITIONS, default=_default, validate=_validate,
           columns=COLUMNS, cells=job_cells, status_subresource=True)
