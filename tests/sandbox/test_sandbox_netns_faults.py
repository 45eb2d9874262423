"""Another tool's netns work during a run never bricks us: pins are removed, cleanup
reports what it cannot remove instead of failing.

The reproduction of the old failure (a pin made under a plain /run/netns, then
`ip netns add` binding /run/netns onto itself) runs in a private mount namespace of its
own (`unshare -m`), so it cannot disturb the host's or anyone else's netns mounts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from miniorch.sandbox.cleanup import cleanup_leftovers
from miniorch.sandbox.network import netns_path

if TYPE_CHECKING:
    from tests.sandbox.conftest import MakeSandbox, TestNet

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="netns tests need root"),
              pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2"),
              pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux")]

WORKTREE = Path(__file__).resolve().parents[2]


def mounted(path: Path) -> bool:
    return any(line.split()[4] == str(path)
               for line in Path("/proc/self/mountinfo").read_text().splitlines())


@contextlib.contextmanager
def other_tools_netns() -> object:
    name = f"mo-test-other-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
        assert not netns_path(name).exists()


async def test_ip_netns_add_during_a_run_leaves_nothing(make_sandbox: MakeSandbox,
                                                        testnet: TestNet) -> None:
    first = await make_sandbox()
    with other_tools_netns():
        second = await make_sandbox()  # one pin made before, one after the other tool
        for sandbox in (first, second):
            await sandbox.destroy()
            assert not netns_path(sandbox.netns).exists(), sandbox.netns
            assert not mounted(netns_path(sandbox.netns))
        # And a later start works.
        third = await make_sandbox()
        await third.destroy()
    summary = await cleanup_leftovers(bridge=testnet.bridge + "x", prefix=testnet.prefix)
    assert summary.empty, str(summary)


SCRIPT = textwrap.dedent("""
    import ctypes, os, subprocess, sys, asyncio
    sys.path.insert(0, sys.argv[1])
    from miniorch.sandbox import network
    from miniorch.sandbox.cleanup import cleanup_leftovers
    libc = ctypes.CDLL(None, use_errno=True)
    ours, other, legacy = sys.argv[2:5]
    # The state that broke: /run/netns a plain directory (only in this mount namespace).
    while libc.umount2(b"/run/netns", 2) == 0:
        pass
    # A pin made the old way, before another tool ran, and one made by us now.
    os.makedirs("/run/netns", exist_ok=True)
    path = "/run/netns/" + legacy
    os.close(os.open(path, os.O_CREAT | os.O_RDONLY, 0o444))
    assert libc.mount(b"/proc/self/ns/net", path.encode(), b"none", 4096, None) == 0
    network.ensure_shared_netns_dir()  # what _create_netns does first
    network._create_netns(ours)
    subprocess.run(["ip", "netns", "add", other], check=True)
    network.delete_netns(ours)
    print("ours-removed", not os.path.exists("/run/netns/" + ours))
    summary = asyncio.run(cleanup_leftovers(bridge="mo-none-br", prefix=legacy))
    print("legacy-reported", any(legacy in f for f in summary.failed), summary)
    subprocess.run(["ip", "netns", "del", other], check=True)
""")


def test_cleanup_reports_a_busy_pin_and_ours_go() -> None:
    tag = secrets.token_hex(3)
    ours, other, legacy = f"zf{tag}-ours", f"mo-test-other-{tag}", f"zf{tag}-legacy"
    try:
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", SCRIPT,
             str(WORKTREE), ours, other, legacy],
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "ours-removed True" in result.stdout, result.stdout
        assert "legacy-reported True" in result.stdout, result.stdout
    finally:
        # Files on /run's tmpfs outlive that mount namespace (its mounts do not).
        for name in (ours, other, legacy):
            with contextlib.suppress(FileNotFoundError):
                netns_path(name).unlink()
