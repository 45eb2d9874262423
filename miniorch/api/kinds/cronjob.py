"""CronJob (batch/v1): a Job template run on a cron schedule.

    create/update ─► _default: concurrencyPolicy Allow, suspend false, history limits
                     3 successful / 1 failed; the template's pod spec defaulted
                  ─► _validate: the schedule parses (5 fields or a descriptor, no TZ=),
                     timeZone is a known IANA zone, the policy, the limits, the job
                     template (validated as a Job's, minus the generated selector)
    Table ─► cronjob_cells: NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE (+wide)

`Schedule` is the one reading of a schedule string, shared with the controller
(`controllers/cronjob.py`): robfig/cron's standard parser, as kube-controller-manager
uses, on top of croniter for the calendar arithmetic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from miniorch.api.defaults import pod_spec
from miniorch.api.errors import Cause
from miniorch.api.kinds.base import Kind
from miniorch.api.kinds.job import BATCH, format_label_selector, validate_job_spec
from miniorch.api.resource import Resource
from miniorch.api.tables import AGE_COLUMN, NAME_COLUMN, Row, column, containers_and_images, since
from miniorch.api.validation import (
    invalid,
    not_supported,
    required,
    validate_annotations,
    validate_labels,
)
from miniorch.core.objects import Obj, as_dict, as_list, ensure_dict

CRONJOBS = Resource(group="batch", version="v1", plural="cronjobs", singular="cronjob",
                    kind="CronJob", namespaced=True, short_names=("cj",), categories=("all",))

SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MAX_NAME_LENGTH = 52
"""Job names are `<cronjob>-<minutes>` (11 digits), and must stay valid label values."""

DEFINITIONS: dict[str, dict[str, str]] = {
    BATCH + "CronJob": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "CronJobSpec", "status": "CronJobStatus",
    },
    BATCH + "CronJobSpec": {
        "schedule": "string!", "timeZone": "string", "startingDeadlineSeconds": "int64",
        "concurrencyPolicy": "string", "suspend": "boolean", "jobTemplate": "JobTemplateSpec!",
        "successfulJobsHistoryLimit": "int32", "failedJobsHistoryLimit": "int32",
    },
    BATCH + "JobTemplateSpec": {"metadata": "ObjectMeta", "spec": "JobSpec"},
    BATCH + "CronJobStatus": {
        "active": "[]ObjectReference", "lastScheduleTime": "time",
        "lastSuccessfulTime": "time",
    },
}

# ---- the schedule -------------------------------------------------------------------------

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
_DAYS = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
_FIELD_NAMES: tuple[set[str], ...] = (set(), set(), set(), _MONTHS, _DAYS)
_GO_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns))+$")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6,
                 "ns": 1e-9}


class ScheduleError(ValueError):
    """The schedule does not parse; the message is robfig/cron's where we know it."""


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: a 5-field cron expression, or `@every <duration>`."""

    expression: str
    every: float = 0.0
    """For `@every`: the period in whole seconds (robfig rounds down to a second)."""

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """cron.ParseStandard: 5 fields (minute hour dom month dow) or a descriptor."""
        spec = text.strip()
        if not spec:
            raise ScheduleError("empty spec string")
        if spec.startswith(("TZ=", "CRON_TZ=")):
            # robfig accepts a zone prefix; validation refuses it separately.
            _, _, spec = spec.partition(" ")
            spec = spec.strip()
        if spec.startswith("@every "):
            duration = spec[len("@every "):].strip()
            if not _GO_DURATION.match(duration):
                raise ScheduleError(f"failed to parse duration {spec}: time: invalid duration "
                                    f'"{duration}"')
            seconds = sum(float(n) * _UNIT_SECONDS[u]
                          for n, u in _GO_DURATION_PART.findall(duration))
            return cls(spec, every=float(max(int(seconds), 1)))
        if spec.startswith("@"):
            if spec not in _DESCRIPTORS:
                raise ScheduleError(f"unrecognized descriptor: {spec}")
            return cls(_DESCRIPTORS[spec])
        fields = spec.split()
        if len(fields) != 5:
            raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: "
                                f"[{' '.join(fields)}]")
        for i, field in enumerate(fields):
            for token in re.split(r"[,/-]", field):
                if token in ("*", "?") or token.isdigit() or token.lower() in _FIELD_NAMES[i]:
                    continue
                raise ScheduleError(f"failed to parse int from {token}: strconv.Atoi: "
                                    f'parsing "{token}": invalid syntax')
        expression = " ".join(fields)
        # croniter (with dateutil) is imported where a schedule is parsed: every kind
        # module is imported at `up`, and it is ~20 ms of a cluster's start.
        from croniter import croniter
        from croniter.croniter import CroniterError

        try:
            croniter(expression)
        except CroniterError as exc:
            raise ScheduleError(str(exc)) from None
        return cls(expression)

    def next_after(self, moment: datetime) -> datetime:
        """The first activation strictly after `moment` (aware; in `moment`'s zone)."""
        if self.every:
            return moment.replace(microsecond=0) + timedelta(seconds=self.every)
        from croniter import croniter

        nxt: datetime = croniter(self.expression, moment).get_next(datetime)
        return nxt


def zone_of(name: str | None) -> ZoneInfo | None:
    """The CronJob's `timeZone` (None: the controller's own zone, which is UTC here)."""
    if not name:
        return None
    return ZoneInfo(name)


# ---- defaults and validation --------------------------------------------------------------


def _default(obj: Obj) -> None:
    spec = ensure_dict(obj, "spec")
    if spec is None:
        return
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    t_spec = as_dict(as_dict(as_dict(spec.get("jobTemplate")).get("spec")).get("template")
                     ).get("spec")
    if isinstance(t_spec, dict):
        pod_spec(t_spec)


def _validate_time_zone(zone: object) -> list[Cause]:
    path = "spec.timeZone"
    if zone is None:
        return []
    if not isinstance(zone, str) or not zone:
        return [invalid(path, zone, "timeZone must be nil or non-empty string")]
    if zone.lower() == "local":
        return [invalid(path, zone, "timeZone must be an explicit time zone as defined in "
                                    "https://www.iana.org/time-zones")]
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return [invalid(path, zone, f"unknown time zone {zone}")]
    return []


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    meta = as_dict(obj.get("metadata"))
    name = str(meta.get("name") or "")
    if old is None and len(name) > MAX_NAME_LENGTH:
        causes.append(invalid("metadata.name", name,
                              f"must be no more than {MAX_NAME_LENGTH} characters"))
    spec = as_dict(obj.get("spec"))
    schedule = spec.get("schedule")
    if not schedule:
        causes.append(required("spec.schedule"))
    elif isinstance(schedule, str):
        try:
            Schedule.parse(schedule)
        except ScheduleError as exc:
            causes.append(invalid("spec.schedule", schedule, str(exc)))
        # A TZ prefix an older version let in stays allowed on update (as in Kubernetes).
        old_schedule = str(as_dict(as_dict(old).get("spec")).get("schedule") or "") \
            if old is not None else ""
        if "TZ" in schedule and "TZ" not in old_schedule:
            causes.append(invalid("spec.schedule", schedule,
                                  "cannot use TZ or CRON_TZ in schedule, use timeZone field "
                                  "instead"))
    causes.extend(_validate_time_zone(spec.get("timeZone")))
    for field in ("startingDeadlineSeconds", "successfulJobsHistoryLimit",
                  "failedJobsHistoryLimit"):
        value = spec.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            causes.append(invalid(f"spec.{field}", value, "must be greater than or equal to 0"))
    policy = spec.get("concurrencyPolicy")
    if not policy:
        causes.append(required("spec.concurrencyPolicy"))
    elif policy not in ("Allow", "Forbid", "Replace"):
        causes.append(not_supported("spec.concurrencyPolicy", policy,
                                    ("Allow", "Forbid", "Replace")))
    template = spec.get("jobTemplate")
    if not isinstance(template, dict):
        causes.append(required("spec.jobTemplate"))
        return causes
    t_meta = as_dict(template.get("metadata"))
    causes.extend(validate_labels(t_meta.get("labels"), "spec.jobTemplate.metadata.labels"))
    causes.extend(validate_annotations(t_meta.get("annotations"),
                                       "spec.jobTemplate.metadata.annotations"))
    causes.extend(validate_job_spec(as_dict(template.get("spec")), "spec.jobTemplate.spec",
                                    in_template=True))
    return causes


# ---- printing -----------------------------------------------------------------------------


def cronjob_cells(cj: Obj, now: datetime) -> Row:
    meta = as_dict(cj.get("metadata"))
    spec = as_dict(cj.get("spec"))
    status = as_dict(cj.get("status"))
    last = status.get("lastScheduleTime")
    suspend = spec.get("suspend")
    job_spec = as_dict(as_dict(spec.get("jobTemplate")).get("spec"))
    names, images = containers_and_images(
        as_dict(as_dict(job_spec.get("template")).get("spec")).get("containers"))
    return [
        str(meta.get("name", "")), str(spec.get("schedule", "")),
        str(spec.get("timeZone") or "<none>"),
        "<unset>" if suspend is None else ("True" if suspend else "False"),
        len(as_list(status.get("active"))), since(last, now) if last else "<none>",
        since(meta.get("creationTimestamp"), now), names, images,
        format_label_selector(job_spec.get("selector")),
    ], []


COLUMNS = (
    NAME_COLUMN,
    column("Schedule", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
    column("Timezone", "The time zone name for the given schedule, see "
                       "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not "
                       "specified, this will default to the time zone of the "
                       "kube-controller-manager process."),
    column("Suspend", "This flag tells the controller to suspend subsequent executions, it "
                      "does not apply to already started executions.  Defaults to false.",
           type="boolean"),
    column("Active", "A list of pointers to currently running jobs.", type="integer"),
    column("Last Schedule", "Information when was the last time the job was successfully "
                            "scheduled."),
    AGE_COLUMN,
    column("Containers", "Names of each container in the template.", priority=1),
    column("Images", "Images referenced by each container in the template.", priority=1),
    column("Selector", "A label query over pods that should match the pod count. Normally, "
                       "the system sets this field for you. More info: https://kubernetes.io/"
                       "docs/concepts/overview/working-with-objects/labels/#label-selectors",
           priority=1),
)

CRONJOB = Kind(resource=CRONJOBS, definitions=DEFINITIONS, default=_default,
               validate=_validate, columns=COLUMNS, cells=cronjob_cells,
               status_subresource=True)
