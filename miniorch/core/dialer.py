"""How the host opens a TCP connection to a pod: the `Dialer` seam.

    proxy (aiohttp connector) ─┐
    kubelet probes             ├─► dialer.connect(pod_ip, port) ──► connected socket
                               ┘
    TcpDialer           plain TCP (root mode: the pod IP is routable over the bridge;
                        plain mode: the pod's loopback alias)
    sandbox.rootless.PodNetDialer
                        rootless user-namespace pods have no veth, so their IPs are
                        virtual: it asks the pod's shim for a socket created *inside*
                        the pod's network namespace and connects that to 127.0.0.1:port

Invariants: `connect` returns a connected, non-blocking stream socket that the caller
owns (and closes); failures raise `OSError` (refused, unreachable) or `TimeoutError`,
exactly as a TCP connect would, so callers treat every dialer alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Protocol


class Dialer(Protocol):
    async def connect(self, host: str, port: int) -> socket.socket:
        """A connected non-blocking socket to `host:port` (an IPv4 literal)."""
        ...


async def connect_socket(sock: socket.socket, address: tuple[str, int]) -> socket.socket:
    """Connect the non-blocking `sock` (closing it on failure) and return it."""
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


class TcpDialer:
    """The default: an ordinary TCP connection."""

    async def connect(self, host: str, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return await connect_socket(sock, (host, port))
