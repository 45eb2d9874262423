"""Choosing and wiring the sandbox mode: root, user namespaces, or plain processes.

    up ──► choose_mode(settings) ──► SandboxMode(kind, reason)   (printed by `up`)
       ──► settings_for_mode(settings, mode)   (rootless: ClusterIPs from loopback)
       ──► Cluster(mode=...) ──► runtime_for_mode(mode, images)
                                   ROOT   → SandboxRuntime, dialer None (TCP over the bridge)
                                   USERNS → UsernsRuntime + PodNetDialer (probes, proxy)
                                   PLAIN  → PlainRuntime, dialer None (loopback aliases)

What changes without root (each said at `up`):
- no bridge, no veths, no cgroups, no machine-wide leftovers to clean (the shims die
  with the cluster process: PR_SET_PDEATHSIG), one cluster per user (machine_lock);
- ClusterIPs come from `ROOTLESS_SERVICE_CIDR` (127.0.96.0/22) instead of 10.96.0.0/16,
  because only loopback addresses can be listened on without adding them to an
  interface; EXTERNAL-IPs (127.0.100.0/24) and NodePorts work as with root;
- pod IPs are still allocated and shown, but they are virtual in USERNS mode (reached
  through the pods' shims) and loopback aliases in PLAIN mode.

Detection (`sandbox.mode.detect_mode`) reads /proc; `choose_mode` also tries a user
namespace for real, because sysctls are not the only thing that can forbid it
(seccomp, LSMs, containers).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

from miniorch.core.dialer import Dialer
from miniorch.core.settings import NetworkSettings, Settings
from miniorch.images import ImageStore
from miniorch.node.cri import ContainerRuntime
from miniorch.sandbox.mode import ModeKind, SandboxMode, detect_mode

ROOTLESS_SERVICE_CIDR = "127.0.96.0/22"
"""ClusterIPs without root: loopback, so the proxy can bind them (127.0.96.1 is
`kubernetes`); below the EXTERNAL-IP pool 127.0.100.0/24."""

_TRIAL = ("import ctypes,sys;"
          "sys.exit(ctypes.CDLL(None,use_errno=True).unshare(0x10000000|0x40000000)!=0)")


def userns_trial() -> str | None:
    """Create a user + network namespace in a throwaway process: None if it worked,
    else why not."""
    try:
        result = subprocess.run([sys.executable, "-I", "-S", "-c", _TRIAL], timeout=10,
                                capture_output=True, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"trying a user namespace failed: {exc}"
    if result.returncode != 0:
        return "creating a user namespace is not permitted here (seccomp or LSM policy)"
    return None


def choose_mode(settings: Settings) -> SandboxMode:
    """The mode `up` runs in, honouring `settings.sandbox_mode` ("auto", "userns",
    "plain"). Raises ValueError if a forced mode is impossible."""
    detected = detect_mode()
    wanted = settings.sandbox_mode
    if wanted == "plain":
        return SandboxMode(ModeKind.PLAIN, "plain mode was asked for (--sandbox-mode plain)",
                           detected.cgroup_version)
    if wanted not in ("auto", "userns"):
        raise ValueError(f"unknown sandbox mode {wanted!r} (auto, userns or plain)")
    if wanted == "auto" and detected.kind is ModeKind.ROOT:
        return detected
    if detected.kind is ModeKind.PLAIN and os.geteuid() != 0:
        if wanted == "userns":
            raise ValueError(f"user namespaces are not available: {detected.reason}")
        return detected
    blocker = userns_trial()
    if blocker is not None:
        if wanted == "userns":
            raise ValueError(f"user namespaces are not available: {blocker}")
        return SandboxMode(ModeKind.PLAIN, f"not root and {blocker}: pods run as plain "
                           "processes WITHOUT isolation", detected.cgroup_version)
    who = "not root" if os.geteuid() != 0 else "user namespaces were asked for"
    return SandboxMode(ModeKind.USERNS, f"{who}; unprivileged user namespaces work",
                       detected.cgroup_version)


def announcement(mode: SandboxMode, settings: Settings) -> str:
    """What `up` prints about the mode (a LOUD warning when isolation is off);
    `settings` as the cluster will run (after `settings_for_mode`)."""
    if mode.kind is ModeKind.ROOT:
        return f"sandbox mode: root ({mode.reason})"
    if mode.kind is ModeKind.USERNS:
        return (f"rootless mode: user namespaces ({mode.reason}). Each pod has its own "
                "user, PID, UTS, IPC, mount and network namespaces and the image's root "
                "filesystem; but no cgroup limits (cpu, memory, pids are not enforced), "
                "no pod-to-pod or pod-to-Service traffic (a pod's network has only `lo`; "
                "the host reaches pods through their shims' sockets), and ClusterIPs "
                f"come from {settings.network.service_cidr} (loopback, so they can be "
                "listened on without root).")
    bar = "!" * 78
    return (f"{bar}\nWARNING: isolation is OFF: pods run as plain processes on this "
            f"machine\n  ({mode.reason}).\n  No namespaces, no cgroup limits, no image "
            "root filesystem (the image's files are used from its unpacked layers); "
            "pods share\n  the host's network: each gets MINIORCH_POD_IP (a 127.x "
            "address) to bind, and a pod\n  whose port is already taken on 0.0.0.0 is "
            f"refused (FailedCreatePodSandBox).\n{bar}")


def settings_for_mode(settings: Settings, mode: SandboxMode) -> Settings:
    """Rootless clusters take their ClusterIPs from loopback (unless set otherwise)."""
    network = settings.network
    if mode.kind is ModeKind.ROOT or network.service_cidr != NetworkSettings().service_cidr:
        return settings
    return dataclasses.replace(settings, network=dataclasses.replace(
        network, service_cidr=ROOTLESS_SERVICE_CIDR))


def runtime_for_mode(mode: SandboxMode, images: ImageStore
                     ) -> tuple[ContainerRuntime, Dialer | None]:
    """The kubelets' runtime and the dialer probes and the proxy reach pods with."""
    if mode.kind is ModeKind.USERNS:
        from miniorch.node.rootless import UsernsRuntime
        from miniorch.sandbox.rootless import PodNetDialer
        dialer = PodNetDialer()
        return UsernsRuntime(images=images, dialer=dialer), dialer
    if mode.kind is ModeKind.PLAIN:
        from miniorch.node.rootless import PlainRuntime
        return PlainRuntime(images=images), None
    from miniorch.node.runtime import SandboxRuntime
    return SandboxRuntime(images=images), None
