"""The HTTP/1 path: per-request balancing over a client's keep-alive connection.

    client Stream ──read head──► parse_request ──► ready_candidates(route) (waits if none)
        for backend in candidates:
            idle kept-alive connection to it, or a new one (connect fails → next backend)
            send head (+ body) ──► read the response head
                died before any response byte (or before the end of a small response
                held whole), idempotent request, body still held
                    ──► retry on the next backend (ProxyStats.retries)
            relay the head and body to the client; the upstream connection goes back
            to the idle pool when it may be reused
        101 Switching Protocols (WebSocket, any Upgrade) ──► splice both raw from there

Why not aiohttp here: a reverse proxy needs message framing, not a web framework. The
server + client pair cost three times the CPU per request of this module (measured:
`bench/network.py`), and the proxy shares the cluster process's one event loop.

Invariants:
- Message boundaries come from the head: Content-Length, chunked (passed through as
  chunks, parsed only to find the end), no body (HEAD, 1xx, 204, 304), or the
  upstream's close (then the client's connection closes after it too).
- Hop-by-hop headers (RFC 9110 §7.6.1 and those named in `Connection`) are dropped in
  both directions; `Host` passes unchanged; `X-Forwarded-For` gains the client address.
- A request is retried only if nothing of the response arrived, its method is
  idempotent (GET HEAD OPTIONS PUT DELETE TRACE) and its body is held whole (bodies of
  at most REPLAY_BODY_LIMIT bytes are read before sending); a response that breaks off
  mid-body cuts the client's connection, so it sees a truncated response, never a
  short body passed off as complete.
- Every answer the proxy makes itself (400, 431, 502, 503) is counted as a failure
  where it is the proxy's to count (502/503), and is a complete HTTP response.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from miniorch.proxy.balancer import Backend
from miniorch.proxy.connections import (
    RETRY_PAUSE_SECONDS,
    ProxyCore,
    Route,
    open_upstream,
    ready_candidates,
)
from miniorch.proxy.stream import ConnectionEnded, HeadTooLarge, Stream, splice

log = structlog.get_logger(__name__)

MAX_HEAD = 64 * 1024
REPLAY_BODY_LIMIT = 1024 * 1024
"""Request bodies up to this are read whole before sending, so the request can be
resent to another endpoint; larger (and chunked) bodies stream and are never retried."""
COPY_CHUNK = 256 * 1024
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te",
                         b"trailer", b"upgrade", b"proxy-authenticate",
                         b"proxy-authorization"})
# Transfer-Encoding is hop-by-hop too, but chunked bodies pass through as chunks, so the
# header describing them passes with them.


class BadMessage(Exception):
    """A message this proxy will not forward (malformed head or framing)."""


@dataclass
class Message:
    """A parsed request or response head."""

    first: bytes
    """Request line / status line, without CRLF."""
    version: bytes
    headers: list[tuple[bytes, bytes]]
    content_length: int | None
    chunked: bool
    connection: frozenset[bytes]
    """Lower-cased tokens of every Connection header."""

    def end_to_end(self, *, keep: frozenset[bytes] = frozenset()) -> list[bytes]:
        """Header lines (with CRLF) minus hop-by-hop ones, except those in `keep`."""
        drop = (_HOP_BY_HOP | self.connection) - keep
        return [name + b": " + value + b"\r\n" for name, value in self.headers
                if name.lower() not in drop]

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


def parse_head(head: bytes) -> Message:
    lines = head.split(b"\r\n")
    first = lines[0]
    headers: list[tuple[bytes, bytes]] = []
    content_length: int | None = None
    chunked = False
    connection: set[bytes] = set()
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name or name[-1:] in (b" ", b"\t") or line[:1] in (b" ", b"\t"):
            raise BadMessage("malformed header line")
        value = value.strip(b" \t")
        lname = name.lower()
        if lname == b"content-length":
            if not value.isdigit():
                raise BadMessage("invalid Content-Length")
            length = int(value)
            if content_length is not None and content_length != length:
                raise BadMessage("conflicting Content-Length")
            content_length = length
        elif lname == b"transfer-encoding":
            codings = [c.strip().lower() for c in value.split(b",")]
            if codings[-1] != b"chunked":
                raise BadMessage("unsupported Transfer-Encoding")
            chunked = True
        elif lname == b"connection":
            connection.update(t.strip().lower() for t in value.split(b",") if t.strip())
        headers.append((name, value))
    if chunked:
        content_length = None  # RFC 9112 §6.3: Transfer-Encoding overrides
    return Message(first, b"", headers, content_length, chunked, frozenset(connection))


@dataclass
class Request:
    method: bytes
    target: bytes
    head: Message
    keep_alive: bool
    upgrade: bool
    http10: bool


def parse_request(raw: bytes) -> Request:
    head = parse_head(raw[:-4])
    parts = head.first.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise BadMessage("malformed request line")
    method, target, version = parts
    head.version = version
    http10 = version == b"HTTP/1.0"
    keep_alive = (b"keep-alive" in head.connection) if http10 else (
        b"close" not in head.connection)
    upgrade = b"upgrade" in head.connection and head.header(b"upgrade") is not None
    return Request(method, target, head, keep_alive, upgrade, http10)


def upstream_head(request: Request, client_ip: str | None) -> bytes:
    head = request.head
    lines = [request.method, b" ", request.target, b" HTTP/1.1\r\n"]
    keep = frozenset({b"upgrade"}) if request.upgrade else frozenset()
    forwarded: bytes | None = None
    for name, value in head.headers:
        lname = name.lower()
        if lname == b"x-forwarded-for":
            forwarded = value if forwarded is None else forwarded + b", " + value
    for line in head.end_to_end(keep=keep):
        if line[:16].lower() != b"x-forwarded-for:":
            lines.append(line)
    if client_ip:
        ip = client_ip.encode()
        forwarded = ip if forwarded is None else forwarded + b", " + ip
    if forwarded is not None:
        lines.append(b"X-Forwarded-For: " + forwarded + b"\r\n")
    if request.upgrade:
        lines.append(b"Connection: Upgrade\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def simple_response(status: int, reason: str, text: str, *, close: bool = False) -> bytes:
    body = text.encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "")
            + "\r\n")
    return head.encode() + body


async def serve(core: ProxyCore, address: tuple[str, int], client: Stream) -> None:
    """Serve HTTP/1 requests on `client` until it closes or a response ends it."""
    transport = client.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    client_ip = str(peer[0]) if peer else None
    while True:
        try:
            raw = await client.read_until(b"\r\n\r\n", MAX_HEAD)
        except ConnectionEnded:
            return
        except HeadTooLarge:
            client.write(simple_response(431, "Request Header Fields Too Large",
                                         "request head too large\n", close=True))
            return
        try:
            request = parse_request(raw)
        except BadMessage as exc:
            client.write(simple_response(400, "Bad Request", f"{exc}\n", close=True))
            return
        route = core.routes.get(address)
        if route is None:
            client.write(simple_response(503, "Service Unavailable",
                                         "no service is listening here any more\n",
                                         close=True))
            return
        core.stats.http_requests += 1
        if not await forward(core, route, client, request, client_ip):
            return


async def forward(core: ProxyCore, route: Route, client: Stream, request: Request,
                  client_ip: str | None) -> bool:
    """Forward one request; True when the client connection may carry the next one."""
    head = upstream_head(request, client_ip)
    body: bytes | None = b""
    length = request.head.content_length
    expect_continue = (request.head.header(b"expect") or b"").lower() == b"100-continue"
    if request.head.chunked or (length and (length > REPLAY_BODY_LIMIT or expect_continue)):
        body = None  # streamed after the head: not replayable
    elif length:
        try:
            body = await client.read_exactly(length)
        except ConnectionEnded:
            return False
    candidates = await ready_candidates(core, route, client_ip)
    if not candidates:
        core.failed(route, "no ready endpoint: answered 503", method=request.method.decode())
        client.write(simple_response(
            503, "Service Unavailable",
            f'service "{route.balancer.description}" has no ready endpoints\n'))
        return request.keep_alive and body is not None
    replayable = body is not None and request.method in IDEMPOTENT
    last_error = ""
    loop = asyncio.get_running_loop()
    # Every failure below that reaches the end of the loop left the request unsent
    # or replayable: while the endpoint wait lasts, the next Endpoints change (an app
    # restarted, a new pod Ready) or a short pause brings new candidates.
    deadline = loop.time() + route.balancer.wait_seconds
    while True:
        for backend in candidates:
            upstream = core.take_idle(backend)
            if upstream is None:
                try:
                    upstream = await open_upstream(core, backend)
                except (OSError, TimeoutError) as exc:
                    core.stats.connect_failures += 1
                    route.balancer.failed(backend)
                    last_error = str(exc) or type(exc).__name__
                    continue
            try:
                if body is None:
                    upstream.write(head)
                    if request.head.chunked:
                        await copy_chunked(client, upstream, raw=True)
                    elif length:
                        await copy_length(client, upstream, length)
                else:
                    upstream.write(head + body if body else head)
                raw = await upstream.read_until(b"\r\n\r\n", MAX_HEAD)
            except ConnectionEnded as exc:
                upstream.close()
                if not exc.partial and replayable:
                    # Died before a single response byte: the request is whole in hand and
                    # idempotent, so another endpoint may answer it.
                    core.stats.retries += 1
                    route.balancer.failed(backend)
                    last_error = "connection closed before any response byte"
                    log.debug("retrying request on another endpoint", service=route.service,
                              backend=str(backend))
                    continue
                return _bad_gateway(core, route, client, backend, "connection closed")
            except (HeadTooLarge, BadMessage) as exc:
                upstream.close()
                return _bad_gateway(core, route, client, backend, str(exc) or "bad message")
            route.balancer.succeeded(client_ip, backend)
            try:
                return await relay_response(core, backend, request, raw, upstream, client,
                                            hold_small_body=replayable)
            except ResponseLost:
                # The endpoint died between its response's head and the end of a small
                # body (an app killed mid-write): nothing reached the client yet, and
                # the request is idempotent and whole in hand, so another may answer.
                core.stats.retries += 1
                route.balancer.failed(backend)
                last_error = "connection closed mid-response"
                log.debug("retrying request on another endpoint", service=route.service,
                          backend=str(backend))
                continue
            except BadMessage as exc:
                upstream.close()
                client.close()
                log.warning("bad response from endpoint", service=route.service,
                            backend=str(backend), error=str(exc))
                return False
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await route.balancer.wait_changed(min(remaining, RETRY_PAUSE_SECONDS))
        candidates = await ready_candidates(core, route, client_ip,
                                            at_most=deadline - loop.time())
        if not candidates:
            break
    core.failed(route, "no endpoint reachable: answered 503", tried=len(candidates),
                error=last_error)
    client.write(simple_response(
        503, "Service Unavailable", f'service "{route.balancer.description}": no endpoint '
        f"accepted the connection ({last_error})\n"))
    return request.keep_alive and body is not None


def _bad_gateway(core: ProxyCore, route: Route, client: Stream, backend: Backend,
                 why: str) -> bool:
    core.failed(route, "endpoint failed: answered 502", backend=str(backend), error=why)
    client.write(simple_response(502, "Bad Gateway", f"bad gateway: {backend}: {why}\n",
                                 close=True))
    return False


class ResponseLost(Exception):
    """The endpoint closed before its (small, held) response was whole; the client has
    been sent nothing of it."""


async def relay_response(core: ProxyCore, backend: Backend, request: Request, raw: bytes,
                         upstream: Stream, client: Stream, *,
                         hold_small_body: bool = False) -> bool:
    """Relay the response whose head is `raw` (and any interim 1xx before the final one).
    `hold_small_body`: a small body is read whole before anything is written, and an
    endpoint that dies before the end raises `ResponseLost` (the caller may retry)."""
    interim_sent = False
    while True:
        response = parse_head(raw[:-4])
        parts = response.first.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise BadMessage("malformed status line")
        status = int(parts[1])
        if status == 101 and request.upgrade:
            client.write(raw)
            await splice(client, upstream)
            return False
        if 100 <= status < 200:
            if not request.http10:
                client.write(raw)  # 100 Continue, 103 Early Hints
                interim_sent = True
            raw = await upstream.read_until(b"\r\n\r\n", MAX_HEAD)
            continue
        break
    reason = parts[2] if len(parts) > 2 else b""
    no_body = request.method == b"HEAD" or status in (204, 304)
    length = None if no_body else response.content_length
    chunked = not no_body and response.chunked
    close_delimited = not no_body and not chunked and length is None
    upstream_reusable = (parts[0] == b"HTTP/1.1" and b"close" not in response.connection
                         and not close_delimited)
    dechunk = chunked and request.http10  # an HTTP/1.0 client cannot read chunks
    keep = request.keep_alive and not close_delimited and not dechunk
    lines = [b"HTTP/1.1 ", parts[1], b" ", reason, b"\r\n"]
    lines += response.end_to_end()
    if dechunk:
        lines = [line for line in lines if line[:18].lower() != b"transfer-encoding:"]
    if not keep:
        lines.append(b"Connection: close\r\n")
    elif request.http10:
        lines.append(b"Connection: keep-alive\r\n")
    lines.append(b"\r\n")
    out = b"".join(lines)
    try:
        if length is not None and length <= COPY_CHUNK:
            try:
                data = await upstream.read_exactly(length) if length else b""
            except ConnectionEnded as exc:
                if hold_small_body and not interim_sent:
                    upstream.close()
                    raise ResponseLost() from None
                client.write(out + exc.partial)
                raise
            client.write(out + data)
        else:
            client.write(out)
            if length is not None:
                await copy_length(upstream, client, length)
            elif chunked:
                await copy_chunked(upstream, client, raw=not dechunk)
            elif close_delimited:
                await copy_until_eof(upstream, client)
    except (ConnectionEnded, HeadTooLarge):
        # The endpoint broke off mid-body (or the client went away): cut the client's
        # connection so it sees a truncated response.
        upstream.close()
        client.close()
        log.warning("response broke off mid-body", backend=str(backend))
        return False
    if upstream_reusable and not upstream.closed:
        core.put_idle(backend, upstream)
    else:
        upstream.close()
    return keep


async def copy_length(src: Stream, dst: Stream, n: int) -> None:
    while n > 0:
        data = await src.read_some(min(n, COPY_CHUNK))
        if not data:
            raise ConnectionEnded()
        dst.write(data)
        n -= len(data)
        await dst.drain()


async def copy_until_eof(src: Stream, dst: Stream) -> None:
    while True:
        data = await src.read_some(COPY_CHUNK)
        if not data:
            return
        dst.write(data)
        await dst.drain()


async def copy_chunked(src: Stream, dst: Stream, *, raw: bool) -> None:
    """Copy one chunked body; `raw=False` strips the chunk framing (for HTTP/1.0)."""
    while True:
        line = await src.read_until(b"\r\n", 4096)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadMessage("invalid chunk size") from None
        if raw:
            dst.write(line)
        if size == 0:
            while True:  # trailer section, up to the empty line
                trailer = await src.read_until(b"\r\n", MAX_HEAD)
                if raw:
                    dst.write(trailer)
                if trailer == b"\r\n":
                    return
        await copy_length(src, dst, size)
        crlf = await src.read_exactly(2)
        if crlf != b"\r\n":
            raise BadMessage("chunk not followed by CRLF")
        if raw:
            dst.write(crlf)
