"""cgroup detection and limit files, v1 on the real kernel and v2 on a fake tree.

This machine's controllers are all bound to v1 hierarchies, so the v2 path is checked
against a directory tree shaped like /sys/fs/cgroup on a unified host: it proves which
files get which values, not that a kernel accepts them.
"""

from __future__ import annotations

import os
import secrets
import subprocess
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
