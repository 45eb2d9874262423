"""The pod shim and exec helper for rootless (user-namespace) sandboxes.

Run as ``python -I -S _rootless_shim.py pod PARENT_PID`` or ``... exec SPEC_JSON``.
Stdlib only, like ``_shim.py``, whose helpers (init, container start, rootfs setup,
exec) it loads by path and reuses: only the way into the namespaces differs.

Mode ``pod``::

    cluster process (uid U) ──fd 0 (SOCK_SEQPACKET, same protocol as _shim.py)──► shim
        shim: unshare(USER); uid_map "0 U 1", gid_map "0 G 1" (setgroups deny)
              unshare(NET|PID|UTS|IPC|NS); lo up (+ the pod IP on lo:0); hostname
              ├─fork─► init (PID 1)            ┐ as in _shim.py, without cgroups
              ├─fork─► containers              ┘
              └─ listens on <state dir>/net.sock: each connection gets one fresh TCP
                 socket made inside the pod's network namespace (SCM_RIGHTS), which
                 the host then connects to 127.0.0.1:<port> (sandbox/rootless.py)

Filesystem unix sockets cross network namespaces, and a socket belongs to the namespace
it was created in: so the host reaches any port of the pod with no veth, no root and no
userspace splicing (the bytes flow over the pod's loopback, kernel to kernel).

Mode ``exec``: join the target's user namespace first (the invoking user owns it, so it
has every capability there), then do what ``_shim.py exec`` does; namespaces the helper
already shares with the target are skipped (plain mode: the target is a host process).

Invariants: as in _shim.py — PR_SET_PDEATHSIG ties the shim to the cluster process and
the init to the shim; when the init dies the kernel kills the pod's PID namespace.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import importlib.util
import json
import os
import socket
import struct
from types import ModuleType
from typing import Any

CLONE_NEWUSER = 0x10000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFADDR = 0x8916
SIOCSIFNETMASK = 0x891C
IFF_UP = 0x1


def _load_shim() -> ModuleType:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_shim.py")
    spec = importlib.util.spec_from_file_location("_miniorch_shim", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shim = _load_shim()


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def enter_user_namespace(uid: int, gid: int) -> None:
    """A new user namespace where we are root, mapped to the invoking user outside."""
    shim.unshare(CLONE_NEWUSER)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"0 {uid} 1\n")
    _write("/proc/self/gid_map", f"0 {gid} 1\n")


def _ifreq(name: str, payload: bytes = b"") -> bytes:
    return struct.pack("16s", name.encode()) + payload.ljust(24, b"\0")


def _sockaddr_in(ip: str) -> bytes:
    return struct.pack("HH4s8x", socket.AF_INET, 0, socket.inet_aton(ip))


def setup_loopback(pod_ip: str | None) -> None:
    """Bring `lo` up; put the pod IP on it too (lo:0), so the app sees its own address."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, _ifreq("lo"))[:18])[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, _ifreq("lo", struct.pack("H", flags | IFF_UP)))
        if pod_ip:
            try:
                fcntl.ioctl(s, SIOCSIFADDR, _ifreq("lo:0", _sockaddr_in(pod_ip)))
                fcntl.ioctl(s, SIOCSIFNETMASK, _ifreq("lo:0", _sockaddr_in("255.255.255.255")))
            except OSError:
                pass  # cosmetic: the host dials 127.0.0.1 inside the pod anyway


def _hand_out_socket(listener: socket.socket) -> None:
    """Accept one connection on net.sock and pass it a new TCP socket of this netns."""
    try:
        conn, _ = listener.accept()
    except (BlockingIOError, InterruptedError):
        return
    try:
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            conn.setblocking(True)
            conn.settimeout(2.0)
            conn.sendmsg([b"s"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                   array.array("i", [tcp.fileno()]))])
        finally:
            tcp.close()
    except OSError:
        pass
    finally:
        conn.close()


def bind_unix(path: str) -> socket.socket:
    """A unix socket bound at `path`, however long (sun_path holds 108 bytes; pod dirs
    under a deep $MINIORCH_HOME exceed it): bind relative to the directory."""
    directory, name = os.path.split(path)
    if os.path.lexists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(directory)
        listener.bind(name)
        os.chmod(name, 0o600)
    finally:
        os.fchdir(cwd)
        os.close(cwd)
    return listener


def run_pod(parent_pid: int) -> None:
    ctl, config, wake_r = shim.begin_pod(parent_pid)
    listener: socket.socket | None = None
    init_pid: int | None = None
    try:
        enter_user_namespace(os.getuid(), os.getgid())
        shim.unshare(shim.CLONE_NEWNET | shim.CLONE_NEWPID | shim.CLONE_NEWUTS
                     | shim.CLONE_NEWIPC | shim.CLONE_NEWNS)
        shim.mount("none", "/", "", shim.MS_REC | shim.MS_PRIVATE)
        socket.sethostname(config["hostname"])
        setup_loopback(config.get("ip"))
        for target, source in config.get("etc_binds", {}).items():
            if os.path.isfile(target):
                # A locked host mount: the pod keeps the host's file.
                with contextlib.suppress(OSError):
                    shim.mount(source, target, "", shim.MS_BIND)
        for tmpfs in config.get("tmpfs", ()):
            shim.mount_tmpfs(tmpfs["path"], tmpfs.get("size"))
        listener = bind_unix(config["net_sock"])
        listener.listen(128)
        listener.setblocking(False)
        if config.get("init", True):
            init_pid = shim.fork_init(ctl, [], close=[listener])
    except Exception as exc:
        shim.fail_pod(ctl, exc)
    assert listener is not None
    running = shim.serve_pod(ctl, wake_r, init_pid, cgroups=False,
                             extra={listener.fileno(): lambda: _hand_out_socket(listener)})
    listener.close()
    with contextlib.suppress(OSError):
        os.unlink(config["net_sock"])
    shim.end_pod(init_pid, running)


def _same_ns(fd: int, nstype: int) -> bool:
    names = {shim.CLONE_NEWIPC: "ipc", shim.CLONE_NEWUTS: "uts", shim.CLONE_NEWNET: "net",
             shim.CLONE_NEWPID: "pid", shim.CLONE_NEWNS: "mnt", CLONE_NEWUSER: "user"}
    ours = os.stat(f"/proc/self/ns/{names[nstype]}")
    theirs = os.fstat(fd)
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def run_exec(spec: dict[str, Any]) -> None:
    target = spec["target_pid"]
    user_fd = os.open(f"/proc/{target}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    if not _same_ns(user_fd, CLONE_NEWUSER):
        shim.setns(user_fd, CLONE_NEWUSER)
    os.close(user_fd)
    plain_setns = shim.setns

    def setns_unless_same(fd: int, nstype: int) -> None:
        # Joining the namespace one is already in needs privileges one may not have
        # (plain mode's "sandbox" is the host): skip it, it would change nothing.
        if not _same_ns(fd, nstype):
            plain_setns(fd, nstype)

    shim.__dict__["setns"] = setns_unless_same  # run_exec looks it up at call time
    spec["cgroup_procs"] = []
    shim.run_exec(spec)


def main() -> None:
    shim.dispatch({"pod": lambda arg: run_pod(int(arg)),
                   "exec": lambda arg: run_exec(json.loads(arg))})


if __name__ == "__main__":
    main()
