"""The Node object's machine facts: capacity from psutil, nodeInfo from /etc and /proc.

Read once at kubelet start (they do not change while the process lives). Every node
actor of a cluster process runs on the same machine, so they report the same machine;
only names, addresses and pod CIDRs differ.
"""

from __future__ import annotations

import platform
import uuid
from pathlib import Path

import psutil

from miniorch.core.objects import Obj

KUBELET_VERSION = "v1.32.0-miniorch"


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip().strip('"')
    return "Linux"


def architecture() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def node_info(*, runtime_version: str) -> Obj:
    """All ten NodeSystemInfo fields (the Python client rejects a null in any of them)."""
    machine_id = _read("/etc/machine-id") or uuid.uuid5(uuid.NAMESPACE_DNS,
                                                         platform.node()).hex
    system_uuid = _read("/sys/class/dmi/id/product_uuid").lower()
    if not system_uuid:
        system_uuid = str(uuid.UUID(hex=machine_id[:32].ljust(32, "0")))
    return {
        "machineID": machine_id,
        "systemUUID": system_uuid,
        "bootID": _read("/proc/sys/kernel/random/boot_id"),
        "kernelVersion": platform.release(),
        "osImage": os_image(),
        "containerRuntimeVersion": runtime_version,
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": KUBELET_VERSION,
        "operatingSystem": "linux",
        "architecture": architecture(),
    }


def capacity(*, max_pods: int, storage_path: Path) -> dict[str, str]:
    """cpu cores, memory and ephemeral storage in Ki (as kubelet prints them), pods."""
    try:
        disk = psutil.disk_usage(str(storage_path)).total
    except OSError:
        disk = psutil.disk_usage("/").total
    return {
        "cpu": str(psutil.cpu_count() or 1),
        "ephemeral-storage": f"{disk // 1024}Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": f"{psutil.virtual_memory().total // 1024}Ki",
        "pods": str(max_pods),
    }
