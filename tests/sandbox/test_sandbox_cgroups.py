"""cgroup detection and limit files, v1 on the real kernel and v2 on a fake tree.

This machine's controllers are all bound to v1 hierarchies, so the v2 path is checked
against a directory tree shaped like /sys/fs/cgroup on a unified host: it proves which
files get which values, not that a kernel accepts them.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from miniorch.sandbox.cgroups import Cgroups, CgroupVersion, detect_version
from tests.leakcheck import leak_check


def fake_v2_root(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_v2_detection_and_limits(tmp_path: Path) -> None:
    root = fake_v2_root(tmp_path)
    assert detect_version(root) is CgroupVersion.V2
    cgroups = Cgroups(root=root)
    # A real kernel creates these files in every new cgroup; the fake needs them first.
    pod_dir = root / "miniorch" / "pod1"
    pod_dir.mkdir(parents=True)
    for d in (root / "miniorch", pod_dir):
        (d / "cgroup.controllers").write_text("cpu memory pids\n")
        (d / "cgroup.subtree_control").write_text("")
    (pod_dir / "memory.swap.max").write_text("max\n")
    handle = cgroups.create("pod1", cpu_millis=250, memory_bytes=64 << 20, pids_max=32)
    assert handle.dirs == (pod_dir,)
    assert (pod_dir / "cpu.max").read_text() == "25000 100000"
    assert (pod_dir / "memory.max").read_text() == str(64 << 20)
    assert (pod_dir / "memory.swap.max").read_text() == "0"
    assert (pod_dir / "pids.max").read_text() == "32"
    assert (root / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    leaf = handle.child("init")
    assert leaf.procs_files == [str(pod_dir / "init" / "cgroup.procs")]
    assert (pod_dir / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    unlimited = cgroups.create("pod2")
    assert (unlimited.dirs[0] / "cpu.max").read_text() == "max 100000"
    assert (unlimited.dirs[0] / "memory.max").read_text() == "max"


def test_no_cgroups(tmp_path: Path) -> None:
    assert detect_version(tmp_path) is None
    with pytest.raises(RuntimeError, match="no usable cgroup"):
        Cgroups(root=tmp_path)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_real_cgroup_limits_pids_and_destroy() -> None:
    name = f"zt{secrets.token_hex(3)}"
    with leak_check(prefixes=[name]):
        cgroups = Cgroups()
        handle = cgroups.create(name, cpu_millis=500, memory_bytes=32 << 20, pids_max=7)
        try:
            leaf = handle.child("c-app")
            sleeper = subprocess.Popen(["sleep", "60"])
            leaf.add_pid(sleeper.pid)
            assert handle.pids() == [sleeper.pid]
            assert leaf.pids() == [sleeper.pid]
            assert handle.memory_usage() > 0
            if cgroups.version is CgroupVersion.V1:
                mem = handle.dirs[1] / "memory.limit_in_bytes"
                assert int(mem.read_text()) == 32 << 20
                assert (handle.dirs[0] / "cpu.cfs_quota_us").read_text().strip() == "50000"
            assert [h.name for h in cgroups.list(name)] == [name]
        finally:
            handle.destroy()
            handle.destroy()  # idempotent
        assert sleeper.wait(timeout=5) == -9
        assert not any(d.exists() for d in handle.dirs)


def test_v2_usage_readers(tmp_path: Path) -> None:
    """cpu.stat's usage_usec in ns; working set = memory.current - inactive_file."""
    root = fake_v2_root(tmp_path)
    handle = Cgroups(root=root).handle("pod1")
    assert handle.cpu_usage_ns() is None  # not made yet (or gone): no reading
    assert handle.memory_working_set() is None
    pod = handle.dirs[0]
    pod.mkdir(parents=True)
    (pod / "cpu.stat").write_text("usage_usec 1234567\nuser_usec 1000000\n"
                                  "system_usec 234567\nnr_periods 0\n")
    (pod / "memory.current").write_text("10485760\n")
    (pod / "memory.stat").write_text("anon 6291456\nfile 4194304\nactive_file 1048576\n"
                                     "inactive_file 3145728\n")
    assert handle.cpu_usage_ns() == 1_234_567_000
    assert handle.memory_working_set() == 10485760 - 3145728
    # A cache larger than the usage (reclaimed between the two reads): never negative.
    (pod / "memory.stat").write_text("inactive_file 99999999\n")
    assert handle.memory_working_set() == 0


def fake_v1_root(tmp_path: Path, *, separate_cpuacct: bool) -> Path:
    root = tmp_path / "cgroup"
    names = ["cpu", "memory", "pids"] + (["cpuacct"] if separate_cpuacct else [])
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "cgroup.procs").write_text("")
    if not separate_cpuacct:
        (root / "cpuacct").symlink_to(root / "cpu")
    return root


@pytest.mark.parametrize("separate", [pytest.param(True, id="cpuacct-own-hierarchy"),
                                      pytest.param(False, id="cpu,cpuacct-co-mounted")])
def test_v1_usage_readers(tmp_path: Path, separate: bool) -> None:
    root = fake_v1_root(tmp_path, separate_cpuacct=separate)
    cgroups = Cgroups(root=root)
    assert cgroups.version is CgroupVersion.V1
    handle = cgroups.handle("pod1")
    # Its own cpuacct hierarchy: pods get a fourth dir there, where usage is counted.
    assert len(handle.dirs) == (4 if separate else 3)
    accounting = root / "cpuacct" / "miniorch" / "pod1"
    for d in {*handle.dirs, accounting}:
        d.mkdir(parents=True, exist_ok=True)
    (accounting / "cpuacct.usage").write_text("987654321\n")
    memory = root / "memory" / "miniorch" / "pod1"
    (memory / "memory.usage_in_bytes").write_text("8388608\n")
    (memory / "memory.stat").write_text("cache 4194304\ninactive_file 1048576\n"
                                        "total_inactive_file 2097152\n")
    assert handle.cpu_usage_ns() == 987654321
    assert handle.memory_working_set() == 8388608 - 2097152  # the hierarchical total


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_real_usage_of_a_busy_process() -> None:
    """A process spinning for ~0.3 s in a leaf: the pod's counter moves by about that
    much, and its working set is its resident memory, not zero."""
    name = f"zt{secrets.token_hex(3)}"
    with leak_check(prefixes=[name]):
        cgroups = Cgroups()
        handle = cgroups.create(name)
        try:
            leaf = handle.child("c-app")
            before = handle.cpu_usage_ns()
            assert before is not None
            spinner = subprocess.Popen(
                ["python3", "-c", "import time\nb = bytearray(16 << 20)\n"
                 "t = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
                 "time.sleep(60)"])
            try:
                leaf.add_pid(spinner.pid)
                deadline = time.monotonic() + 10
                while (handle.cpu_usage_ns() or 0) - before < 250_000_000:
                    assert time.monotonic() < deadline, "no CPU time counted"
                    time.sleep(0.05)
                working_set = handle.memory_working_set()
                assert working_set is not None and working_set > 0
                assert (leaf.cpu_usage_ns() or 0) >= 250_000_000  # the leaf's own counter
            finally:
                spinner.kill()
                spinner.wait()
        finally:
            handle.destroy()
