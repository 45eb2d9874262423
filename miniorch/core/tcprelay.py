"""One accepted TCP connection relayed to `ip:port`, byte for byte, both ways.

    client ──accept──► relay_to(client, ip, port) ──connect──► upstream
           ◄────────── two pipes, each ending with a half-close ──────────►

Shared by the published ports of Docker-style containers (containers/supervisor.py)
and the kubelet's hostPort forwarders (node/hostports.py). A refused connect simply
closes the client; each direction ends on its own (`send_eof`), since the other may
still be talking (HTTP/1.0 clients, `nc`).
"""

from __future__ import annotations

import contextlib

import anyio
from anyio.abc import SocketStream

_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


async def _pipe(source: SocketStream, sink: SocketStream) -> None:
    with contextlib.suppress(*_GONE):
        async for chunk in source:
            await sink.send(chunk)
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        await sink.send_eof()


async def relay_to(client: SocketStream, ip: str, port: int) -> None:
    async with client:
        try:
            upstream = await anyio.connect_tcp(ip, port)
        except OSError:
            return
        async with upstream, anyio.create_task_group() as tg:
            tg.start_soon(_pipe, client, upstream)
            tg.start_soon(_pipe, upstream, client)
