"""Shared by tests/api/test_server*.py: a registry, the app under TestClient, a real
ApiServer on a random port, and stand-ins for sibling modules not yet written.

Stand-ins live here (never in the modules they stand in for) and are used only when
the real module is missing or still a placeholder.
"""

from __future__ import annotations

import copy
import os
import pty
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import CancelledError
from contextlib import asynccontextmanager, contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
from aiohttp.test_utils import TestClient, TestServer
from anyio.from_thread import BlockingPortal, start_blocking_portal

from miniorch.api.registry import Registry
from miniorch.api.server import build_app
from miniorch.api.server_exec import ExecProcess, ExecRequest
from miniorch.api.store import Store
from miniorch.core.clock import SystemClock
from miniorch.core.objects import Obj
from miniorch.core.settings import Settings

T = TypeVar("T")
TOKEN = "test-token-" + os.urandom(4).hex()










async def local_spawner(request: ExecRequest) -> ExecProcess:
    """Runs the command as a plain local process (no namespaces): tests the framing."""
    from miniorch.sandbox.pod import ExecProcess as SandboxExecProcess
    if not request.tty:
        process = await anyio.open_process(request.argv)
        return SandboxExecProcess(process, master=None)
    master, slave = pty.openpty()
    try:
        process = await anyio.open_process(request.argv, stdin=slave, stdout=slave,
                                           stderr=slave, start_new_session=True)
    finally:
        os.close(slave)
    return SandboxExecProcess(process, master=master)


# ---- fixtures' building blocks ------------------------------------------------------------

def make_registry(tmp_path: Path) -> Registry:
    registry = Registry(Store(tmp_path / "store.db"))
    registry.ensure_system_objects()
    return registry


@asynccontextmanager
async def app_client(tmp_path: Path, *, registry: Registry | None = None,
                     settings: Settings | None = None) -> AsyncIterator[TestClient[Any, Any]]:
    settings = settings or Settings(home=tmp_path, api_port=0)
    registry = registry or make_registry(tmp_path)
    app = build_app(settings=settings, registry=registry, clock=SystemClock(), token=TOKEN,
                    spawn_exec=local_spawner)
    server = TestServer(app, handler_cancellation=True)
    async with TestClient(server, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client
    registry.store.close()


POD: Obj = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "kubia-manual", "labels": {"app": "kubia"}},
    "spec": {"containers": [{"name": "kubia", "image": "kubia",
                             "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]},
}


def pod(name: str, **labels: str) -> Obj:
    obj = copy.deepcopy(POD)
    obj["metadata"]["name"] = name
    if labels:
        obj["metadata"]["labels"] = dict(labels)
    return obj


# ---- a real ApiServer (TLS, token, random port) ---------------------------------------------

class Cluster:
    """A real ApiServer on its own event loop thread (a blocking portal), so tests can run
    kubectl and the synchronous Python client directly; registry calls go through
    `call()` to stay on the server's thread."""

    def __init__(self, home: Path, registry: Registry, portal: BlockingPortal) -> None:
        self.home = home
        self.registry = registry
        self.portal = portal
        self.kubeconfig = home / "kubeconfig"
        self.cache_dir = home / "kubectl-cache"

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self.portal.call(partial(fn, *args, **kwargs))

    def kubectl_argv(self, *args: str) -> list[str]:
        return ["kubectl", f"--kubeconfig={self.kubeconfig}",
                f"--cache-dir={self.cache_dir}", *args]

    def kubectl(self, *args: str, stdin: bytes | None = None,
                timeout: float = 30) -> tuple[int, str, str]:
        result = subprocess.run(self.kubectl_argv(*args), input=stdin, capture_output=True,
                                timeout=timeout, check=False)
        return result.returncode, result.stdout.decode(), result.stderr.decode()


@contextmanager
def running_cluster(tmp_path: Path) -> Iterator[Cluster]:
    from miniorch.api.server import ApiServer
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    settings = Settings(home=home, api_port=0)
    with start_blocking_portal() as portal:
        registry = portal.call(make_registry, home)
        server = ApiServer(settings=settings, registry=registry, clock=SystemClock(),
                           spawn_exec=local_spawner)
        future, _url = portal.start_task(server.run)
        try:
            yield Cluster(home, registry, portal)
        finally:
            future.cancel()
            with suppress(CancelledError):
                future.result(timeout=10)
            portal.call(registry.store.close)
