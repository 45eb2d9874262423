"""Pod sandboxes and their containers: the runtime the kubelet drives.

    PodSandbox.create(spec)
      ├─ spawn the shim (python -I -S _shim.py pod)   ┐ in parallel: the interpreter's
      ├─ cgroup miniorch/<id> (+ leaf init)          │ start-up overlaps the netlink
      ├─ netns <id>, veth <id> ═ eth0, on the bridge  ┘ and sysfs work
      └─ send the config: the shim enters the netns, unshares pid/uts/ipc/mnt, forks
         the pod init (PID 1)
    sandbox.start_container(spec)  → shim forks the container inside the namespaces
                                     (own mount ns + overlay rootfs + pivot_root if any)
    ContainerProcess.wait()        ← shim's waitpid() status, relayed over the socket
    sandbox.destroy()              → stop containers, close the socket (the shim kills
                                     the init, the kernel the namespace), rm cgroup/netns

Names: `spec.id` names the netns, the host veth and the cgroup, so it must be a valid
interface name (≤ 15 chars, [a-z0-9-]); cleanup finds leftovers by its prefix (the
kubelet uses ``mo-<hex>``).

Invariants:
- One request in flight on the shim socket at a time (a lock), so a reply is the next
  "reply" message; exit reports may arrive at any time and are kept by pid.
- No background task: whoever needs a message (a reply, an exit) reads the socket while
  the others wait for it (leader/follower), so a PodSandbox needs no task group.
- The cluster process must create sandboxes from its event-loop thread: the shim's
  PR_SET_PDEATHSIG fires when the *thread* that forked it exits.
- create() either returns a working sandbox or leaves nothing behind; destroy() is
  idempotent and works on a half-created sandbox.
- Keep the PodSandbox object while the pod should live: if it is garbage-collected its
  socket closes, and on EOF the shim kills the pod (netns and cgroup stay until
  destroy() or cleanup_leftovers()).
"""

from __future__ import annotations

import array
import collections
import contextlib
import fcntl
import json
import os
import signal
import socket
import struct
import sys
import termios
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
from anyio.abc import ByteReceiveStream, ByteSendStream

from miniorch.core.logging import get_logger
from miniorch.sandbox import _shim
from miniorch.sandbox._fdstream import FdReceiveStream, FdSendStream
from miniorch.sandbox.cgroups import CgroupHandle, Cgroups
from miniorch.sandbox.network import create_pod_network, delete_pod_network, netns_path
from miniorch.sandbox.security import ContainerSecurity, SecurityConfigError

log = get_logger(__name__)  # structlog, imported on first use (core.logging)

SHIM = Path(_shim.__file__)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHIM_START_TIMEOUT = 10.0
DEFAULT_RESOLV_CONF = (
    "# no cluster DNS reaches this sandbox: names resolve from /etc/hosts; a lookup "
    "fails fast\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n")


def shim_command(shim: Path, *args: str) -> list[str]:
    """The command running the standalone program `shim` (_shim.py, _rootless_shim.py)."""
    return [sys.executable, "-I", "-S", str(shim), *args]


class SandboxError(RuntimeError):
    """The sandbox could not do what was asked (the message says why)."""


@dataclass(frozen=True, kw_only=True)
class TmpfsMount:
    """A tmpfs the shim mounts over `path` in the pod's mount namespace, before any
    container: all containers share it, the host never sees it, it dies with the pod."""

    path: Path
    size_bytes: int | None = None


@dataclass(frozen=True, kw_only=True)
class BindMount:
    """A host path bound into a container's root filesystem at `target`."""

    source: Path
    target: str
    """Absolute, inside the container (symlinks resolved within its root)."""
    read_only: bool = False
    create: bool = False
    """mkdir `source` first (in the pod's mount namespace: it may be on a TmpfsMount)."""
    within: Path | None = None
    """`source`, symlinks resolved, must stay inside this directory."""


@dataclass(frozen=True, kw_only=True)
class PodSandboxSpec:
    id: str
    """Unique; names the netns, the host veth and the cgroup (≤ 15 chars, [a-z0-9-])."""
    hostname: str
    ip: str
    prefix_len: int
    gateway: str
    bridge: str
    state_dir: Path
    """A folder for runtime files (shim log, container merged dirs)."""
    cpu_millis: int | None = None
    memory_bytes: int | None = None
    pids_max: int | None = None
    init: bool = True
    """Fork a minimal init as PID 1 (pods). False: the first container started is PID 1
    itself, as Docker runs a standalone container (`ps` inside shows the app as PID 1);
    such a sandbox takes one container, and `init_pid` is that container's pid."""
    resolv_conf: str = DEFAULT_RESOLV_CONF
    """The pod's /etc/resolv.conf, as the kubelet formed it (the cluster DNS for
    `dnsPolicy: ClusterFirst`). The default is for sandboxes no DNS server reaches:
    a loopback nameserver fails fast where the host's would hang until its timeout."""
    tmpfs: Sequence[TmpfsMount] = ()
    host_network: bool = False
    """Share the host's network and UTS namespaces (hostNetwork): no netns, no veth,
    `ip` is the node's address and the hostname the machine's."""
    host_pid: bool = False
    """Share the host's PID namespace (hostPID): the init is not PID 1, so it forwards
    signals to the pod's cgroup, never to pid -1 (the whole host)."""
    host_ipc: bool = False
    """Share the host's IPC namespace (hostIPC)."""


@dataclass(frozen=True, kw_only=True)
class RootfsSpec:
    lower_dirs: Sequence[Path]
    """Unpacked image layers, topmost first."""
    upper_dir: Path
    work_dir: Path
    """Same filesystem as upper_dir (an overlayfs rule), both empty or from a previous run."""
    merged_dir: Path | None = None
    """Mount point (only mounted inside the container's own mount namespace);
    default: <state_dir>/rootfs/<container name>."""


@dataclass(frozen=True, kw_only=True)
class ContainerSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str = "/"
    rootfs: RootfsSpec | None = None
    mounts: Sequence[BindMount] = ()
    """Bound after the rootfs is set up, in this order (parents before children)."""
    tty: bool = False
    """Run on a new pty (its controlling terminal): `ContainerProcess.stdout` reads and
    `.stdin` writes the pty master; stderr is merged, as on a terminal. Without a tty
    stdin is /dev/null."""
    security: ContainerSecurity | None = None
    """User, capabilities, seccomp, masked paths (sandbox/security.py). None: root with
    the shim's own privileges (standalone containers of tools that ask for it; the
    kubelet always gives one)."""


@dataclass(frozen=True)
class ExitStatus:
    exit_code: int | None
    signal: int | None
    oom_killed: bool = False

    @property
    def code(self) -> int:
        """Shell convention: the exit code, or 128 + signal (what Kubernetes reports)."""
        if self.exit_code is not None:
            return self.exit_code
        return 128 + (self.signal or 0)


class _ShimChannel:
    """The SOCK_SEQPACKET socket to one pod's shim (see the module docstring)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.closed = False
        self.exits: dict[int, ExitStatus] = {}
        self.init_exit: ExitStatus | None = None
        self._replies: collections.deque[dict[str, Any]] = collections.deque()
        self._reading = False
        self._changed = anyio.Event()
        self._request_lock = anyio.Lock()

    async def _recv(self) -> dict[str, Any] | None:
        while True:
            try:
                data = self.sock.recv(_shim.MAX_MSG)
            except BlockingIOError:
                await anyio.wait_readable(self.sock)
                continue
            except OSError:
                return None
            if not data:
                return None
            msg: dict[str, Any] = json.loads(data)
            return msg

    def _dispatch(self, msg: dict[str, Any] | None) -> None:
        if msg is None:
            self.closed = True
            return
        op = msg.get("op")
        if op == "exit":
            self.exits[int(msg["pid"])] = ExitStatus(msg["exit_code"], msg["signal"])
        elif op == "init-exit":
            self.init_exit = ExitStatus(msg["exit_code"], msg["signal"])
        else:
            self._replies.append(msg)

    async def pump_until(self, done: Callable[[], bool]) -> None:
        """Read messages until `done()`; one reader at a time, the others wait."""
        while not done():
            if self.closed:
                raise SandboxError("the pod shim is gone")
            if self._reading:
                await self._changed.wait()
                continue
            self._reading = True
            try:
                self._dispatch(await self._recv())
            finally:
                self._reading = False
                changed, self._changed = self._changed, anyio.Event()
                changed.set()

    async def request(self, msg: dict[str, Any], fds: Sequence[int] = ()) -> dict[str, Any]:
        async with self._request_lock:
            if self.closed:
                raise SandboxError("the pod shim is gone")
            payload = json.dumps(msg).encode()
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
            while True:
                try:
                    self.sock.sendmsg([payload], ancillary if fds else [])
                    break
                except BlockingIOError:
                    await anyio.wait_writable(self.sock)
            await self.pump_until(lambda: bool(self._replies))
            return self._replies.popleft()

    async def wait_exit(self, pid: int) -> ExitStatus:
        try:
            await self.pump_until(lambda: pid in self.exits)
        except SandboxError:
            # The shim died, so the kernel killed the pod's PID namespace: SIGKILL.
            return self.exits.get(pid, ExitStatus(None, signal.SIGKILL))
        return self.exits[pid]

    def close(self) -> None:
        if self.sock.fileno() != -1:
            anyio.notify_closing(self.sock)
            self.sock.close()
        self.closed = True


class ContainerProcess:
    """A running container: its app's host pid, output streams, exit and stop."""

    def __init__(self, *, name: str, pid: int, channel: _ShimChannel, cgroup: CgroupHandle,
                 pod_cgroup: CgroupHandle, stdout: ByteReceiveStream,
                 stderr: ByteReceiveStream, pty_master: int | None = None,
                 security: dict[str, Any] | None = None) -> None:
        self.name = name
        self.pid = pid
        self.security = security
        """The wire form of its ContainerSecurity: pass it to `exec_in_sandbox` so an
        exec gets the container's restrictions."""
        self.stdout = stdout
        self.stderr = stderr
        self._pty_master = pty_master
        self.stdin: ByteSendStream | None = (
            FdSendStream(pty_master, owned=False) if pty_master is not None else None)
        self.cgroup = cgroup
        self._channel = channel
        self._pod_cgroup = pod_cgroup
        self._oom_before = pod_cgroup.oom_kills()
        self._status: ExitStatus | None = None

    @property
    def returncode(self) -> ExitStatus | None:
        return self._status

    def resize(self, cols: int, rows: int) -> None:
        """Set the pty's window size (no-op without a tty)."""
        if self._pty_master is not None:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self._pty_master, termios.TIOCSWINSZ,
                            struct.pack("HHHH", rows, cols, 0, 0))

    async def wait(self) -> ExitStatus:
        """The app's exit: a code, or the signal that killed it (kill -9 → signal 9)."""
        if self._status is None:
            status = await self._channel.wait_exit(self.pid)
            if status.signal == signal.SIGKILL and self._pod_cgroup.oom_kills() > self._oom_before:
                status = ExitStatus(None, signal.SIGKILL, oom_killed=True)
            self._status = status
        return self._status

    async def stop(self, grace_seconds: float) -> ExitStatus:
        """SIGTERM the app, wait up to the grace, then SIGKILL the container's whole
        process tree (its cgroup leaf) and reap it. Safe to call after it exited, twice,
        and under cancellation (the kill part is shielded)."""
        with anyio.CancelScope(shield=True):
            if self._status is None and grace_seconds > 0:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGTERM)
                with anyio.move_on_after(grace_seconds):
                    await self.wait()
            # Also the children a well-behaved app left behind.
            await anyio.to_thread.run_sync(self.cgroup.kill_all)
            status = await self.wait()
            await self.stdout.aclose()
            await self.stderr.aclose()
        return status


class _ShimPid:
    """A shim forked by the zygote (not our child): watched and killed through a pidfd,
    which cannot hit a recycled pid. Mirrors the part of anyio's Process we use."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._fd = os.pidfd_open(pid)
        self.returncode: int | None = None

    async def wait(self) -> int | None:
        if self.returncode is None and self._fd >= 0:
            # A pidfd turns readable once the process has exited.
            await anyio.wait_readable(self._fd)
            self.returncode = 0
        return self.returncode

    def kill(self) -> None:
        if self._fd >= 0:
            signal.pidfd_send_signal(self._fd, signal.SIGKILL)

    async def aclose(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class ShimSpawner:
    """Forks pod shims from one small pre-started process (`_shim.py zygote`).

    Spawning a shim straight from the cluster process costs a fork of a big process on
    the event loop plus ~70 ms of interpreter start-up per pod; the zygote pays the
    interpreter once. Pods still die with the cluster: cluster ─PDEATHSIG→ zygote
    ─PDEATHSIG→ shim ─PDEATHSIG→ init (and the PID namespace with it).

    Start it from the event-loop thread (PDEATHSIG follows the forking *thread*); it is
    started lazily by the first `spawn`. `aclose()` after every sandbox is destroyed.
    """

    def __init__(self) -> None:
        self._process: anyio.abc.Process | None = None
        self._channel: _ShimChannel | None = None
        self._lock = anyio.Lock()

    @staticmethod
    def available() -> bool:
        return hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")

    async def _ensure(self) -> _ShimChannel:
        async with self._lock:
            if self._channel is None or self._channel.closed:
                if self._process is not None:
                    await self._reap()
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                try:
                    self._process = await anyio.open_process(
                        shim_command(SHIM, "zygote", str(os.getpid())),
                        stdin=theirs.fileno(), stdout=None, stderr=None)
                finally:
                    theirs.close()
                self._channel = _ShimChannel(ours)
            return self._channel

    async def spawn(self, *, control: socket.socket, log_fd: int) -> _ShimPid:
        channel = await self._ensure()
        reply = await channel.request({"op": "spawn"}, fds=[control.fileno(), log_fd])
        if not reply.get("ok"):
            raise SandboxError(f"shim zygote: {reply.get('error')}")
        return _ShimPid(int(reply["pid"]))

    async def _reap(self) -> None:
        if self._channel is not None:
            self._channel.close()
        if self._process is not None:
            with anyio.CancelScope(shield=True):
                await self._process.wait()  # it waits for its shims, then exits
                await self._process.aclose()
        self._process = self._channel = None

    async def aclose(self) -> None:
        """Close the channel and wait for the zygote (it leaves once its shims are gone)."""
        await self._reap()


class PodSandbox:
    """One pod: namespaces, network, cgroup and a PID 1. See the module docstring."""

    def __init__(self, spec: PodSandboxSpec, cgroups: Cgroups,
                 spawner: ShimSpawner | None = None) -> None:
        self.spec = spec
        self._cgroups = cgroups
        self._spawner = spawner
        self.cgroup = cgroups.handle(spec.id)
        self._channel: _ShimChannel | None = None
        self._shim: anyio.abc.Process | _ShimPid | None = None
        self._init_pid: int | None = None
        self._containers: dict[str, ContainerProcess] = {}
        self._destroyed = False

    @property
    def init_pid(self) -> int:
        if self._init_pid is None and not self.spec.init and self._containers:
            return next(iter(self._containers.values())).pid
        if self._init_pid is None:
            raise SandboxError("sandbox has no init")
        return self._init_pid

    @property
    def netns(self) -> str:
        """The pod's named netns ("" for a hostNetwork pod: it has none)."""
        return "" if self.spec.host_network else self.spec.id

    @property
    def host_veth(self) -> str:
        return self.spec.id

    @property
    def containers(self) -> Mapping[str, ContainerProcess]:
        return self._containers

    def describe(self) -> dict[str, Any]:
        """What core.podfiles.write_sandbox stores for exec/cleanup by other layers."""
        return {"init_pid": self._init_pid, "netns": self.netns, "ip": self.spec.ip,
                "cgroup": [str(d) for d in self.cgroup.dirs], "id": self.spec.id}

    @classmethod
    async def create(cls, spec: PodSandboxSpec, *, cgroups: Cgroups | None = None,
                     spawner: ShimSpawner | None = None) -> PodSandbox:
        """`spawner`: fork the shim from a zygote (cheap); None: spawn it directly."""
        started = time.perf_counter()
        sandbox = cls(spec, cgroups or Cgroups(), spawner)
        await sandbox._create_or_destroy()
        log.debug("pod sandbox created", id=spec.id, init_pid=sandbox._init_pid,
                  ms=round((time.perf_counter() - started) * 1000, 1))
        return sandbox

    async def _create_or_destroy(self) -> None:
        """`_create()`; if that fails, `destroy()` what it made and raise."""
        try:
            await self._create()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.destroy()
            raise

    async def _spawn_shim(self, shim: Path) -> None:
        """Start the pod shim `shim` (from the spawner if any) on a new channel."""
        self.spec.state_dir.mkdir(parents=True, exist_ok=True)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._channel = _ShimChannel(ours)
        with open(self.spec.state_dir / "shim.log", "ab") as shim_log:  # noqa: ASYNC230 - µs
            try:
                if self._spawner is not None:
                    self._shim = await self._spawner.spawn(control=theirs,
                                                           log_fd=shim_log.fileno())
                else:
                    self._shim = await anyio.open_process(
                        shim_command(shim, "pod", str(os.getpid())),
                        stdin=theirs.fileno(), stdout=shim_log, stderr=shim_log)
            finally:
                theirs.close()

    def _write_etc_binds(self) -> dict[str, str]:
        """Write the pod's /etc files under the state dir: {target: source} to bind."""
        etc_dir = self.spec.state_dir / "etc"
        etc_dir.mkdir(exist_ok=True)
        etc_binds = {}
        for target, text in self._etc_files().items():
            source = etc_dir / Path(target).name
            source.write_text(text)
            etc_binds[target] = str(source)
        return etc_binds

    async def _configure_shim(self, config: dict[str, Any]) -> None:
        """Send the shim its pod config; it replies once the init runs."""
        assert self._channel is not None
        with anyio.fail_after(SHIM_START_TIMEOUT):
            reply = await self._channel.request(config)
        if not reply.get("ok"):
            raise SandboxError(f"pod shim failed: {reply.get('error')}")
        if reply.get("init_pid") is not None:
            self._init_pid = int(reply["init_pid"])

    async def _end_shim(self, grace_seconds: float) -> None:
        """Stop every container, close the channel and wait for the shim to leave (kill
        it after 2 s). Call shielded."""
        if self._containers:
            async with anyio.create_task_group() as tg:
                for proc in self._containers.values():
                    tg.start_soon(proc.stop, grace_seconds)
        if self._channel is not None:
            # EOF on its socket makes the shim kill the init; the kernel then kills
            # everything left in the PID namespace.
            self._channel.close()
        if self._shim is not None:
            with anyio.move_on_after(2):
                await self._shim.wait()
            if self._shim.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self._shim.kill()
                await self._shim.wait()
            await self._shim.aclose()

    async def _create(self) -> None:
        spec = self.spec
        # Spawn first: the interpreter starts while we build the cgroup and netns.
        await self._spawn_shim(SHIM)
        pod_cgroup = self._cgroups.create(spec.id, cpu_millis=spec.cpu_millis,
                                          memory_bytes=spec.memory_bytes,
                                          pids_max=spec.pids_max)
        init_cgroup = pod_cgroup.child("init") if spec.init else None
        if not spec.host_network:
            await create_pod_network(netns=self.netns, host_veth=self.host_veth, ip=spec.ip,
                                     prefix_len=spec.prefix_len, gateway=spec.gateway,
                                     bridge=spec.bridge)
        await self._configure_shim({
            "netns_path": None if spec.host_network else str(netns_path(self.netns)),
            "hostname": spec.hostname, "host_pid": spec.host_pid, "host_ipc": spec.host_ipc,
            "init_cgroup_procs": init_cgroup.procs_files if init_cgroup else [],
            "pod_cgroup_dirs": [str(d) for d in pod_cgroup.dirs],
            "etc_binds": self._write_etc_binds(), "init": spec.init,
            "tmpfs": self._tmpfs_config()})

    def _tmpfs_config(self) -> list[dict[str, Any]]:
        for tmpfs in self.spec.tmpfs:
            # Made here, as the cluster's user: the shim mounts over it in the pod's
            # mount namespace, where the host's copy stays an empty directory.
            tmpfs.path.mkdir(parents=True, exist_ok=True)
        return [{"path": str(t.path), "size": t.size_bytes} for t in self.spec.tmpfs]

    def _etc_files(self) -> dict[str, str]:
        spec = self.spec
        if spec.host_network:
            # As the kubelet does for hostNetwork pods: the node's own hosts file.
            with contextlib.suppress(OSError):
                return {"/etc/hostname": f"{spec.hostname}\n",
                        "/etc/hosts": Path("/etc/hosts").read_text(),
                        "/etc/resolv.conf": spec.resolv_conf}
        return {
            "/etc/hostname": f"{spec.hostname}\n",
            "/etc/hosts": (f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n"
                           f"{spec.ip}\t{spec.hostname}\n"),
            "/etc/resolv.conf": spec.resolv_conf,
        }

    async def start_container(self, cspec: ContainerSpec) -> ContainerProcess:
        """Fork the container inside the pod; returns once its argv is exec'd (a bad
        argv[0] or rootfs raises SandboxError with the reason)."""
        if self._channel is None or self._destroyed:
            raise SandboxError("sandbox is not running")
        if not cspec.argv:
            raise SandboxError("empty argv")
        if not self.spec.init and self._containers:
            raise SandboxError("a sandbox without an init runs one container, once")
        previous = self._containers.get(cspec.name)
        if previous is not None and previous.returncode is None:
            raise SandboxError(f"container {cspec.name} is already running")
        leaf = self.cgroup.child(f"c-{cspec.name}")
        # A restarted container starts clean: kill what its last run left behind.
        if leaf.pids():
            await anyio.to_thread.run_sync(leaf.kill_all)
        env = dict(cspec.env)
        env.setdefault("PATH", DEFAULT_PATH)
        env.setdefault("HOSTNAME", self.spec.hostname)
        req: dict[str, Any] = {"op": "start", "argv": list(cspec.argv), "env": env,
                               "workdir": cspec.workdir, "cgroup_procs": leaf.procs_files,
                               "tty": cspec.tty,
                               # No PID namespace to take them down with the shim.
                               "pdeathsig": not self.spec.init or self.spec.host_pid}
        security: dict[str, Any] | None = None
        if cspec.security is not None:
            try:
                # Compiling the seccomp filter takes ~20 ms the first time (then cached).
                security = await anyio.to_thread.run_sync(cspec.security.wire)
            except SecurityConfigError as exc:
                raise SandboxError(f"container {cspec.name}: {exc}") from exc
            req["security"] = security
        if cspec.rootfs is not None:
            rootfs = cspec.rootfs
            merged = rootfs.merged_dir or self.spec.state_dir / "rootfs" / cspec.name
            req["rootfs"] = {"lower_dirs": [str(p) for p in rootfs.lower_dirs],
                             "upper_dir": str(rootfs.upper_dir),
                             "work_dir": str(rootfs.work_dir), "merged_dir": str(merged)}
            req["etc_files"] = self._etc_files()
            req["mounts"] = [{"source": str(m.source), "target": m.target,
                              "read_only": m.read_only, "create": m.create,
                              "within": str(m.within) if m.within else None}
                             for m in cspec.mounts]
        elif cspec.mounts:
            raise SandboxError(f"container {cspec.name}: volume mounts need a root "
                               "filesystem")
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        pty_master: int | None = None
        if cspec.tty:
            # The container writes everything to the pty; stderr's pipe just reads EOF.
            pty_master, slave = os.openpty()
            os.set_inheritable(pty_master, False)
            out_r = pty_master
            sent = [slave, slave, slave]
            os.close(err_w)
        else:
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            sent = [devnull, out_w, err_w]
        try:
            reply = await self._channel.request(req, sent)
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            for fd in set(sent):
                os.close(fd)
        if not reply.get("ok"):
            os.close(out_r)
            os.close(err_r)
            raise SandboxError(f"container {cspec.name}: {reply.get('error')}")
        proc = ContainerProcess(name=cspec.name, pid=int(reply["pid"]), channel=self._channel,
                                cgroup=leaf, pod_cgroup=self.cgroup,
                                stdout=FdReceiveStream(out_r), stderr=FdReceiveStream(err_r),
                                pty_master=pty_master, security=security)
        self._containers[cspec.name] = proc
        return proc

    async def destroy(self, grace_seconds: float = 0) -> None:
        """Stop every container (SIGTERM, grace, SIGKILL), end the init, remove the
        cgroup and the network. Idempotent; fine on a half-created sandbox."""
        with anyio.CancelScope(shield=True):
            await self._end_shim(grace_seconds)
            await anyio.to_thread.run_sync(self.cgroup.destroy)
            if not self.spec.host_network:
                await delete_pod_network(netns=self.netns, host_veth=self.host_veth)
            self._destroyed = True


# --------------------------------------------------------------------------- exec


def _cgroup_procs_of(pid: int) -> list[str]:
    """The cgroup.procs files of the cgroups (cpu, memory, pids, and cpuacct where it is
    not co-mounted with cpu / unified) of `pid`."""
    root = Path("/sys/fs/cgroup")
    v2 = (root / "cgroup.controllers").exists()
    out: list[str] = []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        if v2 and controllers == "":
            out.append(str(root / rel / "cgroup.procs"))
        elif not v2:
            names = controllers.split(",")
            for wanted in ("cpu", "memory", "pids", "cpuacct"):
                if wanted in names and not (wanted == "cpuacct" and "cpu" in names):
                    out.append(str(root / wanted / rel / "cgroup.procs"))
    return out


async def _settled_environ_of(pid: int) -> dict[str, str]:
    """The container's environment, also while it is in the middle of an `exec` (a
    shell's `exec sleep`): /proc/PID/environ reads as empty while the kernel swaps the
    process image, so an empty read is retried for a moment before it is believed."""
    for _ in range(50):
        env = _environ_of(pid)
        if env:
            return env
        await anyio.sleep(0.01)
    return {}


def _environ_of(pid: int) -> dict[str, str]:
    env: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            key, sep, value = item.decode(errors="replace").partition("=")
            if sep:
                env[key] = value
    return env


class ExecProcess:
    """A command run inside a sandbox by `exec_in_sandbox`.

    Without a tty: `stdin`, `stdout`, `stderr` are pipes. With a tty: `stdin` and `stdout`
    both talk to the pty master (stderr is merged into it, as on a terminal), `stderr`
    is None and `resize()` sets the window size.
    """

    def __init__(self, process: anyio.abc.Process, *, master: int | None) -> None:
        self._process = process
        self._master = master
        self.stdin: ByteSendStream | None
        self.stdout: ByteReceiveStream | None
        self.stderr: ByteReceiveStream | None
        if master is not None:
            self.stdout = FdReceiveStream(master)
            self.stdin = FdSendStream(master, owned=False)
            self.stderr = None
        else:
            self.stdin = process.stdin
            self.stdout = process.stdout
            self.stderr = process.stderr

    @property
    def pid(self) -> int:
        return self._process.pid

    def resize(self, cols: int, rows: int) -> None:
        if self._master is None:
            return
        fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send_signal(self, sig: signal.Signals) -> None:
        """Relayed by the helper to the command (SIGTERM, SIGINT, SIGHUP)."""
        with contextlib.suppress(ProcessLookupError):
            self._process.send_signal(sig)

    def kill(self) -> None:
        """Kill the helper; its PR_SET_PDEATHSIG takes the command with it."""
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()

    async def wait(self) -> int:
        """The command's exit code (128 + signal if it was killed)."""
        return await self._process.wait()

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            if self._process.returncode is None:
                self.kill()
            await self._process.wait()
            if self._master is not None and self.stdout is not None:
                await self.stdout.aclose()
                self._master = None
            await self._process.aclose()


async def exec_in_sandbox(init_pid: int, argv: Sequence[str], *, tty: bool,
                          env: Mapping[str, str] | None = None,
                          container_pid: int | None = None,
                          cwd: str | None = None,
                          security: Mapping[str, Any] | None = None) -> ExecProcess:
    """Run `argv` in the namespaces and cgroup of `container_pid` (its rootfs, its
    environment by default) or, without it, of the pod's init (host filesystem).
    `security`: the container's `ContainerProcess.security`, so the command runs as its
    user with its capabilities and seccomp filter (as `runc exec` does).

    The caller must `await proc.wait()` (or `aclose()`), and read the output streams.
    """
    if not argv:
        raise SandboxError("empty argv")
    target = container_pid or init_pid
    try:
        cgroup_procs = _cgroup_procs_of(target)
    except (OSError, ValueError) as exc:
        raise SandboxError(f"process {target} is gone") from exc
    rootless = os.geteuid() != 0
    if rootless:
        cgroup_procs = []  # rootless pods have no cgroups (sandbox/rootless.py)
    if env is None:
        env = await _settled_environ_of(container_pid) if container_pid else {}
    full_env = dict(env)
    full_env.setdefault("PATH", DEFAULT_PATH)
    if tty:
        full_env.setdefault("TERM", "xterm")
    spec = {"parent_pid": os.getpid(), "target_pid": target, "argv": list(argv),
            "env": full_env, "tty": tty, "cwd": cwd, "cgroup_procs": cgroup_procs,
            "security": dict(security) if security else None}
    command = shim_command(SHIM, "exec", json.dumps(spec))
    if rootless:
        # Enters the pod's user namespace first (or nothing at all in plain mode).
        from miniorch.sandbox.rootless import rootless_exec_command
        command = rootless_exec_command(json.dumps(spec))
    if not tty:
        process = await anyio.open_process(command)
        return ExecProcess(process, master=None)
    master, slave = os.openpty()
    try:
        process = await anyio.open_process(command, stdin=slave, stdout=slave, stderr=slave)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    return ExecProcess(process, master=master)
