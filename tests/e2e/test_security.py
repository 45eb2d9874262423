"""Pod privileges read from inside real pods with the real kubectl, escape attempts, and
podman (runc) as the reference of what containerd/Docker give the same busybox.

Run alone (one cluster per machine):
    .venv/bin/python -m pytest tests/e2e/test_security.py -q
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningCluster, wait_for

pytestmark = pytest.mark.e2e

NS = "security-e2e"
DEFAULT_MASK = "00000000a80425fb"
FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")


def status_fields(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in
            (line.partition(":") for line in text.splitlines()) if v and k in FIELDS}


def pod_manifest(name: str, *, command: list[str], container_sc: dict[str, object] | None = None,
                 restart: str = "Always") -> str:
    container: dict[str, object] = {"name": "main", "image": "busybox", "command": command}
    if container_sc:
        container["securityContext"] = container_sc
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "namespace": NS},
                       "spec": {"containers": [container], "restartPolicy": restart,
                                "terminationGracePeriodSeconds": 0}})


@pytest.fixture(scope="module")
def ns(cluster: RunningCluster) -> Iterator[RunningCluster]:
    cluster.kubectl("create", "namespace", NS)
    # The privileged pod needs a namespace that opts out of the default baseline.
    cluster.kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=privileged")
    try:
        yield cluster
    finally:
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def running(cluster: RunningCluster, name: str, manifest: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=manifest)
    cluster.kubectl("wait", "-n", NS, "--for=condition=Ready", f"pod/{name}", "--timeout=60s",
                    timeout=70)


def sh(cluster: RunningCluster, pod: str, script: str) -> str:
    result = cluster.kubectl("exec", "-n", NS, pod, "--", "sh", "-c", "exec 2>&1; " + script,
                             check=False)
    return result.stdout


@pytest.fixture(scope="module")
def ordinary(ns: RunningCluster) -> str:
    running(ns, "ordinary", pod_manifest("ordinary", command=["sleep", "3600"]))
    return "ordinary"


def test_ordinary_pod_has_containerds_defaults(ns: RunningCluster, ordinary: str) -> None:
    fields = status_fields(sh(ns, ordinary, "cat /proc/self/status"))
    assert fields["CapEff"] == fields["CapPrm"] == fields["CapBnd"] == DEFAULT_MASK, fields
    assert fields["CapInh"] == fields["CapAmb"] == "0000000000000000"
    assert fields["Seccomp"] == "2" and fields["NoNewPrivs"] == "0"


def test_escapes_fail_in_an_ordinary_pod(ns: RunningCluster, ordinary: str) -> None:
    cluster_pid = ns.pid
    out = sh(ns, ordinary, (
        "mkdir -p /mnt/t; mount -t tmpfs none /mnt/t; echo mount=$?;"
        "echo x > /proc/sys/kernel/hostname; echo procsys=$?;"
        "echo 1 > /proc/sysrq-trigger; echo sysrq=$?;"
        "head -c 4096 /dev/zero > /tmp/m.ko; insmod /tmp/m.ko; echo insmod=$?;"
        f"ls /proc/{cluster_pid}/ >/dev/null; echo hostpid=$?;"
        "touch /sys/x; echo sys=$?; echo; ls /dev"))
    for probe in ("mount", "procsys", "insmod", "hostpid", "sys"):
        assert f"{probe}=0" not in out, (probe, out)
    assert "insmod" in out and "not permitted" in out.lower(), out  # seccomp/caps, not ENOEXEC
    devices = set(out.rsplit("\n\n", 1)[1].split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
            "mqueue", "fd", "stdin", "stdout", "stderr"} <= devices, devices
    assert not devices & {"sda", "vda", "kmsg", "mem", "loop0"}, devices


def test_privileged_pod_gets_what_it_asks(ns: RunningCluster) -> None:
    running(ns, "privileged", pod_manifest("privileged", command=["sleep", "3600"],
                                           container_sc={"privileged": True}))
    out = sh(ns, "privileged", "cat /proc/self/status; mkdir -p /mnt/t;"
                               " mount -t tmpfs none /mnt/t; echo mount=$?")
    fields = status_fields(out)
    host = status_fields(Path("/proc/self/status").read_text())
    assert fields["CapEff"] == fields["CapBnd"] == host["CapBnd"], fields
    assert fields["Seccomp"] == "0"
    assert "mount=0" in out, out


def test_security_context_fields(ns: RunningCluster) -> None:
    script = "cat /proc/self/status; id; touch /x || echo ro-root"
    ns.kubectl("apply", "-f", "-", input=pod_manifest(
        "restricted", command=["sh", "-c", script], restart="Never", container_sc={
            "runAsUser": 1000, "runAsGroup": 2000, "runAsNonRoot": True,
            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]}}))
    ns.kubectl("apply", "-f", "-", input=pod_manifest(
        "rootimage", command=["true"], container_sc={"runAsNonRoot": True}))

    def phase(name: str) -> str:
        return ns.kubectl("get", "-n", NS, "pod", name, "-o",
                          "jsonpath={.status.phase}").stdout
    wait_for(lambda: phase("restricted") == "Succeeded", timeout=60, what="restricted done")
    out = ns.kubectl("logs", "-n", NS, "restricted").stdout
    fields = status_fields(out)
    assert "uid=1000 gid=2000" in out and "ro-root" in out, out
    assert fields["CapBnd"] == f"{1 << 13:016x}" and fields["CapEff"] == "0" * 16, fields
    assert fields["NoNewPrivs"] == "1" and fields["Seccomp"] == "2"

    def refused() -> str | None:
        reason = ns.kubectl("get", "-n", NS, "pod", "rootimage", "-o", "jsonpath="
                            "{.status.containerStatuses[0].state.waiting.message}").stdout
        return reason or None
    message = wait_for(refused, timeout=60, what="rootimage refused")
    assert message.startswith("container has runAsNonRoot and image will run as root"), message


def test_a_bounded_fork_bomb_stays_contained(ns: RunningCluster, ordinary: str) -> None:
    # 1500 sleeps against the pod's pids limit of 1024.
    out = sh(ns, ordinary, "i=0; while [ $i -lt 1500 ]; do sleep 2 & i=$((i+1)); done 2>&1 |"
                           " head -2; echo done")
    assert "done" in out
    # The pids limit refused forks, and the node still runs the pod.
    assert "fork" in out.lower() or "resource" in out.lower(), out
    assert "ok" in sh(ns, ordinary, "echo ok")


@contextlib.contextmanager
def podman_busybox(tmp: Path) -> Iterator[str]:
    root = tmp / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "cat"):
        (root / "bin" / applet).symlink_to("busybox")
    archive = tmp / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(root, arcname=".")
    image = "localhost/mo-security-probe:e2e"
    subprocess.run(["podman", "import", "-q", str(archive), image], check=True,
                   capture_output=True, timeout=120)
    try:
        yield image
    finally:
        subprocess.run(["podman", "rmi", "-f", image], check=False, capture_output=True,
                       timeout=120)


@pytest.mark.skipif(shutil.which("podman") is None or shutil.which("runc") is None,
                    reason="apt-get install podman runc")
def test_same_fields_as_podman_with_runc(ns: RunningCluster, ordinary: str,
                                         tmp_path: Path) -> None:
    """podman ≥ 4 drops NET_RAW, MKNOD and AUDIT_WRITE from its defaults; Docker and
    containerd keep them, so the reference run adds them back."""
    with podman_busybox(tmp_path) as image:
        reference = subprocess.run(
            ["podman", "run", "--rm", "--runtime=runc", "--network=none",
             "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
             "--cap-add", "NET_RAW,MKNOD,AUDIT_WRITE", image, "cat", "/proc/self/status"],
            check=True, capture_output=True, text=True, timeout=120).stdout
    ours = status_fields(sh(ns, ordinary, "cat /proc/self/status"))
    assert ours == status_fields(reference), (ours, status_fields(reference))
