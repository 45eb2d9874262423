"""SandboxRuntime: the production ContainerRuntime over miniorch.sandbox + miniorch.images.

    SandboxConfig ──► PodSandboxSpec(id=mo-<uid hex>, state_dir=<pod dir>/.sandbox)
                          └─► PodSandbox.create  (netns + veth on the bridge, cgroup, init)
    ContainerConfig ──► ContainerSpec(argv, env, workdir,
                                      rootfs=RootfsSpec(image layers (topmost first),
                                                        <pod dir>/.rw/<name>/upper, .../work),
                                      mounts=BindMount per volumeMount,
                                      security=ContainerSecurity (node/security.py;
                                               RuntimeDefault if the kubelet gave none))
    SandboxConfig.tmpfs ──► PodSandboxSpec.tmpfs (emptyDir medium Memory)
                          └─► PodSandbox.start_container ──► ContainerProcess
    image refs ──► ImageStore.resolve (present) / ImageStore.pull (built-in base images,
                   then configured registries; one pull per ref at a time) ──► ImageInfo

Invariants: a restarted container gets a fresh writable layer (the upper dir is wiped
before each start, as Kubernetes gives a new container a new one); the `.sandbox` and
`.rw` dirs start with a dot, which no container name (a DNS label) can, so they never
clash with the `<container>/<n>.log` dirs. Image store calls are synchronous file work:
they run in worker threads.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread

from miniorch.images.errors import ImageError, PullAccessDenied
from miniorch.images.reference import parse_reference
from miniorch.images.store import ImageStore
from miniorch.node.cri import (
    ContainerConfig,
    ExitInfo,
    ImageInfo,
    ImagePullError,
    NoImageSource,
    PullAuth,
    RuntimeContainer,
    RuntimeFailure,
    SandboxConfig,
)
from miniorch.sandbox.cgroups import CgroupHandle, Cgroups
from miniorch.sandbox.pod import (
    DEFAULT_RESOLV_CONF,
    BindMount,
    ContainerProcess,
    ContainerSpec,
    PodSandbox,
    PodSandboxSpec,
    RootfsSpec,
    SandboxError,
    ShimSpawner,
    TmpfsMount,
    exec_in_sandbox,
)
from miniorch.sandbox.security import ContainerSecurity

SANDBOX_ID_MAX = 15
"""Interface-name limit: the sandbox id names the host veth."""


def tmpfs_mounts(config: SandboxConfig) -> list[TmpfsMount]:
    return [TmpfsMount(path=t.path, size_bytes=t.size_bytes) for t in config.tmpfs]


def sandbox_id(prefix: str, pod_uid: str) -> str:
    return (prefix + pod_uid.replace("-", "").lower())[:SANDBOX_ID_MAX]


class SandboxContainer:
    def __init__(self, process: ContainerProcess) -> None:
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def cgroup(self) -> CgroupHandle:
        """Its cgroup leaf: where its resource usage is read (node/stats.py)."""
        return self.process.cgroup

    @property
    def security(self) -> dict[str, Any] | None:
        """Its restrictions in wire form, for an exec into it (sandbox.json)."""
        return self.process.security

    @property
    def stdout(self) -> AsyncIterator[bytes] | None:
        return self.process.stdout

    @property
    def stderr(self) -> AsyncIterator[bytes] | None:
        return self.process.stderr

    async def wait(self) -> ExitInfo:
        status = await self.process.wait()
        return ExitInfo(exit_code=status.code, signal=status.signal,
                        oom_killed=status.oom_killed)

    async def stop(self, grace_seconds: float) -> None:
        await self.process.stop(grace_seconds)


class SandboxHandle:
    def __init__(self, sandbox: PodSandbox, config: SandboxConfig, store: ImageStore) -> None:
        self.sandbox = sandbox
        self.config = config
        self._store = store

    @property
    def ip(self) -> str:
        return self.config.ip

    @property
    def init_pid(self) -> int:
        return self.sandbox.init_pid

    @property
    def netns(self) -> str:
        return self.sandbox.netns

    def describe(self) -> dict[str, Any]:
        return self.sandbox.describe()

    def _prepare_rootfs(self, config: ContainerConfig) -> RootfsSpec:
        image = self._store.resolve(config.image.id)
        if image is None:
            raise RuntimeFailure(f"image {config.image.ref} ({config.image.id}) was removed")
        layers = self._store.unpacked_layers(image)
        scratch = self.config.pod_dir / ".rw" / config.name
        shutil.rmtree(scratch, ignore_errors=True)
        (scratch / "upper").mkdir(parents=True)
        (scratch / "work").mkdir()
        return RootfsSpec(lower_dirs=layers, upper_dir=scratch / "upper",
                          work_dir=scratch / "work")

    async def start_container(self, config: ContainerConfig) -> RuntimeContainer:
        try:
            rootfs = await anyio.to_thread.run_sync(self._prepare_rootfs, config)
        except (ImageError, OSError) as exc:
            raise RuntimeFailure(f"preparing the root filesystem: {exc}") from exc
        spec = ContainerSpec(name=config.name, argv=list(config.argv), env=dict(config.env),
                             workdir=config.workdir or "/", rootfs=rootfs,
                             mounts=[BindMount(source=m.host_path, target=m.container_path,
                                               read_only=m.read_only, create=m.create,
                                               within=m.within) for m in config.mounts],
                             security=config.security or ContainerSecurity())
        try:
            process = await self.sandbox.start_container(spec)
        except (SandboxError, OSError) as exc:
            raise RuntimeFailure(str(exc)) from exc
        return SandboxContainer(process)

    async def exec(self, container: RuntimeContainer, argv: list[str]) -> tuple[int, bytes]:
        proc = await exec_in_sandbox(self.sandbox.init_pid, argv, tty=False,
                                     container_pid=container.pid,
                                     security=getattr(container, "security", None))
        output = bytearray()
        try:
            async def drain(stream: AsyncIterator[bytes] | None) -> None:
                if stream is None:
                    return
                async for chunk in stream:
                    output.extend(chunk[:65536 - len(output)])
            async with anyio.create_task_group() as tg:
                tg.start_soon(drain, proc.stdout)
                tg.start_soon(drain, proc.stderr)
            code = await proc.wait()
        finally:
            await proc.aclose()
        return code, bytes(output)

    async def destroy(self, grace_seconds: float) -> None:
        await self.sandbox.destroy(grace_seconds)


class SandboxRuntime:
    """`id_prefix` names every sandbox (netns, veth, cgroup): `mo-` in a cluster;
    tests use a random one so leak checks and cleanup find only their own."""

    def __init__(self, *, images: ImageStore, cgroups: Cgroups | None = None,
                 id_prefix: str = "mo-", version: str = "0.1.0",
                 spawner: ShimSpawner | None = None) -> None:
        self.images = images
        # Shims forked by a zygote (the cluster's choice: much cheaper per pod); None
        # spawns each shim directly.
        self.spawner = spawner
        self.cgroups = cgroups or Cgroups()
        self.id_prefix = id_prefix
        self._version = version
        self._pull_locks: dict[str, anyio.Lock] = {}
        """Pods of one node (or of all nodes sharing this runtime) wanting the same
        image wait for one pull instead of each downloading it."""

    @property
    def version(self) -> str:
        return f"miniorch://{self._version}"

    def _info(self, ref: str, image: Any) -> ImageInfo:
        config = self.images.config(image)
        env: dict[str, str] = {}
        for item in config.env:
            key, _, value = item.partition("=")
            env[key] = value
        return ImageInfo(ref=ref, id=image.id, entrypoint=tuple(config.entrypoint or ()),
                         cmd=tuple(config.cmd or ()), env=env, workdir=config.workdir,
                         user=config.user, size=int(image.size))

    def _resolve(self, ref: str) -> ImageInfo | None:
        try:
            image = self.images.resolve(ref)
        except ImageError:
            return None
        return None if image is None else self._info(ref, image)

    def _pull(self, ref: str, auth: PullAuth | None) -> ImageInfo:
        try:
            image = self.images.pull(ref, auth=auth)
            if image is None:
                raise NoImageSource(str(PullAccessDenied(parse_reference(ref).familiar_repository)))
        except ImageError as exc:
            raise ImagePullError(str(exc)) from exc
        return self._info(ref, image)

    @property
    def supports_mounts(self) -> bool:
        return True

    def can_pull(self, ref: str) -> bool:
        try:
            return self.images.serves(ref)
        except ImageError:
            return False

    async def resolve_image(self, ref: str) -> ImageInfo | None:
        return await anyio.to_thread.run_sync(self._resolve, ref)

    async def pull_image(self, ref: str, auth: PullAuth | None = None) -> ImageInfo:
        lock = self._pull_locks.setdefault(ref, anyio.Lock())
        async with lock:
            # Abandoned on cancel (the pod went away): the thread finishes on its own and
            # a pull is all-or-nothing, so nothing half-written is left behind.
            return await anyio.to_thread.run_sync(self._pull, ref, auth,
                                                  abandon_on_cancel=True)

    async def create_sandbox(self, config: SandboxConfig) -> SandboxHandle:
        spec = PodSandboxSpec(
            id=sandbox_id(self.id_prefix, config.pod_uid), hostname=config.hostname,
            ip=config.ip, prefix_len=config.prefix_len, gateway=config.gateway,
            bridge=config.bridge, state_dir=config.pod_dir / ".sandbox",
            cpu_millis=config.cpu_millis, memory_bytes=config.memory_bytes,
            pids_max=config.pids_max, tmpfs=tmpfs_mounts(config),
            resolv_conf=(DEFAULT_RESOLV_CONF if config.resolv_conf is None
                         else config.resolv_conf),
            host_network=config.host_network, host_pid=config.host_pid,
            host_ipc=config.host_ipc)
        try:
            sandbox = await PodSandbox.create(spec, cgroups=self.cgroups,
                                              spawner=self.spawner)
        except (SandboxError, OSError, TimeoutError) as exc:
            raise RuntimeFailure(str(exc) or type(exc).__name__) from exc
        return SandboxHandle(sandbox, config, self.images)
