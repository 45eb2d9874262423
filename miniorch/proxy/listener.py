"""Accepted connections on the HTTP/1 path: an asyncio transport and a handler task.

    fastpath.Acceptor / Sniffer ──hand_to_http(conn, bytes already read)──►
        loop.connect_accepted_socket(Accepting) ──► handle_connection ──► http1.serve

The TCP path never comes here (fastpath.py splices on bare sockets); HTTP/1 needs
buffered reads of heads and bodies, which `stream.Stream` gives.

Invariants:
- The bytes the sniffer already read are fed to the protocol before the transport
  reads anything, so nothing is reordered.
- A connection's handler is a task in `core.tasks`; cancelling them (proxy stop)
  closes every socket.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import structlog

from miniorch.proxy import http1
from miniorch.proxy.connections import ProxyCore
from miniorch.proxy.stream import Stream

log = structlog.get_logger(__name__)


def _track(core: ProxyCore, task: asyncio.Task[None]) -> None:
    core.tasks.add(task)
    task.add_done_callback(core.tasks.discard)


class Accepting(Stream):
    """The protocol of an accepted HTTP client connection: starts its handler task."""

    def __init__(self, core: ProxyCore, address: tuple[str, int], initial: bytes) -> None:
        super().__init__()
        self._core = core
        self._address = address
        self._initial = initial

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._initial:
            self.data_received(self._initial)
        loop = asyncio.get_running_loop()
        _track(self._core, loop.create_task(handle_connection(self._core, self._address,
                                                               self)))


def http_hand_off(core: ProxyCore, address: tuple[str, int]
                  ) -> Callable[[socket.socket, bytes], None]:
    """What the Acceptor calls with a connection that goes the HTTP/1 way."""
    def hand(conn: socket.socket, initial: bytes) -> None:
        loop = asyncio.get_running_loop()
        _track(core, loop.create_task(_attach(loop, core, address, conn, initial)))
    return hand


async def _attach(loop: asyncio.AbstractEventLoop, core: ProxyCore, address: tuple[str, int],
                  conn: socket.socket, initial: bytes) -> None:
    try:
        await loop.connect_accepted_socket(lambda: Accepting(core, address, initial), conn)
    except BaseException:
        conn.close()
        raise


async def handle_connection(core: ProxyCore, address: tuple[str, int], client: Stream) -> None:
    try:
        await http1.serve(core, address, client)
    except asyncio.CancelledError:
        client.close()
        raise
    except Exception:
        log.exception("proxied connection failed", address=f"{address[0]}:{address[1]}")
    finally:
        client.close()
