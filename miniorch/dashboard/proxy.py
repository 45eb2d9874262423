"""The browser's way to the API: same-origin requests forwarded with the cluster's token.

    browser ──HTTP /api/…, /apis/…, /version──► forward_http ──HTTPS + Bearer──► API server
    browser ──WebSocket (exec, attach, …)────► forward_websocket ──WSS + Bearer──► API server

The page speaks the real Kubernetes REST API (discovery, Tables, watches, logs, exec),
so the dashboard holds no knowledge of kinds. What is forwarded is deliberately narrow:
the method, the path with its query, the body, and `Accept`/`Content-Type`. Cookies
and every other browser header stay behind, and the token is added here, so the page
never sees it. Responses stream chunk by chunk (a watch or `log?follow=true` is a
response that never ends); a browser that goes away cancels its handler, which closes
the upstream request.

A WebSocket is opened upstream first, with the subprotocols the page offered, so the
page is answered with the one the API chose (`v4.channel.k8s.io` …); a refusal upstream
(404 pod, 400 no such container) reaches the page as that same HTTP status. An API
server that cannot be reached is a 503 `Status`; one that goes away in the middle of a
stream ends the stream, and the page resumes its watch from what it last saw.
"""

from __future__ import annotations

import contextlib
import ssl

import aiohttp
import anyio
import structlog
from aiohttp import web

from miniorch.dashboard.status import status_response

log = structlog.get_logger(__name__)

FORWARDED_REQUEST_HEADERS = ("Accept", "Content-Type")
FORWARDED_RESPONSE_HEADERS = ("Content-Type", "Warning")


class ApiForwarder:
    """Forwards requests to the API at `api_url` as the holder of `token`."""

    def __init__(self, *, api_url: str, ssl_context: ssl.SSLContext, token: str,
                 max_body_bytes: int) -> None:
        self.api_url = api_url.rstrip("/")
        self.ssl_context = ssl_context
        self.token = token
        self.max_body_bytes = max_body_bytes
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiForwarder:
        # No total timeout: watches and followed logs are meant to last.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl_context, limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use ApiForwarder as an async context manager"
        return self._session

    def _headers(self, request: web.Request) -> dict[str, str]:
        headers = {name: request.headers[name] for name in FORWARDED_REQUEST_HEADERS
                   if name in request.headers}
        headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def forward_http(self, request: web.Request) -> web.StreamResponse:
        body = await request.read() if request.can_read_body else None
        try:
            async with self.session.request(request.method, self.api_url + request.raw_path,
                                            data=body, headers=self._headers(request),
                                            allow_redirects=False) as upstream:
                headers = {name: upstream.headers[name] for name in FORWARDED_RESPONSE_HEADERS
                           if name in upstream.headers}
                if upstream.content_length is not None:
                    return web.Response(status=upstream.status, headers=headers,
                                        body=await upstream.read())
                response = web.StreamResponse(status=upstream.status, headers=headers)
                response.enable_chunked_encoding()
                await response.prepare(request)
                try:
                    # Written as it arrives: each watch event reaches the page at once.
                    async for chunk in upstream.content.iter_any():
                        await response.write(chunk)
                except aiohttp.ClientError:
                    # The API went away mid-stream: our stream ends too, and the page
                    # watches again from the last resourceVersion it saw.
                    log.info("api stream broke", path=request.path)
                await response.write_eof()
                return response
        except aiohttp.ClientError as exc:
            return unreachable(exc)

    async def forward_websocket(self, request: web.Request) -> web.StreamResponse:
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
                   if p.strip()]
        try:
            upstream = await self.session.ws_connect(
                self.api_url + request.raw_path, protocols=offered,
                headers={"Authorization": f"Bearer {self.token}"}, autoping=True,
                max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            return web.Response(status=exc.status or 502, text=exc.message or "",
                                content_type="text/plain")
        except aiohttp.ClientError as exc:
            return unreachable(exc)
        try:
            page = web.WebSocketResponse(
                protocols=(upstream.protocol,) if upstream.protocol else (),
                max_msg_size=0, autoping=True)
            await page.prepare(request)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_pump, page, upstream, tg.cancel_scope)
                tg.start_soon(_pump, upstream, page, tg.cancel_scope)
            # Whichever side closed first: the other learns the same close code.
            code = upstream.close_code or page.close_code or 1000
            with contextlib.suppress(Exception):
                await page.close(code=code)
            return page
        finally:
            with anyio.CancelScope(shield=True):
                await upstream.close()


def unreachable(exc: Exception) -> web.Response:
    return status_response(503, "ServiceUnavailable",
                           f"the API server is unreachable: {exc or type(exc).__name__}")


async def _pump(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                scope: anyio.CancelScope) -> None:
    try:
        async for message in source:
            if message.type is aiohttp.WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            elif message.type is aiohttp.WSMsgType.TEXT:
                await sink.send_str(message.data)
    except (ConnectionError, aiohttp.ClientError):
        pass
    finally:
        # One side is done: so is the conversation.
        scope.cancel()
