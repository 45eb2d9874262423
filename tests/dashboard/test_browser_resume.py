"""A lost connection, seen from a real browser: the page says so, then resumes.

The API server and the dashboard run in this process (no cluster); between them sits a
TCP relay the test can cut, which is what a restarting API server or a dropped socket
looks like to the dashboard. Headless Chromium (Debian's, through Playwright) shows the
Pods list. While the relay is cut the page must say "Reconnecting…"; an object created
meanwhile must appear once it is restored — by a watch that resumes from the
resourceVersion the page last saw, not by listing everything again.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
from anyio.abc import SocketStream, TaskStatus
from anyio.from_thread import BlockingPortal, start_blocking_portal
from playwright.sync_api import expect, sync_playwright

from miniorch.api.kinds import PODS
from miniorch.api.registry import Registry
from miniorch.core.settings import Settings
from miniorch.dashboard.login import mint_login_token
from tests.api.server_support import make_registry, pod
from tests.dashboard.support import start_api_and_dashboard

CHROMIUM = Path("/usr/bin/chromium")
WAIT = 15_000  # ms: generous, for a loaded machine; the page reconnects within seconds


@dataclass
class Relay:
    """A loopback TCP relay to `target_port` whose connections can all be cut at once."""

    target_port: int
    port: int = 0
    refusing: bool = False
    _open: set[SocketStream] = field(default_factory=set)

    async def run(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener:
            task_status.started(self.port)
            await listener.serve(self._relay)

    async def _relay(self, client: SocketStream) -> None:
        async with client:
            if self.refusing:
                return
            async with await anyio.connect_tcp("127.0.0.1", self.target_port) as server:
                self._open |= {client, server}
                try:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._pipe, client, server, tg.cancel_scope)
                        tg.start_soon(self._pipe, server, client, tg.cancel_scope)
                finally:
                    self._open -= {client, server}

    @staticmethod
    async def _pipe(a: SocketStream, b: SocketStream, scope: anyio.CancelScope) -> None:
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError,
                                 anyio.ClosedResourceError, OSError):
            async for chunk in a:
                await b.send(chunk)
        scope.cancel()

    async def cut(self) -> None:
        self.refusing = True
        for stream in list(self._open):
            await stream.aclose()

    def restore(self) -> None:
        self.refusing = False


@dataclass
class Site:
    url: str
    token: str
    registry: Registry
    relay: Relay
    portal: BlockingPortal


@contextlib.contextmanager
def site(tmp_path: Path) -> Iterator[Site]:
    settings = Settings(home=tmp_path, api_port=0, dashboard_port=0)

    async def serve(*, task_status: TaskStatus[tuple[str, str, Registry, Relay]]
                    = anyio.TASK_STATUS_IGNORED) -> None:
        registry = make_registry(tmp_path)
        try:
            async with anyio.create_task_group() as tg:
                relay: Relay | None = None

                async def through_relay(api_port: int) -> int:
                    nonlocal relay
                    relay = Relay(api_port)
                    return int(await tg.start(relay.run))

                started = await start_api_and_dashboard(tg, settings, registry,
                                                        via=through_relay)
                assert relay is not None
                task_status.started((started.url, started.api_token, registry, relay))
        finally:
            registry.store.close()

    with start_blocking_portal() as portal:
        future, (url, token, registry, relay) = portal.start_task(serve)
        try:
            yield Site(url, token, registry, relay, portal)
        finally:
            future.cancel()
            with contextlib.suppress(CancelledError):
                future.result(timeout=10)


def test_a_cut_connection_is_shown_and_the_watch_resumes(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make install` installs it")
    with site(tmp_path) as s, sync_playwright() as p:
        s.portal.call(s.registry.create, PODS, pod("before"))
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page()
            pod_requests: list[str] = []
            page.on("request", lambda r: pod_requests.append(r.url)
                    if urlsplit(r.url).path == "/api/v1/namespaces/default/pods" else None)
            page.goto(f"{s.url}?token={mint_login_token(s.token)}")
            page.goto(s.url + "#/r/core/v1/pods")
            expect(page.get_by_role("row", name="before")).to_be_visible(timeout=WAIT)
            status = page.get_by_role("status")
            expect(status).to_have_text(re.compile("Live"), timeout=WAIT)
            lists_before = [u for u in pod_requests if "watch" not in parse_qs(urlsplit(u).query)]
            seen_before = len(pod_requests)

            s.portal.call(s.relay.cut)
            expect(status).to_have_text(re.compile("Reconnecting"), timeout=WAIT)
            created = s.portal.call(s.registry.create, PODS, pod("during-outage"))
            s.portal.call(s.relay.restore)

            expect(page.get_by_role("row", name="during-outage")).to_be_visible(timeout=WAIT)
            expect(status).to_have_text(re.compile("Live"), timeout=WAIT)
            # It came from a resumed watch: every request since the cut is a watch from a
            # resourceVersion older than the new pod's, and none lists again.
            since = pod_requests[seen_before:]
            queries = [parse_qs(urlsplit(u).query) for u in since]
            assert queries, "the page never watched again"
            assert all("watch" in q for q in queries), since
            versions = {int(q["resourceVersion"][0]) for q in queries}
            assert all(0 < v < int(created["metadata"]["resourceVersion"]) for v in versions), since
            assert len(lists_before) == 1
        finally:
            browser.close()
