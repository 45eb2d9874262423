"""The kubelet's pod state machine, on plain local processes (ProcessRuntime)."""

from __future__ import annotations

import os
import signal

import anyio

from miniorch.api.kinds import ENDPOINTS, NAMESPACES, PODS
from miniorch.api.registry import Registry
from miniorch.core import podfiles
from miniorch.core.settings import Settings
from miniorch.node.processes import ProcessRuntime
from tests.node.nodehelpers import (
    condition,
    container_status,
    events_of,
    make_pod,
    pod_of,
    running_kubelet,
    wait_for,
)


async def test_pod_goes_creating_running_ready(registry: Registry, settings: Settings,
                                               runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        seen: list[str] = []
        pod = make_pod(registry, node.name, ports=[8080])
        async with registry.watch(PODS, since=int(pod["metadata"]["resourceVersion"])) as w:
            async def collect() -> None:
                async for event in w:
                    cs = (event.object.get("status") or {}).get("containerStatuses") or []
                    if cs:
                        state = cs[0]["state"]
                        seen.append(state.get("waiting", {}).get("reason") or next(iter(state)))
            async with anyio.create_task_group() as tg:
                tg.start_soon(collect)
                await wait_for(lambda: container_status(registry, pod).get("ready"),
                               what="ready")
                tg.cancel_scope.cancel()
        assert seen[0] == "ContainerCreating"
        assert "running" in seen
        current = pod_of(registry, pod)
        assert current is not None
        status = current["status"]
        assert status["phase"] == "Running"
        assert status["hostIP"] == f"127.0.1.{node.index}"
        assert status["hostIPs"] == [{"ip": status["hostIP"]}]
        assert status["podIP"] == f"127.244.{node.index}.2"
        assert status["podIPs"] == [{"ip": status["podIP"]}]
        assert status["qosClass"] == "BestEffort"
        assert status["startTime"].endswith("Z")
        for ctype in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                      "PodScheduled"):
            cond = condition(current, ctype)
            assert cond["status"] == "True", ctype
            assert cond["lastTransitionTime"]
        cs = status["containerStatuses"][0]
        assert cs["name"] == "kubia" and cs["image"] == "kubia"
        assert cs["imageID"] == "sha256:" + "a" * 64
        assert cs["containerID"].startswith("miniorch://")
        assert cs["started"] is True and cs["restartCount"] == 0
        assert "startedAt" in cs["state"]["running"]
        assert cs["lastState"] == {}
        # Events are recorded off the pod's critical path, a moment later.
        await wait_for(lambda: {"Pulled", "Created", "Started"} <= {
            reason for _type, reason, _msg in events_of(registry, pod)}, what="events")
        assert ("Normal", "Pulled", 'Container image "kubia" already present on machine') in \
            events_of(registry, current)
        assert ("Normal", "Started", "Started container kubia") in events_of(registry, pod)
        # The API server reads these files for logs and exec.
        directory = podfiles.pod_dir(settings.pods_dir, "default", current["metadata"]["name"],
                                     current["metadata"]["uid"])
        sandbox = podfiles.read_sandbox(directory)
        assert sandbox is not None
        assert sandbox["ip"] == status["podIP"] and sandbox["node"] == node.name
        assert sandbox["containers"]["kubia"]["restartCount"] == 0
        log = podfiles.container_log(directory, "kubia", 0)
        await wait_for(lambda: any(line.text == "listening"
                                   for line in podfiles.read_log_lines(log)), what="log line")


async def test_unready_until_probe_passes_and_conditions_say_why(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        probe = {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1}
        pod = make_pod(registry, node.name, ports=[8080], readinessProbe=probe,
                       env=[{"name": "READY_STATUS", "value": "500"}])
        await wait_for(lambda: ("Warning", "Unhealthy",
                                "Readiness probe failed: HTTP probe failed with statuscode: 500")
                       in events_of(registry, pod), within=4, what="Unhealthy event")
        current = pod_of(registry, pod)
        assert current is not None
        assert current["status"]["phase"] == "Running"
        cs = current["status"]["containerStatuses"][0]
        assert "running" in cs["state"] and cs["ready"] is False
        for ctype in ("Ready", "ContainersReady"):
            cond = condition(current, ctype)
            assert cond["status"] == "False"
            assert cond["reason"] == "ContainersNotReady"
            assert cond["message"] == "containers with unready status: [kubia]"


async def test_kill_9_restarts_at_once_then_crash_loop_backs_off(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        pod = make_pod(registry, node.name, ports=[8080])
        await wait_for(lambda: container_status(registry, pod).get("ready"), what="ready")
        directory = podfiles.pod_dir(settings.pods_dir, "default", pod["metadata"]["name"],
                                     pod["metadata"]["uid"])
        sandbox = podfiles.read_sandbox(directory)
        assert sandbox is not None
        os.kill(sandbox["containers"]["kubia"]["pid"], signal.SIGKILL)
        killed_at = anyio.current_time()
        await wait_for(lambda: container_status(registry, pod).get("restartCount") == 1,
                       within=1, what="restartCount 1")
        assert anyio.current_time() - killed_at < 1
        cs = container_status(registry, pod)
        terminated = cs["lastState"]["terminated"]
        assert terminated["exitCode"] == 137 and terminated["signal"] == 9
        assert terminated["reason"] == "Error"
        assert terminated["startedAt"] and terminated["finishedAt"]
        await wait_for(lambda: container_status(registry, pod).get("ready"), what="ready again")
        sandbox = podfiles.read_sandbox(directory)
        assert sandbox is not None and sandbox["containers"]["kubia"]["restartCount"] == 1
        assert podfiles.container_log(directory, "kubia", 1).exists()


async def test_repeated_crashes_enter_crash_loop_back_off(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        pod = make_pod(registry, node.name, image="python",
                       args=["-c", "import sys; print('boom'); sys.exit(3)"])
        uid = pod["metadata"]["uid"]
        name = pod["metadata"]["name"]
        await wait_for(lambda: container_status(registry, pod).get("state", {}).get(
            "waiting", {}).get("reason") == "CrashLoopBackOff", what="CrashLoopBackOff")
        cs = container_status(registry, pod)
        assert cs["restartCount"] == 1  # first restart immediate, the second one waits
        assert cs["state"]["waiting"]["message"] == (
            f"back-off 1s restarting failed container=kubia pod={name}_default({uid})")
        assert cs["lastState"]["terminated"]["exitCode"] == 3
        assert cs["lastState"]["terminated"]["reason"] == "Error"
        current = pod_of(registry, pod)
        assert current is not None and current["status"]["phase"] == "Running"
        await wait_for(lambda: ("Warning", "BackOff", "Back-off restarting failed container "
                                f"kubia in pod {name}_default({uid})")
                       in events_of(registry, pod), what="BackOff event")
        await wait_for(lambda: container_status(registry, pod).get("restartCount", 0) >= 3,
                       within=4, what="more restarts")


async def test_restart_policy_never_and_on_failure(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        ok = make_pod(registry, node.name, image="python", restart_policy="Never",
                      args=["-c", "print('done')"])
        bad = make_pod(registry, node.name, image="python", restart_policy="Never",
                       args=["-c", "raise SystemExit(2)"])
        flaky = make_pod(registry, node.name, image="python", restart_policy="OnFailure",
                         args=["-c", "print('fine')"])

        def phase(pod: dict[str, object]) -> object:
            return ((pod_of(registry, pod) or {}).get("status") or {}).get("phase")
        await wait_for(lambda: phase(ok) == "Succeeded", what="Succeeded")
        await wait_for(lambda: phase(bad) == "Failed", what="Failed")
        await wait_for(lambda: phase(flaky) == "Succeeded", what="OnFailure Succeeded")
        cs = container_status(registry, ok)
        assert cs["state"]["terminated"]["reason"] == "Completed"
        assert cs["state"]["terminated"]["exitCode"] == 0
        assert cs["restartCount"] == 0 and cs["ready"] is False
        cs = container_status(registry, bad)
        assert cs["state"]["terminated"]["reason"] == "Error"
        assert cs["state"]["terminated"]["exitCode"] == 2
        done = pod_of(registry, ok)
        assert done is not None
        assert condition(done, "Ready")["reason"] == "PodCompleted"


async def test_missing_image_err_image_pull_then_back_off_then_recovers(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        pod = make_pod(registry, node.name, image="nope")

        def reason() -> object:
            return container_status(registry, pod).get("state", {}).get("waiting", {}).get(
                "reason")
        await wait_for(lambda: reason() == "ErrImagePull", what="ErrImagePull")
        message = container_status(registry, pod)["state"]["waiting"]["message"]
        assert message.startswith('Failed to pull image "nope": ')
        await wait_for(lambda: reason() == "ImagePullBackOff", what="ImagePullBackOff")
        current = pod_of(registry, pod)
        assert current is not None and current["status"]["phase"] == "Pending"
        await wait_for(lambda: ("Normal", "BackOff", 'Back-off pulling image "nope"')
                       in events_of(registry, pod), what="BackOff event")
        assert ("Warning", "Failed", message) in events_of(registry, pod)
        # The image shows up (built, pulled): the next retry runs it.
        runtime.images["nope"] = runtime.images["kubia"]
        await wait_for(lambda: container_status(registry, pod).get("ready"), within=4,
                       what="ready after the image appeared")


async def test_graceful_deletion_removes_the_pod(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        pod = make_pod(registry, node.name, ports=[8080])
        await wait_for(lambda: container_status(registry, pod).get("ready"), what="ready")
        directory = podfiles.pod_dir(settings.pods_dir, "default", pod["metadata"]["name"],
                                     pod["metadata"]["uid"])
        registry.delete(PODS, "default", pod["metadata"]["name"])
        terminating = pod_of(registry, pod)
        assert terminating is not None and terminating["metadata"]["deletionTimestamp"]
        began = anyio.current_time()
        await wait_for(lambda: pod_of(registry, pod) is None, what="pod removed")
        # The app handles SIGTERM: no need to wait for the 5 s grace period.
        assert anyio.current_time() - began < 2
        await wait_for(lambda: ("Normal", "Killing", "Stopping container kubia")
                       in events_of(registry, pod), what="Killing event")
        assert runtime.live_processes() == []
        assert not directory.exists()
        assert node.kubelet.workers == {}


async def test_deleted_pod_leaves_the_endpoints_before_sigterm(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        pod = make_pod(registry, node.name, ports=[8080])
        await wait_for(lambda: container_status(registry, pod).get("ready"), what="ready")
        if registry.try_get(NAMESPACES, "", "default") is None:
            registry.create(NAMESPACES, {"metadata": {"name": "default"}})
        ref = {"kind": "Pod", "namespace": "default", "name": pod["metadata"]["name"],
               "uid": pod["metadata"]["uid"]}
        # Endpoints that keep listing the pod as Ready (no endpoints controller runs).
        registry.create(ENDPOINTS, {"metadata": {"name": "web", "namespace": "default"},
                                    "subsets": [{"addresses": [{"ip": "10.9.9.9",
                                                                "targetRef": ref}],
                                                 "ports": [{"port": 8080}]}]})
        registry.delete(PODS, "default", pod["metadata"]["name"])
        await anyio.sleep(0.5)
        assert runtime.live_processes(), "SIGTERM sent while the pod was still an endpoint"
        current = pod_of(registry, pod)
        assert current is not None and condition(current, "Ready")["status"] == "False"

        def leave(ep: dict) -> None:  # type: ignore[type-arg]
            ep["subsets"][0]["notReadyAddresses"] = ep["subsets"][0].pop("addresses")
        registry.mutate(ENDPOINTS, "default", "web", leave)
        began = anyio.current_time()
        await wait_for(lambda: pod_of(registry, pod) is None, what="pod removed")
        assert anyio.current_time() - began < 1.5
        assert runtime.live_processes() == []


async def test_sandbox_failure_is_retried(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    runtime.fail_sandbox = "netns: no space left on device"
    async with running_kubelet(registry, settings, runtime) as node:
        pod = make_pod(registry, node.name, ports=[8080])
        await wait_for(lambda: ("Warning", "FailedCreatePodSandBox",
                                "Failed to create pod sandbox: netns: no space left on device")
                       in events_of(registry, pod), what="FailedCreatePodSandBox")
        assert container_status(registry, pod)["state"]["waiting"]["reason"] == \
            "ContainerCreating"
        runtime.fail_sandbox = None
        await wait_for(lambda: container_status(registry, pod).get("ready"), what="ready")


async def test_kubelet_stop_keeps_pods_and_restart_recreates_them(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        pod = make_pod(registry, node.name, ports=[8080])
        await wait_for(lambda: container_status(registry, pod).get("ready"), what="ready")
        directory = podfiles.pod_dir(settings.pods_dir, "default", pod["metadata"]["name"],
                                     pod["metadata"]["uid"])
        sandbox = podfiles.read_sandbox(directory)
        assert sandbox is not None
        os.kill(sandbox["containers"]["kubia"]["pid"], signal.SIGKILL)
        await wait_for(lambda: container_status(registry, pod).get("ready")
                       and container_status(registry, pod)["restartCount"] == 1, what="ready")
        before = pod_of(registry, pod)
        assert before is not None
        name, index = node.name, node.index
    # Stopped: processes gone (checked by running_kubelet), the pod object stays.
    assert pod_of(registry, pod) is not None
    assert podfiles.read_sandbox(directory) is None
    assert podfiles.container_log(directory, "kubia", 0).exists()
    async with running_kubelet(registry, settings, runtime, name=name, index=index):
        await wait_for(lambda: container_status(registry, pod).get("ready")
                       and container_status(registry, pod)["containerID"]
                       != before["status"]["containerStatuses"][0]["containerID"],
                       what="ready again")
        after = pod_of(registry, pod)
        assert after is not None
        assert after["status"]["podIP"] == before["status"]["podIP"]
        assert after["status"]["containerStatuses"][0]["restartCount"] == 1
