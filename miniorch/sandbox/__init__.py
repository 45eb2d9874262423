"""Sandboxes: Linux namespaces, veth networking, cgroups and root filesystems for pods
and containers. The node layer calls this; it knows nothing of Kubernetes objects.

Public surface (everything else is private to the package):

    network.HostNetwork, network.create_pod_network, network.delete_pod_network
    cgroups.Cgroups, cgroups.CgroupHandle
    pod.PodSandbox, pod.PodSandboxSpec, pod.ContainerSpec, pod.RootfsSpec,
    pod.ContainerProcess, pod.ExitStatus, pod.exec_in_sandbox, pod.ExecProcess,
    pod.SandboxError
    cleanup.cleanup_leftovers, cleanup.CleanupSummary
    mode.detect_mode, mode.SandboxMode, mode.ModeKind

Process tree of one pod (see pod.py and _shim.py)::

    cluster process ─ pod shim (host PID ns, cluster cgroup)
                         ├─ pod init (PID 1 of the pod; cgroup miniorch/<id>/init)
                         └─ containers (pod PID ns; cgroup miniorch/<id>/c-<name>)
"""

from miniorch.sandbox.cgroups import CgroupHandle, Cgroups
from miniorch.sandbox.cleanup import CleanupSummary, cleanup_leftovers
from miniorch.sandbox.mode import ModeKind, SandboxMode, detect_mode
from miniorch.sandbox.network import HostNetwork, create_pod_network, delete_pod_network
from miniorch.sandbox.pod import (
    ContainerProcess,
    ContainerSpec,
    ExecProcess,
    ExitStatus,
    PodSandbox,
    PodSandboxSpec,
    RootfsSpec,
    SandboxError,
    exec_in_sandbox,
)

__all__ = [
    "CgroupHandle",
    "Cgroups",
    "CleanupSummary",
    "ContainerProcess",
    "ContainerSpec",
    "ExecProcess",
    "ExitStatus",
    "HostNetwork",
    "ModeKind",
    "PodSandbox",
    "PodSandboxSpec",
    "RootfsSpec",
    "SandboxError",
    "SandboxMode",
    "cleanup_leftovers",
    "create_pod_network",
    "delete_pod_network",
    "detect_mode",
    "exec_in_sandbox",
]
