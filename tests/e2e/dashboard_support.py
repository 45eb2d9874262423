"""What the dashboard's browser tests share: the browser, a logged-in page, helpers.

Each test module that imports the `browser` and `page` fixtures (`browser_fixture`,
`page_fixture`) gets its own, module-scoped: one headless Chromium (Debian's, driven by
Playwright) and one browser context at 1280x800 logged in through a fresh
`miniorch dashboard` link. The page
collects every console error, page error and dialog while the module runs and fails
the module's last test if there was one (no script error, no CSP violation, no alert()
from injected markup). Controls are found by their accessible names.

Screenshots go under `test-artifacts/dashboard/` (the README's picture comes from there).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.conftest import ROOT, RunningCluster

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
LIVE = 15_000
"""ms a page may take to show a change (the dashboard's goal is well under a second; the
margin is for a loaded CI machine, not a target)."""


def login_link(cluster: RunningCluster) -> str:
    out = cluster.cli("dashboard", "--no-browser").stdout
    match = re.search(r"(http://127\.0\.0\.1:\d+/\?token=\S+)", out)
    assert match, out
    return match.group(1)


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


# The fixtures' functions are named *_fixture (the fixture names are `browser` and
# `page`) so a test module can import them without its test parameters of the same name
# shadowing the import.
@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make install` installs it")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module", name="page")
def page_fixture(browser: Browser, cluster: RunningCluster) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("dialog", lambda d: problems.append(f"unexpected dialog: {d.message}"))
    page.goto(login_link(cluster))
    try:
        yield page
    finally:
        context.close()
    # No script error, no CSP violation, no alert() from injected markup, all along.
    # (Chromium logs every 4xx answer as "Failed to load resource": the 422 and 409 the
    # tests provoke on purpose are such answers, not errors of the page.)
    assert not [p for p in problems if "Failed to load resource" not in p], problems


def go(page: Page, route: str) -> None:
    page.goto(page.url.split("#")[0] + "#" + route)


def nav(page: Page, name: str) -> None:
    page.get_by_role("navigation").get_by_role("link", name=name, exact=True).first.click()
