"""One pod worker per pod UID: sandbox, containers, probes, restarts, status, termination.

    Kubelet watch ──put(pod)──► Mailbox ──► PodWorker.run
                                               ├─ _live: IP → volumes (volumes.py; FailedMount
                                               │    until their ConfigMaps/Secrets exist) →
                                               │    [start slot] sandbox (retry, back-off)
                                               │    → first container starts
                                               │    └─ _supervise (one per container):
                                               │         image → env (envvars; waits in
                                               │         CreateContainerConfigError while a
                                               │         ConfigMap/Secret is missing, woken
                                               │         by ConfigWatch) → start → logs + probes
                                               │         → exit → restart per policy,
                                               │           CrashLoopBackOff back-off
                                               └─ _until_kill: deletionTimestamp / removed
                                                    → not Ready → out of every Endpoints
                                                    (bounded) → stop containers (grace) → destroy
                                                    → delete the pod (grace 0)
    every state change ──► _sync_status ──► registry (status subresource, only if changed)
    ConfigWatch (a referenced ConfigMap/Secret changed) ──► volumes swapped in place,
                                                            waiting containers retried

Invariants:
- Only this worker writes this pod's status, and only when it changed; the status it
  writes is computed from its own `ContainerView`s (never merged with what it read),
  through the status subresource with a UID check (a namesake pod is never touched).
- Events go to the node's EventSink queue, never straight to the store (see events.py).
- A container is restarted only by its supervisor and never once `terminating` is set;
  a kill (deletion or removal) cannot be undone by a later update (Mailbox is sticky).
- Kubelet stop (cancellation) stops the sandbox with a capped grace but leaves the pod
  object alone: a later cluster start recreates the sandbox (restartCount kept).
- Everything the worker started is gone when `run` returns, cancelled or not.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import secrets
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from io import TextIOWrapper
from pathlib import Path
from typing import TypeVar

import anyio
import structlog

from miniorch.api.errors import ApiError, Conflict, NotFound
from miniorch.api.kinds import ENDPOINTS, PODS, SERVICES
from miniorch.api.registry import Registry
from miniorch.api.satokens import ServiceAccountTokens
from miniorch.core import podfiles
from miniorch.core.clock import Clock, rfc3339
from miniorch.core.dialer import Dialer
from miniorch.core.objects import NodeName, Obj, is_terminating, name_of, namespace_of, uid_of
from miniorch.core.quantity import parse_quantity
from miniorch.core.resolvconf import ResolvConf
from miniorch.core.settings import Settings
from miniorch.node import nodeinfo
from miniorch.node.config import KubeletConfig
from miniorch.node.configwatch import ConfigWatch
from miniorch.node.cri import (
    ContainerConfig,
    ContainerRuntime,
    ExitInfo,
    ImageInfo,
    ImagePullError,
    Mount,
    NoImageSource,
    PullAuth,
    RuntimeContainer,
    RuntimeFailure,
    RuntimeSandbox,
    SandboxConfig,
)
from miniorch.node.dnsconfig import host_for_pods, pod_dns
from miniorch.node.envvars import (
    ConfigError,
    PodFacts,
    container_env,
    expand,
    service_env,
    skipped_message,
)
from miniorch.node.events import EventSink
from miniorch.node.hostports import forwarding, host_ports
from miniorch.node.ipam import IpAllocator
from miniorch.node.mailbox import Mailbox, PodUpdate
from miniorch.node.probes import ExecFn, ProbeSpec, run_probe
from miniorch.node.security import SecurityContextError, apply_fs_group, container_security
from miniorch.node.stats import PodStartTimer
from miniorch.node.status import ContainerView, phase, pod_status
from miniorch.node.volumes import PodVolumes, TokenError, VolumeError
from miniorch.sandbox.security import ContainerSecurity

_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class NodeContext:
    """What every pod worker of one node shares (read-only but for `ipam`)."""

    name: NodeName
    host_ip: str
    registry: Registry
    settings: Settings
    clock: Clock
    runtime: ContainerRuntime
    config: KubeletConfig
    ipam: IpAllocator
    events: EventSink
    start_slots: anyio.CapacityLimiter
    """How many pods of this node may be in their start path at once."""
    gateway: str
    prefix_len: int
    dialer: Dialer | None = None
    """How probes reach pod IPs (None: plain TCP; rootless mode: through the pod's
    shim, see core.dialer)."""
    tokens: ServiceAccountTokens | None = None
    """Issues the pods' projected service-account tokens (the TokenRequest a kubelet
    would send, made in process); None: pods get no token (FailedMount)."""


class _StalePod(Exception):
    """The pod in the store has another UID: ours is gone, a namesake replaced it."""


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String() for whole seconds: 10s, 1m20s, 5m0s."""
    total = math.ceil(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{secs}s"


def declared_ports(pod: Obj) -> tuple[int, ...]:
    """Every TCP containerPort the pod's containers declare (SandboxConfig.ports)."""
    return tuple(int(p["containerPort"])
                 for c in pod.get("spec", {}).get("containers") or []
                 for p in c.get("ports") or []
                 if p.get("containerPort") and (p.get("protocol") or "TCP") == "TCP")


def container_argv(container: Obj, image: ImageInfo, env: dict[str, str]) -> tuple[str, ...]:
    """command/args over the image's Entrypoint/Cmd, by Kubernetes' rules: a command
    replaces both Entrypoint and Cmd; args alone replace only Cmd."""
    command = container.get("command")
    args = container.get("args")
    if command:
        argv = [*command, *(args or [])]
    elif args:
        argv = [*image.entrypoint, *args]
    else:
        argv = [*image.entrypoint, *image.cmd]
    if command or args:
        argv = [expand(str(a), env) for a in argv]
    return tuple(str(a) for a in argv)


def base_env(image: ImageInfo, pod: Obj, services: dict[str, str] | None = None
             ) -> dict[str, str]:
    """What a container's env starts from: PATH, the image's ENV, the Services'
    variables (envvars.service_env; the spec's env and envFrom override them, as
    kubelet only adds those not already set), HOSTNAME."""
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            **image.env, **(services or {}), "HOSTNAME": pod_hostname(pod)}


def pod_hostname(pod: Obj) -> str:
    return str(pod.get("spec", {}).get("hostname") or name_of(pod))


def cpu_millis(value: object) -> int:
    return math.ceil(parse_quantity(value) * 1000)


def memory_bytes(value: object) -> int:
    return math.ceil(parse_quantity(value))


ENDPOINTS_LEAVE_SECONDS = 2.0
"""At most this long a deleted pod's containers wait for it to leave the Endpoints
(the endpoints controller normally takes milliseconds)."""
ENDPOINTS_SETTLE_SECONDS = 0.05
"""Then this long for the Service proxy's Endpoints watch to deliver the change."""


def pod_limits(pod: Obj) -> tuple[int | None, int | None]:
    """Pod-level cgroup limits: the sum over containers, if every container has one
    (a single unlimited container makes the pod unlimited, as kubelet's pod cgroup)."""
    cpu: int | None = 0
    memory: int | None = 0
    for container in pod.get("spec", {}).get("containers") or []:
        limits = (container.get("resources") or {}).get("limits") or {}
        cpu = cpu + cpu_millis(limits["cpu"]) if cpu is not None and "cpu" in limits else None
        memory = (memory + memory_bytes(limits["memory"])
                  if memory is not None and "memory" in limits else None)
    return cpu or None, memory or None


class _LogFile:
    """One container incarnation's CRI log file (sync writes: small, and `logs -f`
    must see every line as soon as it is written)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIOWrapper = path.open("a", encoding="utf-8")

    def write(self, stream: str, data: bytes, *, partial: bool) -> None:
        self._file.write(podfiles.format_log_line(
            stream, data.decode("utf-8", "replace"), partial=partial))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


MAX_LINE = 16 * 1024


async def _pump(source: AsyncIterator[bytes], log: _LogFile, stream: str) -> None:
    pending = b""
    try:
        async for chunk in source:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                log.write(stream, line, partial=False)
            while len(pending) > MAX_LINE:
                log.write(stream, pending[:MAX_LINE], partial=True)
                pending = pending[MAX_LINE:]
            log.flush()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    finally:
        if pending:
            log.write(stream, pending, partial=True)
        log.flush()


class PodWorker:
    def __init__(self, ctx: NodeContext, pod: Obj) -> None:
        self.ctx = ctx
        self.uid = uid_of(pod)
        self.namespace = namespace_of(pod)
        self.name = name_of(pod)
        self.mailbox = Mailbox(pod)
        self.pod = pod
        self.log = structlog.get_logger(__name__).bind(
            node=ctx.name, pod=f"{self.namespace}/{self.name}")
        self.pod_dir = podfiles.pod_dir(ctx.settings.pods_dir, self.namespace, self.name,
                                        self.uid)
        self.sandbox: RuntimeSandbox | None = None
        self.sandbox_ready = False
        self.pod_ip = ""
        self.start_time = ""
        self.terminating = False
        self.views: dict[str, ContainerView] = {}
        self.running: dict[str, RuntimeContainer] = {}
        self._last_status: Obj | None = None
        self._torn_down = False
        self.finished_before = False
        self._first_attempts: dict[str, anyio.Event] = {}
        self._all_ready = anyio.Event()
        self.config = ConfigWatch(ctx.registry, pod)
        """The ConfigMaps and Secrets the pod references (env, envFrom, volumes)."""
        self.volumes = PodVolumes(pod, self.pod_dir, self.config, tokens=self._issue_token,
                                  now=lambda: ctx.clock.now().timestamp())
        self.config.on_change(self._refresh_volumes)
        self.start_timer = PodStartTimer(ctx.registry.metrics)
        """Times this pod's start for /metrics (sandbox, running, ready)."""

    @property
    def host_network(self) -> bool:
        return (self.pod.get("spec") or {}).get("hostNetwork") is True

    # ---- lifecycle ---------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.config.run)
                tg.start_soon(self._live)
                if self.volumes.has_tokens:
                    tg.start_soon(self._renew_tokens)
                kill = await self._until_kill()
                await self._stop_containers(self._kill_grace(kill), reason="Killing")
                # Back-off sleeps, image retries, a sandbox being retried: all moot now.
                tg.cancel_scope.cancel()
            await self._teardown(grace=0)
            if not kill.removed:
                self._delete_pod()
            self._remove_pod_dir(keep_logs=False)
        finally:
            if not self._torn_down:
                # Kubelet stop (or a crash of this worker): stop the pod, keep the object.
                # The sandbox's destroy gives every process the (capped) grace period.
                self.terminating = True
                grace = min(self._spec_grace(), self.ctx.config.shutdown_grace_cap)
                await self._teardown(grace=grace)
                self._remove_pod_dir(keep_logs=True)

    def _issue_token(self, audience: str, seconds: int) -> tuple[str, float]:
        """A token bound to this pod (kubelet's TokenRequest with boundObjectRef)."""
        tokens = self.ctx.tokens
        if tokens is None:
            raise TokenError("no service-account token issuer on this node")
        spec = self.pod.get("spec") or {}
        account = str(spec.get("serviceAccountName") or "default")
        request = {"spec": {"audiences": [audience] if audience else [],
                            "expirationSeconds": seconds,
                            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                               "name": self.name, "uid": self.uid}}}
        try:
            answered = tokens.request_token(self.ctx.registry, self.namespace, account,
                                            request, now=self.ctx.clock.now().timestamp())
        except ApiError as exc:
            raise TokenError(str(exc)) from exc
        status = answered["status"]
        spec_seconds = int(answered["spec"]["expirationSeconds"])
        return str(status["token"]), self.ctx.clock.now().timestamp() + spec_seconds

    async def _renew_tokens(self) -> None:
        """Rewrite projected volumes when their token is due (80 % of its life)."""
        while True:
            due = self.volumes.next_token_refresh()
            wait = 5.0 if due is None else max(due - self.ctx.clock.now().timestamp(), 1.0)
            await anyio.sleep(wait)
            if due is not None and self.ctx.clock.now().timestamp() >= due:
                self._refresh_volumes()

    async def _until_kill(self) -> PodUpdate:
        while True:
            update = await self.mailbox.get()
            self.pod = update.pod
            if update.removed or is_terminating(update.pod):
                return update

    def _spec_grace(self) -> float:
        grace = self.pod.get("spec", {}).get("terminationGracePeriodSeconds")
        return 30.0 if grace is None else float(grace)

    def _kill_grace(self, kill: PodUpdate) -> float:
        declared = kill.pod.get("metadata", {}).get("deletionGracePeriodSeconds")
        if kill.removed and declared is None:
            return self.ctx.config.force_delete_grace
        return self._spec_grace() if declared is None else float(declared)

    # ---- starting ----------------------------------------------------------------

    async def _live(self) -> None:
        pod = self.pod
        previous: Obj = pod.get("status") or {}
        old_views = {cs.get("name"): cs for cs in previous.get("containerStatuses") or []}
        for container in pod.get("spec", {}).get("containers") or []:
            name = str(container.get("name"))
            view = ContainerView(name=name, image=str(container.get("image", "")))
            old = old_views.get(name)
            if old:
                # A restarted cluster recreates the sandbox; the count carries on.
                view.restart_count = int(old.get("restartCount") or 0)
                view.last_state = old.get("lastState") or {}
            self.views[name] = view
        self.start_time = str(previous.get("startTime") or rfc3339(self.ctx.clock.now()))
        if previous.get("phase") in ("Succeeded", "Failed"):
            # Finished before (a cluster restart): nothing to run again, ever, and the
            # status it finished with stays as it is.
            self.finished_before = True
            return
        ipam = self.ctx.ipam
        old_ip = str(previous.get("podIP") or "")
        if self.host_network:
            self.pod_ip = self.ctx.host_ip  # the node's address, as status.podIP says
        elif not (old_ip and ipam.reserve(self.uid, old_ip)):
            self.pod_ip = ipam.allocate(self.uid)
        else:
            self.pod_ip = old_ip
        self._sync_status()
        containers = pod.get("spec", {}).get("containers") or []
        await self._setup_volumes()
        ports, problems = host_ports(pod, self.ctx.host_ip)
        for message in problems:
            self._event("Warning", "HostPortUnsupported", message)
        async with (forwarding(ports, lambda: self.pod_ip,
                               on_error=lambda m: self._event("Warning", "FailedHostPort", m)),
                    anyio.create_task_group() as tg):
            # First come, first served: a burst of pods goes through the start path a
            # few at a time, so the first pods run early instead of all of them late in
            # lock-step. The slot is held until every container's first start attempt.
            slot = self.ctx.start_slots
            await self._create_sandbox(slot)  # returns holding the slot
            try:
                self._first_attempts = {str(c.get("name")): anyio.Event() for c in containers}
                for container in containers:
                    tg.start_soon(self._supervise, container)
                for attempted in self._first_attempts.values():
                    await attempted.wait()
                # Keep the slot while the app boots (until Ready, or the cap for a slow
                # or crashing one): a burst on few cores then finishes pods one after
                # another instead of booting all of them at once and all of them late.
                with anyio.move_on_after(self.ctx.config.start_slot_ready_wait):
                    await self._all_ready.wait()
            finally:
                slot.release_on_behalf_of(self)
        if phase(self.pod, list(self.views.values())) in ("Succeeded", "Failed"):
            # A finished pod keeps its status and IP but gives back its processes.
            with anyio.CancelScope(shield=True):
                await self._teardown(grace=0, final=False)
            self._sync_status()

    async def _setup_volumes(self) -> None:
        """Volumes before the sandbox, as kubelet's WaitForAttachAndMount: a missing
        ConfigMap/Secret keeps the pod in ContainerCreating (FailedMount, retried when
        it appears or after a back-off)."""
        volumes = self.volumes
        for name in volumes.unsupported():
            self._event("Warning", "FailedMount", f'volume "{name}": only configMap, secret '
                        "and emptyDir volumes are supported; the containers run without it")
        delay = 0.0
        config = self.ctx.config
        while True:
            try:
                # On the loop, not in a thread: the registry is not thread-safe, and a
                # volume is a few small files.
                volumes.setup()
                fs_group = ((self.pod.get("spec") or {}).get("securityContext")
                            or {}).get("fsGroup")
                apply_fs_group(self.pod_dir / ".volumes",
                               int(fs_group) if fs_group is not None else None)
                break
            except VolumeError as exc:
                self._event("Warning", "FailedMount", exc.event_message())
                delay = (config.config_backoff_base if not delay
                         else min(delay * 2, config.config_backoff_cap))
                await self.config.wait_change(delay)
        spec = self.pod.get("spec") or {}
        mounted = volumes.mounted_names({str(c.get("name")): c
                                         for c in spec.get("containers") or []})
        if mounted and not self.ctx.runtime.supports_mounts:
            self._event("Warning", "FailedMount",
                        f"volumes {', '.join(mounted)} are not mounted: plain processes have "
                        "no mount namespace (isolation is off); the containers run without "
                        f"them (their files are under {volumes.root})")

    def _refresh_volumes(self) -> None:
        """A referenced ConfigMap/Secret changed: swap the volume files (atomic writer)."""
        try:
            changed = self.volumes.refresh()
        except VolumeError as exc:
            self._event("Warning", "FailedMount", exc.event_message())
            return
        if changed:
            self.log.info("volumes updated", volumes=changed)

    def _first_attempt_done(self, name: str) -> None:
        event = self._first_attempts.get(name)
        if event is not None:
            event.set()

    async def _create_sandbox(self, slot: anyio.CapacityLimiter) -> None:
        cpu, memory = pod_limits(self.pod)
        dns_settings = self.ctx.settings.dns
        dns = pod_dns(self.pod, cluster_domain=dns_settings.cluster_domain,
                      cluster_dns=dns_settings.service_ip,
                      host=host_for_pods(ResolvConf.read(dns_settings.host_resolv_conf),
                                         dns_settings.service_ip))
        for reason, message in dns.warnings:
            self._event("Warning", reason, message)
        spec = self.pod.get("spec") or {}
        config = SandboxConfig(
            pod_uid=self.uid, namespace=self.namespace, name=self.name,
            hostname=socket.gethostname() if self.host_network else pod_hostname(self.pod),
            ip=self.pod_ip, host_network=self.host_network,
            host_pid=spec.get("hostPID") is True, host_ipc=spec.get("hostIPC") is True,
            prefix_len=self.ctx.prefix_len, gateway=self.ctx.gateway,
            bridge=self.ctx.settings.network.bridge_name, cpu_millis=cpu,
            memory_bytes=memory, pids_max=self.ctx.config.default_pids_max,
            pod_dir=self.pod_dir, ports=declared_ports(self.pod), tmpfs=self.volumes.tmpfs(),
            resolv_conf=dns.conf.render())
        delay = 0.0
        while True:
            await slot.acquire_on_behalf_of(self)
            try:
                # Shielded: a half-created sandbox (veth up, cgroup made) must be
                # recorded in self.sandbox so teardown can remove it.
                with anyio.CancelScope(shield=True):
                    sandbox = await self.ctx.runtime.create_sandbox(config)
                self.sandbox = sandbox
                break  # keeps the slot: the caller releases it after the first starts
            except BaseException as exc:
                slot.release_on_behalf_of(self)
                if not isinstance(exc, RuntimeFailure):
                    raise
                delay = (self.ctx.config.sandbox_backoff_base if not delay else
                         min(delay * 2, self.ctx.config.sandbox_backoff_cap))
                self.log.warning("sandbox creation failed", error=str(exc), retry_in=delay)
                self._event("Warning", "FailedCreatePodSandBox",
                            f"Failed to create pod sandbox: {exc}")
                await anyio.sleep(delay)
        try:
            self.sandbox_ready = True
            self.start_timer.mark("sandbox")
            # The runtime decides where the pod answers (ProcessRuntime: a loopback alias).
            self.pod_ip = sandbox.ip
            self._write_sandbox_file()
        except BaseException:
            slot.release_on_behalf_of(self)
            raise

    def _write_sandbox_file(self) -> None:
        if self.sandbox is None:
            return
        podfiles.write_sandbox(self.pod_dir, {
            **self.sandbox.describe(),
            "init_pid": self.sandbox.init_pid, "netns": self.sandbox.netns,
            "ip": self.pod_ip, "node": self.ctx.name,
            "containers": {name: {"pid": proc.pid,
                                  "restartCount": self.views[name].restart_count,
                                  # what an exec into it must be restricted to
                                  "security": getattr(proc, "security", None)}
                           for name, proc in self.running.items()},
        })

    # ---- containers ----------------------------------------------------------------

    async def _pull(self, container: Obj, view: ContainerView) -> ImageInfo:
        """The container's image by its `imagePullPolicy` (defaults filled by the API):
        IfNotPresent pulls only a missing image; Always re-pulls whenever a registry
        serves the reference (a built-in or locally built image is used as it is);
        Never uses the local image or waits in ErrImageNeverPull. Pulls run in the
        runtime's worker threads, never on this event loop, with the credentials of
        the pod's imagePullSecrets (read afresh for every attempt, as kubelet does)."""
        ref = str(container.get("image", ""))
        policy = str(container.get("imagePullPolicy") or "IfNotPresent")
        config = self.ctx.config
        delay = 0.0
        while True:
            runtime = self.ctx.runtime
            present = await runtime.resolve_image(ref)
            if present is not None and (policy != "Always" or not runtime.can_pull(ref)):
                self._event("Normal", "Pulled",
                            f'Container image "{ref}" already present on machine')
                return present
            if policy == "Never":
                reason = "ErrImageNeverPull"
                detail = message = (f'Container image "{ref}" is not present with pull '
                                    "policy of Never")
                self._event("Warning", reason, message)
            else:
                self._event("Normal", "Pulling", f'Pulling image "{ref}"')
                began = self.ctx.clock.monotonic()
                try:
                    image = await runtime.pull_image(ref, self._pull_secrets())
                except NoImageSource as exc:
                    if present is not None:  # nothing to re-pull from: the local copy it is
                        self._event("Normal", "Pulled",
                                    f'Container image "{ref}" already present on machine')
                        return present
                    detail = str(exc)
                except ImagePullError as exc:
                    detail = str(exc)
                else:
                    took = self.ctx.clock.monotonic() - began
                    self._event("Normal", "Pulled",
                                f'Successfully pulled image "{ref}" in {took:.3f}s '
                                f"({took:.3f}s including waiting). "
                                f"Image size: {image.size} bytes.")
                    return image
                reason = "ErrImagePull"
                message = f'Failed to pull image "{ref}": {detail}'
                self._event("Warning", "Failed", message)
                self._event("Warning", "Failed", f"Error: {reason}")
            delay = config.image_backoff_base if not delay else min(delay * 2,
                                                                    config.image_backoff_cap)
            view.state = {"waiting": {"reason": reason, "message": message}}
            self._sync_status()
            self._first_attempt_done(view.name)
            # ErrImagePull shows until the next sync notices the back-off, as in kubelet.
            await anyio.sleep(delay * 0.2)
            if reason == "ErrImagePull":
                view.state = {"waiting": {"reason": "ImagePullBackOff",
                                          "message": f'Back-off pulling image "{ref}": '
                                                     f"ErrImagePull: {detail}"}}
                self._event("Normal", "BackOff", f'Back-off pulling image "{ref}"')
                self._event("Warning", "Failed", "Error: ImagePullBackOff")
                self._sync_status()
            await anyio.sleep(delay * 0.8)

    def _pull_secrets(self) -> PullAuth | None:
        """Credentials from the pod's `imagePullSecrets` (`kubernetes.io/dockerconfigjson`
        or the older `kubernetes.io/dockercfg`), first secret first for a registry named
        twice. Missing or malformed secrets are skipped with kubelet's warning event."""
        from miniorch.images.regconfig import parse_auths

        refs = self.pod.get("spec", {}).get("imagePullSecrets") or []
        names = [str(r.get("name")) for r in refs if isinstance(r, dict) and r.get("name")]
        if not names:
            return None
        auth: dict[str, tuple[str, str]] = {}
        missing: list[str] = []
        for name in names:
            secret = self.config.secret(namespace_of(self.pod), name)
            data = (secret or {}).get("data") or {}
            raw = data.get(".dockerconfigjson") or data.get(".dockercfg")
            try:
                if raw is None:
                    raise ValueError("no .dockerconfigjson")
                creds = parse_auths(json.loads(base64.b64decode(raw)))
            except (ValueError, TypeError, UnicodeDecodeError):
                missing.append(name)
                continue
            for registry_key, c in creds.items():
                auth.setdefault(registry_key, (c.username, c.password))
        if missing:
            self._event("Warning", "FailedToRetrieveImagePullSecret",
                        f"Unable to retrieve some image pull secrets ({', '.join(missing)}); "
                        "attempting to pull the image may not succeed.")
        return auth or None

    async def _configure(self, container: Obj, view: ContainerView,
                         image: ImageInfo) -> dict[str, str]:
        """The container's env; while a required ConfigMap/Secret (or key) is missing it
        waits in CreateContainerConfigError (see `_until_configured`)."""
        settings = self.ctx.settings
        facts = PodFacts(pod_ip=self.pod_ip, host_ip=self.ctx.host_ip,
                         node_allocatable=lambda: nodeinfo.capacity(
                             max_pods=settings.max_pods_per_node,
                             storage_path=settings.home))
        result = await self._until_configured(view, ConfigError, lambda: container_env(
            container, self.pod, base=base_env(image, self.pod, self._service_env()),
            sources=self.config, facts=facts))
        for kind, where, names in result.skipped:
            self._event("Warning", "InvalidEnvironmentVariableNames",
                        skipped_message(kind, where, names))
        return result.env

    def _service_env(self) -> dict[str, str]:
        registry = self.ctx.registry
        services = registry.list(SERVICES, self.namespace, shared=True)[0]
        if self.namespace != "default":
            master = registry.try_get(SERVICES, "default", "kubernetes")
            services = [*services, *([master] if master else [])]
        return service_env(self.pod, services)

    async def _security(self, container: Obj, view: ContainerView,
                        image: ImageInfo) -> ContainerSecurity:
        """The container's ContainerSecurity; one the kubelet refuses (runAsNonRoot and
        a root image...) waits in CreateContainerConfigError (see `_until_configured`)."""
        return await self._until_configured(view, SecurityContextError, lambda: (
            container_security(self.pod, container, image_user=image.user,
                               seccomp_root=self.ctx.settings.home / "seccomp")))

    async def _until_configured(self, view: ContainerView, refusal: type[Exception],
                                attempt: Callable[[], _T]) -> _T:
        """`attempt()` until it stops raising `refusal`: meanwhile the container waits in
        CreateContainerConfigError with the reason as an event, retried when a ConfigMap
        or Secret changes or after a back-off (the kubelet retries on its next sync)."""
        config = self.ctx.config
        delay = 0.0
        while True:
            try:
                return attempt()
            except refusal as exc:
                view.state = {"waiting": {"reason": "CreateContainerConfigError",
                                          "message": str(exc)}}
                self._event("Warning", "Failed", f"Error: {exc}")
                self._sync_status()
                self._first_attempt_done(view.name)
                delay = (config.config_backoff_base if not delay
                         else min(delay * 2, config.config_backoff_cap))
                await self.config.wait_change(delay)

    async def _supervise(self, container: Obj) -> None:
        name = str(container.get("name"))
        view = self.views[name]
        config = self.ctx.config
        policy = self.pod.get("spec", {}).get("restartPolicy") or "Always"
        backoff = 0.0
        first = True
        assert self.sandbox is not None
        while not self.terminating:
            image = await self._pull(container, view)
            env = await self._configure(container, view, image)
            if not first:
                view.restart_count += 1
            first = False
            started_mono = self.ctx.clock.monotonic()
            if self.terminating:
                return
            security = await self._security(container, view, image)
            try:
                spec = ContainerConfig(
                    name=name, image=image, argv=container_argv(container, image, env),
                    env=env, workdir=str(container.get("workingDir") or image.workdir or "/"),
                    restart_count=view.restart_count, mounts=self._mounts(container),
                    security=security)
                if not spec.argv:
                    raise RuntimeFailure("no command specified")
                proc = await self.sandbox.start_container(spec)
            except RuntimeFailure as exc:
                view.state = {"waiting": {"reason": "RunContainerError", "message": str(exc)}}
                self._event("Warning", "Failed", f"Error: {exc}")
                self._first_attempt_done(name)
                exit_info = ExitInfo(exit_code=128)
            else:
                started_at = rfc3339(self.ctx.clock.now())
                exit_info = await self._run_container(container, view, image, proc, started_at)
            if self.terminating:
                return
            restart = policy == "Always" or (policy == "OnFailure" and exit_info.exit_code != 0)
            if not restart:
                self._sync_status()
                return
            if self.ctx.clock.monotonic() - started_mono >= config.crash_backoff_reset:
                backoff = 0.0
            delay = backoff
            backoff = (config.crash_backoff_base if not backoff
                       else min(backoff * 2, config.crash_backoff_cap))
            if delay > 0:
                view.state = {"waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {go_duration(delay)} restarting failed "
                               f"container={name} pod={self.name}_{self.namespace}({self.uid})"}}
                self._event("Warning", "BackOff", "Back-off restarting failed container "
                            f"{name} in pod {self.name}_{self.namespace}({self.uid})")
                self._sync_status()
                await anyio.sleep(delay)

    def _mounts(self, container: Obj) -> tuple[Mount, ...]:
        if not self.ctx.runtime.supports_mounts:
            return ()
        try:
            return self.volumes.mounts_for(container)
        except VolumeError as exc:
            raise RuntimeFailure(exc.event_message()) from exc

    async def _run_container(self, container: Obj, view: ContainerView, image: ImageInfo,
                             proc: RuntimeContainer, started_at: str) -> ExitInfo:
        """From a started process to its exit: logs, probes, status."""
        name = view.name
        container_id = f"miniorch://{secrets.token_hex(32)}"
        view.container_id = container_id
        view.image_id = image.id
        view.state = {"running": {"startedAt": started_at}}
        view.started = True
        view.ready = False
        self.running[name] = proc
        self._event("Normal", "Created", f"Created container {name}")
        self._event("Normal", "Started", f"Started container {name}")
        self._write_sandbox_file()
        self._first_attempt_done(name)
        self.log.info("container started", container=name, pid=proc.pid,
                      restart_count=view.restart_count)
        log_file = _LogFile(podfiles.container_log(self.pod_dir, name, view.restart_count))
        try:
            async with anyio.create_task_group() as pumps:
                for stream, source in (("stdout", proc.stdout), ("stderr", proc.stderr)):
                    if source is not None:
                        pumps.start_soon(_pump, source, log_file, stream)
                async with anyio.create_task_group() as probes:
                    probes.start_soon(self._readiness, container, view, proc)
                    probes.start_soon(self._liveness, container, view, proc)
                    self._sync_status()
                    exit_info = await proc.wait()
                    probes.cancel_scope.cancel()
                # The pipes may still hold the last lines: drain briefly, not forever (a
                # grandchild that inherited stdout could keep them open).
                pumps.cancel_scope.deadline = anyio.current_time() + 0.5
        finally:
            log_file.close()
            self.running.pop(name, None)
        finished_at = rfc3339(self.ctx.clock.now())
        terminated: Obj = {
            "exitCode": exit_info.exit_code,
            "reason": ("OOMKilled" if exit_info.oom_killed else
                       "Completed" if exit_info.exit_code == 0 else "Error"),
            "startedAt": started_at, "finishedAt": finished_at, "containerID": container_id,
        }
        if exit_info.signal:
            terminated["signal"] = exit_info.signal
        self.log.info("container exited", container=name, exit_code=exit_info.exit_code,
                      signal=exit_info.signal)
        view.ready = False
        view.started = False
        policy = self.pod.get("spec", {}).get("restartPolicy") or "Always"
        final = self.terminating or policy == "Never" or (
            policy == "OnFailure" and exit_info.exit_code == 0)
        if final:
            view.state = {"terminated": terminated}
        else:
            view.last_state = {"terminated": terminated}
        self._write_sandbox_file()
        return exit_info

    # ---- probes --------------------------------------------------------------------

    def _exec_fn(self, proc: RuntimeContainer) -> ExecFn:
        sandbox = self.sandbox

        async def run(argv: list[str]) -> tuple[int, bytes]:
            assert sandbox is not None
            return await sandbox.exec(proc, argv)
        return run

    async def _readiness(self, container: Obj, view: ContainerView,
                         proc: RuntimeContainer) -> None:
        declared = container.get("readinessProbe")
        spec = ProbeSpec.from_spec(declared, container) if declared else None
        implicit: list[ProbeSpec] = []
        if spec is None:
            # No probe: ready once every declared TCP port accepts connections (kubelet
            # would say ready at once; a pod that cannot answer yet should not get traffic).
            implicit = [ProbeSpec(kind="tcpSocket", port=int(p["containerPort"]))
                        for p in container.get("ports") or []
                        if p.get("containerPort") and (p.get("protocol") or "TCP") == "TCP"]
            if not implicit:
                self._set_ready(view, True)
                return
        clock = self.ctx.clock
        fast = self.ctx.config.fast_probe_interval
        if spec is not None and spec.initial_delay:
            await anyio.sleep(spec.initial_delay)
        began = clock.monotonic()
        last_event = -math.inf
        successes = failures = 0
        ever_ready = False
        exec_fn = self._exec_fn(proc)
        while True:
            if spec is None:
                results = [await run_probe(p, pod_ip=self.pod_ip, exec_fn=exec_fn,
                                           dialer=self.ctx.dialer)
                           for p in implicit]
                if all(r.ok for r in results):
                    self._set_ready(view, True)
                    return
                await anyio.sleep(fast)
                continue
            result = await run_probe(spec, pod_ip=self.pod_ip, exec_fn=exec_fn,
                                     dialer=self.ctx.dialer)
            now = clock.monotonic()
            if result.ok:
                failures = 0
                successes += 1
                if successes >= spec.success_threshold:
                    ever_ready = True
                    self._set_ready(view, True)
            else:
                successes = 0
                failures += 1
                if view.ready and failures >= spec.failure_threshold:
                    self._set_ready(view, False)
                # While starting, the fast retries would flood events: one per period.
                if (ever_ready or now - began >= spec.period) and \
                        now - last_event >= spec.period * 0.9:
                    last_event = now
                    self._event("Warning", "Unhealthy",
                                f"Readiness probe failed: {result.message}")
            await anyio.sleep(spec.period if ever_ready else fast)

    async def _liveness(self, container: Obj, view: ContainerView,
                        proc: RuntimeContainer) -> None:
        declared = container.get("livenessProbe")
        spec = ProbeSpec.from_spec(declared, container) if declared else None
        if spec is None:
            return
        await anyio.sleep(spec.initial_delay)
        exec_fn = self._exec_fn(proc)
        failures = 0
        while True:
            result = await run_probe(spec, pod_ip=self.pod_ip, exec_fn=exec_fn,
                                     dialer=self.ctx.dialer)
            if result.ok:
                failures = 0
            else:
                failures += 1
                self._event("Warning", "Unhealthy", f"Liveness probe failed: {result.message}")
                if failures >= spec.failure_threshold:
                    self._event("Normal", "Killing", f"Container {view.name} failed liveness "
                                "probe, will be restarted")
                    await proc.stop(self._spec_grace())
                    return
            await anyio.sleep(spec.period)

    def _set_ready(self, view: ContainerView, ready: bool) -> None:
        if view.ready != ready and "running" in view.state:
            view.ready = ready
            self._sync_status()
            if ready and all(v.ready for v in self.views.values()):
                self._all_ready.set()

    # ---- stopping ------------------------------------------------------------------

    async def _stop_containers(self, grace: float, *, reason: str) -> None:
        self.terminating = True
        running = dict(self.running)
        for name, view in self.views.items():
            view.ready = False
            if reason and name in running:
                self._event("Normal", reason, f"Stopping container {name}")
        if reason:
            self._sync_status()
        if not running:
            return
        if reason == "Killing":
            await self._leave_endpoints(grace)
        async with anyio.create_task_group() as tg:
            for proc in running.values():
                tg.start_soon(proc.stop, grace)

    async def _leave_endpoints(self, grace: float) -> None:
        """Hold SIGTERM until no Endpoints lists this pod as Ready (bounded by the grace
        period and ENDPOINTS_LEAVE_SECONDS), then ENDPOINTS_SETTLE_SECONDS for the
        Service proxy's watch to apply it. Kubernetes signals the containers at the same
        moment the endpoints controller and kube-proxy learn of the deletion, so a pod
        can still be sent connections after its app stopped taking them
        (kubernetes/kubernetes#43576); here no new connection reaches a stopping app."""
        if grace <= 0:
            return
        with anyio.move_on_after(min(grace, ENDPOINTS_LEAVE_SECONDS)):
            if self._listed_ready_in_endpoints():
                # Opened before the re-check, so no change can slip between the two.
                async with self.ctx.registry.watch(ENDPOINTS, self.namespace) as watch:
                    if self._listed_ready_in_endpoints():
                        async for _ in watch:
                            if not self._listed_ready_in_endpoints():
                                break
            await anyio.sleep(ENDPOINTS_SETTLE_SECONDS)

    def _listed_ready_in_endpoints(self) -> bool:
        items, _ = self.ctx.registry.list(ENDPOINTS, self.namespace, shared=True)
        for endpoints in items:
            for subset in endpoints.get("subsets") or []:
                for address in subset.get("addresses") or []:
                    if (address.get("targetRef") or {}).get("uid") == self.uid:
                        return True
        return False

    async def _teardown(self, *, grace: float, final: bool = True) -> None:
        sandbox, self.sandbox = self.sandbox, None
        self.sandbox_ready = False
        if sandbox is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await sandbox.destroy(grace)
                except Exception:
                    self.log.exception("sandbox destroy failed")
        if final:
            self.ctx.ipam.release(self.uid)
            self._torn_down = True

    def _remove_pod_dir(self, *, keep_logs: bool) -> None:
        if not keep_logs:
            shutil.rmtree(self.pod_dir, ignore_errors=True)
            return
        podfiles.sandbox_file(self.pod_dir).unlink(missing_ok=True)
        for child in (self.pod_dir.iterdir() if self.pod_dir.is_dir() else ()):
            # Container dirs hold `<n>.log` files; everything else is runtime scratch.
            if child.is_dir() and not any(f.suffix == ".log" for f in child.iterdir()):
                shutil.rmtree(child, ignore_errors=True)

    def _delete_pod(self) -> None:
        # NotFound: already gone; Conflict: a namesake with another UID, not ours.
        with contextlib.suppress(NotFound, Conflict):
            self.ctx.registry.delete(PODS, self.namespace, self.name, grace_period_seconds=0,
                                     preconditions={"uid": self.uid})
        self.log.info("pod deleted")

    # ---- API writes ----------------------------------------------------------------

    def _sync_status(self) -> None:
        if self.finished_before:
            return
        pod = self.pod if self._last_status is None else {**self.pod,
                                                          "status": self._last_status}
        status = pod_status(pod=pod, views=list(self.views.values()),
                            sandbox_ready=self.sandbox_ready, host_ip=self.ctx.host_ip,
                            pod_ip=self.pod_ip, start_time=self.start_time,
                            now=rfc3339(self.ctx.clock.now()))
        if status == self._last_status:
            return
        self.start_timer.follow(status)
        uid = self.uid

        def put(obj: Obj) -> None:
            if obj.get("metadata", {}).get("uid") != uid:
                raise _StalePod
            obj["status"] = status
        try:
            self.ctx.registry.mutate(PODS, self.namespace, self.name, put,
                                     subresource="status")
        except (NotFound, _StalePod):
            return
        except ApiError as exc:
            self.log.warning("status write failed", error=str(exc))
            return
        self._last_status = status

    def _event(self, type: str, reason: str, message: str) -> None:
        self.ctx.events.record(self.pod, type=type, reason=reason, message=message)
