"""The dashboard actor: a plain-HTTP loopback site in front of the API, for a browser.

    browser ──► _guard (Host, security headers) ──► _login (?token= → cookie, 303 /)
            ──► _session (cookie, else 401) ──► _same_origin (writes and WebSockets)
            ──► /             the page (assets.py)
                /app/*, /vendor/*   its modules
                /dashboard/info     who and where
                /api/*, /apis/*, /version   ApiForwarder (proxy.py) → the API server

Why plain HTTP on loopback: a browser shows no certificate warning there, and nothing
leaves the machine. Why that is still safe:
- The site binds 127.0.0.1 only, and refuses any Host header but its own address, so a
  web page elsewhere cannot reach it through DNS rebinding.
- Nothing works without a session, and a session comes only from a one-time login link
  (login.py). The cookie is HttpOnly (page script cannot read it) and SameSite=Strict
  (no other site's page sends it).
- Writes and WebSocket upgrades must also carry our own Origin: a cross-site form post
  or socket is refused even if a browser were to send the cookie.
- The token in the login link is traded at once for the cookie and a redirect to `/`,
  so it stays neither in the address bar nor in history; access logs are off here and
  request logs never carry a query string.

The dashboard is a client of the API like kubectl, with the cluster's credentials; it
knows nothing about kinds, which is why a new kind (or a CRD) appears in the page
without dashboard code.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import structlog
from aiohttp import hdrs, web

from miniorch.core.settings import Settings
from miniorch.dashboard import assets
from miniorch.dashboard.login import COOKIE_NAME, LoginTokens, Sessions
from miniorch.dashboard.proxy import ApiForwarder
from miniorch.dashboard.status import status_response

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_PREFIXES = ("/api/", "/apis/")
API_PATHS = ("/api", "/apis", "/version")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class DashboardState:
    """What the site's handlers share: the page, the login checks, the forwarder."""

    def __init__(self, *, page: assets.Page | None, not_installed: str | None,
                 tokens: LoginTokens, sessions: Sessions, forwarder: ApiForwarder,
                 api_url: str, port: int, web_dir: Path) -> None:
        self.page = page
        self.not_installed = not_installed
        self.tokens = tokens
        self.sessions = sessions
        self.forwarder = forwarder
        self.api_url = api_url
        self.port = port
        self.web_dir = web_dir
        self.streams: set[asyncio.Task[object]] = set()
        """Forwarded requests in flight (watches, logs, shells): ended at shutdown."""

    @property
    def own_hosts(self) -> tuple[str, ...]:
        return (f"127.0.0.1:{self.port}", f"localhost:{self.port}")

    def csp(self) -> str:
        if self.page is None:
            return "default-src 'none'"
        return assets.content_security_policy(self.page)


_STATE = web.AppKey("dashboard", DashboardState)


def build_app(state: DashboardState) -> web.Application:
    app = web.Application(middlewares=[_guard, _login, _session, _same_origin],
                          client_max_size=state.forwarder.max_body_bytes + 1)
    app[_STATE] = state
    app.router.add_get("/", _index)
    app.router.add_get("/dashboard/info", _info)
    app.router.add_post("/dashboard/logout", _logout)
    app.router.add_get("/app/{path:.+}", _app_file)
    app.router.add_get("/vendor/{path:.+}", _vendor_file)
    for path in API_PATHS:
        app.router.add_route("*", path, _forward)
    for prefix in API_PREFIXES:
        app.router.add_route("*", prefix + "{rest:.*}", _forward)
    return app


# ---- middlewares ----------------------------------------------------------------------

def _state(request: web.Request) -> DashboardState:
    return request.app[_STATE]


def _is_api(path: str) -> bool:
    return path in API_PATHS or path.startswith(API_PREFIXES) or path.startswith("/dashboard/")


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = _state(request)
    if request.host not in state.own_hosts:
        # DNS rebinding: a foreign name that resolves to 127.0.0.1 is not us.
        return web.Response(status=421, text=f"misdirected request: this is "
                            f"http://{state.own_hosts[0]}/\n", content_type="text/plain")
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    if not isinstance(response, web.WebSocketResponse) and not response.prepared:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", state.csp())
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def _login(request: web.Request, handler: Handler) -> web.StreamResponse:
    token = request.query.get("token")
    if request.path != "/" or token is None:
        return await handler(request)
    state = _state(request)
    if not state.tokens.redeem(token):
        log.info("dashboard login refused")
        return _page_401("This login link is invalid, expired or already used.")
    session = state.sessions.open()
    log.info("dashboard login")
    response = web.HTTPSeeOther("/")
    response.set_cookie(COOKIE_NAME, session, httponly=True, samesite="Strict", path="/")
    return response


@web.middleware
async def _session(request: web.Request, handler: Handler) -> web.StreamResponse:
    if _state(request).sessions.valid(request.cookies.get(COOKIE_NAME)):
        return await handler(request)
    if _is_api(request.path):
        return status_response(401, "Unauthorized", "Unauthorized: no dashboard session; run "
                       "`miniorch dashboard` for a login link")
    return _page_401("You are not logged in.")


@web.middleware
async def _same_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    upgrade = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
    if request.method not in SAFE_METHODS or upgrade:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin not in {f"http://{host}" for host in _state(request).own_hosts}:
            return status_response(403, "Forbidden", f"Forbidden: cross-origin request refused "
                           f"(Origin {origin or 'missing'})")
    return await handler(request)


def _page_401(why: str) -> web.Response:
    body = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>miniorch: log in</title></head><body><main>"
            f"<h1>miniorch dashboard</h1><p>{why}</p>"
            "<p>Run <code>miniorch dashboard</code> for a new login link.</p>"
            "</main></body></html>")
    return web.Response(status=401, text=body, content_type="text/html")


# ---- handlers -------------------------------------------------------------------------

async def _index(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    if state.page is None:
        return web.Response(status=503, text=f"{state.not_installed}\n",
                            content_type="text/plain")
    return web.Response(body=state.page.html, content_type="text/html", charset="utf-8")


async def _info(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    return web.json_response({"user": "admin", "apiServer": state.api_url,
                              "cluster": "miniorch"})


async def _logout(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    state.sessions.close(request.cookies.get(COOKIE_NAME, ""))
    response = web.json_response({"loggedOut": True})
    response.del_cookie(COOKIE_NAME, path="/")
    return response


async def _app_file(request: web.Request) -> web.StreamResponse:
    return _file(assets.resolve_app_file(request.match_info["path"], _state(request).web_dir))


async def _vendor_file(request: web.Request) -> web.StreamResponse:
    return _file(assets.resolve_vendor_file(request.match_info["path"],
                                            _state(request).web_dir))


def _file(path: Path | None) -> web.StreamResponse:
    if path is None:
        return web.Response(status=404, text="404: not found\n", content_type="text/plain")
    response = web.FileResponse(path)
    response.content_type = assets.CONTENT_TYPES[path.suffix]
    response.headers["Cache-Control"] = "no-cache"  # revalidated: a new build shows at once
    return response


async def _forward(request: web.Request) -> web.StreamResponse:
    state = _state(request)
    task = asyncio.current_task()
    assert task is not None
    state.streams.add(task)
    try:
        if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
            return await state.forwarder.forward_websocket(request)
        return await state.forwarder.forward_http(request)
    finally:
        state.streams.discard(task)


# ---- the actor ------------------------------------------------------------------------

class Dashboard:
    """Serves the dashboard on 127.0.0.1:`settings.dashboard_port` until cancelled.

    Once bound it writes its address to `settings.dashboard_file` (read by `miniorch
    dashboard` and `cluster-info`) and removes the file when it stops.
    """

    def __init__(self, *, settings: Settings, api_url: str, api_ssl: ssl.SSLContext,
                 api_token: str, web_dir: Path = assets.WEB_DIR) -> None:
        self.settings = settings
        self.api_url = api_url
        self.api_ssl = api_ssl
        self.api_token = api_token
        self.web_dir = web_dir
        self.url: str | None = None

    async def run(self, *, task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED
                  ) -> None:
        settings = self.settings
        try:
            page, not_installed = assets.build_page(self.web_dir), None
        except assets.NotInstalled as exc:
            page, not_installed = None, str(exc)
            log.warning("dashboard without its front end", reason=str(exc))
        async with ApiForwarder(api_url=self.api_url, ssl_context=self.api_ssl,
                                token=self.api_token,
                                max_body_bytes=settings.max_request_bytes) as forwarder:
            state = DashboardState(page=page, not_installed=not_installed,
                                   tokens=LoginTokens(self.api_token), sessions=Sessions(),
                                   forwarder=forwarder, api_url=self.api_url, port=0,
                                   web_dir=self.web_dir)
            runner = web.AppRunner(build_app(state), handler_cancellation=True,
                                   access_log=None, shutdown_timeout=2.0)
            await runner.setup()
            try:
                site = web.TCPSite(runner, "127.0.0.1", settings.dashboard_port,
                                   reuse_address=True)
                try:
                    await site.start()
                except OSError as exc:
                    raise OSError(exc.errno, f"cannot serve the dashboard on 127.0.0.1:"
                                  f"{settings.dashboard_port}: {exc.strerror or exc} "
                                  "(choose another port with --dashboard-port)") from exc
                state.port = _bound_port(runner, settings.dashboard_port)
                self.url = f"http://127.0.0.1:{state.port}/"
                settings.dashboard_file.write_text(self.url + "\n")
                log.info("dashboard listening", url=self.url)
                task_status.started(self.url)
                await anyio.sleep_forever()
            finally:
                with anyio.CancelScope(shield=True):
                    with contextlib.suppress(FileNotFoundError):
                        if settings.dashboard_file.read_text().strip() == self.url:
                            settings.dashboard_file.unlink()
                    # Open pages hold watches and shells for as long as they are open:
                    # end them now rather than wait out the shutdown timeout.
                    for stream in list(state.streams):
                        stream.cancel()
                    await runner.cleanup()


def _bound_port(runner: web.AppRunner, wanted: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return wanted

