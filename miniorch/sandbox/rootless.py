"""Rootless pod sandboxes: user namespaces instead of root, no veth, no cgroups.

    RootlessSandbox.create(spec)        (a PodSandbox whose shim is _rootless_shim.py)
      └─ shim: user ns (invoking user = root inside) + net/pid/uts/ipc/mnt namespaces,
         `lo` only, init as PID 1, <state dir>/net.sock handing out pod-side sockets
    start_container / exec / logs       as for root sandboxes (same shim protocol, same
                                        overlay rootfs: Linux ≥ 5.11 mounts overlayfs in
                                        a user namespace)
    PodNetDialer.connect(pod_ip, port)  pod IP → that pod's net.sock → a TCP socket of
                                        the pod's netns, connected to 127.0.0.1:port

Why this shape: without root there is no veth and no bridge, so pod IPs (still
allocated from the node's /24 and shown by `get pods -o wide`) are *virtual*: nothing
routes them. The host reaches a pod only through its shim, and the one primitive that
crosses network namespaces without privileges is a filesystem unix socket. Instead of
a userspace forwarder per port, the shim passes the host a socket created inside the
pod's namespace (SCM_RIGHTS); connecting it reaches the pod's loopback directly, for
any port, declared or not.

Limits, said at `up`: no cgroups (no cpu/memory/pids limits; `stop` kills a
container's process group, `destroy` the whole PID namespace), pods cannot reach each
other or ClusterIPs (each has only `lo`), image layers with whiteouts need root.

Invariants: the dialer knows exactly the sandboxes alive in this process (registered
by `create`, dropped by `destroy`); everything else is `PodSandbox`'s.
"""

from __future__ import annotations

import array
import contextlib
import errno
import os
import signal
import socket
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.abc

from miniorch.core.dialer import Dialer, TcpDialer, connect_socket
from miniorch.sandbox.cgroups import Cgroups
from miniorch.sandbox.pod import (
    ContainerProcess,
    ContainerSpec,
    PodSandbox,
    PodSandboxSpec,
    shim_command,
)

ROOTLESS_SHIM = Path(__file__).with_name("_rootless_shim.py")
NET_SOCK = "net.sock"


def make_removable(root: Path) -> None:
    """Give the user back every directory under `root`. overlayfs leaves its `work/work`
    dir with mode 000; root deletes it anyway, the invoking user (root only inside the
    pod's user namespace) cannot, so `rmtree` would silently leave the tree behind."""
    if not root.exists():
        return
    # Top-down: a directory is opened up before os.walk descends into it.
    for directory, subdirs, _ in os.walk(root):
        for name in subdirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(directory, name), 0o700, follow_symlinks=False)


class _NoCgroup:
    """Stands in for a CgroupHandle: a container's "cgroup" is its process group (the
    shim makes each container a session leader)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pgid: int | None = None
        self._children: dict[str, _NoCgroup] = {}

    @property
    def procs_files(self) -> list[str]:
        return []

    @property
    def dirs(self) -> list[Path]:
        return []

    def child(self, name: str) -> _NoCgroup:
        return self._children.setdefault(name, _NoCgroup(name))

    def pids(self) -> list[int]:
        if self.pgid is None:
            return []
        try:
            os.killpg(self.pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [self.pgid]

    def oom_kills(self) -> int:
        return 0

    def memory_usage(self) -> int:
        return 0

    def kill_all(self, *, timeout: float = 5.0) -> None:
        del timeout
        if self.pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signal.SIGKILL)

    def destroy(self) -> None:
        for leaf in self._children.values():
            leaf.kill_all()


class _NoCgroups:
    def handle(self, name: str) -> _NoCgroup:
        return _NoCgroup(name)


class RootlessSandbox(PodSandbox):
    """A PodSandbox in user namespaces (see the module docstring)."""

    def __init__(self, spec: PodSandboxSpec, *, dialer: PodNetDialer | None = None) -> None:
        super().__init__(spec, cast(Cgroups, _NoCgroups()))
        self._dialer = dialer

    @property
    def net_sock(self) -> Path:
        return self.spec.state_dir / NET_SOCK

    def describe(self) -> dict[str, Any]:
        return {"init_pid": self._init_pid, "netns": "", "ip": self.spec.ip, "cgroup": [],
                "id": self.spec.id, "rootless": True, "net_sock": str(self.net_sock)}

    @classmethod
    async def create_rootless(cls, spec: PodSandboxSpec, *,
                              dialer: PodNetDialer | None = None) -> RootlessSandbox:
        sandbox = cls(spec, dialer=dialer)
        await sandbox._create_or_destroy()
        if dialer is not None:
            dialer.register(spec.ip, sandbox.net_sock)
        return sandbox

    async def _create(self) -> None:
        spec = self.spec
        await self._spawn_shim(ROOTLESS_SHIM)  # no spawner: always a direct child
        await self._configure_shim({
            "hostname": spec.hostname, "ip": spec.ip, "etc_binds": self._write_etc_binds(),
            "init": spec.init, "net_sock": str(self.net_sock), "tmpfs": self._tmpfs_config()})

    async def start_container(self, cspec: ContainerSpec) -> ContainerProcess:
        proc = await super().start_container(cspec)
        # The "cgroup" of the container is its process group (it is a session leader).
        cast(_NoCgroup, proc.cgroup).pgid = proc.pid
        return proc

    async def destroy(self, grace_seconds: float = 0) -> None:
        """Stop the containers, end the shim (the kernel then kills the PID namespace
        and, with its last process, the network namespace). Idempotent."""
        if self._dialer is not None:
            self._dialer.unregister(self.spec.ip, self.net_sock)
        with anyio.CancelScope(shield=True):
            await self._end_shim(grace_seconds)
            self._shim = None
            with contextlib.suppress(FileNotFoundError):
                self.net_sock.unlink()
            # Containers' writable layers sit beside the state dir (node/runtime.py):
            # make them removable for whoever deletes the pod dir.
            await anyio.to_thread.run_sync(make_removable, self.spec.state_dir.parent / ".rw")
            self._destroyed = True


async def pod_socket(net_sock: Path) -> socket.socket:
    """A fresh TCP socket created inside the pod's network namespace (not connected)."""
    # sun_path holds 108 bytes and pod dirs can be longer: go through an fd of the dir.
    dir_fd = os.open(net_sock.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # connect_socket closes `unix` if the connect fails.
        await connect_socket(unix, f"/proc/self/fd/{dir_fd}/{net_sock.name}")  # type: ignore[arg-type]
        try:
            while True:
                try:
                    _, ancdata, _, _ = unix.recvmsg(1, socket.CMSG_SPACE(4))
                    break
                except BlockingIOError:
                    await anyio.wait_readable(unix)
        finally:
            unix.close()
    finally:
        os.close(dir_fd)
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(payload[:4])
            return socket.socket(fileno=fds[0])
    raise ConnectionRefusedError(errno.ECONNREFUSED,
                                 f"the pod's shim at {net_sock} handed out no socket")


class PodNetDialer:
    """A `Dialer` for rootless pods: registered pod IPs go through their shim's
    net.sock; any other address is plain TCP (loopback listeners, the API)."""

    def __init__(self, fallback: Dialer | None = None) -> None:
        self._pods: dict[str, Path] = {}
        self._fallback = fallback or TcpDialer()

    def register(self, ip: str, net_sock: Path) -> None:
        self._pods[ip] = net_sock

    def unregister(self, ip: str, net_sock: Path) -> None:
        # Only our own entry: the IP may already belong to a newer pod.
        if self._pods.get(ip) == net_sock:
            del self._pods[ip]

    def knows(self, ip: str) -> bool:
        return ip in self._pods

    async def connect(self, host: str, port: int) -> socket.socket:
        net_sock = self._pods.get(host)
        if net_sock is None:
            return await self._fallback.connect(host, port)
        try:
            sock = await pod_socket(net_sock)
        except FileNotFoundError:
            # The pod is gone (or not yet there): what TCP would say to a closed port.
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"pod {host} is gone") from None
        return await connect_socket(sock, ("127.0.0.1", port))


def rootless_exec_command(spec_json: str) -> list[str]:
    """The helper command `exec_in_sandbox` runs when not root."""
    return shim_command(ROOTLESS_SHIM, "exec", spec_json)


__all__ = ["NET_SOCK", "PodNetDialer", "RootlessSandbox", "make_removable", "pod_socket",
           "rootless_exec_command"]
