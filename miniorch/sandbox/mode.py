"""Which kind of sandbox this machine allows, and why (``up`` prints the reason).

- ``root``: real pods: namespaces, veths on a bridge, cgroup limits, overlay rootfs.
- ``userns``: not root, but unprivileged user namespaces work; namespaces without host
  networking or cgroup limits (sandbox/rootless.py; chosen by cluster/rootless.py).
- ``plain``: plain processes, no isolation at all — `up` warns loudly.

Detection only reads /proc and /sys; it never changes anything.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path

from miniorch.sandbox.cgroups import CgroupVersion, detect_version


class ModeKind(enum.Enum):
    ROOT = "root"
    USERNS = "userns"
    PLAIN = "plain"


@dataclass(frozen=True)
class SandboxMode:
    kind: ModeKind
    reason: str
    cgroup_version: CgroupVersion | None

    @property
    def isolated(self) -> bool:
        return self.kind is not ModeKind.PLAIN


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _userns_blocker() -> str | None:
    """Why unprivileged user namespaces are off, or None if they look available."""
    if _read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        return "kernel.unprivileged_userns_clone=0"
    if _read("/proc/sys/user/max_user_namespaces") == "0":
        return "user.max_user_namespaces=0"
    if _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
        return "AppArmor restricts unprivileged user namespaces"
    if not Path("/proc/self/ns/user").exists():
        return "the kernel has no user namespaces"
    return None


def detect_mode() -> SandboxMode:
    version = detect_version()
    if os.geteuid() == 0:
        if version is None:
            return SandboxMode(ModeKind.PLAIN, "running as root but no cgroup v1 (cpu, memory, "
                               "pids) or v2 hierarchy under /sys/fs/cgroup", None)
        if not os.access("/sys/fs/cgroup", os.W_OK) and version is CgroupVersion.V2:
            return SandboxMode(ModeKind.PLAIN, "running as root but /sys/fs/cgroup is "
                               "read-only", version)
        return SandboxMode(ModeKind.ROOT, f"running as root with cgroup {version.value}: "
                           "full pod sandboxes", version)
    blocker = _userns_blocker()
    if blocker is None:
        return SandboxMode(ModeKind.USERNS, "not root; unprivileged user namespaces are "
                           "available (no bridge networking, no cgroup limits)", version)
    return SandboxMode(ModeKind.PLAIN, f"not root and {blocker}: pods run as plain "
                       "processes WITHOUT isolation", version)
