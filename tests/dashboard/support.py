"""The API server and the dashboard in one event loop, as a cluster process starts them.

Shared by the dashboard's tests: a real ApiServer (TLS, token, a local exec spawner)
and a Dashboard talking to it, both on random loopback ports. `via(api_port)` may put
something between them (a relay the test can cut) and returns the port to use instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio.abc

from miniorch.api.registry import Registry
from miniorch.api.server import ApiServer
from miniorch.core.clock import SystemClock
from miniorch.core.settings import Settings
from miniorch.dashboard.server import Dashboard
from tests.api.server_support import local_spawner


@dataclass
class Started:
    api: ApiServer
    dashboard: Dashboard
    url: str
    """The dashboard's http://127.0.0.1:<port>/"""
    api_token: str


async def start_api_and_dashboard(tg: anyio.abc.TaskGroup, settings: Settings,
                                  registry: Registry, *,
                                  via: Callable[[int], Awaitable[int]] | None = None
                                  ) -> Started:
    api = ApiServer(settings=settings, registry=registry, clock=SystemClock(),
                    spawn_exec=local_spawner)
    await tg.start(api.run)
    assert api.material is not None and api.port is not None
    port = await via(api.port) if via is not None else api.port
    dashboard = Dashboard(settings=settings, api_url=f"https://127.0.0.1:{port}",
                          api_ssl=api.material.client_ssl_context(),
                          api_token=api.material.token)
    url = await tg.start(dashboard.run)
    return Started(api, dashboard, url, api.material.token)
