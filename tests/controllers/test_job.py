"""The Job controller over a real in-memory API, the real scheduler and the fake
kubelet (which runs pods; the test ends them, as their containers would)."""

from __future__ import annotations

from typing import Any

from miniorch.api.kinds import EVENTS, JOBS, PODS
from miniorch.controllers.job import JobReconciler, format_indexes, job_controller, parse_indexes
from miniorch.controllers.scheduler import scheduler
from miniorch.core.clock import rfc3339
from miniorch.core.objects import Obj, controller_ref
from miniorch.machinery.controller import ObjectKey


def make_job(cluster: Any, name: str = "work", **spec: object) -> Obj:
    body: Obj = {"metadata": {"name": name, "namespace": "default"}, "spec": {
        "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "main", "image": "busybox", "command": ["true"]}]}}}}
    body["spec"].update(spec)
    created: Obj = cluster.registry.create(JOBS, body)
    return created


def job_pods(cluster: Any, name: str = "work") -> list[Obj]:
    return [p for p in cluster.pods() if (controller_ref(p) or {}).get("name") == name]


def running(cluster: Any, name: str = "work") -> list[Obj]:
    return [p for p in job_pods(cluster, name) if p.get("status", {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")]


def finish(cluster: Any, pod: Obj, *, ok: bool = True) -> None:
    """What the kubelet reports when the pod's only container exits."""
    now = rfc3339(cluster.clock.now())

    def end(obj: Obj) -> None:
        status = obj.setdefault("status", {})
        status["phase"] = "Succeeded" if ok else "Failed"
        status["containerStatuses"] = [{"name": "main", "ready": False, "restartCount": 0,
                                        "state": {"terminated": {"exitCode": 0 if ok else 1,
                                                                 "finishedAt": now}}}]
    cluster.registry.mutate(PODS, "default", pod["metadata"]["name"], end, subresource="status")


def job_of(cluster: Any, name: str = "work") -> Obj:
    job: Obj = cluster.registry.get(JOBS, "default", name)
    return job


def conditions(job: Obj) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c.get("reason", ""))
            for c in job.get("status", {}).get("conditions") or []]


def events(cluster: Any, reason: str) -> list[Obj]:
    return [e for e in cluster.registry.list(EVENTS, "default")[0] if e["reason"] == reason]


async def test_parallelism_2_completions_4(cluster: Any, run_actors: Any) -> None:
    cluster.add_node("node-1")
    controller = job_controller(cluster.registry, clock=cluster.clock, pod_failure_backoff=0)
    async with run_actors(scheduler(cluster.registry, clock=cluster.clock).run,
                          controller.run, cluster.kubelet):
        job = make_job(cluster, parallelism=2, completions=4)
        most_active = 0
        for done in range(4):
            pods = await cluster.wait_until(lambda d=done: len(running(cluster)) ==
                                            min(2, 4 - d) and running(cluster), PODS, JOBS)
            most_active = max(most_active, len([p for p in job_pods(cluster)
                                                if p["status"].get("phase") not in
                                                ("Succeeded", "Failed")]))
            finish(cluster, pods[0])
        final = await cluster.wait_until(
            lambda: (j := job_of(cluster)) and ("Complete", "True", "CompletionsReached")
            in conditions(j) and j, JOBS)
    assert most_active == 2  # parallelism is never exceeded
    pods = job_pods(cluster)
    assert len(pods) == 4 and all(p["status"]["phase"] == "Succeeded" for p in pods)
    # Every pod is the Job's, labelled as its selector says, owned for the GC.
    uid = job["metadata"]["uid"]
    for pod in pods:
        assert controller_ref(pod) == {"apiVersion": "batch/v1", "kind": "Job", "name": "work",
                                       "uid": uid, "controller": True,
                                       "blockOwnerDeletion": True}
        assert pod["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == uid
        assert pod["metadata"]["name"].startswith("work-")
    status = final["status"]
    assert conditions(final) == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                                 ("Complete", "True", "CompletionsReached")]
    assert status["succeeded"] == 4 and "active" not in status and "failed" not in status
    assert status["startTime"] and status["completionTime"]
    assert status["uncountedTerminatedPods"] == {} and status["ready"] == 0
    assert len(events(cluster, "SuccessfulCreate")) == 4 and events(cluster, "Completed")


async def test_backoff_limit_reached_fails_the_job(cluster: Any, run_actors: Any) -> None:
    cluster.add_node("node-1")
    controller = job_controller(cluster.registry, clock=cluster.clock, pod_failure_backoff=0)
    async with run_actors(scheduler(cluster.registry, clock=cluster.clock).run,
                          controller.run, cluster.kubelet):
        make_job(cluster, backoffLimit=1)
        for attempt in range(2):
            pods = await cluster.wait_until(lambda: running(cluster), PODS)
            assert len(pods) == 1
            finish(cluster, pods[0], ok=False)
            if attempt == 0:
                # The failure is retried with a new pod.
                await cluster.wait_until(lambda: len(job_pods(cluster)) == 2, PODS)
        final = await cluster.wait_until(
            lambda: (j := job_of(cluster)) and ("Failed", "True", "BackoffLimitExceeded")
            in conditions(j) and j, JOBS)
    assert conditions(final) == [("FailureTarget", "True", "BackoffLimitExceeded"),
                                 ("Failed", "True", "BackoffLimitExceeded")]
    failed = next(c for c in final["status"]["conditions"] if c["type"] == "Failed")
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert final["status"]["failed"] == 2 and "completionTime" not in final["status"]
    assert len(job_pods(cluster)) == 2  # no third attempt
    assert events(cluster, "BackoffLimitExceeded")


async def test_failure_backoff_waits_on_the_clock(cluster: Any, run_actors: Any) -> None:
    """After a failure the next pod waits 10 s (the injected clock's seconds)."""
    cluster.add_node("node-1")
    controller = job_controller(cluster.registry, clock=cluster.clock)
    async with run_actors(scheduler(cluster.registry, clock=cluster.clock).run,
                          controller.run, cluster.kubelet):
        make_job(cluster)
        pod = (await cluster.wait_until(lambda: running(cluster), PODS))[0]
        finish(cluster, pod, ok=False)
        await cluster.wait_until(lambda: job_of(cluster)["status"].get("failed") == 1, JOBS)
        assert len(job_pods(cluster)) == 1
        cluster.clock.advance(10)
        controller.enqueue(ObjectKey("default", "work"))
        await cluster.wait_until(lambda: len(job_pods(cluster)) == 2, PODS)


async def test_active_deadline(cluster: Any, run_actors: Any) -> None:
    cluster.add_node("node-1")
    controller = job_controller(cluster.registry, clock=cluster.clock, pod_failure_backoff=0)
    async with run_actors(scheduler(cluster.registry, clock=cluster.clock).run,
                          controller.run, cluster.kubelet):
        make_job(cluster, activeDeadlineSeconds=30)
        await cluster.wait_until(lambda: running(cluster), PODS)
        cluster.clock.advance(31)
        controller.enqueue(ObjectKey("default", "work"))
        final = await cluster.wait_until(
            lambda: (j := job_of(cluster)) and ("Failed", "True", "DeadlineExceeded")
            in conditions(j) and j, JOBS, PODS)
        # Its pod was stopped (the kubelet finished the graceful deletion).
        await cluster.wait_until(lambda: not job_pods(cluster), PODS)
    message = next(c for c in final["status"]["conditions"] if c["type"] == "Failed")["message"]
    assert message == "Job was active longer than specified deadline"


async def test_suspend_and_resume(cluster: Any, run_actors: Any) -> None:
    cluster.add_node("node-1")
    controller = job_controller(cluster.registry, clock=cluster.clock, pod_failure_backoff=0)
    async with run_actors(scheduler(cluster.registry, clock=cluster.clock).run,
                          controller.run, cluster.kubelet):
        make_job(cluster, suspend=True)
        await cluster.wait_until(
            lambda: ("Suspended", "True", "JobSuspended") in conditions(job_of(cluster)), JOBS)
        assert not job_pods(cluster) and "startTime" not in job_of(cluster)["status"]

        def resume(obj: Obj) -> None:
            obj["spec"]["suspend"] = False
        cluster.registry.mutate(JOBS, "default", "work", resume)
        await cluster.wait_until(lambda: running(cluster), PODS)
        job = job_of(cluster)
        assert ("Suspended", "False", "JobResumed") in conditions(job)
        assert job["status"]["startTime"]


async def test_indexed_job_runs_one_pod_per_index(cluster: Any, run_actors: Any) -> None:
    cluster.add_node("node-1")
    controller = job_controller(cluster.registry, clock=cluster.clock, pod_failure_backoff=0)
    async with run_actors(scheduler(cluster.registry, clock=cluster.clock).run,
                          controller.run, cluster.kubelet):
        make_job(cluster, completions=3, parallelism=3, completionMode="Indexed")
        pods = await cluster.wait_until(lambda: len(running(cluster)) == 3 and running(cluster),
                                        PODS)
        index = "batch.kubernetes.io/job-completion-index"
        assert sorted(p["metadata"]["annotations"][index] for p in pods) == ["0", "1", "2"]
        by_index = {p["metadata"]["annotations"][index]: p for p in pods}
        assert by_index["1"]["metadata"]["name"].startswith("work-1-")
        assert by_index["1"]["spec"]["hostname"] == "work-1"
        finish(cluster, by_index["2"])
        await cluster.wait_until(
            lambda: job_of(cluster)["status"].get("completedIndexes") == "2", JOBS)
        finish(cluster, by_index["0"])
        finish(cluster, by_index["1"])
        final = await cluster.wait_until(
            lambda: (j := job_of(cluster)) and ("Complete", "True", "CompletionsReached")
            in conditions(j) and j, JOBS)
    assert final["status"]["completedIndexes"] == "0-2"
    assert final["status"]["succeeded"] == 3


async def test_ttl_after_finished_deletes_the_job(cluster: Any) -> None:
    reconciler = JobReconciler(cluster.registry, clock=cluster.clock)
    make_job(cluster, ttlSecondsAfterFinished=60)
    now = rfc3339(cluster.clock.now())
    cluster.registry.update_status(JOBS, "default", "work", {
        "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": now}],
        "completionTime": now})
    result = await reconciler.reconcile(ObjectKey("default", "work"))
    assert result.requeue_after == 60
    cluster.clock.advance(60)
    await reconciler.reconcile(ObjectKey("default", "work"))
    assert cluster.registry.try_get(JOBS, "default", "work") is None


def test_index_intervals() -> None:
    assert format_indexes([5, 0, 1, 2, 7, 6, 9]) == "0-2,5-7,9"
    assert parse_indexes("0-2,5-7,9") == {0, 1, 2, 5, 6, 7, 9}
    assert format_indexes([]) == "" and parse_indexes("") == set()
