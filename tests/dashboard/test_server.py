"""The dashboard site in front of a real API server: login, session, origin, forwarding.

Both run in this test's event loop on random loopback ports (no cluster, no nodes): the
API server is the real one with a local exec spawner, and the dashboard talks to it over
HTTPS exactly as in a cluster process. The browser side is a plain aiohttp client here;
tests/e2e/test_dashboard.py drives a real Chromium.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import anyio
import pytest

from miniorch.core.settings import Settings
from miniorch.dashboard.login import COOKIE_NAME, mint_login_token
from miniorch.dashboard.server import Dashboard
from tests.api.server_support import make_registry, pod
from tests.cli.conftest import run_cli
from tests.dashboard.support import start_api_and_dashboard


@dataclass
class Site:
    url: str
    """http://127.0.0.1:<port>/"""
    origin: str
    api_token: str
    dashboard: Dashboard
    settings: Settings

    def login_link(self) -> str:
        return f"{self.url}?token={mint_login_token(self.api_token)}"


@asynccontextmanager
async def dashboard_site(tmp_path: Path) -> AsyncIterator[Site]:
    settings = Settings(home=tmp_path, api_port=0, dashboard_port=0)
    registry = make_registry(tmp_path)
    try:
        async with anyio.create_task_group() as tg:
            started = await start_api_and_dashboard(tg, settings, registry)
            yield Site(url=started.url, origin=started.url.rstrip("/"),
                       api_token=started.api_token, dashboard=started.dashboard,
                       settings=settings)
            tg.cancel_scope.cancel()
    finally:
        registry.store.close()


@asynccontextmanager
async def logged_in(site: Site) -> AsyncIterator[aiohttp.ClientSession]:
    """A browser-like client that followed a login link (its cookie jar holds the session)."""
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for a bare IP address
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(site.login_link()) as response:
            assert response.status == 200 and str(response.url) == site.url
        yield session


async def test_nothing_works_without_a_session(tmp_path: Path) -> None:
    async with dashboard_site(tmp_path) as site, aiohttp.ClientSession() as browser:
        for path in ("", "app/main.js", "vendor/preact/dist/preact.mjs", "dashboard/info",
                     "api/v1/namespaces/default/pods", "apis", "version"):
            async with browser.get(site.url + path) as response:
                assert response.status == 401, path
                if path.startswith(("api", "dashboard", "version")):
                    status = await response.json()
                    assert status["kind"] == "Status" and status["reason"] == "Unauthorized"
        # A made-up cookie is no session either.
        async with browser.get(site.url + "api/v1/namespaces",
                               headers={"Cookie": f"{COOKIE_NAME}=guess"}) as response:
            assert response.status == 401


async def test_a_login_link_works_once_and_leaves_no_token_in_the_url(tmp_path: Path) -> None:
    async with dashboard_site(tmp_path) as site, aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        link = site.login_link()
        async with browser.get(link, allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/"
            cookie = response.headers["Set-Cookie"]
        assert re.search(r"(?i)\bhttponly\b", cookie)
        assert re.search(r"(?i)samesite=strict", cookie)
        assert "Path=/" in cookie
        assert "token" not in cookie and link.split("token=")[1] not in cookie
        # The same link again (another browser, or a replay): refused.
        async with aiohttp.ClientSession() as other, other.get(
                link, allow_redirects=False) as response:
            assert response.status == 401
            assert "already used" in await response.text()
        # The first browser is in.
        async with browser.get(site.url + "api/v1/namespaces") as response:
            assert response.status == 200
            names = {ns["metadata"]["name"] for ns in (await response.json())["items"]}
            assert {"default", "kube-system"} <= names


async def test_forged_expired_and_foreign_tokens_are_refused(tmp_path: Path) -> None:
    async with dashboard_site(tmp_path) as site, aiohttp.ClientSession() as browser:
        good = mint_login_token(site.api_token)
        expiry, nonce, mac = good.split(".")
        forged = [
            f"{expiry}.{nonce}.{'0' * len(mac)}",                        # wrong MAC
            f"{int(expiry) + 1}.{nonce}.{mac}",                         # altered expiry
            mint_login_token(site.api_token, now=time.time() - 600),   # expired
            mint_login_token("another-clusters-token"),                 # not ours
            "", "garbage", "1.2", "x" * 5000,
        ]
        for token in forged:
            async with browser.get(site.url, params={"token": token},
                                   allow_redirects=False) as response:
                assert response.status == 401, token
                assert "Set-Cookie" not in response.headers


async def test_the_page_has_a_strict_csp_matching_its_import_map(tmp_path: Path) -> None:
    async with dashboard_site(tmp_path) as site, logged_in(site) as browser:
        async with browser.get(site.url) as response:
            assert response.status == 200
            html = await response.text()
            csp = response.headers["Content-Security-Policy"]
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.headers["Referrer-Policy"] == "no-referrer"
        inline = re.findall(r'<script(?: type="importmap")?>(.*?)</script>', html, re.S)
        import_map = re.search(r'<script type="importmap">(.*?)</script>', html, re.S)
        assert import_map is not None and len(inline) == 2  # the boot watchdog and the map
        hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(text.encode())
                                                        .digest()).decode() + "'"
                          for text in inline)
        script_src = next(d for d in csp.split("; ") if d.startswith("script-src"))
        assert script_src == f"script-src 'self' {hashes}"
        assert "default-src 'none'" in csp and "'unsafe-eval'" not in script_src
        assert "unsafe-inline" not in script_src
        # Every module the import map names is served, as JavaScript.
        for path in json.loads(import_map.group(1))["imports"].values():
            async with browser.get(site.origin + path) as response:
                assert response.status == 200, path
                assert response.content_type == "text/javascript"


async def test_files_outside_the_front_end_are_not_served(tmp_path: Path) -> None:
    async with dashboard_site(tmp_path) as site, logged_in(site) as browser:
        for path in ("app/../server.py", "app/%2e%2e/server.py", "app/../../api/tls.py",
                     "vendor/preact/../../package-lock.json",
                     "vendor/preact/%2e%2e/%2e%2e/index.html",
                     "vendor/left-pad/index.js", "app/", "app/nothing.js"):
            async with browser.get(site.url + path) as response:
                assert response.status == 404, path


async def test_a_foreign_host_header_is_refused(tmp_path: Path) -> None:
    """DNS rebinding: evil.example resolving to 127.0.0.1 must not reach the site."""
    async with dashboard_site(tmp_path) as site, logged_in(site) as browser:
        port = site.url.rsplit(":", 1)[1].rstrip("/")
        async with browser.get(site.url + "api/v1/namespaces",
                               headers={"Host": f"evil.example:{port}"}) as response:
            assert response.status == 421


async def test_writes_need_our_own_origin(tmp_path: Path) -> None:
    async with dashboard_site(tmp_path) as site, logged_in(site) as browser:
        url = site.url + "api/v1/namespaces/default/pods"
        for headers in ({}, {"Origin": "http://evil.example"}, {"Origin": "null"},
                        {"Origin": site.origin.replace("127.0.0.1", "127.0.0.2")}):
            async with browser.post(url, json=pod("nope"), headers=headers) as response:
                assert response.status == 403, headers
                assert (await response.json())["reason"] == "Forbidden"
        async with browser.get(url) as response:
            assert (await response.json())["items"] == []  # nothing was created
        async with browser.post(url, json=pod("yes"),
                                headers={"Origin": site.origin}) as response:
            assert response.status == 201
            assert (await response.json())["metadata"]["name"] == "yes"


async def test_api_errors_tables_and_content_types_pass_through(tmp_path: Path) -> None:
    async with dashboard_site(tmp_path) as site, logged_in(site) as browser:
        url = site.url + "api/v1/namespaces/default/pods"
        bad = pod("Bad_Name")
        async with browser.post(url, json=bad, headers={"Origin": site.origin}) as response:
            assert response.status == 422
            status = await response.json()
            assert status["reason"] == "Invalid"
            assert status["details"]["causes"][0]["field"] == "metadata.name"
        async with browser.get(url, headers={
                "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}) as response:
            table = await response.json()
            assert table["kind"] == "Table"
            assert [c["name"] for c in table["columnDefinitions"]][:2] == ["Name", "Ready"]
        # A merge patch keeps its content type on the way through.
        async with browser.post(url, json=pod("p"), headers={"Origin": site.origin}):
            pass
        async with browser.patch(url + "/p", data=json.dumps(
                {"metadata": {"labels": {"tier": "web"}}}),
                headers={"Origin": site.origin,
                         "Content-Type": "application/merge-patch+json"}) as response:
            assert response.status == 200
            assert (await response.json())["metadata"]["labels"]["tier"] == "web"


async def test_a_watch_streams_each_event_as_it_happens(tmp_path: Path) -> None:
    async with dashboard_site(tmp_path) as site, logged_in(site) as browser:
        url = site.url + "api/v1/namespaces/default/pods"
        async with browser.get(url) as response:
            rv = (await response.json())["metadata"]["resourceVersion"]
        async with browser.get(url, params={"watch": "1", "resourceVersion": rv}) as watch:
            assert watch.status == 200
            for name in ("w1", "w2"):
                async with browser.post(url, json=pod(name), headers={"Origin": site.origin}):
                    pass
                # Each event arrives while the watch is still open: nothing is buffered.
                with anyio.fail_after(5):
                    line = await watch.content.readline()
                event = json.loads(line)
                assert event["type"] == "ADDED"
                assert event["object"]["metadata"]["name"] == name


async def test_a_shell_websocket_goes_through_with_its_subprotocol(tmp_path: Path) -> None:
    async with dashboard_site(tmp_path) as site, logged_in(site) as browser:
        async with browser.post(site.url + "api/v1/namespaces/default/pods",
                                json=pod("a"), headers={"Origin": site.origin}):
            pass
        # exec needs a Running pod: no kubelet here, so the status is written directly.
        async with browser.patch(site.url + "api/v1/namespaces/default/pods/a/status",
                                 data=json.dumps({"status": {"phase": "Running"}}),
                                 headers={"Origin": site.origin, "Content-Type":
                                          "application/merge-patch+json"}) as response:
            assert response.status == 200
        exec_url = (site.url + "api/v1/namespaces/default/pods/a/exec?command=sh&command=-c"
                    "&command=read+x%3B+echo+got+%24x&stdin=true&stdout=true&tty=false")
        # Without our Origin (another site's page opening a socket): refused.
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await browser.ws_connect(exec_url, protocols=("v4.channel.k8s.io",),
                                     headers={"Origin": "http://evil.example"})
        assert refused.value.status == 403
        ws = await browser.ws_connect(exec_url, protocols=("v5.channel.k8s.io",
                                                           "v4.channel.k8s.io"),
                                      headers={"Origin": site.origin})
        assert ws.protocol == "v5.channel.k8s.io"  # the API server's choice, relayed
        await ws.send_bytes(b"\x00hello\n")
        out: dict[int, bytes] = {}
        with anyio.fail_after(10):
            async for message in ws:
                if message.type is aiohttp.WSMsgType.BINARY and message.data:
                    out[message.data[0]] = out.get(message.data[0], b"") + message.data[1:]
        assert out[1] == b"got hello\n"
        assert json.loads(out[3])["status"] == "Success"
        assert ws.close_code == 1000


async def test_the_dashboard_address_file_lives_as_long_as_the_site(tmp_path: Path) -> None:
    async with dashboard_site(tmp_path) as site:
        assert site.settings.dashboard_file.read_text().strip() == site.url
    assert not site.settings.dashboard_file.exists()


async def test_the_cli_prints_a_link_that_logs_in_once(tmp_path: Path) -> None:
    async with dashboard_site(tmp_path) as site:
        # The CLI finds the dashboard through the state dir and mints from the kubeconfig.
        run = run_cli("--state-dir", str(tmp_path), "dashboard", "--no-browser")
        assert run.code == 0, run.err
        link = re.search(r"(http://127\.0\.0\.1:\d+/\?token=\S+)", run.out)
        assert link is not None and link.group(1).startswith(site.url)
        async with aiohttp.ClientSession() as browser:
            async with browser.get(link.group(1), allow_redirects=False) as response:
                assert response.status == 303
            async with browser.get(link.group(1), allow_redirects=False) as response:
                assert response.status == 401


def test_the_cli_says_when_no_dashboard_runs(tmp_path: Path) -> None:
    run = run_cli("--state-dir", str(tmp_path), "dashboard", "--no-browser")
    assert run.code != 0
    assert "no dashboard is running" in run.err and "miniorch up" in run.err
    # A dead cluster's leftover address file is not taken for a running dashboard.
    (tmp_path / "dashboard.url").write_text("http://127.0.0.1:9/\n")
    run = run_cli("--state-dir", str(tmp_path), "dashboard", "--no-browser")
    assert run.code != 0 and "no dashboard is running" in run.err
