"""Shims forked by the zygote (`ShimSpawner`): same sandboxes, same chain of death."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import psutil
import pytest

from miniorch.sandbox.pod import ContainerSpec, PodSandbox, PodSandboxSpec, ShimSpawner

if TYPE_CHECKING:
    from tests.sandbox.conftest import TestNet

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="sandbox tests need root"),
              pytest.mark.skipif(not ShimSpawner.available(), reason="no pidfd_open")]


@pytest.fixture
async def spawner() -> AsyncIterator[ShimSpawner]:
    spawner = ShimSpawner()
    try:
        yield spawner
    finally:
        await spawner.aclose()


def _spec(testnet: TestNet, tmp_path: Path, n: int) -> PodSandboxSpec:
    sid = f"{testnet.prefix}-{n}"
    return PodSandboxSpec(id=sid, hostname=f"pod-{n}", ip=testnet.ip(n), prefix_len=16,
                          gateway=testnet.gateway, bridge=testnet.bridge,
                          state_dir=tmp_path / sid)


def _zygote_pid(spawner: ShimSpawner) -> int:
    process = spawner._process
    assert process is not None
    return process.pid


async def test_spawned_sandboxes_run_and_stop(testnet: TestNet, tmp_path: Path,
                                              spawner: ShimSpawner) -> None:
    made: list[PodSandbox] = []
    try:
        async def one(n: int) -> None:
            sandbox = await PodSandbox.create(_spec(testnet, tmp_path, n), spawner=spawner)
            made.append(sandbox)
            app = await sandbox.start_container(ContainerSpec(name="app", argv=["sleep", "30"]))
            assert psutil.Process(app.pid).is_running()

        async with anyio.create_task_group() as tg:
            for n in range(2, 5):
                tg.start_soon(one, n)
        zygote = _zygote_pid(spawner)
        shims = psutil.Process(zygote).children()
        assert len(shims) == 3
        assert all(s.name() == "pod-shim" for s in shims)
    finally:
        for sandbox in made:
            await sandbox.destroy(grace_seconds=1)
    # The zygote leaves once its channel is closed and its shims are gone.
    await spawner.aclose()
    assert not psutil.pid_exists(zygote) or psutil.Process(zygote).status() == "zombie"


async def test_zygote_killed_takes_the_pods_down(testnet: TestNet, tmp_path: Path,
                                                 spawner: ShimSpawner) -> None:
    """cluster ─PDEATHSIG→ zygote ─PDEATHSIG→ shim → init: killing a link kills the pod."""
    sandbox = await PodSandbox.create(_spec(testnet, tmp_path, 2), spawner=spawner)
    try:
        app = await sandbox.start_container(ContainerSpec(name="app", argv=["sleep", "30"]))
        os.kill(_zygote_pid(spawner), signal.SIGKILL)
        with anyio.fail_after(5):
            status = await app.wait()
        assert status.signal == signal.SIGKILL
    finally:
        await sandbox.destroy()
