"""ProcessRuntime: pods as plain host processes, no isolation at all.

    SandboxConfig(ip=10.244.1.5) ──► ProcessSandbox(ip=127.244.1.5)   (a loopback alias)
    ContainerConfig(argv, env)  ──► anyio.open_process(argv, new session)

This is the fallback for a machine where namespaces are unavailable, and the real fake
that the kubelet's state machine (probes, restarts, back-off, status, termination) is
tested with. A pod's address is its pod IP moved into 127.0.0.0/8 (10.244.1.5 →
127.244.1.5: every 127/8 address answers on `lo` without configuration), handed to
the processes as `MINIORCH_POD_IP` so they can bind it (without a network namespace two
pods cannot both bind 0.0.0.0:8080). Images are whatever the caller registers.

Invariants: each container is its own session (process group), so `stop` signals the
whole tree it spawned; nothing here outlives `destroy`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
from anyio.abc import Process

from miniorch.node.cri import (
    ContainerConfig,
    ExitInfo,
    ImageInfo,
    NoImageSource,
    PullAuth,
    RuntimeContainer,
    RuntimeFailure,
    SandboxConfig,
)


def loopback_alias(ip: str) -> str:
    """10.244.1.5 → 127.244.1.5."""
    packed = ipaddress.IPv4Address(ip).packed
    return str(ipaddress.IPv4Address(bytes([127]) + packed[1:]))


def _exit_info(returncode: int) -> ExitInfo:
    if returncode < 0:
        return ExitInfo(exit_code=128 - returncode, signal=-returncode)
    return ExitInfo(exit_code=returncode)


def _killpg(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class ProcessContainer:
    def __init__(self, process: Process) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def stdout(self) -> AsyncIterator[bytes] | None:
        return self._process.stdout

    @property
    def stderr(self) -> AsyncIterator[bytes] | None:
        return self._process.stderr

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def wait(self) -> ExitInfo:
        return _exit_info(await self._process.wait())

    async def stop(self, grace_seconds: float) -> None:
        with anyio.CancelScope(shield=True):
            if self._process.returncode is None:
                _killpg(self._process.pid, signal.SIGTERM)
                with anyio.move_on_after(grace_seconds):
                    await self._process.wait()
            # The leader may be gone while its children live on: kill the group anyway.
            _killpg(self._process.pid, signal.SIGKILL)
            await self._process.wait()
            await self._process.aclose()


class ProcessSandbox:
    def __init__(self, config: SandboxConfig, ip: str) -> None:
        self.config = config
        self._ip = ip
        self._containers: list[ProcessContainer] = []
        self.destroyed = False

    @property
    def ip(self) -> str:
        return self._ip

    @property
    def init_pid(self) -> int:
        return os.getpid()

    @property
    def netns(self) -> str:
        return ""

    def _env(self, env: Mapping[str, str]) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env,
                "MINIORCH_POD_IP": self._ip}

    async def start_container(self, config: ContainerConfig) -> RuntimeContainer:
        if self.destroyed:
            raise RuntimeFailure("sandbox is destroyed")
        # The image's workdir means nothing on the host: run in the pod dir.
        workdir = str(self.config.pod_dir)
        try:
            process = await anyio.open_process(list(config.argv), cwd=workdir,
                                               env=self._env(config.env),
                                               start_new_session=True)
        except OSError as exc:
            raise RuntimeFailure(f"failed to start {config.argv[:1]}: {exc}") from exc
        container = ProcessContainer(process)
        self._containers = [c for c in self._containers if c.returncode is None]
        self._containers.append(container)
        return container

    async def exec(self, container: RuntimeContainer, argv: list[str]) -> tuple[int, bytes]:
        result = await anyio.run_process(argv, check=False, env=self._env({}),
                                         cwd=str(self.config.pod_dir))
        return result.returncode, result.stdout + result.stderr

    def describe(self) -> dict[str, Any]:
        return {"init_pid": self.init_pid, "netns": self.netns, "isolated": False}

    async def destroy(self, grace_seconds: float) -> None:
        self.destroyed = True
        async with anyio.create_task_group() as tg:
            for container in self._containers:
                tg.start_soon(container.stop, grace_seconds)
        self._containers.clear()


class ProcessRuntime:
    """`images` maps references (`kubia`, `kubia:latest`) to what they run."""

    def __init__(self, images: Mapping[str, ImageInfo] | None = None, *,
                 fail_sandbox: str | None = None) -> None:
        self.images: dict[str, ImageInfo] = dict(images or {})
        self.fail_sandbox = fail_sandbox
        """If set, `create_sandbox` fails with this message (tests of the retry path)."""
        self.sandboxes: list[ProcessSandbox] = []

    @property
    def version(self) -> str:
        return "miniorch://0.1.0-processes"

    @property
    def supports_mounts(self) -> bool:
        return False  # host processes: no mount namespace to bind volumes in

    def can_pull(self, ref: str) -> bool:
        return False

    async def pull_image(self, ref: str, auth: PullAuth | None = None) -> ImageInfo:
        # Nothing to pull from: a test adds images to `self.images` instead.
        raise NoImageSource(f'image "{ref}" not found: no registry to pull it from '
                             f'(build it with "miniorch image build -t {ref} DIR")')

    async def resolve_image(self, ref: str) -> ImageInfo | None:
        if ref in self.images:
            return self.images[ref]
        if ":" not in ref.rsplit("/", 1)[-1]:
            return self.images.get(f"{ref}:latest")
        return None

    async def create_sandbox(self, config: SandboxConfig) -> ProcessSandbox:
        if self.fail_sandbox:
            raise RuntimeFailure(self.fail_sandbox)
        config.pod_dir.mkdir(parents=True, exist_ok=True)
        sandbox = ProcessSandbox(config, loopback_alias(config.ip))
        self.sandboxes = [s for s in self.sandboxes if not s.destroyed]
        self.sandboxes.append(sandbox)
        return sandbox

    def live_processes(self) -> list[int]:
        """PIDs still running in any sandbox (tests assert this is empty at the end)."""
        return [c.pid for s in self.sandboxes for c in s._containers
                if c.returncode is None]

