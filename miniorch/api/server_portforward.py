"""`…/pods/<name>/portforward`: TCP to a pod's port, over two WebSocket dialects.

1. kubectl 1.31+ (SPDY tunnelled in a WebSocket):

    kubectl ══WebSocket (subprotocol SPDY/3.1+portforward.k8s.io)══► serve_portforward
       binary messages carry a plain SPDY/3 byte stream (client-go's "tunneling"):
         SYN_STREAM {streamtype: error, port: P, requestid: N}  ─► SYN_REPLY
         SYN_STREAM {streamtype: data,  port: P, requestid: N}  ─► SYN_REPLY,
                                                                   connect podIP:P
         DATA(data stream)  ─────────────────────────────────────► TCP send
         DATA(data stream)  ◄─────────────────────────────────────  TCP receive
         FIN on either side half-closes; a failed connect writes its message on the
         error stream (kubectl prints it), then ends both streams.
         PING ─► echoed; SETTINGS, WINDOW_UPDATE ignored; GOAWAY / close ends it all.

SPDY/3 (draft 3) framing: control frames `1|version(15)|type(16)|flags(8)|length(24)`,
data frames `0|stream-id(31)|flags(8)|length(24)`; header blocks are zlib streams
with the SPDY/3 dictionary, one compression context per direction for the whole
connection, so every received header block must be inflated, even ones we ignore.
The client (moby/spdystream) does no flow control, so neither do we.

2. The channel protocol `v4.channel.k8s.io` (the `kubernetes` Python client's
   `portforward`), ports named up front in `?ports=P1,P2`:

    client ══WebSocket (v4.channel.k8s.io)══► _ChannelSession, port i = ports[i]:
         connect podIP:Pi; send [2i, Pi lo, Pi hi] and [2i+1, Pi lo, Pi hi]
         binary [2i] + bytes ──────────────────► TCP send to Pi
         binary [2i] + bytes ◄──────────────────  TCP receive from Pi
         a failed connect ─► [2i+1] + message; when every port's TCP has ended (or
         the client closes) the WebSocket is closed, which ends the client's sockets.

Invariants: one writer at a time on the WebSocket (a lock); every TCP connection is
closed when its stream ends or the session ends; nothing outlives the request.
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from dataclasses import dataclass, field

import anyio
import structlog
from aiohttp import WSMsgType, web
from anyio.abc import SocketStream, TaskGroup

from miniorch.api.errors import BadRequest
from miniorch.api.kinds import PODS
from miniorch.api.server_common import ApiContext

log = structlog.get_logger(__name__)

TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
CHANNEL_PROTOCOL = "v4.channel.k8s.io"
SPDY_VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9)
FLAG_FIN = 0x01
RST_CANCEL = 5
CHUNK = 32 * 1024


def _spdy3_dictionary() -> bytes:
    """The zlib dictionary of SPDY/3 header blocks (draft 3, section 2.6.10.1)."""
    words = [
        "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
        "accept-encoding", "accept-language", "accept-ranges", "age", "allow",
        "authorization", "cache-control", "connection", "content-base",
        "content-encoding", "content-language", "content-length", "content-location",
        "content-md5", "content-range", "content-type", "date", "etag", "expect",
        "expires", "from", "host", "if-match", "if-modified-since", "if-none-match",
        "if-range", "if-unmodified-since", "last-modified", "location", "max-forwards",
        "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
        "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade",
        "user-agent", "vary", "via", "warning", "www-authenticate", "method", "get",
        "status", "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie",
        "keep-alive", "origin",
    ]
    head = b"".join(struct.pack(">I", len(p)) + p.encode() for p in words)
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset="
        "iso-8859-1,utf-,*,enq=0.")
    return head + tail.encode()


DICTIONARY = _spdy3_dictionary()


def encode_headers(headers: dict[str, str]) -> bytes:
    block = struct.pack(">I", len(headers))
    for name, value in headers.items():
        block += struct.pack(">I", len(name)) + name.encode()
        block += struct.pack(">I", len(value)) + value.encode()
    return block


def decode_headers(block: bytes) -> dict[str, str]:
    (count,), pos = struct.unpack_from(">I", block), 4
    headers: dict[str, str] = {}
    for _ in range(count):
        (n,) = struct.unpack_from(">I", block, pos)
        name = block[pos + 4:pos + 4 + n].decode().lower()
        pos += 4 + n
        (n,) = struct.unpack_from(">I", block, pos)
        headers[name] = block[pos + 4:pos + 4 + n].decode()
        pos += 4 + n
    return headers


def control_frame(kind: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack(">HHI", 0x8000 | SPDY_VERSION, kind, (flags << 24) | len(payload)) \
        + payload


def data_frame(stream_id: int, data: bytes, flags: int = 0) -> bytes:
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


@dataclass
class _Forward:
    """One forwarded connection: kubectl's error and data streams for a requestid."""

    port: int
    error_stream: int | None = None
    data_stream: int | None = None
    tcp: SocketStream | None = None
    connected: anyio.Event = field(default_factory=anyio.Event)
    closed: bool = False


class _Session:
    def __init__(self, ws: web.WebSocketResponse, pod_ip: str, pod_name: str) -> None:
        self.ws = ws
        self.pod_ip = pod_ip
        self.pod_name = pod_name
        self.inflate = zlib.decompressobj(zdict=DICTIONARY)
        self.deflate = zlib.compressobj(level=9, zdict=DICTIONARY)
        self.send_lock = anyio.Lock()
        self.forwards: dict[str, _Forward] = {}
        self.by_stream: dict[int, _Forward] = {}

    async def send(self, frame: bytes) -> None:
        async with self.send_lock:
            if not self.ws.closed:
                with contextlib.suppress(ConnectionError):
                    await self.ws.send_bytes(frame)

    async def reply(self, stream_id: int) -> None:
        async with self.send_lock:  # the compressor's state is shared: keep frames ordered
            block = self.deflate.compress(encode_headers({}))
            block += self.deflate.flush(zlib.Z_SYNC_FLUSH)
            if not self.ws.closed:
                with contextlib.suppress(ConnectionError):
                    await self.ws.send_bytes(control_frame(
                        SYN_REPLY, struct.pack(">I", stream_id & 0x7FFFFFFF) + block))

    async def run(self) -> None:
        buffer = b""
        async with anyio.create_task_group() as tg:
            async for msg in self.ws:
                if msg.type != WSMsgType.BINARY:
                    continue
                buffer += msg.data
                while len(buffer) >= 8:
                    (length,) = struct.unpack_from(">I", buffer, 4)
                    length &= 0xFFFFFF
                    if len(buffer) < 8 + length:
                        break
                    frame, buffer = buffer[:8 + length], buffer[8 + length:]
                    if not await self.on_frame(frame, tg):
                        tg.cancel_scope.cancel()
                        return
            tg.cancel_scope.cancel()

    async def on_frame(self, frame: bytes, tg: TaskGroup) -> bool:
        """Handle one frame; False ends the session (GOAWAY)."""
        first, second = struct.unpack_from(">II", frame)
        flags, payload = second >> 24, frame[8:]
        if not first & 0x80000000:
            await self.on_data(first & 0x7FFFFFFF, payload, fin=bool(flags & FLAG_FIN))
            return True
        kind = first & 0xFFFF
        if kind in (SYN_STREAM, HEADERS):
            offset = 10 if kind == SYN_STREAM else 4
            (stream_id,) = struct.unpack_from(">I", payload)
            stream_id &= 0x7FFFFFFF
            headers = decode_headers(self.inflate.decompress(payload[offset:]))
            if kind == SYN_STREAM:
                await self.on_syn_stream(stream_id, headers, tg)
        elif kind == PING:
            await self.send(frame)
        elif kind == RST_STREAM:
            (stream_id,) = struct.unpack_from(">I", payload)
            forward = self.by_stream.get(stream_id & 0x7FFFFFFF)
            if forward is not None:
                await self.close_forward(forward)
        elif kind == GOAWAY:
            return False
        return True  # SETTINGS, WINDOW_UPDATE: nothing to do

    async def on_syn_stream(self, stream_id: int, headers: dict[str, str],
                            tg: TaskGroup) -> None:
        await self.reply(stream_id)
        request_id = headers.get("requestid", str(stream_id))
        try:
            port = int(headers.get("port", ""))
        except ValueError:
            port = 0
        forward = self.forwards.setdefault(request_id, _Forward(port=port))
        self.by_stream[stream_id] = forward
        kind = headers.get("streamtype")
        if kind == "error":
            forward.error_stream = stream_id
        elif kind == "data":
            forward.data_stream = stream_id
            tg.start_soon(self.pump, request_id, forward)

    async def pump(self, request_id: str, forward: _Forward) -> None:
        """Connect to the pod and copy its bytes to the data stream until EOF."""
        data_stream = forward.data_stream
        assert data_stream is not None
        try:
            if not 0 < forward.port < 65536:
                raise OSError(f"invalid port {forward.port}")
            forward.tcp = await anyio.connect_tcp(self.pod_ip, forward.port)
        except OSError as exc:
            message = (f"error forwarding port {forward.port} to pod {self.pod_name}: "
                       f"failed to connect to localhost:{forward.port} inside namespace "
                       f"of pod {self.pod_name}: {exc}")
            if forward.error_stream is not None:
                await self.send(data_frame(forward.error_stream, message.encode(), FLAG_FIN))
            await self.send(data_frame(data_stream, b"", FLAG_FIN))
            self.forget(request_id, forward)
            return
        finally:
            forward.connected.set()
        try:
            while True:
                try:
                    data = await forward.tcp.receive(CHUNK)
                except (anyio.EndOfStream, anyio.ClosedResourceError,
                        anyio.BrokenResourceError, OSError):
                    break
                await self.send(data_frame(data_stream, data))
            await self.send(data_frame(data_stream, b"", FLAG_FIN))
            if forward.error_stream is not None:
                await self.send(data_frame(forward.error_stream, b"", FLAG_FIN))
        finally:
            await self.close_forward(forward)
            self.forget(request_id, forward)

    def forget(self, request_id: str, forward: _Forward) -> None:
        self.forwards.pop(request_id, None)
        for stream_id in (forward.error_stream, forward.data_stream):
            if stream_id is not None:
                self.by_stream.pop(stream_id, None)

    async def on_data(self, stream_id: int, data: bytes, *, fin: bool) -> None:
        forward = self.by_stream.get(stream_id)
        if forward is None or stream_id != forward.data_stream:
            return  # the error stream carries nothing from the client
        await forward.connected.wait()
        tcp = forward.tcp
        if tcp is None:
            return
        try:
            if data:
                await tcp.send(data)
            if fin:
                await tcp.send_eof()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await self.close_forward(forward)

    async def close_forward(self, forward: _Forward) -> None:
        if forward.tcp is not None and not forward.closed:
            forward.closed = True
            with anyio.CancelScope(shield=True):
                await forward.tcp.aclose()

    async def aclose(self) -> None:
        for forward in list(self.forwards.values()):
            await self.close_forward(forward)


class _ChannelSession:
    """`v4.channel.k8s.io`: one data and one error channel per port of `?ports=`."""

    def __init__(self, ws: web.WebSocketResponse, pod_ip: str, pod_name: str,
                 ports: list[int]) -> None:
        self.ws = ws
        self.pod_ip = pod_ip
        self.pod_name = pod_name
        self.ports = ports
        self.send_lock = anyio.Lock()
        self.tcp: dict[int, SocketStream] = {}
        """Port index → its connection to the pod, while open."""
        self.failed: dict[int, str] = {}
        """Port index → why its connection could not be made."""

    async def send(self, channel: int, data: bytes) -> None:
        async with self.send_lock:
            if not self.ws.closed:
                with contextlib.suppress(ConnectionError):
                    await self.ws.send_bytes(bytes([channel]) + data)

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            pumps_done = anyio.Event()
            remaining = [len(self.ports)]

            async def pump_and_count(index: int) -> None:
                try:
                    await self.pump(index)
                finally:
                    remaining[0] -= 1
                    if not remaining[0]:
                        pumps_done.set()

            async def close_when_all_done() -> None:
                await pumps_done.wait()
                await self.ws.close()  # the client's sockets end with the WebSocket

            # Connect first: a client writes as soon as it has its socket, and bytes for a
            # port whose connection is still being made would have nowhere to go.
            for index, port in enumerate(self.ports):
                try:
                    self.tcp[index] = await anyio.connect_tcp(self.pod_ip, port)
                except OSError as exc:
                    self.failed[index] = (
                        f"error forwarding port {port} to pod {self.pod_name}: failed to "
                        f"connect to localhost:{port} inside namespace of pod "
                        f"{self.pod_name}: {exc}")
            for index, port in enumerate(self.ports):
                # Each channel's first frame names its port (2 bytes, little-endian).
                await self.send(2 * index, struct.pack("<H", port))
                await self.send(2 * index + 1, struct.pack("<H", port))
            for index in range(len(self.ports)):
                tg.start_soon(pump_and_count, index)
            tg.start_soon(close_when_all_done)
            async for msg in self.ws:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    continue
                channel, data = msg.data[0], msg.data[1:]
                tcp = self.tcp.get(channel // 2)
                if channel % 2 or tcp is None or not data:
                    continue  # error channels carry nothing from the client
                try:
                    await tcp.send(data)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                    await self.close_port(channel // 2)
            tg.cancel_scope.cancel()

    async def pump(self, index: int) -> None:
        tcp = self.tcp.get(index)
        if tcp is None:
            await self.send(2 * index + 1, self.failed.get(index, "connection closed").encode())
            return
        try:
            while True:
                try:
                    data = await tcp.receive(CHUNK)
                except (anyio.EndOfStream, anyio.ClosedResourceError,
                        anyio.BrokenResourceError, OSError):
                    break
                await self.send(2 * index, data)
        finally:
            await self.close_port(index)

    async def close_port(self, index: int) -> None:
        tcp = self.tcp.pop(index, None)
        if tcp is not None:
            with anyio.CancelScope(shield=True):
                await tcp.aclose()

    async def aclose(self) -> None:
        for index in list(self.tcp):
            await self.close_port(index)


def _ports_of(request: web.Request) -> list[int]:
    ports: list[int] = []
    for value in request.query.getall("ports", []):
        for item in value.split(","):
            try:
                port = int(item)
            except ValueError:
                raise BadRequest(f'unable to parse "{item}" as a port: invalid syntax') from None
            if not 0 < port < 65536:
                raise BadRequest(f"port {port} must be > 0 and < 65536")
            ports.append(port)
    if not ports:
        raise BadRequest("query parameter \"ports\" is required")
    return ports


async def serve_portforward(request: web.Request, ctx: ApiContext, namespace: str,
                            name: str) -> web.StreamResponse:
    pod = ctx.registry.get(PODS, namespace, name)
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or not status.get("podIP"):
        raise BadRequest(f"pod {name} is not running and cannot be port-forwarded; current "
                         f"phase is {status.get('phase') or 'Pending'}")
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    protocol = next((p for p in (TUNNEL_PROTOCOL, CHANNEL_PROTOCOL) if p in offered), None)
    if request.headers.get("Upgrade", "").lower() != "websocket" or protocol is None:
        raise BadRequest("Upgrade request required: miniorch serves port-forward over "
                         f"WebSockets (subprotocol {TUNNEL_PROTOCOL} or {CHANNEL_PROTOCOL}); "
                         "plain SPDY is not supported")
    session: _Session | _ChannelSession
    if protocol == CHANNEL_PROTOCOL:
        ports = _ports_of(request)  # before the upgrade, so a bad request is a 400
    ws = web.WebSocketResponse(protocols=(protocol,), autoping=True, max_msg_size=1 << 24)
    await ws.prepare(request)
    if protocol == CHANNEL_PROTOCOL:
        session = _ChannelSession(ws, str(status["podIP"]), name, ports)
    else:
        session = _Session(ws, str(status["podIP"]), name)
    try:
        with ctx.stream_scope():
            await session.run()
    finally:
        with anyio.CancelScope(shield=True):
            await session.aclose()
            await ws.close()
    return ws


__all__ = ["CHANNEL_PROTOCOL", "DICTIONARY", "TUNNEL_PROTOCOL", "serve_portforward"]
