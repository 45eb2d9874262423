"""Plain mode's runtime (node.rootless.PlainRuntime): the port rule and image paths.

No namespaces here: a pod whose declared port is taken on the wildcard address is
refused with the message `FailedCreatePodSandBox` shows; a pod binding only its own
loopback alias does not block another.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from miniorch.images.store import ImageStore
from miniorch.node.cri import RuntimeFailure, SandboxConfig
from miniorch.node.rootless import PlainRuntime


def _config(tmp_path: Path, ip: str, ports: tuple[int, ...]) -> SandboxConfig:
    uid = str(uuid.uuid4())
    return SandboxConfig(pod_uid=uid, namespace="default", name=f"p-{uid[:5]}",
                         hostname="p", ip=ip, prefix_len=24, gateway="10.244.1.1",
                         bridge="", cpu_millis=None, memory_bytes=None, pids_max=100,
                         pod_dir=tmp_path / uid, ports=ports)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_port_taken_on_the_wildcard_refuses_the_pod(tmp_path: Path) -> None:
    runtime = PlainRuntime(images=ImageStore(tmp_path / "images"))
    port = _free_port()
    with socket.socket() as app:  # an app that ignored MINIORCH_POD_IP
        app.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        app.bind(("0.0.0.0", port))
        app.listen()
        with pytest.raises(RuntimeFailure, match=f"port {port} already in use on this "
                           r"machine \(plain mode has no network isolation\)"):
            await runtime.create_sandbox(_config(tmp_path, "10.244.1.7", (port,)))
    sandbox = await runtime.create_sandbox(_config(tmp_path, "10.244.1.7", (port,)))
    assert sandbox.ip == "127.244.1.7"
    await sandbox.destroy(0)


async def test_pods_on_their_own_aliases_share_a_port(tmp_path: Path) -> None:
    runtime = PlainRuntime(images=ImageStore(tmp_path / "images"))
    port = _free_port()
    with socket.socket() as first:  # pod 1's app on its alias, as kubia does
        first.bind(("127.244.1.8", port))
        first.listen()
        sandbox = await runtime.create_sandbox(_config(tmp_path, "10.244.2.8", (port,)))
        assert sandbox.ip == "127.244.2.8"
        await sandbox.destroy(0)
