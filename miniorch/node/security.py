"""The kubelet's part of pod security: securityContext → sandbox.security settings.

    pod.spec.securityContext ─┐ (container's fields win, as in Kubernetes)
    container.securityContext ├─► container_security() ──► ContainerSecurity
    image config USER ────────┘      │ runAsNonRoot checked here (kubelet's
                                     │ verifyRunAsNonRoot), errors → CreateContainerConfigError
    pod.spec.securityContext.fsGroup ─► apply_fs_group(volumes dir): group ownership and
                                        setgid directories, as the kubelet gives volumes

What each field does (containerd's CRI plugin is the reference):
- `privileged`: all the runtime's capabilities, seccomp Unconfined, all devices, /sys
  read-write, nothing masked; `capabilities` and `seccompProfile` are then ignored.
- `capabilities.add/drop`: on containerd's default 14 (sandbox.security).
- `allowPrivilegeEscalation: false` → no_new_privs; unset or true → not set (the kubelet
  only asks for no_new_privs when it is explicitly false).
- `seccompProfile`: RuntimeDefault when unset (the kubelet's --seccomp-default, on here),
  `Unconfined`, or `Localhost` with `localhostProfile` relative to `<home>/seccomp`.
- `runAsUser`/`runAsGroup`/`supplementalGroups`/`fsGroup`: the process's ids; without
  runAsUser the image's USER (a name is resolved in the image's /etc/passwd).

Invariants: pure functions of the pod and image (no I/O but `apply_fs_group`), errors
carry Kubernetes' messages.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from miniorch.core.objects import Obj
from miniorch.sandbox.security import (
    ContainerSecurity,
    SeccompProfile,
    SecurityConfigError,
    effective_capabilities,
    privileged_security,
)


class SecurityContextError(Exception):
    """The container must not start as configured (→ CreateContainerConfigError)."""


def _merged(pod: Obj, container: Obj) -> dict[str, Any]:
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    container_sc = container.get("securityContext") or {}
    merged = {k: pod_sc[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot",
                                     "seccompProfile") if pod_sc.get(k) is not None}
    merged.update({k: v for k, v in container_sc.items() if v is not None})
    return merged


def _pod_label(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f'{meta.get("name")}_{meta.get("namespace")}({meta.get("uid")})'


def _image_uid(image_user: str) -> int | None:
    """The numeric uid of an image's USER (`1000`, `1000:1000`); None for a name."""
    user = image_user.partition(":")[0]
    if not user:
        return 0
    return int(user) if user.isdigit() else None


def check_run_as_non_root(pod: Obj, container: Obj, image_user: str) -> None:
    """The kubelet's verifyRunAsNonRoot, with its messages."""
    sc = _merged(pod, container)
    if not sc.get("runAsNonRoot"):
        return
    name = container.get("name")
    if sc.get("runAsUser") is not None:
        if int(sc["runAsUser"]) == 0:
            raise SecurityContextError(
                f"container's runAsUser breaks non-root policy (pod: \"{_pod_label(pod)}\", "
                f"container: {name})")
        return
    uid = _image_uid(image_user)
    if uid is None:
        raise SecurityContextError(
            f"container has runAsNonRoot and image has non-numeric user ({image_user}), "
            f"cannot verify user is non-root (pod: \"{_pod_label(pod)}\", container: {name})")
    if uid == 0:
        raise SecurityContextError(
            f"container has runAsNonRoot and image will run as root (pod: "
            f"\"{_pod_label(pod)}\", container: {name})")


def _seccomp(sc: dict[str, Any], seccomp_root: Path) -> SeccompProfile:
    profile = sc.get("seccompProfile") or {}
    kind = profile.get("type") or "RuntimeDefault"
    if kind != "Localhost":
        return SeccompProfile(type=kind)
    relative = str(profile.get("localhostProfile") or "")
    path = (seccomp_root / relative).resolve()
    root = seccomp_root.resolve()
    if not relative or (path != root and root not in path.parents):
        raise SecurityContextError(
            f"localhostProfile {relative!r} must be a file under {seccomp_root}")
    return SeccompProfile(type="Localhost", path=path)


def container_security(pod: Obj, container: Obj, *, image_user: str,
                       seccomp_root: Path) -> ContainerSecurity:
    """The ContainerSecurity of `container` in `pod` (raises SecurityContextError)."""
    check_run_as_non_root(pod, container, image_user)
    sc = _merged(pod, container)
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    user = str(sc["runAsUser"]) if sc.get("runAsUser") is not None else image_user
    groups = [int(g) for g in pod_sc.get("supplementalGroups") or ()]
    if pod_sc.get("fsGroup") is not None:
        groups.append(int(pod_sc["fsGroup"]))
    identity: dict[str, Any] = {
        "user": user,
        "group": int(sc["runAsGroup"]) if sc.get("runAsGroup") is not None else None,
        "supplemental_groups": tuple(groups),
        "read_only_rootfs": bool(sc.get("readOnlyRootFilesystem")),
    }
    try:
        if sc.get("privileged"):
            return privileged_security(**identity)
        caps = sc.get("capabilities") or {}
        return ContainerSecurity(
            capabilities=effective_capabilities(add=tuple(caps.get("add") or ()),
                                                drop=tuple(caps.get("drop") or ())),
            no_new_privs=sc.get("allowPrivilegeEscalation") is False,
            seccomp=_seccomp(sc, seccomp_root), **identity)
    except SecurityConfigError as exc:
        raise SecurityContextError(str(exc)) from exc


def apply_fs_group(volumes_dir: Path, fs_group: int | None) -> None:
    """Give the pod's volumes (emptyDir, configMap, secret...) to group `fs_group`,
    group-writable, directories setgid, as the kubelet's SetVolumeOwnership does."""
    if fs_group is None or not volumes_dir.is_dir():
        return
    for top, dirs, files in os.walk(volumes_dir):
        for name in [*dirs, *files]:
            path = os.path.join(top, name)
            st = os.lstat(path)
            os.chown(path, -1, fs_group, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = stat.S_IMODE(st.st_mode) | stat.S_IRGRP | stat.S_IWGRP
            if stat.S_ISDIR(st.st_mode):
                mode |= stat.S_IXGRP | stat.S_ISGID
            os.chmod(path, mode)
