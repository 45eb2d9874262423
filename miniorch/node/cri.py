"""The container runtime interface the kubelet is written against.

    Kubelet / PodWorker ──► ContainerRuntime.resolve_image(ref) ──► ImageInfo | None
                        ──► ContainerRuntime.pull_image(ref) ──► ImageInfo | ImagePullError
                        ──► ContainerRuntime.create_sandbox(SandboxConfig) ──► RuntimeSandbox
                              .start_container(ContainerConfig) ──► RuntimeContainer
                              .exec(container, argv)  (exec probes)
                              .destroy(grace)
                        ◄── RuntimeContainer.wait() -> ExitInfo, .stdout/.stderr byte streams

Two implementations: `node.runtime.SandboxRuntime` (real namespaces, veths, cgroups and
image root filesystems, from `miniorch.sandbox` and `miniorch.images`) and
`node.processes.ProcessRuntime` (plain host processes: the no-isolation fallback and the
real fake the kubelet's state machine is tested with).

Invariants: everything here is Kubernetes-free (no pod JSON crosses this line); the
kubelet translates the pod spec into these frozen configs. A runtime never restarts a
container by itself: restarts, back-off and probes are the kubelet's job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from miniorch.sandbox.security import ContainerSecurity


class RuntimeFailure(Exception):
    """A sandbox or container could not be created/started (the message is shown to
    the user in an event, e.g. `FailedCreatePodSandBox`)."""


PullAuth = Mapping[str, tuple[str, str]]
"""Registry (keyed as a Docker config.json's `auths`: `https://index.docker.io/v1/`,
`127.0.0.1:5000`) → (username, password): the credentials of a pod's imagePullSecrets,
for that pod's pulls only (CRI's PullImageRequest.auth)."""


class ImagePullError(Exception):
    """The image is not here and could not be fetched (→ ErrImagePull, ImagePullBackOff)."""


class NoImageSource(ImagePullError):
    """No registry serves this reference: a local copy, if any, is the only one there is
    (so `imagePullPolicy: Always` runs a locally built `kubia:latest`)."""


@dataclass(frozen=True, kw_only=True)
class ImageInfo:
    """A locally present image, as the kubelet needs it."""

    ref: str
    """The reference as the pod spec wrote it (`kubia`, `kubia:v2`)."""
    id: str
    """Image ID: the config digest, `sha256:...`."""
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str = ""
    user: str = ""
    """The image config's USER (`1000`, `app`, `app:staff`; empty: root)."""
    size: int = 0
    """Uncompressed bytes (the `Pulled` event's `Image size`); 0 if unknown."""


@dataclass(frozen=True, kw_only=True)
class Tmpfs:
    """A tmpfs over `path` in the pod's mount namespace (an emptyDir of medium Memory):
    every container of the pod shares it, and it goes with the sandbox."""

    path: Path
    size_bytes: int | None = None
    """None: the kernel's default (half the RAM)."""


@dataclass(frozen=True, kw_only=True)
class Mount:
    """A host file or directory bound into a container (a volumeMount)."""

    host_path: Path
    container_path: str
    read_only: bool = False
    create: bool = False
    """Create `host_path` as a directory if missing (an emptyDir subPath; on a tmpfs
    only the pod's mount namespace sees, so the runtime does it, not the kubelet)."""
    within: Path | None = None
    """For a subPath: the volume it must stay inside once symlinks are resolved (a
    container could plant a symlink to / in a shared emptyDir)."""


@dataclass(frozen=True, kw_only=True)
class SandboxConfig:
    """One pod's sandbox: network identity, cgroup limits, where its files go."""

    pod_uid: str
    namespace: str
    name: str
    hostname: str
    ip: str
    prefix_len: int
    gateway: str
    bridge: str
    cpu_millis: int | None
    """None: no CPU limit."""
    memory_bytes: int | None
    """None: no memory limit."""
    pids_max: int
    pod_dir: Path
    """$MINIORCH_HOME/pods/<ns>_<name>_<uid>: sandbox state, rootfs upper dirs, logs."""
    tmpfs: tuple[Tmpfs, ...] = ()
    resolv_conf: str | None = None
    """The pod's /etc/resolv.conf as the kubelet formed it (node/dnsconfig.py); None:
    the runtime's own. Runtimes without the pod network ignore it (see rootless.py)."""
    ports: tuple[int, ...] = ()
    """The pod's declared TCP containerPorts (a runtime without network isolation
    refuses a pod whose ports are taken: node/rootless.py PlainRuntime)."""
    host_network: bool = False
    """hostNetwork: the host's network and UTS namespaces, `ip` is the node's address
    (runtimes without isolation are on the host's network anyway)."""
    host_pid: bool = False
    host_ipc: bool = False


@dataclass(frozen=True, kw_only=True)
class ContainerConfig:
    name: str
    image: ImageInfo
    argv: tuple[str, ...]
    env: Mapping[str, str]
    workdir: str
    restart_count: int
    """Which incarnation this is (the runtime may key its scratch dirs on it)."""
    mounts: tuple[Mount, ...] = ()
    """Shallowest container path first."""
    security: ContainerSecurity | None = None
    """From the securityContext (node/security.py); None: a runtime's own default."""


@dataclass(frozen=True, kw_only=True)
class ExitInfo:
    exit_code: int
    """As a shell reports it: 128+N for death by signal N."""
    signal: int | None = None
    oom_killed: bool = False


class RuntimeContainer(Protocol):
    @property
    def pid(self) -> int:
        """The container's main process, as a host PID (`kill -9` it to crash the app)."""
        ...

    @property
    def stdout(self) -> AsyncIterator[bytes] | None: ...

    @property
    def stderr(self) -> AsyncIterator[bytes] | None: ...

    async def wait(self) -> ExitInfo:
        """Until the main process exits. Cancelling the wait leaves it running."""
        ...

    async def stop(self, grace_seconds: float) -> None:
        """SIGTERM, wait up to the grace period, SIGKILL the whole tree, reap."""
        ...


class RuntimeSandbox(Protocol):
    @property
    def ip(self) -> str:
        """Where the pod is reachable from the host (probes go here; status.podIP)."""
        ...

    @property
    def init_pid(self) -> int: ...

    @property
    def netns(self) -> str: ...

    async def start_container(self, config: ContainerConfig) -> RuntimeContainer: ...

    async def exec(self, container: RuntimeContainer, argv: list[str]) -> tuple[int, bytes]:
        """Run `argv` in the container's namespaces (exec probes): exit code and output.
        Callers bound it with `anyio.fail_after`; cancelling it kills the command."""
        ...

    def describe(self) -> dict[str, Any]:
        """Runtime facts for sandbox.json (init_pid, netns, cgroup dirs, ...), which the
        API server reads to exec into the pod."""
        ...

    async def destroy(self, grace_seconds: float) -> None:
        """Stop everything still running in the pod (with grace), then remove its
        network, cgroup and mounts. Idempotent."""
        ...


class ContainerRuntime(Protocol):
    @property
    def version(self) -> str:
        """`containerRuntimeVersion` in the Node's nodeInfo: `miniorch://0.1.0`."""
        ...

    async def resolve_image(self, ref: str) -> ImageInfo | None:
        """The image if it is present on this machine (never fetches)."""
        ...

    async def pull_image(self, ref: str, auth: PullAuth | None = None) -> ImageInfo:
        """Fetch an image from where it comes from (even if present: `imagePullPolicy:
        Always`), with `auth` before the machine's stored credentials; `ImagePullError`
        if it cannot be had (its message is shown to the user), `NoImageSource` if
        nothing serves `ref`."""
        ...

    @property
    def supports_mounts(self) -> bool:
        """Whether containers get their `Mount`s and sandboxes their `Tmpfs`s (False:
        no mount namespace, plain processes; the kubelet warns that volumes are off)."""
        ...

    def can_pull(self, ref: str) -> bool:
        """Whether a registry serves `ref` (cheap, no I/O): `Always` re-pulls a present
        image only then; built-in and locally built images are used as they are."""
        ...

    async def create_sandbox(self, config: SandboxConfig) -> RuntimeSandbox:
        """Raises `RuntimeFailure` (→ FailedCreatePodSandBox, retried with back-off)."""
        ...
