"""The CronJob controller: start a Job at each scheduled time (cronjob_controllerv2).

Data flow:

    CronJob events ──────────────► key of the CronJob
    Job events ──► the owner CronJob's key (controllerRef kind CronJob)
                         │
                         ▼
    reconcile(key): read the CronJob and the Jobs it owns
        1. status.active: drop Jobs that finished or vanished; lastSuccessfulTime
           from the latest completed one
        2. history: delete the oldest finished Jobs beyond successfulJobsHistoryLimit /
           failedJobsHistoryLimit
        3. unless suspended: the most recent schedule time t in (lastScheduleTime or
           creation, now] (no earlier than now - startingDeadlineSeconds); none, or t
           already handled, or t + startingDeadlineSeconds < now (missed) → wait
        4. concurrencyPolicy: Forbid skips t while a Job is active; Replace deletes the
           active Jobs first; Allow runs them side by side
        5. create Job `<cronjob>-<t in minutes since the epoch>` (annotation
           batch.kubernetes.io/cronjob-scheduled-timestamp, controller ownerReference),
           record it in status.active and lastScheduleTime
        requeue at the next schedule time (+100 ms, as Kubernetes)

Time comes from the injected clock only (tests fake it); the requeue delay is computed
from it, so a test advancing a fake clock enqueues the key itself (`controller.enqueue`).

Invariants: a Job's name is a function of its scheduled time, so a reconcile repeated
for the same t (a crash, a replayed event) meets AlreadyExists instead of running it
twice. Jobs the CronJob did not create (`kubectl create job --from=cronjob/x`) are
owned but never in `active`; they still count for the history limits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from miniorch.api.errors import AlreadyExists, ApiError, NotFound
from miniorch.api.kinds import CRONJOBS, JOBS
from miniorch.api.kinds.cronjob import (
    SCHEDULED_TIMESTAMP_ANNOTATION,
    Schedule,
    ScheduleError,
    zone_of,
)
from miniorch.api.kinds.job import has_condition
from miniorch.api.registry import Registry
from miniorch.controllers.ownership import owner_reference
from miniorch.core.clock import Clock, SystemClock, parse_rfc3339, rfc3339
from miniorch.core.objects import Obj, controller_ref, is_terminating, uid_of
from miniorch.machinery.controller import Controller, ObjectKey, Result, Source
from miniorch.machinery.informer import InformerEvent, SharedInformerFactory

log = structlog.get_logger(__name__)

COMPONENT = "cronjob-controller"
MAX_MISSED = 100
"""More missed start times than this and the controller says so (TooManyMissedTimes)."""



def job_name(cronjob: str, scheduled: datetime) -> str:
    """getJobName: the scheduled time in minutes since the epoch."""
    return f"{cronjob}-{int(scheduled.timestamp()) // 60}"


def _finished(job: Obj) -> str | None:
    for kind in ("Complete", "Failed"):
        if has_condition(job, kind):
            return kind
    return None


def _started(job: Obj) -> str:
    status: Obj = job.get("status") or {}
    return str(status.get("startTime") or job["metadata"].get("creationTimestamp") or "")


class CronJobReconciler:
    def __init__(self, registry: Registry, *, clock: Clock | None = None) -> None:
        self.registry = registry
        self.clock = clock or SystemClock()

    def sources(self) -> list[Source[ObjectKey]]:
        return [Source(CRONJOBS, self.map_cronjob), Source(JOBS, self.map_job)]

    def map_cronjob(self, event: InformerEvent) -> Iterable[ObjectKey]:
        return [ObjectKey.of(event.object)]

    def map_job(self, event: InformerEvent) -> Iterable[ObjectKey]:
        ref = controller_ref(event.object)
        if ref is None or ref.get("kind") != "CronJob":
            return []
        return [ObjectKey(event.object["metadata"].get("namespace", ""), str(ref.get("name")))]

    async def reconcile(self, key: ObjectKey) -> Result:
        cj = self.registry.try_get(CRONJOBS, key.namespace, key.name)
        if cj is None:
            return Result()
        uid = uid_of(cj)
        jobs = [j for j in self.registry.list(JOBS, key.namespace)[0]
                if (controller_ref(j) or {}).get("uid") == uid]
        status: Obj = dict(cj.get("status") or {})
        old = dict(status)
        self._track_active(cj, status, jobs)
        self._clean_history(cj, jobs)
        requeue: float | None = None
        if not is_terminating(cj):
            try:
                requeue = self._schedule(cj, status, jobs)
            finally:
                self._write(key, status, old)
        else:
            self._write(key, status, old)
        return Result(requeue_after=requeue)

    def _write(self, key: ObjectKey, status: Obj, old: Obj) -> None:
        if status.get("active") == []:
            status.pop("active")
        if status != old:
            with contextlib.suppress(NotFound):
                self.registry.update_status(CRONJOBS, key.namespace, key.name, status)

    def _track_active(self, cj: Obj, status: Obj, jobs: list[Obj]) -> None:
        by_uid = {uid_of(j): j for j in jobs}
        active: list[Obj] = []
        for ref in status.get("active") or []:
            job = by_uid.get(ref.get("uid"))
            if job is None:
                self.registry.record_event(cj, type="Normal", reason="MissingJob",
                                           message=f"Active job went missing: {ref.get('name')}",
                                           component=COMPONENT)
                continue
            outcome = _finished(job)
            if outcome is not None:
                self.registry.record_event(cj, type="Normal", reason="SawCompletedJob",
                                           message=f"Saw completed job: {ref.get('name')}, "
                                                   f"condition: {outcome}",
                                           component=COMPONENT)
                continue
            active.append(ref)
        status["active"] = active
        for job in jobs:
            done = (job.get("status") or {}).get("completionTime")
            if has_condition(job, "Complete") and done:
                last = status.get("lastSuccessfulTime")
                if not last or parse_rfc3339(done) > parse_rfc3339(last):
                    status["lastSuccessfulTime"] = done

    def _clean_history(self, cj: Obj, jobs: list[Obj]) -> None:
        spec: Obj = cj.get("spec") or {}
        for outcome, field in (("Complete", "successfulJobsHistoryLimit"),
                               ("Failed", "failedJobsHistoryLimit")):
            limit = spec.get(field)
            if limit is None:
                continue
            finished = sorted((j for j in jobs if _finished(j) == outcome
                               and not is_terminating(j)), key=_started)
            for job in finished[:max(0, len(finished) - int(limit))]:
                name = job["metadata"]["name"]
                with contextlib.suppress(NotFound):
                    self.registry.delete(JOBS, cj["metadata"]["namespace"], name,
                                         propagation_policy="Background")
                    self.registry.record_event(cj, type="Normal", reason="SuccessfulDelete",
                                               message=f"Deleted job {name}",
                                               component=COMPONENT)

    def _schedule(self, cj: Obj, status: Obj, jobs: list[Obj]) -> float | None:
        """Start the Job due now, if any; returns seconds until the next schedule time."""
        spec: Obj = cj.get("spec") or {}
        try:
            schedule = Schedule.parse(str(spec.get("schedule") or ""))
            zone = zone_of(spec.get("timeZone"))
        except (ScheduleError, ValueError, KeyError) as exc:
            self.registry.record_event(cj, type="Warning", reason="UnparseableSchedule",
                                       message=f"unparseable schedule: {exc}",
                                       component=COMPONENT)
            return None
        tz: Any = zone or UTC
        now = self.clock.now().astimezone(tz)
        next_time = schedule.next_after(now)
        wait = (next_time - now).total_seconds() + 0.1
        if spec.get("suspend") is True:
            return None
        last = status.get("lastScheduleTime") or cj["metadata"].get("creationTimestamp")
        earliest = parse_rfc3339(last).astimezone(tz) if last else now
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - timedelta(seconds=int(deadline)))
        scheduled: datetime | None = None
        missed = 0
        moment = schedule.next_after(earliest)
        while moment <= now:
            scheduled, missed = moment, missed + 1
            if missed > MAX_MISSED:
                # Jump near `now` rather than walk every missed minute of a long outage.
                moment = schedule.next_after(now - timedelta(minutes=1, seconds=1))
                if moment <= now:
                    scheduled = moment
                break
            moment = schedule.next_after(moment)
        if scheduled is None:
            return wait
        if missed > MAX_MISSED:
            self.registry.record_event(cj, type="Warning", reason="TooManyMissedTimes",
                                       message="too many missed start times. Set or decrease "
                                               ".spec.startingDeadlineSeconds or check clock "
                                               "skew", component=COMPONENT)
        if deadline is not None and scheduled + timedelta(seconds=int(deadline)) < now:
            self.registry.record_event(cj, type="Warning", reason="MissSchedule",
                                       message=f"Missed scheduled time to start a job: "
                                               f"{rfc3339(scheduled)}", component=COMPONENT)
            return wait
        name = job_name(cj["metadata"]["name"], scheduled)
        if any(ref.get("name") == name for ref in status.get("active") or []) or \
                status.get("lastScheduleTime") == rfc3339(scheduled):
            return wait
        policy = spec.get("concurrencyPolicy") or "Allow"
        active = status.get("active") or []
        if policy == "Forbid" and active:
            log.info("not starting a job: the previous one still runs (Forbid)",
                     cronjob=cj["metadata"]["name"])
            return wait
        if policy == "Replace":
            for ref in active:
                with contextlib.suppress(NotFound):
                    self.registry.delete(JOBS, cj["metadata"]["namespace"], ref["name"],
                                         propagation_policy="Background")
                    self.registry.record_event(cj, type="Normal", reason="SuccessfulDelete",
                                               message=f"Deleted job {ref['name']}",
                                               component=COMPONENT)
            status["active"] = []
        job = self._create_job(cj, name, scheduled)
        if job is not None:
            status["active"] = [*(status.get("active") or []), {
                "kind": "Job", "namespace": job["metadata"]["namespace"], "name": name,
                "uid": job["metadata"]["uid"], "apiVersion": "batch/v1",
                "resourceVersion": job["metadata"]["resourceVersion"]}]
        status["lastScheduleTime"] = rfc3339(scheduled)
        return wait

    def _create_job(self, cj: Obj, name: str, scheduled: datetime) -> Obj | None:
        template: Obj = (cj.get("spec") or {}).get("jobTemplate") or {}
        t_meta: Obj = template.get("metadata") or {}
        annotations = dict(t_meta.get("annotations") or {})
        # RFC 3339 in the CronJob's zone, as Kubernetes writes it.
        annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = scheduled.isoformat().replace(
            "+00:00", "Z")
        body: Obj = {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": cj["metadata"]["namespace"],
                         "labels": dict(t_meta.get("labels") or {}),
                         "annotations": annotations,
                         "ownerReferences": [owner_reference(cj, CRONJOBS)]},
            "spec": dict(template.get("spec") or {}),
        }
        if not body["metadata"]["labels"]:
            del body["metadata"]["labels"]
        try:
            job = self.registry.create(JOBS, body)
        except AlreadyExists:
            existing = self.registry.try_get(JOBS, cj["metadata"]["namespace"], name)
            mine = existing is not None and (controller_ref(existing) or {}).get(
                "uid") == uid_of(cj)
            return existing if mine and existing is not None and not _finished(existing) \
                else None
        except ApiError as exc:
            self.registry.record_event(cj, type="Warning", reason="FailedCreate",
                                       message=f"Error creating job: {exc.message}",
                                       component=COMPONENT)
            raise
        self.registry.record_event(cj, type="Normal", reason="SuccessfulCreate",
                                   message=f"Created job {name}", component=COMPONENT)
        return job


def cronjob_controller(registry: Registry, *, clock: Clock | None = None,
                       workers: int = 2, informers: SharedInformerFactory | None = None
                       ) -> Controller[ObjectKey]:
    """The controller actor: `await tg.start(cronjob_controller(reg).run)`."""
    reconciler = CronJobReconciler(registry, clock=clock)
    return Controller(name="cronjob-controller", registry=registry, reconciler=reconciler,
                      sources=reconciler.sources(), workers=workers, informers=informers)
