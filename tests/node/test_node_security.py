"""securityContext → the sandbox's ContainerSecurity, and a kubelet honouring it on the
real runtime (root only for the latter)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from miniorch.api.kinds import PODS
from miniorch.api.registry import Registry
from miniorch.core import podfiles
from miniorch.core.settings import Settings
from miniorch.node.security import (
    SecurityContextError,
    apply_fs_group,
    check_run_as_non_root,
    container_security,
)
from miniorch.sandbox.security import (
    DEFAULT_CAPABILITIES,
    SeccompProfile,
    all_current_capabilities,
)
from tests.node.nodehelpers import (
    FAST,
    container_status,
    make_pod,
    pod_of,
    running_kubelet,
    wait_for,
)
from tests.node.test_node_sandbox import cluster_net  # noqa: F401 - a fixture

SECCOMP_ROOT = Path("/nonexistent/seccomp")


def pod_with(pod_sc: dict[str, Any] | None = None,
             container_sc: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    container: dict[str, Any] = {"name": "app", "image": "busybox"}
    if container_sc is not None:
        container["securityContext"] = container_sc
    pod: dict[str, Any] = {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
                           "spec": {"containers": [container]}}
    if pod_sc is not None:
        pod["spec"]["securityContext"] = pod_sc
    return pod, container


def test_defaults_are_runtime_default() -> None:
    pod, container = pod_with()
    sec = container_security(pod, container, image_user="", seccomp_root=SECCOMP_ROOT)
    assert sec.capabilities == DEFAULT_CAPABILITIES
    assert sec.seccomp == SeccompProfile()
    assert not sec.no_new_privs and not sec.privileged and sec.user == ""


def test_container_fields_win_over_the_pods() -> None:
    pod, container = pod_with(
        {"runAsUser": 1000, "runAsGroup": 1000, "supplementalGroups": [5], "fsGroup": 7,
         "seccompProfile": {"type": "Unconfined"}},
        {"runAsUser": 2000, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
         "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}})
    sec = container_security(pod, container, image_user="nobody", seccomp_root=SECCOMP_ROOT)
    assert sec.user == "2000" and sec.group == 1000
    assert sec.supplemental_groups == (5, 7)
    assert sec.no_new_privs and sec.read_only_rootfs
    assert sec.capabilities == {"CAP_NET_BIND_SERVICE"}
    assert sec.seccomp.type == "Unconfined"


def test_allow_privilege_escalation_true_or_unset_leaves_no_new_privs_off() -> None:
    for value in (True, None):
        pod, container = pod_with(None, {"allowPrivilegeEscalation": value})
        assert not container_security(pod, container, image_user="",
                                      seccomp_root=SECCOMP_ROOT).no_new_privs


def test_privileged() -> None:
    pod, container = pod_with(None, {"privileged": True, "capabilities": {"drop": ["ALL"]}})
    sec = container_security(pod, container, image_user="", seccomp_root=SECCOMP_ROOT)
    assert sec.privileged and sec.capabilities == all_current_capabilities()
    assert sec.seccomp.type == "Unconfined"
    assert sec.wire()["masked"] == [] and sec.wire()["seccomp"] is None


@pytest.mark.parametrize(("image_user", "sc", "message"), [
    pytest.param("", {}, "container has runAsNonRoot and image will run as root", id="empty"),
    pytest.param("0:0", {}, "image will run as root", id="uid-0"),
    pytest.param("nginx", {}, "image has non-numeric user (nginx), cannot verify", id="name"),
    pytest.param("1000", {"runAsUser": 0}, "container's runAsUser breaks non-root policy",
                 id="runAsUser-0"),
])
def test_run_as_non_root_refusals(image_user: str, sc: dict[str, Any], message: str) -> None:
    pod, container = pod_with({"runAsNonRoot": True}, sc)
    with pytest.raises(SecurityContextError, match=re.escape(message)) as info:
        check_run_as_non_root(pod, container, image_user)
    assert str(info.value).endswith('(pod: "p_ns(u-1)", container: app)')


@pytest.mark.parametrize(("image_user", "sc"), [
    pytest.param("1000", {}, id="image-uid"),
    pytest.param("", {"runAsUser": 1000}, id="runAsUser"),
    pytest.param("root", {"runAsUser": 1, "runAsNonRoot": True}, id="container-level"),
])
def test_run_as_non_root_accepts(image_user: str, sc: dict[str, Any]) -> None:
    pod, container = pod_with({"runAsNonRoot": True}, sc)
    check_run_as_non_root(pod, container, image_user)


def test_localhost_profile_must_stay_under_the_seccomp_root(tmp_path: Path) -> None:
    pod, container = pod_with(None, {"seccompProfile": {
        "type": "Localhost", "localhostProfile": "../../etc/passwd"}})
    with pytest.raises(SecurityContextError, match="must be a file under"):
        container_security(pod, container, image_user="", seccomp_root=tmp_path)
    pod, container = pod_with(None, {"seccompProfile": {
        "type": "Localhost", "localhostProfile": "profiles/a.json"}})
    sec = container_security(pod, container, image_user="", seccomp_root=tmp_path)
    assert sec.seccomp.path == (tmp_path / "profiles/a.json").resolve()


def test_unknown_capability_is_a_config_error() -> None:
    pod, container = pod_with(None, {"capabilities": {"add": ["FLY"]}})
    with pytest.raises(SecurityContextError, match="unknown capability 'FLY'"):
        container_security(pod, container, image_user="", seccomp_root=SECCOMP_ROOT)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_fs_group_owns_the_volumes(tmp_path: Path) -> None:
    volume = tmp_path / "kubernetes.io~empty-dir" / "data"
    volume.mkdir(parents=True)
    (volume / "f").write_text("x")
    (volume / "link").symlink_to("/etc/passwd")
    before = os.stat("/etc/passwd")
    apply_fs_group(tmp_path, 4242)
    assert volume.stat().st_gid == 4242 and volume.stat().st_mode & stat.S_ISGID
    assert (volume / "f").stat().st_gid == 4242
    assert (volume / "f").stat().st_mode & stat.S_IWGRP
    assert os.stat("/etc/passwd").st_gid == before.st_gid  # a symlink is not followed


# --------------------------------------------------------------------- real runtime


def log_of(settings: Settings, pod: dict[str, Any], container: str = "kubia") -> str:
    directory = podfiles.pod_dir(settings.pods_dir, "default", pod["metadata"]["name"],
                                 pod["metadata"]["uid"])
    text = (directory / container / "0.log").read_text(errors="replace")
    # CRI log lines: <time> <stream> <tag> <content>
    return "\n".join(line.split(" ", 3)[-1] for line in text.splitlines())


@pytest.mark.root
async def test_kubelet_applies_the_security_context(
        registry: Registry, cluster_net: tuple[Settings, Any]) -> None:  # noqa: F811
    settings, runtime = cluster_net
    async with running_kubelet(registry, settings, runtime, config=FAST, index=5) as node:
        refused = make_pod(registry, node.name, image="busybox", restart_policy="Never",
                           command=["true"], securityContext={"runAsNonRoot": True})
        restricted = make_pod(
            registry, node.name, image="busybox", restart_policy="Never",
            command=["sh", "-c", "grep -E '^(Uid|Gid|Groups|Cap|Seccomp|NoNewPrivs)' "
                     "/proc/self/status; touch /x || echo ro-root"],
            securityContext={"runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": True,
                             "allowPrivilegeEscalation": False,
                             "readOnlyRootFilesystem": True,
                             "capabilities": {"drop": ["ALL"]}})
        await wait_for(lambda: container_status(registry, refused).get("state", {})
                       .get("waiting", {}).get("reason") == "CreateContainerConfigError",
                       within=60, what="CreateContainerConfigError")
        waiting = container_status(registry, refused)["state"]["waiting"]
        assert waiting["message"].startswith(
            "container has runAsNonRoot and image will run as root (pod: ")
        await wait_for(lambda: "terminated" in container_status(registry, restricted)
                       .get("state", {}), within=60, what="terminated")
        out = log_of(settings, restricted)
        fields = {k: v.strip() for k, _, v in (line.partition(":") for line in
                                               out.splitlines())}
        assert fields["Uid"].split()[0] == "1000" and fields["Gid"].split()[0] == "3000"
        assert fields["CapBnd"] == fields["CapEff"] == "0000000000000000"
        assert fields["Seccomp"] == "2" and fields["NoNewPrivs"] == "1"
        assert "ro-root" in out
        for pod in (refused, restricted):
            registry.delete(PODS, "default", pod["metadata"]["name"], grace_period_seconds=0)
            await wait_for(lambda p=pod: pod_of(registry, p) is None, within=10,  # type: ignore[misc]
                           what="pod removed")
