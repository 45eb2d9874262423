"""batch/v1 with the real kubectl 1.32 against a real cluster: Jobs run real pods to
completion, CronJobs start Jobs on their schedule. kubectl's typed `create job|cronjob`
send protobuf bodies; `logs job/x` resolves the Job's pod through its selector."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.e2e.conftest import RunningCluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]

NS = f"jobs-{os.urandom(3).hex()}"


class K:
    def __init__(self, cluster: RunningCluster) -> None:
        self.cluster = cluster

    def __call__(self, *args: str, check: bool = True, timeout: float = 90) -> str:
        return self.cluster.kubectl("-n", NS, *args, check=check, timeout=timeout).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))


@pytest.fixture(scope="module")
def k(cluster: RunningCluster) -> Iterator[K]:
    kubectl = K(cluster)
    assert cluster.kubectl("create", "namespace", NS).stdout.strip() == \
        f"namespace/{NS} created"
    try:
        yield kubectl
    finally:
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def pods_of(k: K, job: str) -> list[Any]:
    items: list[Any] = k.json("get", "pods", "-l", f"batch.kubernetes.io/job-name={job}")["items"]
    return items


def test_job_runs_to_completion_logs_and_is_deleted_with_its_pods(k: K) -> None:
    assert k("create", "job", "hello", "--image=busybox", "--", "sh", "-c",
             "echo hi").strip() == "job.batch/hello created"
    assert k("wait", "--for=condition=complete", "job/hello", "--timeout=60s").strip() == \
        "job.batch/hello condition met"
    assert k("logs", "job/hello").strip() == "hi"
    job = k.json("get", "job", "hello")
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert job["status"]["succeeded"] == 1
    assert [c["type"] for c in job["status"]["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    lines = k("get", "jobs").splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert lines[1].split()[:3] == ["hello", "Complete", "1/1"]
    wide = k("get", "jobs", "-o", "wide").splitlines()
    assert wide[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE", "CONTAINERS",
                               "IMAGES", "SELECTOR"]
    assert wide[1].split()[5:] == ["hello", "busybox",
                                   f"batch.kubernetes.io/controller-uid={uid}"]
    pods = pods_of(k, "hello")
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Succeeded"
    assert k("delete", "job", "hello").strip() == 'job.batch "hello" deleted'
    wait_for(lambda: not pods_of(k, "hello"), timeout=30, what="the job's pods deleted")


def test_failing_job_reaches_its_backoff_limit(k: K) -> None:
    manifest = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "fails"},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                 "containers": [{"name": "main", "image": "busybox",
                                 "command": ["sh", "-c", "exit 3"]}]}}}}
    k.cluster.kubectl("-n", NS, "apply", "-f", "-", input=json.dumps(manifest))
    assert k("wait", "--for=condition=failed", "job/fails", "--timeout=60s").strip() == \
        "job.batch/fails condition met"
    job = k.json("get", "job", "fails")
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert k("get", "job", "fails", "--no-headers").split()[1] == "Failed"


def test_cronjob_schedules_and_create_job_from_it(k: K) -> None:
    assert k("create", "cronjob", "tick", "--image=busybox", "--schedule=*/1 * * * *", "--",
             "echo", "tick").strip() == "cronjob.batch/tick created"
    header = k("get", "cj").splitlines()[0]
    assert header.split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST",
                              "SCHEDULE", "AGE"]
    row = k("get", "cronjob", "tick", "--no-headers").split()
    assert row[:10] == ["tick", "*/1", "*", "*", "*", "*", "<none>", "False", "0", "<none>"]
    assert k("create", "job", "manual", "--from=cronjob/tick").strip() == \
        "job.batch/manual created"
    assert k("wait", "--for=condition=complete", "job/manual", "--timeout=60s").strip() == \
        "job.batch/manual condition met"
    manual = k.json("get", "job", "manual")
    assert manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert manual["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert k("logs", "job/manual").strip() == "tick"

    # The schedule itself: a Job named <cronjob>-<minutes since the epoch> within ~a minute.
    def scheduled() -> list[Any]:
        return [j for j in k.json("get", "jobs")["items"]
                if j["metadata"]["name"].startswith("tick-")]
    jobs = wait_for(scheduled, timeout=75, interval=1, what="the cronjob's first job")
    job = jobs[0]
    stamp = job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
    minutes = int(job["metadata"]["name"].removeprefix("tick-"))
    assert int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()) == minutes * 60
    cj = wait_for(lambda: (c := k.json("get", "cronjob", "tick"))["status"].get(
        "lastScheduleTime") and c, timeout=30, what="lastScheduleTime")
    assert cj["status"]["lastScheduleTime"] == stamp
    wait_for(lambda: k.json("get", "cronjob", "tick")["status"].get("lastSuccessfulTime"),
             timeout=60, interval=0.5, what="lastSuccessfulTime")
    assert k("delete", "cronjob", "tick").strip() == 'cronjob.batch "tick" deleted'
    wait_for(lambda: not scheduled() and not pods_of(k, job["metadata"]["name"]), timeout=30,
             what="the cronjob's jobs and pods collected")
