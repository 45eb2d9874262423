"""The CronJob controller on a fake clock: the reconciler is driven directly (the
clock only moves when the test says so), over a real in-memory API. Jobs are finished
by the test (no Job controller), so each test sees the CronJob logic alone."""

from __future__ import annotations

from typing import Any

from miniorch.api.kinds import CRONJOBS, JOBS
from miniorch.controllers.cronjob import CronJobReconciler, job_name
from miniorch.core.clock import parse_rfc3339, rfc3339
from miniorch.core.objects import Obj, controller_ref
from miniorch.machinery.controller import ObjectKey

KEY = ObjectKey("default", "tick")


def make_cronjob(cluster: Any, schedule: str = "*/1 * * * *", **spec: object) -> Obj:
    body: Obj = {"metadata": {"name": "tick", "namespace": "default"}, "spec": {
        "schedule": schedule, "jobTemplate": {
            "metadata": {"labels": {"app": "tick"}},
            "spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [
                {"name": "tick", "image": "busybox", "command": ["echo", "tick"]}]}}}}}}
    body["spec"].update(spec)
    created: Obj = cluster.registry.create(CRONJOBS, body)
    return created


def jobs(cluster: Any) -> list[Obj]:
    items: list[Obj] = sorted(cluster.registry.list(JOBS, "default")[0],
                              key=lambda j: j["metadata"]["name"])
    return items


def names(cluster: Any) -> list[str]:
    return [j["metadata"]["name"] for j in jobs(cluster)]


def status(cluster: Any) -> Obj:
    st: Obj = cluster.registry.get(CRONJOBS, "default", "tick").get("status") or {}
    return st


def end(cluster: Any, name: str, *, ok: bool = True) -> None:
    now = rfc3339(cluster.clock.now())
    st: Obj = {"conditions": [{"type": "Complete" if ok else "Failed", "status": "True",
                                "lastTransitionTime": now}], "startTime": now}
    if ok:
        st["completionTime"] = now
    cluster.registry.update_status(JOBS, "default", name, st)


async def test_schedules_jobs_on_the_clock(cluster: Any) -> None:
    cj = make_cronjob(cluster)
    reconciler = CronJobReconciler(cluster.registry, clock=cluster.clock)
    first = await reconciler.reconcile(KEY)
    assert names(cluster) == []  # created at 00:00:00: the next time is 00:01
    assert first.requeue_after is not None and 60 <= first.requeue_after <= 60.2
    cluster.clock.advance(61)
    await reconciler.reconcile(KEY)
    due = parse_rfc3339("2026-01-01T00:01:00Z")
    name = job_name("tick", due)
    assert name == f"tick-{int(due.timestamp()) // 60}" and names(cluster) == [name]
    job = jobs(cluster)[0]
    assert job["metadata"]["annotations"][
        "batch.kubernetes.io/cronjob-scheduled-timestamp"] == "2026-01-01T00:01:00Z"
    assert job["metadata"]["labels"]["app"] == "tick"
    assert controller_ref(job) == {"apiVersion": "batch/v1", "kind": "CronJob", "name": "tick",
                                   "uid": cj["metadata"]["uid"], "controller": True,
                                   "blockOwnerDeletion": True}
    st = status(cluster)
    assert st["lastScheduleTime"] == "2026-01-01T00:01:00Z"
    assert [(a["kind"], a["name"]) for a in st["active"]] == [("Job", name)]
    # A repeated reconcile at the same time creates nothing more.
    await reconciler.reconcile(KEY)
    assert names(cluster) == [name]
    # Finishing the Job clears it from active and records the success.
    end(cluster, name)
    await reconciler.reconcile(KEY)
    st = status(cluster)
    assert "active" not in st and st["lastSuccessfulTime"] == rfc3339(cluster.clock.now())


async def test_forbid_skips_while_a_job_runs(cluster: Any) -> None:
    make_cronjob(cluster, concurrencyPolicy="Forbid")
    reconciler = CronJobReconciler(cluster.registry, clock=cluster.clock)
    cluster.clock.advance(60)
    await reconciler.reconcile(KEY)
    assert len(names(cluster)) == 1
    cluster.clock.advance(60)
    await reconciler.reconcile(KEY)
    assert len(names(cluster)) == 1  # the first still runs
    end(cluster, names(cluster)[0])
    cluster.clock.advance(60)
    await reconciler.reconcile(KEY)
    assert len(names(cluster)) == 2


async def test_replace_deletes_the_running_job(cluster: Any) -> None:
    make_cronjob(cluster, concurrencyPolicy="Replace")
    reconciler = CronJobReconciler(cluster.registry, clock=cluster.clock)
    cluster.clock.advance(60)
    await reconciler.reconcile(KEY)
    [old] = names(cluster)
    cluster.clock.advance(60)
    await reconciler.reconcile(KEY)
    [new] = names(cluster)
    assert new != old
    assert [a["name"] for a in status(cluster)["active"]] == [new]


async def test_allow_runs_side_by_side(cluster: Any) -> None:
    make_cronjob(cluster)
    reconciler = CronJobReconciler(cluster.registry, clock=cluster.clock)
    for _ in range(2):
        cluster.clock.advance(60)
        await reconciler.reconcile(KEY)
    assert len(names(cluster)) == 2 and len(status(cluster)["active"]) == 2


async def test_history_limits(cluster: Any) -> None:
    make_cronjob(cluster, successfulJobsHistoryLimit=2, failedJobsHistoryLimit=1)
    reconciler = CronJobReconciler(cluster.registry, clock=cluster.clock)
    outcomes = [True, True, True, False, False]
    made: list[str] = []
    for ok in outcomes:
        cluster.clock.advance(60)
        await reconciler.reconcile(KEY)
        newest = sorted(set(names(cluster)) - set(made))[0]
        made.append(newest)
        end(cluster, newest, ok=ok)
    await reconciler.reconcile(KEY)
    # The two newest successes and the newest failure are kept.
    assert names(cluster) == sorted([made[1], made[2], made[4]])


async def test_suspend_and_starting_deadline(cluster: Any) -> None:
    make_cronjob(cluster, suspend=True, startingDeadlineSeconds=10)
    reconciler = CronJobReconciler(cluster.registry, clock=cluster.clock)
    cluster.clock.advance(60)
    assert (await reconciler.reconcile(KEY)).requeue_after is None
    assert names(cluster) == []

    def resume(obj: Obj) -> None:
        obj["spec"]["suspend"] = False
    cluster.registry.mutate(CRONJOBS, "default", "tick", resume)
    cluster.clock.advance(30)  # 00:01:30: the 00:01 start is 30 s late, past its 10 s
    await reconciler.reconcile(KEY)
    assert names(cluster) == []
    cluster.clock.advance(35)  # 00:02:05: in time for 00:02
    await reconciler.reconcile(KEY)
    assert names(cluster) == [job_name("tick", parse_rfc3339("2026-01-01T00:02:00Z"))]


async def test_time_zone_and_descriptor(cluster: Any) -> None:
    make_cronjob(cluster, schedule="@daily", timeZone="Asia/Tokyo")
    reconciler = CronJobReconciler(cluster.registry, clock=cluster.clock)
    # 2026-01-01T00:00Z is 09:00 in Tokyo: the next midnight there is 15:00Z.
    result = await reconciler.reconcile(KEY)
    assert result.requeue_after is not None and abs(result.requeue_after - 15 * 3600) < 1
    cluster.clock.advance(15 * 3600)
    await reconciler.reconcile(KEY)
    [job] = jobs(cluster)
    assert job["metadata"]["annotations"][
        "batch.kubernetes.io/cronjob-scheduled-timestamp"] == "2026-01-02T00:00:00+09:00"
