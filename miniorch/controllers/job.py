"""The Job controller: run a Job's pods to completion, or give up, as kube-controller-manager.

Data flow:

    Job events ─────────────► key of the Job
    pod events ──► the owner Job's key (controllerRef); ADDED / terminating / DELETED
                   lower the owner's expectations
                         │
                         ▼
    reconcile(key): read the Job and the pods it owns
        finished (Complete/Failed)? ─► ttlSecondsAfterFinished: delete it when due
        count: active, ready, terminating, succeeded, failed (and completed indexes)
        1. failure: failed > backoffLimit (or, for OnFailure, restarts ≥ backoffLimit),
           or activeDeadlineSeconds passed ─► FailureTarget, delete active pods,
           Failed once none is left running
        2. success: completions reached (or, without completions, one succeeded and
           none left) ─► SuccessCriteriaMet, Complete (+ completionTime) once none runs
        3. suspended ─► delete active pods, Suspended; resumed ─► startTime anew
        4. otherwise: as many active pods as parallelism and the remaining completions
           allow (Indexed: one pod per pending index), after the failure back-off
           (10 s * 2^(failures-1), at most 6 min, from the last failure)
        write status when it changed; requeue for the deadline, back-off or TTL

Invariants:
- Expectations are recorded before pods are created or deleted (see expectations.py):
  a burst of events never starts a completion twice.
- succeeded/failed never decrease: Kubernetes tracks finished pods with a finalizer;
  miniorch has none, so a finished pod deleted by hand stays counted (the counts are
  the max of what the status says and what the pods show).
- Terminal conditions come last (1.32's order): `FailureTarget`/`SuccessCriteriaMet`
  when the outcome is decided, `Failed`/`Complete` once no pod of the Job still runs.
- Pods carry a controller ownerReference (blockOwnerDeletion), so deleting the Job
  lets the garbage collector remove them. Orphans are not adopted.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import structlog

from miniorch.api.errors import NotFound
from miniorch.api.kinds import JOBS, PODS
from miniorch.api.kinds.job import COMPLETION_INDEX_ANNOTATION, has_condition
from miniorch.api.registry import Registry
from miniorch.controllers.expectations import Expectations
from miniorch.controllers.ownership import create_pod_for, owner_reference
from miniorch.controllers.pods import is_active, is_ready, phase_of
from miniorch.controllers.replication import pod_key, slow_start
from miniorch.core.clock import Clock, SystemClock, parse_rfc3339, rfc3339
from miniorch.core.objects import Obj, controller_ref, is_terminating, uid_of
from miniorch.machinery.controller import Controller, ObjectKey, Result, Source
from miniorch.machinery.informer import InformerEvent, SharedInformerFactory

log = structlog.get_logger(__name__)

COMPONENT = "job-controller"
POD_FAILURE_BACKOFF = 10.0
"""DefaultJobPodFailureBackOff: the first retry after a failed pod waits this long."""
MAX_POD_FAILURE_BACKOFF = 360.0
BURST = 500

BACKOFF_MESSAGE = "Job has reached the specified backoff limit"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"
COMPLETIONS_MESSAGE = "Reached expected number of succeeded pods"



def _condition(status: Obj, kind: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def _set_condition(status: Obj, kind: str, value: str, reason: str, message: str,
                   now: str) -> bool:
    """Add or update a JobCondition; True if it changed (lastTransitionTime kept when
    the status is the same)."""
    conditions: list[Obj] = status.setdefault("conditions", [])
    for i, cond in enumerate(conditions):
        if cond.get("type") != kind:
            continue
        if cond.get("status") == value and cond.get("reason") == reason:
            return False
        conditions[i] = {"type": kind, "status": value, "lastProbeTime": now,
                         "lastTransitionTime": now, "reason": reason, "message": message}
        return True
    conditions.append({"type": kind, "status": value, "lastProbeTime": now,
                       "lastTransitionTime": now, "reason": reason, "message": message})
    return True


def _finished_at(pod: Obj) -> datetime | None:
    """When a finished pod's last container stopped."""
    latest: datetime | None = None
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        when = ((cs.get("state") or {}).get("terminated") or {}).get("finishedAt")
        if when:
            moment = parse_rfc3339(when)
            latest = moment if latest is None or moment > latest else latest
    return latest


def _index_of(pod: Obj) -> int | None:
    raw = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def format_indexes(indexes: Iterable[int]) -> str:
    """`completedIndexes`: sorted intervals, `1,3-5,7`."""
    parts: list[str] = []
    ordered = sorted(set(indexes))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def parse_indexes(text: Any) -> set[int]:
    found: set[int] = set()
    for part in str(text or "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        with contextlib.suppress(ValueError):
            found.update(range(int(first), int(last or first) + 1))
    return found


class JobReconciler:
    def __init__(self, registry: Registry, *, clock: Clock | None = None,
                 pod_failure_backoff: float = POD_FAILURE_BACKOFF,
                 max_pod_failure_backoff: float = MAX_POD_FAILURE_BACKOFF) -> None:
        self.registry = registry
        self.clock = clock or SystemClock()
        self.expectations: Expectations[ObjectKey] = Expectations(self.clock)
        self._backoff = pod_failure_backoff
        self._max_backoff = max_pod_failure_backoff

    # ---- event mapping -----------------------------------------------------------

    def sources(self) -> list[Source[ObjectKey]]:
        return [Source(JOBS, self.map_job), Source(PODS, self.map_pod)]

    def map_job(self, event: InformerEvent) -> Iterable[ObjectKey]:
        key = ObjectKey.of(event.object)
        if event.type == "DELETED":
            self.expectations.forget(key)
        return [key]

    def map_pod(self, event: InformerEvent) -> Iterable[ObjectKey]:
        pod = event.object
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "Job" or ref.get("apiVersion") != "batch/v1":
            return []
        key = ObjectKey(pod["metadata"].get("namespace", ""), str(ref.get("name", "")))
        if event.type == "ADDED":
            self.expectations.creation_observed(key)
        if event.type == "DELETED" or is_terminating(pod):
            self.expectations.deletion_observed(key, pod_key(pod))
        return [key]

    # ---- reconcile ---------------------------------------------------------------

    async def reconcile(self, key: ObjectKey) -> Result:
        job = self.registry.try_get(JOBS, key.namespace, key.name)
        if job is None:
            self.expectations.forget(key)
            return Result()
        if has_condition(job, "Complete") or has_condition(job, "Failed"):
            return self._expire(job)
        if is_terminating(job):
            return Result()
        satisfied = self.expectations.satisfied(key)
        uid = uid_of(job)
        all_pods, _ = self.registry.list(PODS, key.namespace, shared=True)
        pods = [p for p in all_pods if (controller_ref(p) or {}).get("uid") == uid]
        spec: Obj = job.get("spec") or {}
        old: Obj = job.get("status") or {}
        status = copy.deepcopy(old)
        now = self.clock.now()
        stamp = rfc3339(now)

        active = [p for p in pods if is_active(p)]
        terminating = [p for p in pods if is_terminating(p) and phase_of(p) not in
                       ("Succeeded", "Failed")]
        succeeded_pods = [p for p in pods if phase_of(p) == "Succeeded"]
        failed_pods = [p for p in pods if phase_of(p) == "Failed"]
        succeeded = max(int(old.get("succeeded") or 0), len(succeeded_pods))
        failed = max(int(old.get("failed") or 0), len(failed_pods))
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        done_indexes = parse_indexes(old.get("completedIndexes"))
        if indexed:
            done_indexes |= {i for p in succeeded_pods
                             if (i := _index_of(p)) is not None and i < int(completions or 0)}
            succeeded = max(succeeded, len(done_indexes))
        suspended = spec.get("suspend") is True
        if not suspended and not status.get("startTime"):
            status["startTime"] = stamp
        requeue: list[float] = []

        # 1-2. Is the outcome decided?
        failure = _condition(status, "FailureTarget")
        success = _condition(status, "SuccessCriteriaMet")
        if failure is None and success is None:
            reason = self._failure_reason(job, failed, active, now, requeue)
            if reason is not None:
                message = BACKOFF_MESSAGE if reason == "BackoffLimitExceeded" \
                    else DEADLINE_MESSAGE
                _set_condition(status, "FailureTarget", "True", reason, message, stamp)
                self.registry.record_event(job, type="Warning", reason=reason,
                                           message=message, component=COMPONENT)
                failure = _condition(status, "FailureTarget")
            elif self._succeeded(spec, succeeded, active, done_indexes):
                _set_condition(status, "SuccessCriteriaMet", "True", "CompletionsReached",
                               COMPLETIONS_MESSAGE, stamp)
                success = _condition(status, "SuccessCriteriaMet")
        error: Exception | None = None
        if failure is not None or success is not None:
            terminating = terminating + self._delete_all(job, key, active)
            active = []
            if not terminating:
                if failure is not None:
                    _set_condition(status, "Failed", "True", str(failure.get("reason")),
                                   str(failure.get("message")), stamp)
                else:
                    _set_condition(status, "Complete", "True", "CompletionsReached",
                                   COMPLETIONS_MESSAGE, stamp)
                    status["completionTime"] = stamp
                    self.registry.record_event(job, type="Normal", reason="Completed",
                                               message="Job completed", component=COMPONENT)
        elif suspended:
            terminating = terminating + self._delete_all(job, key, active)
            active = []
            if _set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended",
                              stamp):
                self.registry.record_event(job, type="Normal", reason="Suspended",
                                           message="Job suspended", component=COMPONENT)
        else:
            was = _condition(status, "Suspended")
            if was is not None and was.get("status") == "True":
                _set_condition(status, "Suspended", "False", "JobResumed", "Job resumed", stamp)
                status["startTime"] = stamp  # the deadline counts from the resumption
                self.registry.record_event(job, type="Normal", reason="Resumed",
                                           message="Job resumed", component=COMPONENT)
            if satisfied:
                try:
                    active = await self._manage(job, key, active, succeeded, failed_pods,
                                                done_indexes, now, requeue)
                except Exception as exc:
                    error = exc

        status.update({"ready": sum(1 for p in active if is_ready(p)),
                       "terminating": len(terminating), "uncountedTerminatedPods": {}})
        # int32 omitempty in Go: zero counts are left out.
        for field, value in (("active", len(active)), ("succeeded", succeeded),
                             ("failed", failed)):
            if value:
                status[field] = value
            else:
                status.pop(field, None)
        if indexed:
            text = format_indexes(done_indexes)
            if text:
                status["completedIndexes"] = text
        if status != old:
            with contextlib.suppress(NotFound):
                self.registry.update_status(JOBS, key.namespace, key.name, status)
        if error is not None:
            raise error
        finished = has_condition({"status": status}, "Complete") or \
            has_condition({"status": status}, "Failed")
        if finished and spec.get("ttlSecondsAfterFinished") is not None:
            requeue.append(0.0)  # the next reconcile times the TTL
        return Result(requeue_after=max(min(requeue), 0.01) if requeue else None)

    def _failure_reason(self, job: Obj, failed: int, active: list[Obj], now: datetime,
                        requeue: list[float]) -> str | None:
        spec: Obj = job.get("spec") or {}
        raw_limit = spec.get("backoffLimit")
        limit = 6 if raw_limit is None else int(raw_limit)
        if failed > limit:
            return "BackoffLimitExceeded"
        t_spec = (spec.get("template") or {}).get("spec") or {}
        if t_spec.get("restartPolicy") == "OnFailure" and active:
            # pastBackoffLimitOnFailure: container restarts count as failures.
            restarts = sum(int(cs.get("restartCount") or 0) for p in active
                           for cs in (p.get("status", {}).get("containerStatuses") or [])
                           + (p.get("status", {}).get("initContainerStatuses") or []))
            if (restarts > 0) if limit == 0 else (restarts >= limit):
                return "BackoffLimitExceeded"
        deadline = spec.get("activeDeadlineSeconds")
        start = (job.get("status") or {}).get("startTime")
        if deadline is not None and start and spec.get("suspend") is not True:
            left = float(deadline) - (now - parse_rfc3339(start)).total_seconds()
            if left <= 0:
                return "DeadlineExceeded"
            requeue.append(left)
        return None

    @staticmethod
    def _succeeded(spec: Obj, succeeded: int, active: list[Obj], indexes: set[int]) -> bool:
        completions = spec.get("completions")
        if completions is None:
            return succeeded > 0 and not active
        if spec.get("completionMode") == "Indexed":
            return len(indexes) >= int(completions)
        return succeeded >= int(completions)

    def _delete_all(self, job: Obj, key: ObjectKey, pods: list[Obj]) -> list[Obj]:
        """Delete active pods (gracefully); returns those now terminating."""
        if not pods:
            return []
        self.expectations.expect_deletions(key, {pod_key(p) for p in pods})
        gone: list[Obj] = []
        for pod in pods:
            try:
                gone.append(self.registry.delete(PODS, key.namespace, pod["metadata"]["name"]))
            except NotFound:
                self.expectations.deletion_observed(key, pod_key(pod))
                continue
            self.registry.record_event(job, type="Normal", reason="SuccessfulDelete",
                                       message=f"Deleted pod: {pod['metadata']['name']}",
                                       component=COMPONENT)
        # A pod off a node goes at once; one on a node terminates first.
        return [p for p in gone if p["metadata"].get("deletionTimestamp")]

    async def _manage(self, job: Obj, key: ObjectKey, active: list[Obj], succeeded: int,
                      failed_pods: list[Obj], done_indexes: set[int], now: datetime,
                      requeue: list[float]) -> list[Obj]:
        """Create or delete pods toward the wanted number of active ones; returns the
        pods that count as active after it."""
        spec: Obj = job.get("spec") or {}
        raw_parallelism = spec.get("parallelism")
        parallelism = 1 if raw_parallelism is None else int(raw_parallelism)
        completions = spec.get("completions")
        pending: list[int | None]
        if spec.get("completionMode") == "Indexed":
            running = {_index_of(p) for p in active}
            pending = [i for i in range(int(completions or 0))
                       if i not in done_indexes and i not in running]
            wanted = min(parallelism, len(active) + len(pending))
        else:
            if completions is None:
                wanted = 0 if succeeded > 0 else parallelism
            else:
                wanted = max(0, min(parallelism, int(completions) - succeeded))
            pending = [None] * max(0, wanted - len(active))
        diff = wanted - len(active)
        if diff > 0 and failed_pods:
            # Exponential back-off after failures, from the last one to finish.
            last = max((_finished_at(p) or now) for p in failed_pods)
            delay = min(self._max_backoff, self._backoff * 2 ** (len(failed_pods) - 1))
            left = delay - (now - last).total_seconds()
            if left > 0:
                requeue.append(left)
                return active
        if diff > 0:
            count = min(diff, BURST, len(pending))
            indexes = pending[:count]
            self.expectations.expect_creations(key, count)
            created: list[Obj] = []

            async def create() -> None:
                created.append(self._create_pod(job, indexes[len(created)]))
            done, error = await slow_start(count, create)
            if done < count:
                self.expectations.creation_observed(key, count - done)
            if error is not None:
                raise error
            return active + created
        if diff < 0:
            # Too many running (parallelism lowered): stop the newest, not-ready first.
            victims = sorted(active, key=lambda p: (is_ready(p), p["metadata"].get(
                "creationTimestamp") or ""), reverse=False)[:-diff]
            self._delete_all(job, key, victims)
            names = {p["metadata"]["name"] for p in victims}
            return [p for p in active if p["metadata"]["name"] not in names]
        return active

    def _create_pod(self, job: Obj, index: int | None) -> Obj:
        spec: Obj = job.get("spec") or {}
        template: Obj = spec.get("template") or {}
        t_meta: Obj = template.get("metadata") or {}
        name = job["metadata"]["name"]
        labels = dict(t_meta.get("labels") or {})
        annotations = dict(t_meta.get("annotations") or {})
        pod_spec = copy.deepcopy(template.get("spec") or {})
        generate = f"{name}-"
        if index is not None:
            generate = f"{name}-{index}-"
            annotations[COMPLETION_INDEX_ANNOTATION] = str(index)
            labels[COMPLETION_INDEX_ANNOTATION] = str(index)
            pod_spec.setdefault("hostname", f"{name}-{index}")
            for container in pod_spec.get("containers") or []:
                env = container.setdefault("env", [])
                if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                    env.append({"name": "JOB_COMPLETION_INDEX", "value": str(index)})
        metadata: Obj = {"generateName": generate,
                         "namespace": job["metadata"].get("namespace", "default"),
                         "labels": labels, "ownerReferences": [owner_reference(job, JOBS)]}
        if annotations:
            metadata["annotations"] = annotations
        return create_pod_for(self.registry, job, {"apiVersion": "v1", "kind": "Pod",
                                                  "metadata": metadata, "spec": pod_spec},
                              component=COMPONENT)

    def _expire(self, job: Obj) -> Result:
        """ttlSecondsAfterFinished (the TTL-after-finished controller's work)."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None or is_terminating(job):
            return Result()
        status: Obj = job.get("status") or {}
        finished = status.get("completionTime") or next(
            (c.get("lastTransitionTime") for c in status.get("conditions") or []
             if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"), None)
        if not finished:
            return Result()
        left = float(ttl) - (self.clock.now() - parse_rfc3339(finished)).total_seconds()
        if left > 0:
            return Result(requeue_after=left)
        meta = job["metadata"]
        with contextlib.suppress(NotFound):
            self.registry.delete(JOBS, meta.get("namespace", ""), meta["name"],
                                 propagation_policy="Background",
                                 preconditions={"uid": meta.get("uid")})
            log.info("deleted finished job", job=meta["name"], ttl=ttl)
        return Result()


def job_controller(registry: Registry, *, clock: Clock | None = None, workers: int = 5,
                   pod_failure_backoff: float = POD_FAILURE_BACKOFF,
                   informers: SharedInformerFactory | None = None) -> Controller[ObjectKey]:
    """The controller actor: `await tg.start(job_controller(reg).run)`."""
    reconciler = JobReconciler(registry, clock=clock, pod_failure_backoff=pod_failure_backoff)
    return Controller(name="job-controller", registry=registry, reconciler=reconciler,
                      sources=reconciler.sources(), workers=workers, informers=informers)
