"""Container privileges on a real kernel: what containerd's RuntimeDefault gives, read
from inside the container (and from an exec into it), and what securityContext changes."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from miniorch.sandbox.pod import (
    ContainerSpec,
    PodSandbox,
    RootfsSpec,
    SandboxError,
    exec_in_sandbox,
)
from miniorch.sandbox.security import (
    DEFAULT_CAPABILITIES,
    ContainerSecurity,
    SeccompProfile,
    capability_mask,
    compile_seccomp,
    effective_capabilities,
    privileged_security,
)
from tests.sandbox.test_sandbox_pod import read_all

if TYPE_CHECKING:
    from tests.sandbox.conftest import MakeSandbox

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="sandbox tests need root")]

DEFAULT_MASK = "00000000a80425fb"
APPLETS = ("sh", "cat", "grep", "mount", "ls", "id", "touch", "echo", "mknod", "kill",
           "sleep", "hostname", "head", "readlink", "wc", "mkdir", "true")


@pytest.fixture
def rootfs_factory(tmp_path: Path) -> object:
    layer = tmp_path / "layer"
    (layer / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", layer / "bin" / "busybox")
    for applet in APPLETS:
        (layer / "bin" / applet).symlink_to("busybox")
    (layer / "etc").mkdir()
    (layer / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n"
        "app:x:1000:1000:app:/home/app:/bin/sh\n")
    (layer / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
    counter = iter(range(100))

    def make() -> RootfsSpec:
        n = next(counter)
        upper, work = tmp_path / f"upper{n}", tmp_path / f"work{n}"
        upper.mkdir()
        work.mkdir()
        return RootfsSpec(lower_dirs=[layer], upper_dir=upper, work_dir=work,
                          merged_dir=tmp_path / f"merged{n}")
    return make


async def run(sandbox: PodSandbox, rootfs: RootfsSpec, script: str,
              security: ContainerSecurity | None) -> tuple[int, str]:
    name = "c" + secrets.token_hex(3)
    proc = await sandbox.start_container(ContainerSpec(
        name=name, argv=["/bin/sh", "-c", "exec 2>&1; " + script], rootfs=rootfs,
        security=security))
    out = await read_all(proc.stdout)
    with anyio.fail_after(5):
        status = await proc.wait()
    return status.code, out


def status_fields(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in
            (line.partition(":") for line in text.splitlines()) if v}


def test_default_mask_is_containerds() -> None:
    assert f"{capability_mask(DEFAULT_CAPABILITIES):016x}" == DEFAULT_MASK


@pytest.mark.parametrize(("add", "drop", "expected"), [
    pytest.param((), (), DEFAULT_CAPABILITIES, id="default"),
    pytest.param((), ("ALL",), frozenset(), id="drop-all"),
    pytest.param(("NET_BIND_SERVICE",), ("ALL",), frozenset({"CAP_NET_BIND_SERVICE"}),
                 id="drop-all-add-one"),
    pytest.param(("NET_ADMIN",), ("CHOWN",),
                 DEFAULT_CAPABILITIES - {"CAP_CHOWN"} | {"CAP_NET_ADMIN"}, id="add-drop"),
])
def test_capability_arithmetic(add: tuple[str, ...], drop: tuple[str, ...],
                               expected: frozenset[str]) -> None:
    assert effective_capabilities(add=add, drop=drop) == expected


def test_seccomp_program_depends_on_capabilities() -> None:
    default = compile_seccomp(SeccompProfile(), DEFAULT_CAPABILITIES)
    admin = compile_seccomp(SeccompProfile(), DEFAULT_CAPABILITIES | {"CAP_SYS_ADMIN"})
    assert default and admin and default != admin
    assert len(default) % 8 == 0
    assert compile_seccomp(SeccompProfile(type="Unconfined"), DEFAULT_CAPABILITIES) is None


async def test_runtime_default_from_inside(make_sandbox: MakeSandbox,
                                           rootfs_factory: object) -> None:
    sandbox = await make_sandbox()
    rootfs = rootfs_factory()  # type: ignore[operator]
    code, out = await run(sandbox, rootfs, "cat /proc/self/status", ContainerSecurity())
    assert code == 0, out
    fields = status_fields(out)
    assert fields["CapEff"] == fields["CapPrm"] == fields["CapBnd"] == DEFAULT_MASK
    assert fields["CapInh"] == fields["CapAmb"] == "0000000000000000"
    assert fields["Seccomp"] == "2"
    assert fields["NoNewPrivs"] == "0"  # containerd: only with allowPrivilegeEscalation=false
    script = ("mkdir /mnt; mount -t tmpfs none /mnt; echo mount=$?;"
              "echo 1 > /proc/sys/kernel/hostname; echo procsys=$?;"
              "cat /proc/timer_list | wc -c; echo timer_list;"
              "ls /sys/firmware | wc -l; touch /sys/x; echo sys=$?;"
              "mknod /zero c 1 5; head -c1 /zero >/dev/null; echo opened=$?;"
              "mknod /tmp/sda b 8 0; echo mknod=$?; ls /dev")
    _code, out = await run(sandbox, rootfs_factory(), script,  # type: ignore[operator]
                          ContainerSecurity())
    assert "mount=0" not in out and "procsys=0" not in out and "sys=0" not in out, out
    assert "0\ntimer_list" in out, out  # /dev/null over /proc/timer_list
    assert "opened=0" not in out, out  # a node made in the rootfs does not open (nodev)
    for name in ("null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts",
                 "shm", "mqueue", "fd", "stdin", "stdout", "stderr"):
        assert f"\n{name}\n" in "\n" + out.split("mknod=")[1].split("\n", 1)[1], (name, out)
    assert "sda" not in out.split("mknod=")[1].split("\n", 1)[1]


async def test_exec_gets_the_containers_restrictions(make_sandbox: MakeSandbox,
                                                     rootfs_factory: object) -> None:
    sandbox = await make_sandbox()
    sec = ContainerSecurity(user="1000", no_new_privs=True)
    proc = await sandbox.start_container(ContainerSpec(
        name="app", argv=["/bin/sleep", "30"], rootfs=rootfs_factory(),  # type: ignore[operator]
        security=sec))
    ex = await exec_in_sandbox(sandbox.init_pid, ["/bin/cat", "/proc/self/status"],
                               tty=False, container_pid=proc.pid, security=proc.security)
    try:
        assert ex.stdin is not None
        await ex.stdin.aclose()
        out = await read_all(ex.stdout)
        assert await ex.wait() == 0
    finally:
        await ex.aclose()
    fields = status_fields(out)
    assert fields["Uid"].split()[0] == "1000"
    assert fields["CapEff"] == "0000000000000000"
    assert fields["CapBnd"] == DEFAULT_MASK
    assert fields["Seccomp"] == "2" and fields["NoNewPrivs"] == "1"
    await proc.stop(0)


async def test_user_groups_and_readonly_root(make_sandbox: MakeSandbox,
                                             rootfs_factory: object) -> None:
    sandbox = await make_sandbox()
    sec = ContainerSecurity(user="app", supplemental_groups=(3000,))
    _code, out = await run(sandbox, rootfs_factory(), "id; echo $HOME", sec)  # type: ignore[operator]
    assert "uid=1000(app) gid=1000(app) groups=2000(extra),3000" in out, out
    assert out.strip().endswith("/home/app")
    # Root, but a read-only root filesystem: writes fail; /dev/shm still works.
    _code, out = await run(sandbox, rootfs_factory(),  # type: ignore[operator]
                          "touch /x; echo touch=$?; touch /dev/shm/y; echo shm=$?",
                          ContainerSecurity(read_only_rootfs=True))
    assert "Read-only file system" in out and "touch=1" in out and "shm=0" in out, out
    _code, out = await run(sandbox, rootfs_factory(), "id",  # type: ignore[operator]
                          ContainerSecurity(user="4242", group=4343))
    assert "uid=4242 gid=4343" in out, out


async def test_unknown_user_fails_to_start(make_sandbox: MakeSandbox,
                                           rootfs_factory: object) -> None:
    sandbox = await make_sandbox()
    with pytest.raises(SandboxError, match="unable to find user ghost"):
        await sandbox.start_container(ContainerSpec(
            name="c", argv=["/bin/true"], rootfs=rootfs_factory(),  # type: ignore[operator]
            security=ContainerSecurity(user="ghost")))


async def test_capabilities_add_drop_and_privileged(make_sandbox: MakeSandbox,
                                                    rootfs_factory: object) -> None:
    sandbox = await make_sandbox()
    caps = effective_capabilities(add=("NET_ADMIN",), drop=("ALL",))
    _code, out = await run(sandbox, rootfs_factory(),  # type: ignore[operator]
                          "grep Cap /proc/self/status; hostname x; echo host=$?",
                          ContainerSecurity(capabilities=caps))
    fields = status_fields(out)
    assert fields["CapEff"] == f"{1 << 12:016x}"  # CAP_NET_ADMIN only
    assert "host=0" not in out
    _code, out = await run(sandbox, rootfs_factory(),  # type: ignore[operator]
                          "grep -E 'Cap|Seccomp' /proc/self/status; mkdir /mnt;"
                          " mount -t tmpfs t /mnt; echo mount=$?; ls /dev | wc -l;"
                          " cat /proc/timer_list | head -c1 | wc -c",
                          privileged_security())
    fields = status_fields(out)
    assert fields["Seccomp"] == "0"
    assert int(fields["CapEff"], 16) == int(fields["CapBnd"], 16) > int(DEFAULT_MASK, 16)
    assert "mount=0" in out, out
    assert out.strip().endswith("1")  # /proc/timer_list is readable (not masked)


async def test_localhost_profile(make_sandbox: MakeSandbox, rootfs_factory: object,
                                 tmp_path: Path) -> None:
    """A Localhost profile that refuses mkdir (with EACCES) is what the container gets."""
    import json
    profile = tmp_path / "deny-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 13}]}))
    sandbox = await make_sandbox()
    _code, out = await run(sandbox, rootfs_factory(),  # type: ignore[operator]
                          "busybox mkdir /tmp/d; echo mkdir=$?",
                          ContainerSecurity(seccomp=SeccompProfile(type="Localhost",
                                                                   path=profile)))
    assert "Permission denied" in out and "mkdir=1" in out, out
