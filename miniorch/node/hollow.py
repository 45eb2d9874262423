"""Hollow nodes (kubemark's hollow kubelet, kwok's fake nodes): real Node objects,
leases and pod status, no processes.

    shared pods informer ──spec.nodeName=<hollow node>──► HollowKubelet (a Kubelet:
                                                            Node, Lease, heartbeat)
                                                              │ one HollowPodWorker per UID
                                                              ▼
    Pending/ContainerCreating ──start delay──► Running (not Ready) ──ready delay──► Ready
          │ pod IP from the node's /24            │ a start fails with `fail` probability:
          │                                       └► Error → CrashLoopBackOff → start again
          │                                          (restartPolicy Never: Failed)
    deletionTimestamp ──stop delay──► the pod deleted (grace 0), its IP released

A hollow node is there to drive the API, store, watches, scheduler and controllers at
scale on one machine: everything above the container runtime is the real kubelet's
(registration, leases, heartbeats, the pod informer's dispatch, `status.pod_status`
for the status it writes), everything below it is a clock. `HollowProfile` says how
long each step takes and how often a start fails (`up --hollow-profile`).

Invariants:
- Only the pod's worker writes its status, through the status subresource with a UID
  check, and only when it changed (as the real worker). Steps whose delay is zero are
  written together (one write Pending → Running and Ready), as a kubelet whose sync
  sees them at once would: at 10,000 pods each write counts.
- No Events (kwok's default too): Events would multiply the store's writes without
  exercising anything the pods' own writes do not.
- Cancelling the kubelet (`down`) leaves every pod object as it is, as the real one.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from dataclasses import dataclass, replace
from typing import Any

import anyio
import structlog

from miniorch.api.errors import ApiError, Conflict, NotFound
from miniorch.api.kinds import PODS
from miniorch.core.clock import rfc3339
from miniorch.core.objects import Obj, is_terminating, name_of, namespace_of, uid_of
from miniorch.node import nodeinfo
from miniorch.node.cri import ImageInfo, PullAuth, RuntimeFailure, RuntimeSandbox, SandboxConfig
from miniorch.node.kubelet import Kubelet, Worker
from miniorch.node.mailbox import Mailbox, PodUpdate
from miniorch.node.podworker import NodeContext
from miniorch.node.status import ContainerView, pod_status

HOLLOW_LABEL = "miniorch.io/hollow"
"""`true` on every hollow Node, so a pod can be steered onto (or off) them."""
HOLLOW_TAINT: Obj = {"key": HOLLOW_LABEL, "value": "true", "effect": "NoSchedule"}
"""Registered by default (kwok's fake nodes carry one too): only pods that tolerate it
land on a hollow node, so a cluster's real workloads (the demo) keep real nodes."""
HOLLOW_RUNTIME_VERSION = "hollow://0.1.0"


_SHARED_RNG = random.Random()


class _SeededDraws:
    """A pod's own reproducible stream, small: a Mersenne Twister per pod is 2.5 KB,
    25 MB at 10,000 pods, for the handful of draws a pod makes. Draw n is a hash of
    (seed, n), uniform in [0, 1)."""

    __slots__ = ("_key", "_n")

    def __init__(self, seed: str) -> None:
        self._key = seed.encode()
        self._n = 0

    def random(self) -> float:
        self._n += 1
        digest = hashlib.blake2b(self._key + b":%d" % self._n, digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()


Draws = random.Random | _SeededDraws


@dataclass(frozen=True)
class Delay:
    """Seconds, uniform in [low, high] (low == high: fixed)."""

    low: float = 0.0
    high: float = 0.0

    def sample(self, rng: Draws) -> float:
        return self.low if self.high <= self.low else rng.uniform(self.low, self.high)

    @classmethod
    def parse(cls, text: str) -> Delay:
        low, sep, high = text.partition("-")
        try:
            delay = cls(float(low), float(high) if sep else float(low))
        except ValueError:
            raise ValueError(f"a delay is SECONDS or LOW-HIGH, got {text!r}") from None
        if delay.low < 0 or delay.high < delay.low:
            raise ValueError(f"a delay is SECONDS or LOW-HIGH with 0 <= LOW <= HIGH, "
                             f"got {text!r}")
        return delay


@dataclass(frozen=True, kw_only=True)
class HollowProfile:
    """How a hollow node's pods behave, and what the node reports (its capacity)."""

    start: Delay = Delay(0.2, 1.0)
    """Pending/ContainerCreating → Running (kwok's and kubemark's pods start at once;
    a sandbox and an image cost this much on a real node)."""
    ready: Delay = Delay(0.0, 0.5)
    """Running → Ready (the app's boot until its readiness probe passes)."""
    fail: float = 0.0
    """Probability that a container start fails (exit 1, then CrashLoopBackOff)."""
    backoff: float = 10.0
    """First CrashLoopBackOff delay (doubles, capped at 300 s, as the kubelet's)."""
    complete: Delay | None = None
    """Pods with restartPolicy Never/OnFailure exit 0 this long after Ready (Jobs
    complete); None: they run until deleted."""
    stop: Delay = Delay()
    """deletionTimestamp → the pod deleted (the grace a real app takes to exit)."""
    seed: int | None = None
    """Seed of the delays and failures (each pod draws from its own seeded stream)."""
    cpu: str = "32"
    memory: str = "128Gi"
    pods: int | None = None
    """The node's pod capacity; None: the cluster's max pods per node (110)."""
    taint: bool = True
    """Register with `HOLLOW_TAINT` (`taint=0`: any pod may land here)."""

    _KEYS = ("start", "ready", "fail", "backoff", "complete", "stop", "seed", "cpu",
             "memory", "pods", "taint")

    @classmethod
    def parse(cls, text: str) -> HollowProfile:
        """`start=0.2-1,ready=0-0.5,fail=0.05,seed=7` (every key optional)."""
        profile = cls()
        changes: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep or key not in cls._KEYS:
                raise ValueError(f"hollow profile: expected KEY=VALUE with KEY one of "
                                 f"{', '.join(cls._KEYS)}, got {item!r}")
            try:
                if key in ("start", "ready", "complete", "stop"):
                    changes[key] = Delay.parse(value)
                elif key in ("fail", "backoff"):
                    changes[key] = float(value)
                elif key in ("seed", "pods"):
                    changes[key] = int(value)
                elif key == "taint":
                    if value not in ("0", "1", "true", "false"):
                        raise ValueError(f"0 or 1, got {value!r}")
                    changes[key] = value in ("1", "true")
                else:
                    changes[key] = value
            except ValueError as exc:
                raise ValueError(f"hollow profile {key}: {exc}") from None
        if not 0.0 <= changes.get("fail", 0.0) <= 1.0:
            raise ValueError("hollow profile fail: a ratio between 0 and 1")
        return replace(profile, **changes)


class HollowRuntime:
    """The CRI seam of a node that runs nothing: it has every image and no sandbox
    (the hollow pod workers never ask for one)."""

    version = HOLLOW_RUNTIME_VERSION
    supports_mounts = False

    async def resolve_image(self, ref: str) -> ImageInfo | None:
        return ImageInfo(ref=ref, id="sha256:" + "0" * 64)

    async def pull_image(self, ref: str, auth: PullAuth | None = None) -> ImageInfo:
        return ImageInfo(ref=ref, id="sha256:" + "0" * 64)

    def can_pull(self, ref: str) -> bool:
        return False

    async def create_sandbox(self, config: SandboxConfig) -> RuntimeSandbox:
        raise RuntimeFailure("a hollow node runs no processes")


class HollowKubelet(Kubelet):
    """A `Kubelet` whose pods are `HollowPodWorker`s and whose Node says it is hollow."""

    def __init__(self, *, profile: HollowProfile | None = None, **kwargs: Any) -> None:
        super().__init__(runtime=HollowRuntime(), **kwargs)
        self.profile = profile or HollowProfile()

    def _machine_facts(self) -> dict[str, Any]:
        pods = self.profile.pods or self.settings.max_pods_per_node
        capacity = {"cpu": self.profile.cpu, "ephemeral-storage": f"{100 * 2**20}Ki",
                    "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                    "memory": self.profile.memory, "pods": str(pods)}
        return {"capacity": capacity,
                "nodeInfo": nodeinfo.node_info(runtime_version=HOLLOW_RUNTIME_VERSION)}

    def _labels(self) -> dict[str, str]:
        return {**super()._labels(), HOLLOW_LABEL: "true"}

    def _taints(self) -> list[Obj]:
        return [dict(HOLLOW_TAINT)] if self.profile.taint else []

    def _new_worker(self, pod: Obj) -> Worker:
        return HollowPodWorker(self.context, pod, self.profile)


class HollowPodWorker:
    """One pod's pretend life; the `Worker` of a hollow kubelet."""

    def __init__(self, ctx: NodeContext, pod: Obj, profile: HollowProfile) -> None:
        self.ctx = ctx
        self.profile = profile
        self.uid = uid_of(pod)
        self.namespace = namespace_of(pod)
        self.name = name_of(pod)
        self.pod = pod
        self.mailbox = Mailbox(pod)
        self.log: Any = structlog.get_logger(__name__).bind(
            node=ctx.name, pod=f"{self.namespace}/{self.name}")
        self.rng: Draws = (_SeededDraws(f"{profile.seed}:{self.uid}")
                                   if profile.seed is not None else _SHARED_RNG)
        self.views: list[ContainerView] = []
        self.sandbox_ready = False
        self.pod_ip = ""
        self.start_time = ""
        self._last_status: Obj | None = None

    async def run(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._live)
                kill = await self._until_kill()
                tg.cancel_scope.cancel()
            await anyio.sleep(self.profile.stop.sample(self.rng))
            if not kill.removed:
                # NotFound: already gone; Conflict: a namesake with another UID.
                with contextlib.suppress(NotFound, Conflict):
                    self.ctx.registry.delete(PODS, self.namespace, self.name,
                                             grace_period_seconds=0,
                                             preconditions={"uid": self.uid})
        finally:
            self.ctx.ipam.release(self.uid)

    async def _until_kill(self) -> PodUpdate:
        while True:
            update = await self.mailbox.get()
            self.pod = update.pod
            if update.removed or is_terminating(update.pod):
                return update

    async def _live(self) -> None:
        previous: Obj = self.pod.get("status") or {}
        if previous.get("phase") in ("Succeeded", "Failed"):
            return  # finished before a cluster restart: it stays as it finished
        spec = self.pod.get("spec") or {}
        self.views = [ContainerView(name=str(c.get("name")), image=str(c.get("image", "")))
                      for c in spec.get("containers") or []]
        self.start_time = str(previous.get("startTime") or rfc3339(self.ctx.clock.now()))
        old_ip = str(previous.get("podIP") or "")
        ipam = self.ctx.ipam
        self.pod_ip = old_ip if old_ip and ipam.reserve(self.uid, old_ip) \
            else ipam.allocate(self.uid)
        policy = spec.get("restartPolicy") or "Always"
        backoff = self.profile.backoff
        await self._step(self.profile.start.sample(self.rng))
        self.sandbox_ready = True
        while True:
            now = rfc3339(self.ctx.clock.now())
            image_id = "sha256:" + "0" * 64
            for view in self.views:
                view.image_id = image_id
                view.container_id = f"hollow://{self.uid}-{view.name}-{view.restart_count}"
            if self.rng.random() < self.profile.fail:
                for view in self.views:
                    view.state = {"terminated": {"exitCode": 1, "reason": "Error",
                                                 "startedAt": now, "finishedAt": now,
                                                 "containerID": view.container_id}}
                    view.started = False
                if policy == "Never":
                    self._sync_status()
                    return
                self._sync_status()
                for view in self.views:
                    view.last_state, view.restart_count = view.state, view.restart_count + 1
                    view.state = {"waiting": {"reason": "CrashLoopBackOff", "message":
                                              f"back-off {backoff:.0f}s restarting failed "
                                              f"container={view.name} pod={self.name}"}}
                await self._step(backoff)
                backoff = min(backoff * 2, 300.0)
                continue
            for view in self.views:
                view.state = {"running": {"startedAt": now}}
                view.started = True
            await self._step(self.profile.ready.sample(self.rng))
            for view in self.views:
                view.ready = True
            break
        self._sync_status()
        if self.profile.complete is None or policy == "Always":
            return
        await anyio.sleep(self.profile.complete.sample(self.rng))
        now = rfc3339(self.ctx.clock.now())
        for view in self.views:
            started = view.state.get("running", {}).get("startedAt", now)
            view.state = {"terminated": {"exitCode": 0, "reason": "Completed",
                                         "startedAt": started, "finishedAt": now,
                                         "containerID": view.container_id}}
            view.ready = False
        self._sync_status()

    async def _step(self, delay: float) -> None:
        """Write what is true now, then wait `delay`; a zero delay writes nothing, so
        this state and the next go out in one write."""
        if delay > 0:
            self._sync_status()
            await anyio.sleep(delay)

    def _sync_status(self) -> None:
        pod = self.pod if self._last_status is None else {**self.pod,
                                                          "status": self._last_status}
        status = pod_status(pod=pod, views=self.views, sandbox_ready=self.sandbox_ready,
                            host_ip=self.ctx.host_ip, pod_ip=self.pod_ip,
                            start_time=self.start_time, now=rfc3339(self.ctx.clock.now()))
        if status == self._last_status:
            return
        uid = self.uid

        def put(obj: Obj) -> None:
            if obj.get("metadata", {}).get("uid") != uid:
                raise NotFound(f'pods "{self.name}" not found')
            obj["status"] = status
        try:
            self.ctx.registry.mutate(PODS, self.namespace, self.name, put,
                                     subresource="status")
        except NotFound:
            return
        except ApiError as exc:
            self.log.warning("status write failed", error=str(exc))
            return
        self._last_status = status
