"""Pod networking: one Linux bridge, a named netns and a veth pair per pod.

    host ── bridge (gateway 10.244.0.1/16, ClusterIPs as /32) ──┬── veth mo-… ═ eth0 (pod A)
                                                                └── veth mo-… ═ eth0 (pod B)

Every pod of every node sits on this one L2 segment with the /16 netmask, so pods reach
each other directly and the host (and any ClusterIP it holds) through the gateway, with
neither ip_forward nor NAT.

Data flow: all changes go through netlink (pyroute2), never a fork of `ip`. Netlink and
mount calls are blocking but take microseconds, so each public coroutine runs its whole
job in one worker thread. A named netns is made like iproute2 does it (unshare a netns,
bind-mount it on /run/netns/<name>) but from that worker thread — a network namespace
is per *thread* — which then returns to the host namespace; a netlink socket opened while
the thread sits in the pod's namespace keeps talking to that namespace afterwards.

Invariants: every function is idempotent (creating what exists or deleting what is gone
is not an error), and a failed `create_pod_network` removes what it made. /run/netns is
made a shared mount point before the first pin, as `ip netns` does, so another tool's
netns work never turns our pins into undeletable copies (see ensure_shared_netns_dir);
teardown reports a pin it cannot remove instead of failing.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from miniorch.core.logging import get_logger

log = get_logger(__name__)  # structlog, imported on first use (core.logging)

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2
IFNAMSIZ = 15

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


async def _in_thread(fn: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(fn)


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def _check_ifname(name: str) -> None:
    if not name or len(name) > IFNAMSIZ or "/" in name:
        raise ValueError(f"invalid interface name {name!r} (1..15 chars)")


@contextlib.contextmanager
def _thread_in_netns(path: Path) -> Iterator[None]:
    """Move the calling *thread* into the netns at `path`, and back afterwards."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
        try:
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                # A pool thread stuck in a pod's netns would corrupt later work.
                os.abort()
    finally:
        os.close(home)
        os.close(target)


def ensure_shared_netns_dir(directory: Path = NETNS_DIR) -> None:
    """Make `directory` a shared mount point of its own, exactly as `ip netns add` does
    (MS_SHARED|MS_REC; if it is no mount point yet, bind it onto itself first).

    Why: a pin bound under a plain /run/netns is copied, not shared, when another tool
    (ip netns, podman, a CNI plugin) later binds /run/netns onto itself; the copy stays
    a mount point of the same file, so unlinking the pin fails with EBUSY for ever. With
    the directory shared first, that tool finds a mount point and binds nothing, and a
    tool that binds anyway makes a peer, to which our unmounts propagate."""
    directory.mkdir(parents=True, exist_ok=True)
    target = bytes(directory)
    if _libc.mount(b"", target, b"none", MS_SHARED | MS_REC, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:
        err = ctypes.get_errno()
        raise OSError(err, f"make {directory} shared: {os.strerror(err)}")
    for source, flags in ((target, MS_BIND | MS_REC), (b"", MS_SHARED | MS_REC)):
        if _libc.mount(source, target, b"none", flags, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"make {directory} a shared mount: {os.strerror(err)}")


def _create_netns(name: str) -> None:
    """Like `ip netns add NAME`, without the fork; the calling thread ends where it began."""
    ensure_shared_netns_dir()
    path = netns_path(name)
    if path.exists() and os.path.ismount(path):
        return
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o444))
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
        try:
            if _libc.mount(b"/proc/thread-self/ns/net", bytes(path), b"none", MS_BIND, None):
                err = ctypes.get_errno()
                raise OSError(err, f"bind {path}: {os.strerror(err)}")
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                os.abort()
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    finally:
        os.close(home)


def delete_netns(name: str) -> bool:
    """Like `ip netns del NAME`; False if there was none. Raises OSError (EBUSY) if the
    pin cannot be removed because another mount, out of our reach, still holds it."""
    path = netns_path(name)
    if not path.exists():
        return False
    # Lazily detach every mount stacked on the pin (a copy another tool made is one
    # more), until the kernel says nothing is mounted there.
    for _ in range(16):
        if _libc.umount2(bytes(path), MNT_DETACH) != 0:
            break
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OSError(exc.errno, f"cannot remove {path}: {exc.strerror} (a mount made by "
                      "another tool still holds it; the namespace itself is gone once "
                      "unused)") from None
    return True


def list_netns(prefix: str = "") -> list[str]:
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))
    except FileNotFoundError:
        return []


def _link_index(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


class _ignore(contextlib.AbstractContextManager[None]):
    """Swallow the netlink errors that mean "already done" (EEXIST, ENODEV...)."""

    def __init__(self, *codes: int) -> None:
        self.codes = codes

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> bool:
        return isinstance(exc, NetlinkError) and exc.code in self.codes


class HostNetwork:
    """The bridge every pod plugs into, and the host-side addresses on it."""

    def __init__(self, *, bridge: str, gateway_cidr: str) -> None:
        _check_ifname(bridge)
        self.bridge = bridge
        self.gateway = ipaddress.ip_interface(gateway_cidr)
        self._local: set[str] = set()

    @property
    def gateway_ip(self) -> str:
        return str(self.gateway.ip)

    @property
    def prefix_len(self) -> int:
        return self.gateway.network.prefixlen

    def _setup(self) -> None:
        with IPRoute() as ipr:
            index = _link_index(ipr, self.bridge)
            if index is None:
                with _ignore(errno.EEXIST):
                    ipr.link("add", ifname=self.bridge, kind="bridge")
                index = _link_index(ipr, self.bridge)
            with _ignore(errno.EEXIST):
                ipr.addr("add", index=index, address=self.gateway_ip,
                         prefixlen=self.prefix_len)
            ipr.link("set", index=index, state="up")

    async def setup(self) -> None:
        """Create the bridge with the gateway address (idempotent)."""
        await _in_thread(self._setup)
        log.info("bridge ready", bridge=self.bridge, gateway=str(self.gateway))

    def _teardown(self) -> None:
        with IPRoute() as ipr:
            index = _link_index(ipr, self.bridge)
            if index is not None:
                with _ignore(errno.ENODEV, errno.ENOENT):
                    ipr.link("del", index=index)
        self._local.clear()

    async def teardown(self) -> None:
        """Remove the bridge, and with it every address on it (idempotent)."""
        await _in_thread(self._teardown)

    def _address(self, command: str, ip: str) -> None:
        with IPRoute() as ipr:
            index = _link_index(ipr, self.bridge)
            if index is None:
                if command == "del":
                    return
                raise RuntimeError(f"bridge {self.bridge} does not exist; call setup() first")
            with _ignore(errno.EEXIST, errno.EADDRNOTAVAIL, errno.ENOENT):
                ipr.addr(command, index=index, address=ip, prefixlen=32)

    async def add_local_address(self, ip: str) -> None:
        """Make `ip` (a ClusterIP) a /32 of the host on the bridge, so a host process can
        bind it and pods reach it through their default route (idempotent)."""
        await _in_thread(lambda: self._address("add", ip))
        self._local.add(ip)

    async def remove_local_address(self, ip: str) -> None:
        await _in_thread(lambda: self._address("del", ip))
        self._local.discard(ip)


def mac_for_ip(ip: str) -> str:
    """`10.244.3.2` → `0a:58:0a:f4:03:02`: locally administered, unicast, unique per IP."""
    octets = [int(part) for part in ip.split(".")]
    return "0a:58:" + ":".join(f"{o:02x}" for o in octets)


def _create_pod_network(*, netns: str, host_veth: str, ip: str, prefix_len: int,
                        gateway: str, bridge: str) -> None:
    _create_netns(netns)
    path = netns_path(netns)
    with IPRoute() as ipr:
        bridge_index = _link_index(ipr, bridge)
        if bridge_index is None:
            raise RuntimeError(f"bridge {bridge} does not exist")
        if _link_index(ipr, host_veth) is None:
            # The peer is born inside the pod's netns, already named eth0.
            ipr.link("add", ifname=host_veth, kind="veth",
                     peer={"ifname": "eth0", "net_ns_fd": netns})
        index = _link_index(ipr, host_veth)
        ipr.link("set", index=index, master=bridge_index, state="up")
        # The host may still hold a neighbour entry for this IP from the pod that had
        # it before (IPs are reused): drop it, or traffic goes to a dead MAC for a while.
        with _ignore(errno.ENOENT, errno.ESRCH, errno.EINVAL):
            ipr.neigh("del", dst=ip, ifindex=bridge_index)
    with _thread_in_netns(path), IPRoute() as pod:
        lo = _link_index(pod, "lo")
        pod.link("set", index=lo, state="up")
        eth0 = _link_index(pod, "eth0")
        # A MAC derived from the IP (0a:58:<ip>, as OVN-Kubernetes does): a stale ARP
        # entry anywhere for a reused pod IP still names the right interface.
        pod.link("set", index=eth0, address=mac_for_ip(ip))
        with _ignore(errno.EEXIST):
            pod.addr("add", index=eth0, address=ip, prefixlen=prefix_len)
        pod.link("set", index=eth0, state="up")
        with _ignore(errno.EEXIST):
            pod.route("add", dst="0.0.0.0/0", gateway=gateway)


def _delete_pod_network(*, netns: str, host_veth: str) -> None:
    with IPRoute() as ipr:
        index = _link_index(ipr, host_veth)
        if index is not None:
            with _ignore(errno.ENODEV, errno.ENOENT):
                ipr.link("del", index=index)
    try:
        delete_netns(netns)
    except OSError as exc:
        # Reported, not raised: a pod's teardown (and the cluster's stop) must go on.
        log.warning("netns pin left behind", netns=netns, error=str(exc))


async def create_pod_network(*, netns: str, host_veth: str, ip: str, prefix_len: int,
                             gateway: str, bridge: str) -> None:
    """Named netns + veth pair: host end in `bridge`, pod end eth0 with `ip`, lo up,
    default route via `gateway`. On failure nothing is left behind."""
    _check_ifname(host_veth)

    def job() -> None:
        try:
            _create_pod_network(netns=netns, host_veth=host_veth, ip=ip,
                                prefix_len=prefix_len, gateway=gateway, bridge=bridge)
        except BaseException:
            _delete_pod_network(netns=netns, host_veth=host_veth)
            raise

    await _in_thread(job)


async def delete_pod_network(*, netns: str, host_veth: str) -> None:
    """Remove the veth pair and the named netns (idempotent)."""
    await _in_thread(lambda: _delete_pod_network(netns=netns, host_veth=host_veth))


def umount_detach(path: str) -> bool:
    return bool(_libc.umount2(path.encode(), MNT_DETACH) == 0)


def list_links(prefix: str = "") -> list[tuple[str, str]]:
    """(name, kind) of the host's links whose name starts with prefix."""
    out: list[tuple[str, str]] = []
    with IPRoute() as ipr:
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            if not name or not name.startswith(prefix):
                continue
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else ""
            out.append((name, kind or ""))
    return out


def delete_link(name: str) -> bool:
    with IPRoute() as ipr:
        index = _link_index(ipr, name)
        if index is None:
            return False
        with _ignore(errno.ENODEV, errno.ENOENT):
            ipr.link("del", index=index)
        return True


def bridge_ports(bridge: str) -> list[str]:
    with IPRoute() as ipr:
        index = _link_index(ipr, bridge)
        if index is None:
            return []
        return [str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()
                if link.get_attr("IFLA_MASTER") == index]
