"""The TCP data path on bare non-blocking sockets: accept, sniff, connect, splice.

    listening socket ──readable──► Acceptor._accept (up to ACCEPT_BATCH per wake-up)
        route mode HTTP ─────────────────────────► asyncio transport + http1 (listener.py)
        route mode TCP ──► Connector ──► RawSplice
        not said ──► Sniffer: the first bytes (or SNIFF_TIMEOUT of silence) decide, then
                     one of the two above, the bytes already read handed along
    Connector: non-blocking connect to each candidate in turn (a refusal or timeout
               moves on); none left ──► _connect_later (a task: waits for an Endpoints
               change, bounded by the Service's endpoint wait) ──► refusal (RST) at the end
    RawSplice: two one-way pipes between the sockets, driven by loop.add_reader/
               add_writer callbacks; EOF on one side becomes shutdown(SHUT_WR) on the other

Why bare sockets: asyncio's transports cost, per proxied connection, a transport and a
protocol on each side, a task, a connect coroutine and a dozen Handles; a connection
that carries one request then spends more CPU in the proxy than in the pod. Measured on
kubia (a new connection per request), this path serves about twice the connections per
second of the transport-based one (`bench/network.py`, proxy_tcp).

Invariants:
- Every socket accepted is closed exactly once: by RawSplice.close, by a refusal, or
  by the asyncio transport it was handed to.
- Back-pressure per direction: while bytes wait to be sent to one side, nothing more
  is read from the other.
- Rootless mode (a Dialer reaches the pods) connects through the dialer in the task
  path; the splice is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import struct
from typing import TYPE_CHECKING

import structlog

from miniorch.proxy.balancer import Backend
from miniorch.proxy.connections import (
    CONNECT_TIMEOUT_SECONDS,
    RETRY_PAUSE_SECONDS,
    ProxyCore,
    Route,
    ready_candidates,
)
from miniorch.proxy.sniff import MAX_REQUEST_LINE, SNIFF_TIMEOUT_SECONDS, Mode, classify

if TYPE_CHECKING:
    from collections.abc import Callable

log = structlog.get_logger(__name__)

ACCEPT_BATCH = 64
RECV_SIZE = 256 * 1024
_IN_PROGRESS = (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK)

def reset(sock: socket.socket) -> None:
    """Close with a RST (SO_LINGER 0): what a refused connection looks like."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _peer_ip(sock: socket.socket) -> str | None:
    try:
        return str(sock.getpeername()[0])
    except OSError:
        return None


class Acceptor:
    """Serves one listening socket with loop callbacks."""

    def __init__(self, core: ProxyCore, address: tuple[str, int], sock: socket.socket,
                 to_http: Callable[[socket.socket, bytes], None]) -> None:
        self.core = core
        self.address = address
        self.sock = sock
        self.to_http = to_http
        self.loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), self._accept)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE, ENOBUFS...: the backlog keeps them
                log.warning("accept failed", address=f"{self.address[0]}:{self.address[1]}",
                            error=str(exc))
                return
            conn.setblocking(False)
            self.core.stats.connections += 1
            route = self.core.routes.get(self.address)
            if route is None:
                reset(conn)  # the listener is going away
            elif route.mode is Mode.HTTP:
                self.to_http(conn, b"")
            elif route.mode is Mode.TCP:
                start_tcp(self.core, route, conn, b"")
            else:
                Sniffer(self, route, conn)


class Sniffer:
    """Reads a new connection's first bytes until classify() decides (or silence)."""

    def __init__(self, acceptor: Acceptor, route: Route, conn: socket.socket) -> None:
        self.acceptor = acceptor
        self.route = route
        self.conn = conn
        self.buf = b""
        loop = acceptor.loop
        self.fd = conn.fileno()
        loop.add_reader(self.fd, self._readable)
        self.timer = loop.call_later(SNIFF_TIMEOUT_SECONDS, self._decide, Mode.TCP)
        acceptor.core.pending.add(self)

    def _readable(self) -> None:
        try:
            data = self.conn.recv(MAX_REQUEST_LINE + 1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            # EOF before anything decided: splice it (the endpoint sees the half-close).
            self._decide(Mode.TCP, eof=True)
            return
        self.buf += data
        mode = classify(self.buf)
        if mode is not None:
            self._decide(mode)

    def _decide(self, mode: Mode, *, eof: bool = False) -> None:
        core = self.acceptor.core
        self.timer.cancel()
        self.acceptor.loop.remove_reader(self.fd)
        core.pending.discard(self)
        if mode is Mode.HTTP:
            self.acceptor.to_http(self.conn, self.buf)
        else:
            start_tcp(core, self.route, self.conn, self.buf, client_eof=eof)

    def close(self) -> None:
        self.timer.cancel()
        self.acceptor.loop.remove_reader(self.fd)
        self.acceptor.core.pending.discard(self)
        self.conn.close()


def start_tcp(core: ProxyCore, route: Route, conn: socket.socket, initial: bytes, *,
              client_eof: bool = False) -> None:
    core.stats.spliced += 1
    client_ip = _peer_ip(conn)
    candidates = route.balancer.candidates(client_ip)
    if candidates and core.dialer is None:
        Connector(core, route, conn, initial, client_eof, client_ip, candidates).next()
    else:
        _connect_later(core, route, conn, initial, client_eof, client_ip, tried=False)


class Connector:
    """Non-blocking connects to the candidates in turn; the first that accepts wins."""

    def __init__(self, core: ProxyCore, route: Route, conn: socket.socket, initial: bytes,
                 client_eof: bool, client_ip: str | None, candidates: list[Backend],
                 done: asyncio.Future[bool] | None = None) -> None:
        self.core = core
        self.route = route
        self.conn = conn
        self.initial = initial
        self.client_eof = client_eof
        self.client_ip = client_ip
        self.candidates = list(candidates)
        self.done = done
        """Set when run from _connect_later: True connected, False all failed."""
        self.loop = asyncio.get_running_loop()
        self.sock: socket.socket | None = None
        self.backend: Backend | None = None
        self.timer: asyncio.TimerHandle | None = None

    def next(self) -> None:
        while self.candidates:
            backend = self.candidates.pop(0)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            err = sock.connect_ex((backend.ip, backend.port))
            if err == 0:
                self._connected(sock, backend)
                return
            if err in _IN_PROGRESS:
                self.sock, self.backend = sock, backend
                self.loop.add_writer(sock.fileno(), self._writable)
                self.timer = self.loop.call_later(CONNECT_TIMEOUT_SECONDS, self._failed,
                                                  "connect timed out")
                self.core.pending.add(self)
                return
            sock.close()
            self._note_failure(backend, errno.errorcode.get(err, str(err)))
        if self.done is not None:
            if not self.done.done():
                self.done.set_result(False)
        else:
            _connect_later(self.core, self.route, self.conn, self.initial, self.client_eof,
                           self.client_ip, tried=True)

    def _note_failure(self, backend: Backend, why: str) -> None:
        self.core.stats.connect_failures += 1
        self.route.balancer.failed(backend)
        log.debug("endpoint connect failed", service=self.route.service,
                  backend=str(backend), error=why)

    def _writable(self) -> None:
        sock, backend = self.sock, self.backend
        assert sock is not None and backend is not None
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._failed(errno.errorcode.get(err, str(err)))
            return
        self._clear()
        self._connected(sock, backend)

    def _clear(self) -> None:
        if self.sock is not None:
            self.loop.remove_writer(self.sock.fileno())
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.core.pending.discard(self)

    def _failed(self, why: str) -> None:
        sock, backend = self.sock, self.backend
        self._clear()
        self.sock = self.backend = None
        if sock is not None:
            sock.close()
        if backend is not None:
            self._note_failure(backend, why)
        self.next()

    def _connected(self, sock: socket.socket, backend: Backend) -> None:
        self.route.balancer.succeeded(self.client_ip, backend)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        RawSplice(self.core, self.conn, sock, self.initial, self.client_eof)
        if self.done is not None and not self.done.done():
            self.done.set_result(True)

    def close(self) -> None:
        sock = self.sock
        self._clear()
        if sock is not None:
            sock.close()
        self.conn.close()
        if self.done is not None and not self.done.done():
            self.done.cancel()


def _connect_later(core: ProxyCore, route: Route, conn: socket.socket, initial: bytes,
                   client_eof: bool, client_ip: str | None, *, tried: bool) -> None:
    task = asyncio.get_running_loop().create_task(
        _connect_waiting(core, route, conn, initial, client_eof, client_ip, tried))
    core.tasks.add(task)
    task.add_done_callback(core.tasks.discard)


async def _connect_waiting(core: ProxyCore, route: Route, conn: socket.socket,
                           initial: bytes, client_eof: bool, client_ip: str | None,
                           tried: bool) -> None:
    """The slow path: no candidate now, every candidate refused (`tried`), or a Dialer
    to use. Retries at each Endpoints change (or after RETRY_PAUSE) until the endpoint
    wait runs out, then refuses the client (RST) and counts it."""
    loop = asyncio.get_running_loop()
    balancer = route.balancer
    deadline = loop.time() + balancer.wait_seconds
    try:
        while True:
            if not tried:
                candidates = await ready_candidates(core, route, client_ip,
                                                    at_most=deadline - loop.time())
                if not candidates:
                    break  # none expected, or the wait ran out
                if core.dialer is not None:
                    if await _dial(core, route, conn, initial, client_eof, client_ip,
                                   candidates):
                        return
                else:
                    done: asyncio.Future[bool] = loop.create_future()
                    Connector(core, route, conn, initial, client_eof, client_ip, candidates,
                              done).next()
                    if await done:
                        return
            tried = False
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await balancer.wait_changed(min(remaining, RETRY_PAUSE_SECONDS))
    except asyncio.CancelledError:
        conn.close()
        raise
    core.failed(route, "connection refused: no endpoint")
    reset(conn)


async def _dial(core: ProxyCore, route: Route, conn: socket.socket, initial: bytes,
                client_eof: bool, client_ip: str | None, candidates: list[Backend]) -> bool:
    assert core.dialer is not None
    for backend in candidates:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                sock = await core.dialer.connect(backend.ip, backend.port)
        except (OSError, TimeoutError) as exc:
            core.stats.connect_failures += 1
            route.balancer.failed(backend)
            log.debug("endpoint dial failed", backend=str(backend), error=str(exc))
            continue
        sock.setblocking(False)
        route.balancer.succeeded(client_ip, backend)
        RawSplice(core, conn, sock, initial, client_eof)
        return True
    return False


class _Pipe:
    """One direction of a splice: reads `src`, writes `dst`. Tracks what it registered
    with the loop, so stopping it costs no failed look-ups."""

    def __init__(self, splice: RawSplice, src: socket.socket, dst: socket.socket) -> None:
        self.splice = splice
        self.loop = splice.loop
        self.src, self.dst = src, dst
        self.src_fd, self.dst_fd = src.fileno(), dst.fileno()
        self.pending = b""
        self.eof = False
        self.done = False
        self.reading = False
        self.writing = False

    def start(self, initial: bytes, eof: bool) -> None:
        if initial:
            self.send(initial)
        if eof:
            self._ended()
        elif not self.pending:
            self.reading = True
            self.loop.add_reader(self.src_fd, self.readable)

    def stop(self) -> None:
        if self.reading:
            self.reading = False
            self.loop.remove_reader(self.src_fd)
        if self.writing:
            self.writing = False
            self.loop.remove_writer(self.dst_fd)

    def readable(self) -> None:
        try:
            data = self.src.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.splice.close()
            return
        if not data:
            self.reading = False
            self.loop.remove_reader(self.src_fd)
            self._ended()
            return
        self.send(data)

    def send(self, data: bytes) -> None:
        try:
            sent = self.dst.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.splice.close()
            return
        if sent < len(data):
            self.pending = data[sent:]
            if self.reading:  # back-pressure: read no more until this is out
                self.reading = False
                self.loop.remove_reader(self.src_fd)
            self.writing = True
            self.loop.add_writer(self.dst_fd, self.writable)

    def writable(self) -> None:
        try:
            sent = self.dst.send(self.pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.splice.close()
            return
        self.pending = self.pending[sent:]
        if self.pending:
            return
        self.writing = False
        self.loop.remove_writer(self.dst_fd)
        if self.eof:
            self._shutdown()
        else:
            self.reading = True
            self.loop.add_reader(self.src_fd, self.readable)

    def _ended(self) -> None:
        self.eof = True
        if not self.pending:
            self._shutdown()

    def _shutdown(self) -> None:
        with contextlib.suppress(OSError):
            self.dst.shutdown(socket.SHUT_WR)
        self.done = True
        self.splice.direction_done()


class RawSplice:
    """Both directions between two connected non-blocking sockets."""

    def __init__(self, core: ProxyCore, client: socket.socket, upstream: socket.socket,
                 initial: bytes, client_eof: bool) -> None:
        self.core = core
        self.loop = asyncio.get_running_loop()
        self.sockets = (client, upstream)
        self.closed = False
        self.up = _Pipe(self, client, upstream)
        self.down = _Pipe(self, upstream, client)
        core.pending.add(self)
        self.down.start(b"", False)
        self.up.start(initial, client_eof)

    def direction_done(self) -> None:
        if self.up.done and self.down.done:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.core.pending.discard(self)
        self.up.stop()
        self.down.stop()
        for sock in self.sockets:
            sock.close()
