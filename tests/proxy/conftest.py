"""Fixtures for the Service proxy tests: a real in-memory Store + Registry, real aiohttp
"pods" on random 127.x addresses, and a ServiceProxy started in the test's own task.

Every address is loopback, drawn at random per test (127.<a>.<b..b+3>.x), so parallel
runs do not collide and no root is needed: ClusterIPs come from 127.a.b.0/24,
EXTERNAL-IPs from 127.a.b+1.0/24, backends listen on 127.a.b+2.x, test clients
connect from 127.a.b+3.x when they need a distinct client IP.
"""

from __future__ import annotations

import contextlib
import random
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from miniorch.api.kinds import ENDPOINTS, EVENTS, NAMESPACES, NODES, SERVICES
from miniorch.api.registry import Registry
from miniorch.api.store import Store
from miniorch.core.objects import Obj
from miniorch.core.settings import NetworkSettings, Settings
from miniorch.proxy import ServiceProxy

WAIT = 5.0  # generous upper bound for anything awaited in these tests


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Backend:
    """A real HTTP server standing in for a pod: answers its name, records requests."""

    def __init__(self, name: str, ip: str) -> None:
        self.name = name
        self.ip = ip
        self.port = 0
        self.hits = 0
        self.last_headers: dict[str, str] = {}
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/echo", self._echo)
        app.router.add_route("*", "/{tail:.*}", self._hello)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.ip, 0)
        await site.start()
        self.port = site.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _hello(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.last_headers = dict(request.headers)
        return web.Response(text=f"You've hit {self.name}\n")

    async def _echo(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        self.last_headers = dict(request.headers)
        response = web.StreamResponse(headers={"X-Backend": self.name})
        await response.prepare(request)
        async for chunk in request.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response

    @property
    def address(self) -> tuple[str, int]:
        return (self.ip, self.port)


class RecordingLocalAddresses:
    """LocalAddresses that only remembers which addresses are currently "added"."""

    def __init__(self) -> None:
        self.current: set[str] = set()
        self.added: list[str] = []

    async def add(self, ip: str) -> None:
        assert ip not in self.current, f"{ip} added twice"
        self.current.add(ip)
        self.added.append(ip)

    async def remove(self, ip: str) -> None:
        self.current.remove(ip)


class ProxyEnv:
    def __init__(self, tmp_path: Path) -> None:
        a, b = random.randint(1, 254), random.randrange(0, 248, 4)
        self.prefix = f"127.{a}"
        self.service_net = f"{self.prefix}.{b}"
        self.lb_net = f"{self.prefix}.{b + 1}"
        self.backend_net = f"{self.prefix}.{b + 2}"
        self.client_net = f"{self.prefix}.{b + 3}"
        self.settings = Settings(home=tmp_path, network=NetworkSettings(
            service_cidr=f"{self.service_net}.0/24",
            loadbalancer_cidr=f"{self.lb_net}.0/24",
            # Tests pass explicit, currently free nodePorts (see service()); the wide
            # range keeps them valid if the registry ever checks it.
            node_port_range=(1024, 65535)))
        self.store = Store(None)
        self.registry = Registry(self.store, network=self.settings.network)
        self.registry.create(NAMESPACES, {"metadata": {"name": "default"}})
        self.backends: list[Backend] = []
        self._next_backend = 1
        self.local_addresses = RecordingLocalAddresses()

    def close(self) -> None:
        self.store.close()

    # ---- pods --------------------------------------------------------------------

    async def backend(self, name: str | None = None) -> Backend:
        ip = f"{self.backend_net}.{self._next_backend}"
        self._next_backend += 1
        pod = Backend(name or f"pod-{self._next_backend - 1}", ip)
        await pod.start()
        self.backends.append(pod)
        return pod

    def dead_address(self) -> tuple[str, int]:
        ip = f"{self.backend_net}.{200 + random.randint(0, 50)}"
        return (ip, free_port(ip))

    # ---- objects -----------------------------------------------------------------

    def service(self, name: str, *, type: str = "ClusterIP", port: int = 8080,
                node_port: int | None = None, **spec: Any) -> Obj:
        ports: list[Obj] = [{"port": port, "protocol": "TCP", "targetPort": port}]
        if node_port is None and type in ("NodePort", "LoadBalancer"):
            # Never let the registry pick 30000, 30001...: parallel runs would collide.
            node_port = free_port()
        if node_port is not None:
            ports[0]["nodePort"] = node_port
        body: Obj = {"metadata": {"name": name, "namespace": "default"},
                     "spec": {"type": type, "ports": ports, "selector": {"app": name},
                              **spec}}
        return self.registry.create(SERVICES, body)

    def get_service(self, name: str) -> Obj:
        return self.registry.get(SERVICES, "default", name)

    def endpoints(self, name: str, ready: list[tuple[str, int]],
                  not_ready: Sequence[tuple[str, int]] = ()) -> Obj:
        subsets: list[Obj] = []
        for group, field in ((ready, "addresses"), (not_ready, "notReadyAddresses")):
            for ip, port in group:
                subsets.append({field: [{"ip": ip}], "ports": [{"port": port,
                                                                  "protocol": "TCP"}]})
        body: Obj = {"metadata": {"name": name, "namespace": "default"}, "subsets": subsets}
        if self.registry.try_get(ENDPOINTS, "default", name) is None:
            return self.registry.create(ENDPOINTS, body)

        def replace(obj: Obj) -> None:
            obj["subsets"] = subsets
        return self.registry.mutate(ENDPOINTS, "default", name, replace)

    def node(self, name: str, internal_ip: str) -> Obj:
        return self.registry.create(NODES, {"metadata": {"name": name}, "status": {
            "addresses": [{"type": "InternalIP", "address": internal_ip},
                          {"type": "Hostname", "address": name}]}})

    def events(self, reason: str) -> list[Obj]:
        items, _ = self.registry.list(EVENTS, "default")
        return [e for e in items if e.get("reason") == reason]

    # ---- the proxy ---------------------------------------------------------------

    def proxy(self) -> ServiceProxy:
        return ServiceProxy(registry=self.registry, settings=self.settings,
                            local_addresses=self.local_addresses, retry_backoff=(0.05, 0.2))

    @contextlib.asynccontextmanager
    async def running(self, proxy: ServiceProxy | None = None) -> AsyncIterator[ServiceProxy]:
        proxy = proxy or self.proxy()
        async with anyio.create_task_group() as tg:
            with anyio.fail_after(WAIT):
                await tg.start(proxy.run)
            try:
                yield proxy
            finally:
                tg.cancel_scope.cancel()
        # A stopped proxy leaves no listener and no address behind.
        assert not proxy.listening
        assert not self.local_addresses.current

    async def wait_for(self, proxy: ServiceProxy, predicate: Callable[[], bool]) -> None:
        with anyio.fail_after(WAIT):
            await proxy.wait_until(predicate)

    async def wait_service(self, name: str, predicate: Callable[[Obj], bool]) -> Obj:
        """Wait (on the registry's watch) until the Service satisfies `predicate`."""
        with anyio.fail_after(WAIT):
            async with self.registry.watch(SERVICES, "default") as watch:
                current = self.registry.try_get(SERVICES, "default", name)
                if current is not None and predicate(current):
                    return current
                async for event in watch:
                    if event.object["metadata"]["name"] == name and predicate(event.object):
                        return event.object
        raise AssertionError("watch ended")

    async def wait_event(self, reason: str) -> Obj:
        with anyio.fail_after(WAIT):
            async with self.registry.watch(EVENTS, "default") as watch:
                async for event in watch:
                    if event.object.get("reason") == reason:
                        return event.object
        raise AssertionError("watch ended")

    # ---- clients -----------------------------------------------------------------

    async def get(self, host: str, port: int, path: str = "/", *,
                  client_ip: str | None = None, **kwargs: Any) -> tuple[int, str]:
        connector = aiohttp.TCPConnector(force_close=True,
                                         local_addr=(client_ip, 0) if client_ip else None)
        async with aiohttp.ClientSession(connector=connector) as session, \
                session.get(f"http://{host}:{port}{path}", **kwargs) as response:
            return response.status, await response.text()

    async def spread(self, host: str, port: int, n: int, **kwargs: Any) -> Counter[str]:
        """Send `n` requests one after another; count who answered (or the status)."""
        seen: Counter[str] = Counter()
        for _ in range(n):
            status, text = await self.get(host, port, **kwargs)
            seen[text.removeprefix("You've hit ").strip() if status == 200 else str(status)] += 1
        return seen


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[ProxyEnv]:
    environment = ProxyEnv(tmp_path)
    try:
        yield environment
    finally:
        for pod in environment.backends:
            await pod.stop()
        environment.close()


@pytest.fixture
def free_node_port() -> int:
    """A port free on 127.0.0.1 right now, to use as an explicit nodePort (the
    registry's own 30000+ allocations would collide between parallel test runs)."""
    return free_port()
