"""Remove what a crashed (kill -9) cluster process left behind.

Normally nothing survives a crash: each pod shim dies with the cluster process
(PR_SET_PDEATHSIG), each pod init with its shim, and the kernel kills a PID namespace
whose init died. What does survive is kernel state that no process holds: named netns
bind mounts, veths, the bridge, cgroup directories. This module removes them, and
also kills any process still found in our cgroups (belt and braces: e.g. a shim spawned
from a thread that was still alive).

Everything is selected by name: netns, veths and cgroups whose name starts with
`prefix` (the pod ids' prefix, e.g. ``mo-``), plus the named bridge and the links
enslaved to it, so parallel clusters or tests with other prefixes are never touched.
Order matters: processes first (they pin namespaces and cgroups), then the links (a
veth would also vanish with its netns, but asynchronously), then netns and cgroups.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread

from miniorch.core.logging import get_logger
from miniorch.sandbox import network
from miniorch.sandbox.cgroups import Cgroups, detect_version

log = get_logger(__name__)  # structlog, imported on first use (core.logging)


@dataclass
class CleanupSummary:
    killed_pids: list[int] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    """What could not be removed, and why (reported; cleanup never raises for it)."""

    @property
    def empty(self) -> bool:
        return not (self.killed_pids or self.netns or self.links or self.cgroups
                    or self.mounts or self.failed)

    def __str__(self) -> str:
        parts = [f"{len(v)} {k}" for k, v in vars(self).items() if v and k != "failed"]
        text = ", ".join(parts) or "nothing"
        if self.failed:
            text += f"; could not remove: {'; '.join(self.failed)}"
        return text


def _shim_parent(pid: int) -> int | None:
    """The pod shim that forked `pid`, if it is still alive (it is outside the cgroup)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        cmdline = Path(f"/proc/{ppid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    if any(arg.endswith(b"sandbox/_shim.py") for arg in cmdline):
        return ppid
    return None


def _mounts_under(paths: Sequence[Path]) -> list[str]:
    roots = [str(p.resolve()) for p in paths]
    found: list[str] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mount_point = line.split()[4].replace("\\040", " ")
            if any(mount_point == r or mount_point.startswith(r + "/") for r in roots):
                found.append(mount_point)
    return found


def _cleanup(*, bridge: str, prefix: str, state_dirs: Sequence[Path]) -> CleanupSummary:
    if not prefix:
        raise ValueError("an empty prefix would select everything")
    summary = CleanupSummary()
    cgroups = Cgroups() if detect_version() is not None else None
    handles = cgroups.list(prefix) if cgroups is not None else []
    for handle in handles:
        for pid in handle.pids():
            shim = _shim_parent(pid)
            for victim in (shim, pid):
                if victim is None or victim in summary.killed_pids:
                    continue
                with contextlib.suppress(ProcessLookupError):
                    os.kill(victim, signal.SIGKILL)
                    summary.killed_pids.append(victim)
    # Each removal on its own: one that fails (a busy mount, a stuck process) is
    # reported in `failed` and the rest goes on, so `up` always starts.
    for handle in handles:
        try:
            handle.destroy()  # waits until the killed processes are gone, then rmdir
            summary.cgroups.append(handle.name)
        except (OSError, TimeoutError) as exc:
            summary.failed.append(f"cgroup {handle.name}: {exc}")
    try:
        doomed = {name for name, kind in network.list_links(prefix) if kind == "veth"}
        doomed.update(network.bridge_ports(bridge))
    except Exception as exc:
        summary.failed.append(f"listing links: {exc}")
        doomed = set()
    for name in [*sorted(doomed), bridge]:
        try:
            if network.delete_link(name):
                summary.links.append(name)
        except Exception as exc:
            summary.failed.append(f"link {name}: {exc}")
    for name in network.list_netns(prefix):
        mount_point = str(network.netns_path(name))
        try:
            if network.delete_netns(name):
                summary.netns.append(name)
                summary.mounts.append(mount_point)
        except OSError as exc:
            summary.failed.append(f"netns {name}: {exc}")
    # Mounts in the host namespace under the state dirs (overlays normally live only in
    # containers' private mount namespaces, so this is for older or foreign leftovers).
    for mount_point in sorted(_mounts_under(state_dirs), key=len, reverse=True):
        if network.umount_detach(mount_point):
            summary.mounts.append(mount_point)
    return summary


async def cleanup_leftovers(*, bridge: str, prefix: str,
                            state_dirs: Sequence[Path] = ()) -> CleanupSummary:
    """Kill processes in our `prefix*` cgroups, delete `prefix*` netns and veths, the
    bridge and its ports, the cgroups, and mounts under `state_dirs`. Idempotent."""
    summary = await anyio.to_thread.run_sync(
        lambda: _cleanup(bridge=bridge, prefix=prefix, state_dirs=state_dirs))
    if not summary.empty:
        log.warning("cleaned up leftovers of a previous run", removed=str(summary),
                    bridge=bridge, prefix=prefix)
    return summary
