"""One accepted client connection: route, sniff, dispatch (HTTP/1 path or TCP splice).

    accept on (ip, port) ──Accepting.connection_made──► handle_connection(core, address)
        route = core.routes[address]                    (read live: Endpoints edits apply)
        mode  = appProtocol of the port, else sniff.classify(first bytes)
        HTTP  ──► http1.serve(): per-request balancing, retries, 503 when nothing is there
        TCP   ──► wait for a Ready endpoint (bounded) ──► connect_upstream() ──► splice

Invariants:
- The TCP path sends nothing of its own: the client's bytes reach one endpoint
  unchanged, or the client gets a refusal (RST) when no endpoint can be had.
- A connection's handler is a task in `core.tasks`; cancelling them (proxy stop) closes
  every socket.
"""

from __future__ import annotations

import asyncio

import structlog

from miniorch.proxy import http1
from miniorch.proxy.connections import ProxyCore, Route, connect_upstream, ready_candidates
from miniorch.proxy.http1 import RETRY_PAUSE_SECONDS
from miniorch.proxy.sniff import SNIFF_TIMEOUT_SECONDS, Mode, classify
from miniorch.proxy.stream import Stream, splice

log = structlog.get_logger(__name__)


def start_connection(core: ProxyCore, address: tuple[str, int], client: Stream) -> None:
    task = asyncio.get_running_loop().create_task(handle_connection(core, address, client))
    core.tasks.add(task)
    task.add_done_callback(core.tasks.discard)


class Accepting(Stream):
    """The protocol of an accepted client connection: starts its handler task."""

    def __init__(self, core: ProxyCore, address: tuple[str, int]) -> None:
        super().__init__()
        self._core = core
        self._address = address

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        start_connection(self._core, self._address, self)


async def handle_connection(core: ProxyCore, address: tuple[str, int], client: Stream) -> None:
    core.stats.connections += 1
    try:
        route = core.routes.get(address)
        if route is None:
            client.reset()  # the listener is going away
            return
        mode = route.mode
        if mode is None:
            mode = await sniff(client)
        if mode is Mode.HTTP:
            await http1.serve(core, address, client)
        else:
            await serve_tcp(core, route, client)
    except asyncio.CancelledError:
        client.close()
        raise
    except Exception:
        log.exception("proxied connection failed", address=f"{address[0]}:{address[1]}")
    finally:
        client.close()


async def sniff(client: Stream) -> Mode:
    """Wait for the first bytes (bounded) and classify them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SNIFF_TIMEOUT_SECONDS
    while True:
        mode = classify(client.peek())
        if mode is not None:
            return mode
        remaining = deadline - loop.time()
        if remaining <= 0 or client.at_eof or client.eof_seen:
            return Mode.TCP
        try:
            async with asyncio.timeout(remaining):
                await client.wait_more()
        except TimeoutError:
            return Mode.TCP


async def serve_tcp(core: ProxyCore, route: Route, client: Stream) -> None:
    core.stats.spliced += 1
    peer = client.transport.get_extra_info("peername") if client.transport else None
    client_ip = str(peer[0]) if peer else None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + route.balancer.wait_seconds
    candidates = await ready_candidates(core, route, client_ip)
    connected = await connect_upstream(core, route, candidates) if candidates else None
    while connected is None and candidates and loop.time() < deadline:
        # Every endpoint refused: while the wait lasts, try again at the next Endpoints
        # change (an app restarted, a pod became Ready) or after a short pause.
        await route.balancer.wait_changed(min(deadline - loop.time(), RETRY_PAUSE_SECONDS))
        candidates = await ready_candidates(core, route, client_ip,
                                            at_most=deadline - loop.time())
        connected = await connect_upstream(core, route, candidates) if candidates else None
    if connected is None:
        core.failed(route, "connection refused: no endpoint", ready=len(candidates))
        client.reset()
        return
    backend, upstream = connected
    route.balancer.succeeded(client_ip, backend)
    await splice(client, upstream)
