"""Pod privileges read from inside real pods with the real kubectl, escape attempts, and
podman (runc) as the reference of what containerd/Docker give the same busybox.

Run alone (one cluster per machine):
    .venv/bin/python -m pytest tests/e2e/test_security.py -q
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
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


# ---- escape attempts by syscall, from a python pod (busybox has no keyctl, ptrace,
# unshare(2) or raw mknod+open) --------------------------------------------------------------

# x86_64 / aarch64 numbers of the syscalls glibc has no wrapper for.
SYSCALLS = {"x86_64": {"add_key": 248, "keyctl": 250, "init_module": 175,
                       "finit_module": 313, "kexec_load": 246, "bpf": 321,
                       "open_by_handle_at": 304, "perf_event_open": 298},
            "aarch64": {"add_key": 217, "keyctl": 219, "init_module": 105,
                        "finit_module": 273, "kexec_load": 104, "bpf": 280,
                        "open_by_handle_at": 265, "perf_event_open": 241}}

# Each probe prints `name=<errno>` (0: it worked). Runs as the pod's root with the
# default capabilities (NET_RAW and MKNOD among them, as in Docker and containerd).
PROBE = r'''
import ctypes, errno, hashlib, json, os, socket, stat, sys
libc = ctypes.CDLL(None, use_errno=True)
NR = json.loads(sys.argv[1])[os.uname().machine]
host_pid = int(sys.argv[2])
out = {}
def rc(value):
    return 0 if value >= 0 else ctypes.get_errno()
def call(name, fn):
    try:
        out[name] = fn()
    except OSError as exc:
        out[name] = exc.errno
def syscall(name, *args):
    out[name] = rc(libc.syscall(NR[name], *[ctypes.c_long(a) for a in args]))
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWUTS = 0x20000, 0x10000000, 0x4000000
out["unshare_user"] = rc(libc.unshare(CLONE_NEWUSER))
out["unshare_mount"] = rc(libc.unshare(CLONE_NEWNS))
out["unshare_uts"] = rc(libc.unshare(CLONE_NEWUTS))
out["sethostname"] = rc(libc.sethostname(b"escaped", 7))
out["ptrace_host_pid"] = rc(libc.ptrace(16, host_pid, None, None))  # PTRACE_ATTACH
out["host_pid_visible"] = 0 if os.path.exists(f"/proc/{host_pid}") else errno.ESRCH
out["pids_seen"] = len([p for p in os.listdir("/proc") if p.isdigit()])
buf = ctypes.create_string_buffer(b"x" * 16)
syscall("add_key", ctypes.addressof(ctypes.create_string_buffer(b"user")),
        ctypes.addressof(ctypes.create_string_buffer(b"k")), ctypes.addressof(buf), 1, -4)
syscall("keyctl", 0, -4, 0, 0, 0)  # KEYCTL_GET_KEYRING_ID of the session keyring
syscall("init_module", ctypes.addressof(buf), 16, ctypes.addressof(buf))
syscall("kexec_load", 0, 0, 0, 0)
syscall("bpf", 5, ctypes.addressof(buf), 16)  # BPF_PROG_LOAD
syscall("open_by_handle_at", -100, ctypes.addressof(buf), 0)  # the "shocker" escape
attr = ctypes.create_string_buffer(128)
syscall("perf_event_open", ctypes.addressof(attr), -1, 0, -1, 0)  # system-wide: cpu 0
fd = os.open("/proc/self/exe", os.O_RDONLY)
syscall("finit_module", fd, ctypes.addressof(ctypes.create_string_buffer(b"")), 0)
for where in ("/tmp", "/dev", "/dev/shm"):
    node = f"{where}/mem-probe"
    def mknod_open(node=node):
        os.mknod(node, stat.S_IFCHR | 0o600, os.makedev(1, 1))  # /dev/mem
        try:
            os.close(os.open(node, os.O_RDONLY))
            return 0
        finally:
            os.unlink(node)
    call("mknod_open" + where.replace("/", "_"), mknod_open)
def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return 0
call("write_proc_sys", lambda: write("/proc/sys/vm/drop_caches", "1"))
call("write_sysrq", lambda: write("/proc/sysrq-trigger", "h"))  # h: only prints help
call("write_sys_kernel", lambda: write("/sys/kernel/uevent_helper", "/x"))
call("mkdir_cgroup", lambda: os.mkdir("/sys/fs/cgroup/escape") or 0)
call("raw_icmp_socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW,
                                             socket.IPPROTO_ICMP).close() or 0)
def set_mtu():  # NET_ADMIN, beyond NET_RAW (SO_MARK, IP_TRANSPARENT take NET_RAW since 5.17)
    import fcntl, struct
    with socket.socket() as s:
        fcntl.ioctl(s, 0x8922, struct.pack("16si12x", b"lo", 65536))  # SIOCSIFMTU
    return 0
call("net_admin_set_mtu", set_mtu)
try:
    with open("/proc/1/root/etc/shadow", "rb") as f:
        out["shadow_sha256"] = hashlib.sha256(f.read()).hexdigest()
except OSError as exc:
    out["shadow_sha256"] = str(exc.errno)
print(json.dumps(out))
'''

HOG = "x = bytearray(256 << 20); x[::4096] = b'y' * len(x[::4096]); print('survived')"


@pytest.fixture(scope="module")
def python_pod(ns: RunningCluster) -> str:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": NS},
           "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
               "name": "main", "image": "python:3.11-slim", "imagePullPolicy": "Never",
               "command": ["sleep", "3600"],
               "resources": {"limits": {"memory": "64Mi"}}}]}}
    running(ns, "probe", json.dumps(pod))
    return "probe"


def test_syscall_escapes_fail_in_an_ordinary_pod(ns: RunningCluster, python_pod: str) -> None:
    host_name = Path("/proc/sys/kernel/hostname").read_text()
    result = ns.kubectl("exec", "-n", NS, python_pod, "--", "python3", "-c", PROBE,
                        json.dumps(SYSCALLS), str(ns.pid))
    out = json.loads(result.stdout)
    refused = {k: v for k, v in out.items() if k not in (
        "pids_seen", "shadow_sha256", "raw_icmp_socket")}
    assert all(v != 0 for v in refused.values()), {k: v for k, v in refused.items() if v == 0}
    assert out["ptrace_host_pid"] == errno.ESRCH and out["host_pid_visible"] == errno.ESRCH
    assert out["pids_seen"] < 10, out  # its own pid namespace: sleep, the probe, little else
    assert out["raw_icmp_socket"] == 0  # NET_RAW is in the default set, as in Docker
    assert out["write_sysrq"] in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT)
    host_shadow = hashlib.sha256(Path("/etc/shadow").read_bytes()).hexdigest()
    assert out["shadow_sha256"] != host_shadow
    assert Path("/proc/sys/kernel/hostname").read_text() == host_name


def test_a_memory_hog_is_killed_inside_its_pod(ns: RunningCluster, python_pod: str) -> None:
    """256 MiB touched against a 64 MiB limit: the kernel kills the hog in the pod's
    cgroup; the pod keeps running and the node did not swap itself to death."""
    result = ns.kubectl("exec", "-n", NS, python_pod, "--", "python3", "-c", HOG, check=False,
                        timeout=60)
    assert "survived" not in result.stdout
    assert result.returncode != 0
    assert "ok" in sh(ns, python_pod, "echo ok")
    status = ns.kubectl("get", "-n", NS, "pod", python_pod, "-o", "json").stdout
    assert json.loads(status)["status"]["phase"] == "Running"
