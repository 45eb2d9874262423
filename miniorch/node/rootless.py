"""Container runtimes for a user without root (`sandbox.mode` USERNS and PLAIN).

    UsernsRuntime  SandboxConfig ──► sandbox.rootless.RootlessSandbox (user + pid + uts
                   + ipc + mnt + net namespaces, overlay rootfs from the image layers,
                   no veth, no cgroups); pod IPs are virtual and reached through
                   `dialer` (a PodNetDialer the proxy and the probes share)
    PlainRuntime   SandboxConfig ──► a host process group (node.processes), no isolation:
                   the image's entrypoint runs on the host's filesystem, with absolute
                   paths that exist only in the image mapped into its unpacked layers
                   (`python -u /app.py` → `python -u <layer>/app.py`)

Plain mode's port rule: without network namespaces every pod shares the host's ports.
Each pod gets its pod IP moved into 127/8 (10.244.1.5 → 127.244.1.5) as
`MINIORCH_POD_IP`; an app that binds it (the kubia sample does) can run any number of
replicas, and the Service listeners (EXTERNAL-IP, ClusterIP: other loopback addresses)
do not collide with it. An app that binds 0.0.0.0 takes the port for the whole
machine: the next pod declaring that port is refused at sandbox creation with
`FailedCreatePodSandBox: port 8080 already in use on this machine (plain mode has no
network isolation)` and retried with back-off, so it runs once the port frees up (and
the Service's own listener on that port gets a `FailedToBind` warning).

Images, pulls and exec are SandboxRuntime's (exec enters a rootless pod's namespaces
through sandbox/_rootless_shim.py; in plain mode it runs on the host).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import socket
from pathlib import Path
from typing import cast

import anyio.to_thread

from miniorch.images.store import ImageStore
from miniorch.node.cri import (
    ContainerConfig,
    RuntimeContainer,
    RuntimeFailure,
    SandboxConfig,
)
from miniorch.node.processes import ProcessSandbox, loopback_alias
from miniorch.node.runtime import SandboxHandle, SandboxRuntime, sandbox_id, tmpfs_mounts
from miniorch.sandbox.cgroups import Cgroups
from miniorch.sandbox.pod import DEFAULT_PATH, PodSandboxSpec, RootfsSpec, SandboxError
from miniorch.sandbox.rootless import PodNetDialer, RootlessSandbox, make_removable


class _NoCgroupsAtAll:
    """Neither rootless runtime touches cgroups (SandboxRuntime only keeps the object)."""


class RootlessHandle(SandboxHandle):
    def _prepare_rootfs(self, config: ContainerConfig) -> RootfsSpec:
        # A restarted container's old writable layer has overlayfs' mode-000 work dir,
        # which the unprivileged user must open up before it can be wiped.
        make_removable(self.config.pod_dir / ".rw" / config.name)
        return super()._prepare_rootfs(config)


class UsernsRuntime(SandboxRuntime):
    def __init__(self, *, images: ImageStore, dialer: PodNetDialer,
                 id_prefix: str = "mo-") -> None:
        super().__init__(images=images, cgroups=cast(Cgroups, _NoCgroupsAtAll()),
                         id_prefix=id_prefix, version="0.1.0-rootless")
        self.dialer = dialer

    async def create_sandbox(self, config: SandboxConfig) -> SandboxHandle:
        # No `config.resolv_conf`: a rootless pod's network namespace has no route to
        # the cluster DNS (no bridge, no ClusterIPs; the cluster runs no DNS server in
        # this mode), so it keeps the sandbox's fail-fast placeholder.
        spec = PodSandboxSpec(
            id=sandbox_id(self.id_prefix, config.pod_uid), hostname=config.hostname,
            ip=config.ip, prefix_len=config.prefix_len, gateway=config.gateway,
            bridge="", state_dir=config.pod_dir / ".sandbox", pids_max=config.pids_max,
            tmpfs=tmpfs_mounts(config))
        try:
            sandbox = await RootlessSandbox.create_rootless(spec, dialer=self.dialer)
        except (SandboxError, OSError, TimeoutError) as exc:
            raise RuntimeFailure(str(exc) or type(exc).__name__) from exc
        return RootlessHandle(sandbox, config, self.images)


def port_free(ip: str, port: int) -> bool:
    """Whether `ip:port` can be bound now: False if anything listens on it or on
    0.0.0.0:`port` (an app that ignored MINIORCH_POD_IP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((ip, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


class PlainSandbox(ProcessSandbox):
    def __init__(self, config: SandboxConfig, ip: str, *, layers: PlainRuntime) -> None:
        super().__init__(config, ip)
        self._runtime = layers

    async def start_container(self, config: ContainerConfig) -> RuntimeContainer:
        argv = await anyio.to_thread.run_sync(self._runtime.host_argv, config)
        return await super().start_container(dataclasses.replace(config, argv=argv))

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "plain": True}


class PlainRuntime(SandboxRuntime):
    """Pods as plain host processes, with real images (see the module docstring)."""

    def __init__(self, *, images: ImageStore) -> None:
        super().__init__(images=images, cgroups=cast(Cgroups, _NoCgroupsAtAll()),
                         version="0.1.0-plain")

    @property
    def supports_mounts(self) -> bool:
        return False  # host processes: no mount namespace to bind volumes in

    def host_argv(self, config: ContainerConfig) -> tuple[str, ...]:
        """argv with what exists only in the image mapped into its layers: absolute
        paths (`/app.py`), and a command not on the host's PATH but on the image's
        (`python` → the image's /usr/local/bin/python, whose symlink target, if it is
        an absolute path present on the host, is used as is)."""
        image = self.images.resolve(config.image.id)
        layers = self.images.unpacked_layers(image) if image is not None else []

        def in_image(path: str) -> Path | None:
            for layer in layers:
                candidate = layer / path.lstrip("/")
                if candidate.is_symlink() or candidate.exists():
                    return candidate
            return None

        out: list[str] = []
        for index, arg in enumerate(config.argv):
            if arg.startswith("/") and not Path(arg).exists():
                found = in_image(arg)
                arg = str(found) if found is not None else arg
            elif index == 0 and "/" not in arg and shutil.which(arg) is None:
                image_path = config.env.get("PATH") or DEFAULT_PATH
                for directory in image_path.split(":"):
                    found = in_image(f"{directory}/{arg}")
                    if found is None:
                        continue
                    target = os.readlink(found) if found.is_symlink() else ""
                    arg = target if target.startswith("/") and Path(target).exists() \
                        else str(found)
                    break
            out.append(arg)
        return tuple(out)

    async def create_sandbox(self, config: SandboxConfig) -> PlainSandbox:  # type: ignore[override]
        alias = loopback_alias(config.ip)
        for port in config.ports:
            if not port_free(alias, port):
                raise RuntimeFailure(f"port {port} already in use on this machine (plain "
                                     "mode has no network isolation)")
        config.pod_dir.mkdir(parents=True, exist_ok=True)
        return PlainSandbox(config, alias, layers=self)
