"""The pod shim and the exec helper: the only code that runs inside a sandbox.

This file is executed as a standalone program with ``python -I -S _shim.py MODE``
(stdlib only: it must not import miniorch, so it starts in ~20 ms and stays small).

Mode ``pod`` (one per pod sandbox)::

    cluster process ──fd 0 (SOCK_SEQPACKET, JSON + SCM_RIGHTS)──► shim  (host PID ns)
                                                                   │ setns(net) +
                                                                   │ unshare(pid,uts,ipc,mnt)
                                                                   ├─fork─► init (PID 1)
                                                                   ├─fork─► container A
                                                                   └─fork─► container B

The shim joins the pod's named netns and unshares PID/UTS/IPC/mount namespaces (the
host's network+UTS, PID or IPC namespace stay shared for hostNetwork, hostPID, hostIPC;
with hostPID the init is no PID 1 and signals the pod's cgroups, never pid -1). Its own
PID namespace stays the host's, but every child it forks lands in the new one: the first
child is the pod's PID 1 (the init: reaps orphans, forwards SIGTERM to everything in the
pod), later children are containers. Without an init (``"init": false``, standalone
containers as Docker runs them) the first container forked is PID 1 itself; it gets
PR_SET_PDEATHSIG against the shim, and once it exits the namespace takes no new process.
Because the shim is the containers' parent it gets their exit status with waitpid() and
reports it: ``{"op": "exit", "pid", "status"}``.

Requests on fd 0 are JSON messages; ``start`` carries the container's stdin/stdout/stderr
as SCM_RIGHTS fds. Replies and exit reports share the socket, in order.

Invariants:
- Nothing outlives the cluster process: the shim has PR_SET_PDEATHSIG=SIGKILL against the
  cluster process (and exits on EOF of fd 0), the init against the shim; when a PID
  namespace's init dies the kernel SIGKILLs every process in it.
- The shim stays in the cluster's cgroup (its memory is not charged to the pod, an OOM in
  the pod never kills it); init and containers move themselves into their cgroup leaf
  before anything else, so all their memory and children are accounted.

Mode ``zygote`` (one per cluster process, optional): forks pod shims on request, so
each pod costs a fork of a small process rather than an interpreter start; see
`run_zygote`. Its shims run the same ``pod`` code with the zygote as their parent.

Mode ``exec`` (one per ``exec_in_sandbox``): joins the cgroups and namespaces of a target
process (mount last, so paths resolve in its root), forks (a setns'd PID namespace only
applies to children), execs the command in the child and relays its exit status.
"""

from __future__ import annotations

import base64  # at the top too: apply_security runs after pivot_root
import contextlib
import ctypes
import fcntl  # at the top: after pivot_root/setns(mnt) the host's stdlib is out of reach
import json
import os
import select
import signal
import socket
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_RELATIME = 1 << 21
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522
TIOCSCTTY = 0x540E
SYS_pivot_root = 155  # x86_64

MAX_FDS = 8
MAX_MSG = 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def mount(source: str, target: str, fstype: str, flags: int = 0, data: str | None = None) -> None:
    _check(
        _libc.mount(source.encode(), target.encode(), fstype.encode(), ctypes.c_ulong(flags),
                    data.encode() if data is not None else None),
        f"mount {fstype} on {target}",
    )


def umount2(target: str, flags: int) -> None:
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc.syscall(SYS_pivot_root, new_root.encode(), put_old.encode()), "pivot_root")


def set_pdeathsig(sig: int) -> None:
    _check(_libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0), "prctl(PDEATHSIG)")


def set_comm(name: str) -> None:
    _libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def join_cgroups(procs_files: list[str]) -> None:
    """Move the calling process into each cgroup (v1: one per hierarchy; v2: one)."""
    for path in procs_files:
        with open(path, "w") as f:
            f.write("0")


def exit_status_of(status: int) -> dict[str, int | None]:
    if os.WIFSIGNALED(status):
        return {"exit_code": None, "signal": os.WTERMSIG(status)}
    return {"exit_code": os.WEXITSTATUS(status), "signal": None}


# --------------------------------------------------------------------------- pod init


def pod_members(cgroup_dirs: Sequence[str]) -> set[int]:
    """Every pid in the pod's cgroups (all their descendants' cgroup.procs)."""
    pids: set[int] = set()
    for top in cgroup_dirs:
        for parent, _dirs, files in os.walk(top):
            if "cgroup.procs" in files:
                with (contextlib.suppress(OSError, ValueError),
                      open(os.path.join(parent, "cgroup.procs")) as f):
                    pids.update(int(line) for line in f if line.strip())
    return pids


def run_init(alive_fd: int, cgroup_procs: list[str], *,
             pod_cgroups: list[str] | None = None) -> None:
    """PID 1 of the pod: reap every orphan, forward SIGTERM/SIGINT to the whole pod.

    `alive_fd` is the read end of a pipe only the shim holds open: EOF on it means the
    shim died before PR_SET_PDEATHSIG took effect (getppid() cannot tell: the parent is
    outside our PID namespace, so it reads 0 either way).

    With `pod_cgroups` (hostPID) there is no pod PID namespace: kill(-1) would signal
    every process of the host, so the pod is what its cgroups hold instead, and the
    host's /proc stays (a new one would show the same host PID namespace).
    """
    set_pdeathsig(signal.SIGKILL)
    readable, _, _ = select.select([alive_fd], [], [], 0)
    if readable:
        os._exit(1)
    os.close(alive_fd)
    set_comm("pod-init")
    join_cgroups(cgroup_procs)
    if pod_cgroups is None:
        # A /proc of the pod's PID namespace for the pod's (shared) mount namespace, so
        # `ps` run without a rootfs only sees the pod.
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.closerange(0, 3)
    fd = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        if fd != target:
            os.dup2(fd, target)
    wanted = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, wanted)
    while True:
        sig = signal.sigwait(wanted)
        if sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            # PID 1 sending to -1 reaches every process of its namespace but itself;
            # without a namespace of our own, the pod's cgroups say who is the pod.
            # (The pid check guards the host: -1 only ever from a namespace's PID 1.)
            targets = ([-1] if pod_cgroups is None and os.getpid() == 1
                       else sorted(pod_members(pod_cgroups or []) - {os.getpid()}))
            for target in targets:
                with contextlib.suppress(OSError):
                    os.kill(target, sig)
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break


# --------------------------------------------------------------------------- rootfs


def _mkdirs(path: str, mode: int = 0o755) -> None:
    os.makedirs(path, mode=mode, exist_ok=True)


def _write(path: str, text: str) -> None:
    parent = os.path.dirname(path)
    _mkdirs(parent)
    if os.path.islink(path):
        os.unlink(path)
    with open(path, "w") as f:
        f.write(text)


def secure_join(root: str, path: str) -> str:
    """`root` + `path` with every symlink on the way resolved inside `root` (an image's
    absolute symlink must not send a mount onto the host's own directories)."""
    pending = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise OSError(f"too many symlinks in {path}")
            link = os.readlink(candidate)
            if link.startswith("/"):
                resolved = []
            pending = [p for p in link.split("/") if p not in ("", ".")] + pending
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


_KEPT_FLAGS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
               (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME),
               (os.ST_RELATIME, MS_RELATIME))


def bind_volume(root: str, spec: dict[str, Any], *, nodev: bool = False) -> None:
    """Bind a volume (`source` on the host side of the pod) at `target` in `root`
    (`nodev`: device nodes in it do not open)."""
    source = spec["source"]
    if spec.get("create"):
        _mkdirs(source, 0o777)
    within = spec.get("within")
    if within:
        real, base = os.path.realpath(source), os.path.realpath(within)
        if real != base and not real.startswith(base + "/"):
            raise OSError(f"subPath {source} resolves outside its volume")
    target = secure_join(root, spec["target"])
    if os.path.isdir(source):
        _mkdirs(target)
    elif not os.path.exists(target):
        _mkdirs(os.path.dirname(target))
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    mount(source, target, "", MS_BIND | MS_REC)
    if spec.get("read_only") or nodev:
        # A read-only bind is a remount; in a user namespace it must keep the flags the
        # source mount is locked with (nosuid, nodev, ...), or the kernel refuses it.
        _remount_flags(target, (MS_RDONLY if spec.get("read_only") else 0)
                       | (MS_NODEV if nodev else 0))


def _is_device(path: str) -> bool:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


def _remount_readonly(target: str) -> None:
    _remount_flags(target, MS_RDONLY)


def _remount_flags(target: str, extra: int) -> None:
    """Add `extra` (MS_RDONLY, MS_NODEV) to the mount at `target`, keeping the flags it
    is locked with."""
    flags = MS_BIND | MS_REMOUNT | extra
    fs_flags = os.statvfs(target).f_flag
    for st_flag, ms_flag in _KEPT_FLAGS:
        if fs_flags & st_flag:
            flags |= ms_flag
    mount("none", target, "", flags)


def mask_paths(root: str, paths: Sequence[str]) -> None:
    """containerd's maskedPaths: /dev/null over a file, an empty read-only tmpfs over a
    directory; a path the kernel does not have is skipped."""
    for path in paths:
        target = root + path
        if os.path.islink(target) or not os.path.exists(target):
            continue
        if os.path.isdir(target):
            mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "size=0")
        else:
            mount("/dev/null", target, "", MS_BIND)


def readonly_paths(root: str, paths: Sequence[str]) -> None:
    """containerd's readonlyPaths: each bound onto itself, then made read-only."""
    for path in paths:
        target = root + path
        if os.path.islink(target) or not os.path.exists(target):
            continue
        mount(target, target, "", MS_BIND | MS_REC)
        _remount_readonly(target)


def mount_tmpfs(path: str, size: int | None) -> None:
    """An emptyDir of medium Memory, in the pod's mount namespace (see pod.TmpfsMount)."""
    _mkdirs(path)
    options = "mode=0777" + (f",size={size}" if size else "")
    mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, options)


def setup_rootfs(rootfs: dict[str, Any], etc_files: dict[str, str],
                 mounts: Sequence[dict[str, Any]] = (),
                 security: dict[str, Any] | None = None) -> None:
    """In a fresh mount namespace: overlay, /proc (masked and read-only paths), /sys,
    /dev, /tmp, /etc files, volumes, a read-only root if asked, pivot_root."""
    unshare(CLONE_NEWNS)
    mount("none", "/", "", MS_REC | MS_PRIVATE)
    root = rootfs["merged_dir"]
    _mkdirs(root)
    opts = "lowerdir={},upperdir={},workdir={}".format(
        ":".join(rootfs["lower_dirs"]), rootfs["upper_dir"], rootfs["work_dir"])
    # nodev (unless privileged): CAP_MKNOD is in the default set, as in containerd, so a
    # node made in the rootfs, /dev or a volume must not open (containerd's device
    # cgroup does this; nodev does it on cgroup v1 and v2 alike).
    nodev = 0 if (security or {}).get("privileged") or security is None else MS_NODEV
    mount("overlay", root, "overlay", nodev, opts)
    proc = root + "/proc"
    _mkdirs(proc)
    mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    sec = security or {}
    mask_paths(root, [p for p in sec.get("masked", ()) if p.startswith("/proc/")])
    readonly_paths(root, sec.get("readonly", ()))
    sys_dir = root + "/sys"
    _mkdirs(sys_dir)
    # /sys read-only (a privileged container's read-write), as containerd mounts it.
    sys_flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | (0 if sec.get("privileged") else MS_RDONLY)
    mount("sysfs", sys_dir, "sysfs", sys_flags)
    mask_paths(root, [p for p in sec.get("masked", ()) if p.startswith("/sys/")])
    dev = root + "/dev"
    _mkdirs(dev)
    # The device nodes below are bind mounts of their own: nodev on the tmpfs only
    # stops nodes made in it.
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | nodev, "mode=755,size=65536k")
    devices = ["null", "zero", "random", "urandom", "tty", "full"]
    if sec.get("privileged"):
        # Every device of the host, as containerd gives a privileged container.
        devices += sorted(e.name for e in os.scandir("/dev")
                          if e.name not in devices and e.name not in ("ptmx", "console")
                          and not e.is_symlink() and _is_device(e.path))
    for name in devices:
        node = f"{dev}/{name}"
        os.close(os.open(node, os.O_CREAT | os.O_WRONLY, 0o666))
        mount(f"/dev/{name}", node, "", MS_BIND)
    _mkdirs(dev + "/mqueue")
    mount("mqueue", dev + "/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mkdirs(dev + "/pts")
    mount("devpts", dev + "/pts", "devpts", MS_NOSUID | MS_NOEXEC,
          "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", dev + "/ptmx")
    _mkdirs(dev + "/shm")
    mount("shm", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", f"{dev}/{name}")
    os.symlink("/proc/self/fd", dev + "/fd")
    if not sec.get("read_only_rootfs"):
        # A read-only root gets no writable /tmp of ours: as in Kubernetes, a pod that
        # needs one mounts an emptyDir there.
        tmp = root + "/tmp"
        _mkdirs(tmp)
        mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    for rel, text in etc_files.items():
        _write(root + "/" + rel.lstrip("/"), text)
    for spec in mounts:  # last: a volume at /tmp or /etc/... must not be covered
        bind_volume(root, spec, nodev=bool(nodev))
    if sec.get("read_only_rootfs"):
        # Only the root mount's own flag: /dev, /proc, volumes stay as they are.
        mount("none", root, "", MS_BIND | MS_REMOUNT | MS_RDONLY)
    os.chdir(root)
    pivot_root(".", ".")
    umount2(".", MNT_DETACH)
    os.chdir("/")


# --------------------------------------------------------------------------- security


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _prctl(option: int, arg: int, what: str) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0),
                       ctypes.c_ulong(0)), what)


def _entries(path: str) -> list[list[str]]:
    try:
        with open(path) as f:
            return [line.rstrip("\n").split(":") for line in f if line.count(":") >= 2]
    except OSError:
        return []


def resolve_user(sec: Mapping[str, Any]) -> tuple[int, int, list[int], str | None]:
    """(uid, gid, groups, home) for `sec["user"]` (`uid`, `uid:gid`, `name`,
    `name:group`), resolved in the current root's /etc/passwd and /etc/group as runc
    does; runAsGroup (`sec["group"]`) overrides the primary group."""
    user, _, group = str(sec.get("user") or "").partition(":")
    uid, gid, name, home = 0, 0, "root", None
    passwd = _entries("/etc/passwd")
    if user:
        entry = next((e for e in passwd if (e[0] == user if not user.isdigit()
                                            else e[2] == user)), None)
        if entry is None and not user.isdigit():
            raise OSError(f"unable to find user {user}: no matching entries in passwd file")
        uid = int(user) if user.isdigit() else int(entry[2])  # type: ignore[index]
        if entry is not None:
            name, gid = entry[0], int(entry[3]) if entry[3].isdigit() else 0
            home = entry[5] if len(entry) > 5 else None
        else:
            name = ""
    elif passwd and passwd[0][0] == "root" and len(passwd[0]) > 5:
        home = passwd[0][5]
    groups_file = _entries("/etc/group")
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            found = next((e for e in groups_file if e[0] == group), None)
            if found is None:
                raise OSError(f"unable to find group {group}: no matching entries in group file")
            gid = int(found[2])
    if sec.get("group") is not None:
        gid = int(sec["group"])
    groups = [int(e[2]) for e in groups_file
              if name and len(e) > 3 and name in e[3].split(",") and e[2].isdigit()]
    groups += [int(g) for g in sec.get("groups", ())]
    return uid, gid, list(dict.fromkeys(groups)), home


def _load_seccomp(program: bytes) -> None:
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p).value)
    _check(_libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER),
                       ctypes.byref(prog), ctypes.c_ulong(0), ctypes.c_ulong(0)), "seccomp")


def _set_groups(groups: list[int]) -> None:
    """Set the supplementary groups, where the user namespace allows it. A user namespace
    made without root has `setgroups` denied (the kernel demands it before an
    unprivileged gid_map is written), so there the process keeps the groups it has:
    supplementary groups are not applied in that mode."""
    try:
        os.setgroups(groups)
    except PermissionError:
        try:
            with open("/proc/self/setgroups") as f:
                denied = f.read().strip() == "deny"
        except OSError:
            denied = False
        if not denied:
            raise


def apply_security(sec: Mapping[str, Any], env: dict[str, str]) -> None:
    """Become the container's user with its capabilities, no_new_privs and seccomp
    filter (see sandbox/security.py for the order and why). The last step before
    execve: everything after it runs under the filter."""
    uid, gid, groups, home = resolve_user(sec)
    if home and "HOME" not in env:
        env["HOME"] = home
    keep = set(sec.get("caps", ()))
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last_cap = int(f.read())
    for cap in range(last_cap + 1):
        if cap not in keep:
            _prctl(PR_CAPBSET_DROP, cap, "prctl(CAPBSET_DROP)")
    program = base64.b64decode(sec["seccomp"]) if sec.get("seccomp") else None
    nnp = bool(sec.get("no_new_privs"))
    if program is not None and not nnp:
        _load_seccomp(program)  # without no_new_privs this takes CAP_SYS_ADMIN: now
    _set_groups(groups)
    try:
        os.setresgid(gid, gid, gid)
        # A non-root uid loses its permitted and effective sets here (and so on execve,
        # as in runc); root keeps exactly `keep`, nothing inheritable.
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        # In a rootless user namespace only the ids of its map exist.
        raise OSError(exc.errno, f"cannot run as uid {uid} gid {gid}: {exc.strerror}"
                      " (without root only the mapped ids exist)") from None
    if uid == 0:
        mask = sum(1 << c for c in keep)
        header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
        low, high = mask & 0xFFFFFFFF, mask >> 32
        data = (_CapData * 2)(_CapData(low, low, 0), _CapData(high, high, 0))
        _check(_libc.capset(ctypes.byref(header), data), "capset")
    _libc.prctl(PR_CAP_AMBIENT, ctypes.c_ulong(PR_CAP_AMBIENT_CLEAR_ALL), ctypes.c_ulong(0),
                ctypes.c_ulong(0), ctypes.c_ulong(0))
    if nnp:
        _prctl(PR_SET_NO_NEW_PRIVS, 1, "prctl(NO_NEW_PRIVS)")
        if program is not None:
            _load_seccomp(program)


# --------------------------------------------------------------------------- containers


def start_container(req: dict[str, Any], fds: list[int]) -> int:
    """Fork a container; return its (host) pid once it exec'd, or raise with the reason."""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(err_r)
            if req.get("pdeathsig"):
                # No init (the container is the PID namespace's PID 1): nothing else ties
                # it to the shim, so it dies with the shim as an init would. If the shim
                # died before this took effect, the error pipe has no reader: POLLERR.
                set_pdeathsig(signal.SIGKILL)
                poller = select.poll()
                poller.register(err_w, select.POLLOUT)
                if any(ev & select.POLLERR for _, ev in poller.poll(0)):
                    os._exit(1)
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP,
                      signal.SIGPIPE):
                signal.signal(s, signal.SIG_DFL)
            os.setsid()
            join_cgroups(req["cgroup_procs"])
            if req.get("rootfs"):
                setup_rootfs(req["rootfs"], req.get("etc_files", {}), req.get("mounts", ()),
                             req.get("security"))
            for target, fd in enumerate(fds[:3]):
                os.dup2(fd, target, inheritable=True)
            for fd in fds:
                if fd > 2:
                    os.close(fd)
            if req.get("tty"):
                fcntl.ioctl(0, TIOCSCTTY, 0)  # fd 0 is a pty slave: our controlling tty
            os.chdir(req.get("workdir") or "/")
            env = req.get("env", {})
            if req.get("security"):
                apply_security(req["security"], env)
            os.execvpe(req["argv"][0], req["argv"], env)
        except BaseException as exc:
            try:
                os.write(err_w, f"{type(exc).__name__}: {exc}".encode()[:4000])
            finally:
                os._exit(127)
    os.close(err_w)
    for fd in fds:
        os.close(fd)
    chunks = []
    while True:
        chunk = os.read(err_r, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(err_r)
    if chunks:
        raise RuntimeError(b"".join(chunks).decode(errors="replace"))
    return pid


def _send(sock: socket.socket, msg: dict[str, Any]) -> None:
    sock.setblocking(True)
    try:
        sock.send(json.dumps(msg).encode())
    finally:
        sock.setblocking(False)


def received_fds(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    """The SCM_RIGHTS fds of a recvmsg()'s ancillary data."""
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(memoryview(payload).cast("i"))
    return fds


def begin_pod(parent_pid: int) -> tuple[socket.socket, dict[str, Any], int]:
    """The start of mode ``pod`` (this shim and _rootless_shim.py): tie the shim to
    `parent_pid`, read the config from fd 0, route SIGCHLD to a wake-up pipe.
    Returns the control socket, the config and the wake-up pipe's read end."""
    set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)
    set_comm("pod-shim")
    ctl = socket.socket(fileno=0)
    config = json.loads(ctl.recv(MAX_MSG))
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    return ctl, config, wake_r


def fork_init(ctl: socket.socket, cgroup_procs: list[str], *,
              close: Sequence[socket.socket] = (),
              pod_cgroups: list[str] | None = None) -> int:
    """Fork the pod's init (PID 1 of the new PID namespace; with `pod_cgroups`, hostPID:
    an ordinary process of the host's); the child closes `ctl` and `close`. Returns
    its pid."""
    alive_r, alive_w = os.pipe2(os.O_CLOEXEC)
    init_pid = os.fork()
    if init_pid == 0:
        try:
            signal.set_wakeup_fd(-1)
            ctl.close()
            for sock in close:
                sock.close()
            os.close(alive_w)
            run_init(alive_r, cgroup_procs, pod_cgroups=pod_cgroups)
        finally:
            os._exit(1)
    os.close(alive_r)
    return init_pid


def fail_pod(ctl: socket.socket, exc: Exception) -> NoReturn:
    _send(ctl, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    sys.exit(1)


def serve_pod(ctl: socket.socket, wake_r: int, init_pid: int | None, *,
              extra: Mapping[int, Callable[[], None]] | None = None,
              cgroups: bool = True) -> bool:
    """Report the pod is up, then serve: report exits, start containers, call
    `extra[fd]()` when that fd turns readable. Returns whether the pod still runs
    (False: its init exited; True: the cluster process closed the channel)."""
    _send(ctl, {"ok": True, "init_pid": init_pid})
    ctl.setblocking(False)
    extra = extra or {}
    running = True
    while running:
        readable, _, _ = select.select([ctl.fileno(), wake_r, *extra], [], [])
        if wake_r in readable:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        # Reap first, so that an exit is reported before the reply to a later request.
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == init_pid:
                running = False
                _send(ctl, {"op": "init-exit", **exit_status_of(status)})
            else:
                _send(ctl, {"op": "exit", "pid": pid, **exit_status_of(status)})
        for fd, handle in extra.items():
            if fd in readable:
                handle()
        if ctl.fileno() in readable and running:
            try:
                data, ancdata, _, _ = ctl.recvmsg(MAX_MSG, socket.CMSG_SPACE(MAX_FDS * 4))
            except BlockingIOError:
                continue
            if not data:  # the cluster process closed the channel: the pod goes away
                break
            fds = received_fds(ancdata)
            req = json.loads(data)
            try:
                if req["op"] == "start":
                    if not cgroups:
                        # No cgroups to join without root (see sandbox/rootless.py).
                        req["cgroup_procs"] = []
                    pid = start_container(req, fds)
                    _send(ctl, {"op": "reply", "ok": True, "pid": pid})
                else:
                    raise ValueError(f"unknown op {req['op']!r}")
            except Exception as exc:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                _send(ctl, {"op": "reply", "ok": False, "error": str(exc)})
    return running


def end_pod(init_pid: int | None, running: bool) -> None:
    """Leaving: the kernel kills the whole PID namespace once its init is gone. Reap our
    children so no zombie outlives the shim."""
    if running and init_pid is not None:
        os.kill(init_pid, signal.SIGKILL)
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break


def run_pod(parent_pid: int) -> None:
    ctl, config, wake_r = begin_pod(parent_pid)
    try:
        host_pid = bool(config.get("host_pid"))
        flags = CLONE_NEWNS
        if config.get("netns_path"):
            nsfd = os.open(config["netns_path"], os.O_RDONLY | os.O_CLOEXEC)
            setns(nsfd, CLONE_NEWNET)
            os.close(nsfd)
            flags |= CLONE_NEWUTS  # a hostNetwork pod keeps the host's UTS too, as runc
        if not host_pid:
            flags |= CLONE_NEWPID
        else:
            # Containers' orphans come back to us (reaped by serve_pod), not to the host's
            # init: there is no pod PID 1 to take them.
            _prctl(PR_SET_CHILD_SUBREAPER, 1, "PR_SET_CHILD_SUBREAPER")
        if not config.get("host_ipc"):
            flags |= CLONE_NEWIPC
        unshare(flags)
        mount("none", "/", "", MS_REC | MS_PRIVATE)
        if flags & CLONE_NEWUTS:
            socket.sethostname(config["hostname"])
        # Containers without a rootfs see the host's files, but the pod's own /etc/hosts,
        # hostname and resolv.conf (the host's DNS server is unreachable from a pod).
        for target, source in config.get("etc_binds", {}).items():
            if os.path.isfile(target):
                mount(source, target, "", MS_BIND)
        for tmpfs in config.get("tmpfs", ()):
            mount_tmpfs(tmpfs["path"], tmpfs.get("size"))
        init_pid: int | None = None
        if config.get("init", True):
            init_pid = fork_init(ctl, config["init_cgroup_procs"],
                                 pod_cgroups=config.get("pod_cgroup_dirs") if host_pid else None)
    except Exception as exc:
        fail_pod(ctl, exc)
    end_pod(init_pid, serve_pod(ctl, wake_r, init_pid))


# --------------------------------------------------------------------------- zygote


def run_zygote(parent_pid: int) -> None:
    """Mode ``zygote``: fork pod shims on request, so a pod pays a fork of this small
    process (~1 ms) instead of a fork of the big cluster process plus an interpreter
    start (~70 ms of CPU).

    Each request on fd 0 is ``{"op": "spawn"}`` with two SCM_RIGHTS fds: the shim's
    control socket (becomes its fd 0) and its log file (fd 1 and 2). The reply is
    ``{"pid": N}``. Chain of death: the zygote has PR_SET_PDEATHSIG against the cluster
    process, each shim against the zygote (its parent), each init against its shim.
    On EOF the zygote stops taking requests but stays until every shim it forked has
    exited: leaving earlier would SIGKILL their pods without a grace period.
    """
    set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)
    set_comm("shim-zygote")
    # Shims are reaped by the kernel: the cluster watches them with a pidfd.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    me = os.getpid()
    ctl = socket.socket(fileno=0)
    ctl.setblocking(True)
    while True:
        data, ancdata, _, _ = ctl.recvmsg(MAX_MSG, socket.CMSG_SPACE(MAX_FDS * 4))
        if not data:
            break
        fds = received_fds(ancdata)
        try:
            if json.loads(data).get("op") != "spawn" or len(fds) != 2:
                raise ValueError("expected a spawn request with 2 fds")
            pid = os.fork()
            if pid == 0:
                try:
                    ctl.close()
                    os.dup2(fds[0], 0)
                    os.dup2(fds[1], 1)
                    os.dup2(fds[1], 2)
                    for fd in fds:
                        if fd > 2:
                            os.close(fd)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    run_pod(me)
                    os._exit(0)
                finally:
                    os._exit(1)
            reply: dict[str, Any] = {"ok": True, "pid": pid}
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        finally:
            for fd in fds:
                os.close(fd)
        try:
            ctl.send(json.dumps(reply).encode())
        except OSError:
            break
    ctl.close()
    # With SIGCHLD ignored, wait() blocks until every child is gone, then ECHILD.
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
    os._exit(0)


# --------------------------------------------------------------------------- exec


def run_exec(spec: dict[str, Any]) -> None:
    set_pdeathsig(signal.SIGKILL)
    if os.getppid() != spec["parent_pid"]:
        os._exit(1)
    target = spec["target_pid"]
    ns_order = [("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS), ("net", CLONE_NEWNET),
                ("pid", CLONE_NEWPID), ("mnt", CLONE_NEWNS)]
    fds = [(os.open(f"/proc/{target}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), kind)
           for name, kind in ns_order]
    cwd = spec.get("cwd") or "/"
    join_cgroups(spec["cgroup_procs"])
    for fd, kind in fds:
        setns(fd, kind)
        os.close(fd)
    alive_r, alive_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(alive_w)
            set_pdeathsig(signal.SIGKILL)
            if select.select([alive_r], [], [], 0)[0]:  # the helper is already gone
                os._exit(1)
            if spec.get("tty"):
                os.setsid()
                fcntl.ioctl(0, TIOCSCTTY, 0)
            try:
                os.chdir(cwd)
            except OSError:
                os.chdir("/")
            env = dict(spec["env"])
            if spec.get("security"):
                # An exec gets the container's own restrictions, as runc exec does.
                apply_security(spec["security"], env)
            os.execvpe(spec["argv"][0], spec["argv"], env)
        except FileNotFoundError as exc:
            os.write(2, f"exec failed: {exc.filename}: executable file not found\n".encode())
            os._exit(127)
        except BaseException as exc:
            os.write(2, f"exec failed: {exc}\n".encode())
            os._exit(126)
    # Relay the signals a user sends to `exec` (Ctrl-C without a tty, stop) to the command.
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, lambda sig, _frame: os.kill(pid, sig))
    for fd in (0, 1, 2):
        os.close(fd)  # the child holds them; the parent must not keep pipes open
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


def dispatch(modes: Mapping[str, Callable[[str], None]]) -> None:
    """Run ``modes[MODE](ARG)`` for the command line ``... MODE ARG``."""
    mode = sys.argv[1]
    if mode not in modes:
        raise SystemExit(f"unknown mode {mode!r}")
    modes[mode](sys.argv[2])


def main() -> None:
    dispatch({"pod": lambda arg: run_pod(int(arg)),
              "zygote": lambda arg: run_zygote(int(arg)),
              "exec": lambda arg: run_exec(json.loads(arg))})


if __name__ == "__main__":
    main()
