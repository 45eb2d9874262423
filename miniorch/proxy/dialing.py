"""`DialerConnector`: aiohttp's client connecting to pods through a `core.dialer.Dialer`.

    ClientSession.request("http://10.244.1.5:8080/") ──► DialerConnector._create_connection
        ──► dialer.connect("10.244.1.5", 8080) ──► loop.create_connection(sock=...)

Used by the Service proxy when pod IPs are not routable from the host (rootless mode:
`sandbox.rootless.PodNetDialer`). With the default TCP dialer the proxy keeps aiohttp's
own `TCPConnector`. Connection pooling, limits and keep-alive stay aiohttp's
(`BaseConnector`); only the act of opening a connection is ours.

Invariants: a failed dial raises `aiohttp.ClientConnectorError` (what `TCPConnector`
raises), so the proxy's "try the next endpoint" logic sees the same error either way;
the connect timeout is the session's `sock_connect`, as with TCP.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.helpers import ceil_timeout

from miniorch.core.dialer import Dialer

if TYPE_CHECKING:
    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.tracing import Trace


class DialerConnector(aiohttp.BaseConnector):
    def __init__(self, dialer: Dialer, *, limit: int = 100, limit_per_host: int = 0,
                 keepalive_timeout: float = 15.0) -> None:
        super().__init__(limit=limit, limit_per_host=limit_per_host,
                         keepalive_timeout=keepalive_timeout)
        self._dialer = dialer

    # aiohttp's documented extension point for custom transports (UnixConnector and
    # NamedPipeConnector override the same method).
    async def _create_connection(self, req: ClientRequest, traces: list[Trace],
                                 timeout: aiohttp.ClientTimeout  # noqa: ASYNC109 - aiohttp's
                                 ) -> ResponseHandler:
        host = req.url.raw_host or ""
        port = req.url.port or 80
        try:
            async with ceil_timeout(timeout.sock_connect,
                                    ceil_threshold=timeout.ceil_threshold):
                sock = await self._dialer.connect(host, port)
                try:
                    _, proto = await self._loop.create_connection(self._factory, sock=sock)
                except BaseException:
                    sock.close()
                    raise
        except OSError as exc:
            if exc.errno is None and isinstance(exc, asyncio.TimeoutError):
                raise
            raise aiohttp.ClientConnectorError(req.connection_key, exc) from exc
        return proto
