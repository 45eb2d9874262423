"""A cluster process killed with -9 leaves nothing running, and cleanup removes the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from miniorch.sandbox import network
from miniorch.sandbox.cgroups import Cgroups
from miniorch.sandbox.cleanup import cleanup_leftovers
from miniorch.sandbox.mode import ModeKind, detect_mode

if TYPE_CHECKING:
    from tests.sandbox.conftest import TestNet

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="sandbox tests need root")]

CRASHER = """
import json, sys
from pathlib import Path
import anyio
from miniorch.sandbox.network import HostNetwork
from miniorch.sandbox.pod import ContainerSpec, PodSandbox, PodSandboxSpec

async def main(prefix, bridge, subnet, state):
    await HostNetwork(bridge=bridge, gateway_cidr=f"10.{subnet}.0.1/16").setup()
    pids, keep = [], []  # a dropped PodSandbox closes its shim socket: the pod dies
    for n in (2, 3):
        sandbox = await PodSandbox.create(PodSandboxSpec(
            id=f"{prefix}-{n}", hostname=f"p{n}", ip=f"10.{subnet}.1.{n}", prefix_len=16,
            gateway=f"10.{subnet}.0.1", bridge=bridge, state_dir=Path(state) / str(n)))
        app = await sandbox.start_container(ContainerSpec(name="app", argv=["sleep", "60"]))
        pids += [sandbox.init_pid, app.pid]
        keep.append((sandbox, app))
    print("PIDS", json.dumps(pids), flush=True)
    await anyio.sleep(60)

anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
"""


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_crash_then_cleanup(testnet: TestNet, tmp_path: Path) -> None:
    try:
        crasher = subprocess.Popen(  # noqa: ASYNC220 - we need its pid and a kill -9
            [sys.executable, "-c", CRASHER, testnet.prefix, testnet.bridge, str(testnet.subnet),
             str(tmp_path / "state")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            assert crasher.stdout is not None
            line = b""
            with anyio.fail_after(20):
                while not line.startswith(b"PIDS "):  # skip structlog's lines
                    line = await anyio.to_thread.run_sync(crasher.stdout.readline)
                    assert line, "the crasher died early"
            pids: list[int] = json.loads(line[5:])
            assert all(alive(p) for p in pids), [(p, alive(p)) for p in pids]
        finally:
            crasher.kill()
            crasher.wait()
            if crasher.stdout is not None:
                crasher.stdout.close()

        # PR_SET_PDEATHSIG: shims, inits and containers die with the cluster process.
        deadline = time.monotonic() + 5
        while any(alive(p) for p in pids) and time.monotonic() < deadline:  # noqa: ASYNC110
            await anyio.sleep(0.02)
        assert not any(alive(p) for p in pids)

        # What no process holds survives: netns, veths, cgroups. Add a process that did
        # survive (as if spawned from elsewhere) to prove cleanup kills cgroup members.
        assert network.list_netns(testnet.prefix) == [f"{testnet.prefix}-2", f"{testnet.prefix}-3"]
        straggler = subprocess.Popen(["sleep", "60"])  # noqa: ASYNC220
        Cgroups().handle(f"{testnet.prefix}-2").child("init").add_pid(straggler.pid)

        summary = await cleanup_leftovers(bridge=testnet.bridge, prefix=testnet.prefix)
        assert straggler.wait(timeout=5) == -signal.SIGKILL
        assert straggler.pid in summary.killed_pids
        assert sorted(summary.netns) == [f"{testnet.prefix}-2", f"{testnet.prefix}-3"]
        assert sorted(summary.cgroups) == [f"{testnet.prefix}-2", f"{testnet.prefix}-3"]
        assert testnet.bridge in summary.links
        assert await anyio.to_thread.run_sync(network.list_links, testnet.prefix) == []

        again = await cleanup_leftovers(bridge=testnet.bridge, prefix=testnet.prefix)
        assert again.empty, str(again)
    finally:
        # Whatever failed above, leave nothing for the fixture's leak check to find.
        await cleanup_leftovers(bridge=testnet.bridge, prefix=testnet.prefix)
    # The `testnet` fixture's leak check now verifies nothing with our names is left.


async def test_cleanup_refuses_an_empty_prefix() -> None:
    with pytest.raises(ValueError, match="prefix"):
        await cleanup_leftovers(bridge="mot-none", prefix="")


def test_detect_mode_as_root() -> None:
    mode = detect_mode()
    assert mode.kind is ModeKind.ROOT
    assert mode.isolated
    assert "root" in mode.reason
