"""Fixtures for sandbox tests: a private bridge and /16, a sandbox factory, leak checks.

Every name is random (`zt<hex>` pod ids, `mot<hex>` bridge, a 10.2xx.0.0/16 that is
neither the default pod nor service range), so these tests can run next to a real
cluster and other engineers' tests. Each test is wrapped in a leak check on its own
names: sandboxes are destroyed, and the bridge torn down, before the check runs.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from miniorch.sandbox.network import HostNetwork
from miniorch.sandbox.pod import PodSandbox, PodSandboxSpec
from tests.leakcheck import LeakChecker

BUSYBOX = Path("/bin/busybox")


@dataclass(frozen=True)
class TestNet:
    prefix: str
    """Prefix of every pod id of this test."""
    bridge: str
    subnet: int
    """Second octet: the test's network is 10.<subnet>.0.0/16."""
    host: HostNetwork

    @property
    def gateway(self) -> str:
        return f"10.{self.subnet}.0.1"

    def ip(self, n: int) -> str:
        return f"10.{self.subnet}.1.{n}"


MakeSandbox = Callable[..., Awaitable[PodSandbox]]


@pytest.fixture
async def testnet(tmp_path: Path) -> AsyncIterator[TestNet]:
    if os.geteuid() != 0:
        pytest.skip("sandbox tests need root")
    tag = secrets.token_hex(3)
    subnet = secrets.choice([n for n in range(200, 240) if n != 244])
    host = HostNetwork(bridge=f"mot{tag}", gateway_cidr=f"10.{subnet}.0.1/16")
    net = TestNet(prefix=f"zt{tag}", bridge=host.bridge, subnet=subnet, host=host)
    checker = LeakChecker(prefixes=[net.prefix, net.bridge], mount_roots=[tmp_path])
    checker.start()
    await host.setup()
    try:
        yield net
    finally:
        await host.teardown()
    checker.check()


@pytest.fixture
async def make_sandbox(testnet: TestNet, tmp_path: Path) -> AsyncIterator[MakeSandbox]:
    """`await make_sandbox(hostname=..., memory_bytes=...)` → a PodSandbox, destroyed at
    the end of the test."""
    made: list[PodSandbox] = []
    counter = iter(range(2, 250))

    async def make(**overrides: object) -> PodSandbox:
        n = next(counter)  # taken before any await: concurrent calls get distinct ids
        sid = f"{testnet.prefix}-{n}"
        spec = PodSandboxSpec(id=sid, hostname=f"pod-{n}", ip=testnet.ip(n), prefix_len=16,
                              gateway=testnet.gateway, bridge=testnet.bridge,
                              state_dir=tmp_path / sid)
        spec = replace(spec, **overrides)  # type: ignore[arg-type]
        sandbox = await PodSandbox.create(spec)
        made.append(sandbox)
        return sandbox

    try:
        yield make
    finally:
        for sandbox in made:
            await sandbox.destroy()


@pytest.fixture
def busybox_rootfs(tmp_path: Path) -> Path:
    """An image layer: busybox, its applet links, and a marker file at /."""
    if not BUSYBOX.exists():
        pytest.skip("/bin/busybox missing (apt-get install -y busybox-static)")
    layer = tmp_path / "layer"
    (layer / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, layer / "bin" / "busybox")
    for applet in ("sh", "ls", "cat", "hostname", "ps", "sleep", "echo", "wget", "id"):
        (layer / "bin" / applet).symlink_to("busybox")
    (layer / "etc").mkdir()
    (layer / "IMAGE-MARKER").write_text("from the image\n")
    return layer
