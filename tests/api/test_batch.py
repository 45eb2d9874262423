"""batch/v1 Job and CronJob: defaults (the generated selector), validation and Tables,
as kube-apiserver 1.32 applies and prints them. Through a real Registry over an
in-memory store, so the uid, defaulting and validation order is the server's."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from miniorch.api import tables
from miniorch.api.errors import Invalid
from miniorch.api.kinds import CRONJOBS, JOBS, kind_of
from miniorch.api.kinds.cronjob import Schedule, ScheduleError
from miniorch.api.registry import Registry
from miniorch.api.store import Store
from miniorch.core.clock import rfc3339
from miniorch.core.objects import Obj

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def registry() -> Iterator[Registry]:
    store = Store(None)
    reg = Registry(store)
    reg.ensure_system_objects()
    try:
        yield reg
    finally:
        store.close()


def job(name: str = "hello", **spec: object) -> Obj:
    body: Obj = {"metadata": {"name": name}, "spec": {"template": {"spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "hello", "image": "busybox", "command": ["echo", "hi"]}]}}}}
    body["spec"].update(spec)
    return body


def cronjob(name: str = "tick", schedule: str = "*/1 * * * *", **spec: object) -> Obj:
    body: Obj = {"metadata": {"name": name}, "spec": {
        "schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure",
            "containers": [{"name": "tick", "image": "busybox", "command": ["echo"]}]}}}}}}
    body["spec"].update(spec)
    return body


def causes_of(excinfo: pytest.ExceptionInfo[Invalid]) -> dict[str, str]:
    return {c.field: c.message for c in excinfo.value.causes}


# ---- defaults -------------------------------------------------------------------------


def test_job_defaults_and_generated_selector(registry: Registry) -> None:
    created = registry.create(JOBS, job())
    uid = created["metadata"]["uid"]
    spec = created["spec"]
    assert {k: spec[k] for k in ("completions", "parallelism", "backoffLimit", "completionMode",
                                 "suspend", "manualSelector", "podReplacementPolicy")} == {
        "completions": 1, "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
        "suspend": False, "manualSelector": False, "podReplacementPolicy": "TerminatingOrFailed"}
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "hello",
              "controller-uid": uid, "job-name": "hello"}
    assert spec["template"]["metadata"]["labels"] == labels
    assert created["metadata"]["labels"] == labels  # a Job without labels takes the template's
    # The stored object is the one the selector names.
    assert registry.get(JOBS, "default", "hello")["metadata"]["uid"] == uid


def test_job_parallelism_only_leaves_completions_unset(registry: Registry) -> None:
    spec = registry.create(JOBS, job(parallelism=3))["spec"]
    assert spec["parallelism"] == 3 and "completions" not in spec


def test_job_keeps_its_own_labels_and_a_client_uid_is_ignored(registry: Registry) -> None:
    body = job()
    body["metadata"].update(labels={"team": "a"}, uid="chosen-by-client")
    created = registry.create(JOBS, body)
    assert created["metadata"]["labels"] == {"team": "a"}
    assert created["metadata"]["uid"] != "chosen-by-client"


def test_manual_selector_is_not_generated(registry: Registry) -> None:
    body = job(manualSelector=True, selector={"matchLabels": {"app": "x"}})
    body["spec"]["template"]["metadata"] = {"labels": {"app": "x"}}
    created = registry.create(JOBS, body)
    assert created["spec"]["selector"] == {"matchLabels": {"app": "x"}}
    assert created["spec"]["template"]["metadata"]["labels"] == {"app": "x"}


def test_cronjob_defaults(registry: Registry) -> None:
    spec = registry.create(CRONJOBS, cronjob())["spec"]
    assert {k: spec[k] for k in ("concurrencyPolicy", "suspend", "successfulJobsHistoryLimit",
                                 "failedJobsHistoryLimit")} == {
        "concurrencyPolicy": "Allow", "suspend": False, "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 1}
    job_spec = spec["jobTemplate"]["spec"]
    assert "selector" not in job_spec and "backoffLimit" not in job_spec
    assert job_spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


# ---- validation -----------------------------------------------------------------------


def test_job_restart_policy_must_be_never_or_on_failure(registry: Registry) -> None:
    body = job()
    del body["spec"]["template"]["spec"]["restartPolicy"]  # defaults to Always
    with pytest.raises(Invalid) as excinfo:
        registry.create(JOBS, body)
    assert causes_of(excinfo) == {"spec.template.spec.restartPolicy":
                                  'Unsupported value: "Always": supported values: '
                                  '"OnFailure", "Never"'}
    assert str(excinfo.value.message).startswith('Job.batch "hello" is invalid: ')


@pytest.mark.parametrize(("spec", "field", "message"), [
    pytest.param({"parallelism": -1}, "spec.parallelism",
                 "Invalid value: -1: must be greater than or equal to 0", id="parallelism"),
    pytest.param({"backoffLimit": -2}, "spec.backoffLimit",
                 "Invalid value: -2: must be greater than or equal to 0", id="backoff"),
    pytest.param({"completionMode": "Sometimes"}, "spec.completionMode",
                 'Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"',
                 id="mode"),
    pytest.param({"completionMode": "Indexed", "parallelism": 2}, "spec.completions",
                 "Required value: when completion mode is Indexed", id="indexed-completions"),
])
def test_job_spec_numbers_and_mode(registry: Registry, spec: Obj, field: str,
                                   message: str) -> None:
    with pytest.raises(Invalid) as excinfo:
        registry.create(JOBS, job(**spec))
    assert causes_of(excinfo)[field] == message


def test_generated_selector_refuses_a_foreign_selector(registry: Registry) -> None:
    body = job(selector={"matchLabels": {"batch.kubernetes.io/controller-uid": "other"}})
    with pytest.raises(Invalid) as excinfo:
        registry.create(JOBS, body)
    assert causes_of(excinfo)["spec.selector"].endswith("`selector` not auto-generated")


def test_manual_selector_must_match_the_template(registry: Registry) -> None:
    with pytest.raises(Invalid) as excinfo:
        registry.create(JOBS, job(manualSelector=True, selector={"matchLabels": {"a": "b"}}))
    assert causes_of(excinfo) == {"spec.template.metadata.labels":
                                  "Invalid value: map[string]string{}: `selector` does not "
                                  "match template `labels`"}


def test_job_update_keeps_template_and_completions(registry: Registry) -> None:
    created = registry.create(JOBS, job())
    changed = copy.deepcopy(created)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "kubia"
    changed["spec"]["completions"] = 3
    with pytest.raises(Invalid) as excinfo:
        registry.update(JOBS, changed)
    causes = causes_of(excinfo)
    assert causes["spec.completions"] == "Invalid value: 3: field is immutable"
    assert causes["spec.template"].endswith(": field is immutable")
    # What may change does: parallelism, suspend.
    allowed = copy.deepcopy(created)
    allowed["spec"].update(parallelism=2, suspend=True)
    updated = registry.update(JOBS, allowed)
    assert (updated["spec"]["parallelism"], updated["spec"]["suspend"]) == (2, True)
    assert updated["spec"]["selector"] == created["spec"]["selector"]


@pytest.mark.parametrize(("schedule", "message"), [
    pytest.param("* * *", "expected exactly 5 fields, found 3: [* * *]", id="fields"),
    pytest.param("@fortnightly", "unrecognized descriptor: @fortnightly", id="descriptor"),
    pytest.param("0 0 L * *", 'failed to parse int from L: strconv.Atoi: parsing "L": invalid '
                 "syntax", id="croniter-extension"),
    pytest.param("0 0 * * * *", "expected exactly 5 fields, found 6: [0 0 * * * *]",
                 id="seconds-field"),
])
def test_schedule_parse_errors(registry: Registry, schedule: str, message: str) -> None:
    with pytest.raises(Invalid) as excinfo:
        registry.create(CRONJOBS, cronjob(schedule=schedule))
    assert causes_of(excinfo)["spec.schedule"] == f'Invalid value: "{schedule}": {message}'


def test_schedule_range_error_is_refused(registry: Registry) -> None:
    with pytest.raises(Invalid) as excinfo:
        registry.create(CRONJOBS, cronjob(schedule="61 * * * *"))
    assert "spec.schedule" in causes_of(excinfo)


def test_tz_in_schedule_is_refused(registry: Registry) -> None:
    with pytest.raises(Invalid) as excinfo:
        registry.create(CRONJOBS, cronjob(schedule="TZ=UTC */5 * * * *"))
    assert causes_of(excinfo) == {"spec.schedule": 'Invalid value: "TZ=UTC */5 * * * *": '
                                  "cannot use TZ or CRON_TZ in schedule, use timeZone field "
                                  "instead"}


@pytest.mark.parametrize(("spec", "field", "message"), [
    pytest.param({"timeZone": "Mars/Olympus"}, "spec.timeZone",
                 'Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus', id="zone"),
    pytest.param({"concurrencyPolicy": "Sometimes"}, "spec.concurrencyPolicy",
                 'Unsupported value: "Sometimes": supported values: "Allow", "Forbid", '
                 '"Replace"', id="policy"),
    pytest.param({"startingDeadlineSeconds": -1}, "spec.startingDeadlineSeconds",
                 "Invalid value: -1: must be greater than or equal to 0", id="deadline"),
])
def test_cronjob_spec(registry: Registry, spec: Obj, field: str, message: str) -> None:
    with pytest.raises(Invalid) as excinfo:
        registry.create(CRONJOBS, cronjob(**spec))
    assert causes_of(excinfo)[field] == message


def test_cronjob_template_is_validated_as_a_job(registry: Registry) -> None:
    body = cronjob()
    body["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    body["spec"]["jobTemplate"]["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    with pytest.raises(Invalid) as excinfo:
        registry.create(CRONJOBS, body)
    causes = causes_of(excinfo)
    assert set(causes) == {"spec.jobTemplate.spec.template.spec.restartPolicy",
                           "spec.jobTemplate.spec.selector"}
    assert causes["spec.jobTemplate.spec.selector"].endswith("`selector` will be auto-generated")


def test_cronjob_name_at_most_52(registry: Registry) -> None:
    with pytest.raises(Invalid) as excinfo:
        registry.create(CRONJOBS, cronjob(name="a" * 53))
    assert causes_of(excinfo)["metadata.name"].endswith("must be no more than 52 characters")
    registry.create(CRONJOBS, cronjob(name="a" * 52))


@pytest.mark.parametrize(("schedule", "after", "expected"), [
    pytest.param("*/15 * * * *", "2024-06-01T12:07:00Z", "2024-06-01T12:15:00Z", id="step"),
    pytest.param("@hourly", "2024-06-01T12:00:00Z", "2024-06-01T13:00:00Z", id="hourly"),
    pytest.param("@daily", "2024-06-01T12:00:00Z", "2024-06-02T00:00:00Z", id="daily"),
    pytest.param("0 9 * * MON", "2024-06-01T12:00:00Z", "2024-06-03T09:00:00Z", id="monday"),
    pytest.param("@every 90s", "2024-06-01T12:00:00Z", "2024-06-01T12:01:30Z", id="every"),
])
def test_schedule_next(schedule: str, after: str, expected: str) -> None:
    moment = datetime.fromisoformat(after.replace("Z", "+00:00"))
    assert rfc3339(Schedule.parse(schedule).next_after(moment)) == expected


def test_schedule_empty() -> None:
    with pytest.raises(ScheduleError, match="empty spec string"):
        Schedule.parse("  ")


# ---- tables ---------------------------------------------------------------------------


def test_job_columns() -> None:
    kind = kind_of(JOBS)
    assert [(c["name"], c["priority"]) for c in kind.columns] == [
        ("Name", 0), ("Status", 0), ("Completions", 0), ("Duration", 0), ("Age", 0),
        ("Containers", 1), ("Images", 1), ("Selector", 1)]


def test_cronjob_columns() -> None:
    kind = kind_of(CRONJOBS)
    assert [(c["name"], c["type"], c["priority"]) for c in kind.columns] == [
        ("Name", "string", 0), ("Schedule", "string", 0), ("Timezone", "string", 0),
        ("Suspend", "boolean", 0), ("Active", "integer", 0), ("Last Schedule", "string", 0),
        ("Age", "string", 0), ("Containers", "string", 1), ("Images", "string", 1),
        ("Selector", "string", 1)]


def _ago(**delta: float) -> str:
    return rfc3339(NOW - timedelta(**delta))


def _job_obj(status: Obj, **spec: object) -> Obj:
    obj = job(**spec)
    obj["metadata"]["creationTimestamp"] = _ago(minutes=5)
    obj["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}
    obj["status"] = status
    return obj


def _true(kind: str) -> Obj:
    return {"type": kind, "status": "True"}


@pytest.mark.parametrize(("status", "spec", "cells"), [
    pytest.param({"startTime": _ago(seconds=30), "active": 1}, {"completions": 1},
                 ["Running", "0/1", "30s"], id="running"),
    pytest.param({"startTime": _ago(minutes=4), "completionTime": _ago(minutes=3, seconds=50),
                  "succeeded": 4, "conditions": [_true("SuccessCriteriaMet"), _true("Complete")]},
                 {"completions": 4}, ["Complete", "4/4", "10s"], id="complete"),
    pytest.param({"startTime": _ago(seconds=5), "conditions": [_true("FailureTarget")]},
                 {"completions": 1}, ["FailureTarget", "0/1", "5s"], id="failure-target"),
    pytest.param({"conditions": [_true("Failed")]}, {"completions": 1},
                 ["Failed", "0/1", ""], id="failed-no-start"),
    pytest.param({"conditions": [_true("Suspended")]}, {"parallelism": 3},
                 ["Suspended", "0/1 of 3", ""], id="suspended-parallel"),
])
def test_job_rows(status: Obj, spec: Obj, cells: list[object]) -> None:
    row = tables.row_for(kind_of(JOBS), _job_obj(status, **spec), now=NOW)
    assert row["cells"] == ["hello", *cells, "5m", "hello", "busybox",
                            "batch.kubernetes.io/controller-uid=u1"]


def test_cronjob_rows() -> None:
    obj = cronjob(suspend=False)
    obj["metadata"]["creationTimestamp"] = _ago(hours=2)
    obj["status"] = {"active": [{"name": "tick-1"}], "lastScheduleTime": _ago(seconds=40)}
    row = tables.row_for(kind_of(CRONJOBS), obj, now=NOW)
    assert row["cells"] == ["tick", "*/1 * * * *", "<none>", "False", 1, "40s", "120m",
                            "tick", "busybox", "<none>"]
    fresh = cronjob(timeZone="Europe/Paris")
    fresh["metadata"]["creationTimestamp"] = _ago(seconds=3)
    assert tables.row_for(kind_of(CRONJOBS), fresh, now=NOW)["cells"][:7] == [
        "tick", "*/1 * * * *", "Europe/Paris", "<unset>", 0, "<none>", "3s"]
