"""`Stream`: a lean buffered asyncio Protocol, and `splice()`, the byte-for-byte TCP relay.

    socket ──data_received──► Stream._buf ──read_until / read_exactly / read_some──► caller
    caller ──write──► transport          (drain() waits while the kernel buffer is full)
    splice(a, b): a's and b's transports are handed to two _Pump protocols that write
                  what one side receives straight to the other (no task, no copy loop)

Why not asyncio's StreamReader: the proxy's HTTP path reads a head and a body per
request on every connection; a plain Protocol with one bytearray and one waiter future
costs a fraction of StreamReader + StreamWriter, and it can hand its transport over to
the splice (`detach`) with the bytes it has already buffered, which StreamReader cannot.

Invariants:
- At most one reader awaits a Stream at a time (one task owns a connection).
- Reading is paused while more than `HIGH_WATER` bytes are buffered and nobody reads,
  so a fast sender cannot grow the buffer without bound.
- Splice honours half-closes: EOF from one side becomes `write_eof()` on the other, and
  the pair closes when both directions have ended or either connection is lost.
  Back-pressure: when one side's send buffer fills, reading from the other pauses.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

HIGH_WATER = 256 * 1024
"""Buffered bytes after which reading from the socket pauses."""


class ConnectionEnded(Exception):
    """The peer closed (or reset) the connection before the bytes asked for arrived."""

    def __init__(self, partial: bytes = b"") -> None:
        super().__init__("connection closed by peer")
        self.partial = partial


class HeadTooLarge(Exception):
    """No separator within the limit (an over-long request line or header block)."""


class Stream(asyncio.Protocol):
    """One TCP connection, read in the pieces an HTTP/1 parser wants."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._eof = False
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False
        self._read_paused = False
        self.received_any = False
        """Any byte arrived on this connection (the proxy's "before any response byte")."""

    # ---- asyncio.Protocol --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        # asyncio sets TCP_NODELAY on TCP transports: heads are never held by Nagle.
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        self._buf += data
        if len(self._buf) > HIGH_WATER and not self._read_paused and self.transport:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # keep our side open for writing (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self.closed = True
        self._wake()
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    # ---- reading -----------------------------------------------------------------

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _more(self) -> None:
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    def peek(self) -> bytes:
        return bytes(self._buf)

    @property
    def eof_seen(self) -> bool:
        return self._eof

    async def wait_more(self) -> None:
        """Until more bytes arrive or the peer ends its side."""
        if not self._eof:
            await self._more()

    @property
    def at_eof(self) -> bool:
        return self._eof and not self._buf

    def buffered(self) -> int:
        return len(self._buf)

    async def read_until(self, separator: bytes, limit: int) -> bytes:
        """Bytes up to and including `separator`; HeadTooLarge past `limit`."""
        start = 0
        while True:
            index = self._buf.find(separator, start)
            if index >= 0:
                end = index + len(separator)
                data = bytes(self._buf[:end])
                del self._buf[:end]
                return data
            if len(self._buf) > limit:
                raise HeadTooLarge()
            if self._eof:
                partial = bytes(self._buf)
                self._buf.clear()
                raise ConnectionEnded(partial)
            start = max(0, len(self._buf) - len(separator) + 1)
            await self._more()

    async def read_exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            if self._eof:
                partial = bytes(self._buf)
                self._buf.clear()
                raise ConnectionEnded(partial)
            await self._more()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def read_some(self, n: int = 65536) -> bytes:
        """Up to `n` bytes as soon as any are there; b"" at EOF."""
        while not self._buf:
            if self._eof:
                return b""
            await self._more()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def wait_readable(self) -> None:
        """Until some bytes are buffered or the peer ended its side."""
        while not self._buf and not self._eof:
            await self._more()

    # ---- writing -----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionEnded()
        if self._write_paused:
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain
            if self.closed:
                raise ConnectionEnded()

    def write_eof(self) -> None:
        if self.transport is not None and not self.closed and self.transport.can_write_eof():
            with contextlib.suppress(OSError):
                self.transport.write_eof()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def reset(self) -> None:
        """Close with a RST (SO_LINGER 0): what a refused connection looks like."""
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def detach(self) -> tuple[asyncio.Transport, bytes, bool]:
        """Give up the transport: (transport, bytes buffered, peer already sent EOF)."""
        assert self.transport is not None
        transport, data = self.transport, bytes(self._buf)
        self._buf.clear()
        if self._read_paused:
            self._read_paused = False
            transport.resume_reading()
        return transport, data, self._eof


# ---- splice ---------------------------------------------------------------------

class _Pump(asyncio.Protocol):
    """Writes what its transport receives to the peer's transport."""

    def __init__(self, pair: _SplicePair, transport: asyncio.Transport) -> None:
        self.pair = pair
        self.transport = transport
        self.peer: _Pump | None = None
        self.eof = False

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        self.peer.transport.write(data)

    def eof_received(self) -> bool:
        assert self.peer is not None
        self.eof = True
        if self.peer.transport.can_write_eof():
            self.peer.transport.write_eof()
        if self.peer.eof:
            self.pair.finish()
            return False
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.pair.finish()

    # Back-pressure: our send buffer is full → stop reading from the peer.
    def pause_writing(self) -> None:
        assert self.peer is not None
        self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        assert self.peer is not None
        if not self.peer.transport.is_closing():
            self.peer.transport.resume_reading()


class _SplicePair:
    def __init__(self) -> None:
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pumps: list[_Pump] = []

    def finish(self) -> None:
        for pump in self.pumps:
            pump.transport.close()
        if not self.done.done():
            self.done.set_result(None)


async def splice(a: Stream, b: Stream) -> None:
    """Relay bytes both ways between `a` and `b` until both directions end; buffered
    bytes either side already holds go first. Closes both when done or cancelled."""
    pair = _SplicePair()
    ta, data_a, eof_a = a.detach()
    tb, data_b, eof_b = b.detach()
    pa, pb = _Pump(pair, ta), _Pump(pair, tb)
    pa.peer, pb.peer = pb, pa
    pair.pumps = [pa, pb]
    ta.set_protocol(pa)
    tb.set_protocol(pb)
    if a.closed or b.closed:
        pair.finish()
    else:
        if data_a:
            tb.write(data_a)
        if data_b:
            ta.write(data_b)
        if eof_a:
            pa.eof_received()
        if eof_b and not pair.done.done():
            pb.eof_received()
    try:
        await pair.done
    finally:
        pair.finish()
