"""The dashboard in a real browser, as a new user meets it (issue 8's walk-through).

`miniorch dashboard` prints a login link; headless Chromium (Debian's, driven by
Playwright) follows it and then does what the chapter's dashboard does — while real
`kubectl` changes the same cluster underneath, so "live" means a change made elsewhere
shows up with no reload. Controls are found by their accessible names (the names a
screen reader announces), which is also how a person finds them.

Screenshots of each main page are saved under `test-artifacts/dashboard/` (the README's
picture comes from there). The browser, the logged-in page and the helpers are in
`dashboard_support.py`, shared with `test_dashboard_workloads.py`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import RunningCluster, wait_for
from tests.e2e.dashboard_support import (
    LIVE,
    browser_fixture,  # noqa: F401 (the `browser` fixture)
    go,
    login_link,
    nav,
    page_fixture,  # noqa: F401 (the `page` fixture)
    shoot,
)

pytestmark = pytest.mark.e2e


def kubia_pods(cluster: RunningCluster) -> list[dict[str, Any]]:
    pods = cluster.get_json("pods", "-l", "run=kubia")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


# ---- access --------------------------------------------------------------------------------

def test_the_login_link_opens_the_overview_and_leaves_the_url(page: Page,
                                                              cluster: RunningCluster) -> None:
    assert page.url.startswith(f"http://127.0.0.1:{cluster.dashboard_port}/")
    assert "token" not in page.url
    for node in ("node-1", "node-2", "node-3"):
        expect(page.get_by_text(node, exact=True).first).to_be_visible(timeout=LIVE)
    expect(page.get_by_role("status")).to_have_text(re.compile("Live"), timeout=LIVE)
    shoot(page, "overview")


def test_without_the_session_nothing_answers(browser: Browser, cluster: RunningCluster) -> None:
    context = browser.new_context()
    try:
        stranger = context.new_page()
        response = stranger.goto(f"http://127.0.0.1:{cluster.dashboard_port}/")
        assert response is not None and response.status == 401
        api = context.request.get(f"http://127.0.0.1:{cluster.dashboard_port}/api/v1/pods")
        assert api.status == 401
        # A used link does not log a second browser in.
        link = login_link(cluster)
        assert context.request.get(link, max_redirects=0).status == 303
        assert browser.new_context().request.get(link, max_redirects=0).status == 401
    finally:
        context.close()


# ---- lists, live -------------------------------------------------------------------------

def test_pods_are_listed_with_their_status_and_follow_kubectl(page: Page,
                                                              cluster: RunningCluster) -> None:
    nav(page, "Pods")
    names = [p["metadata"]["name"] for p in kubia_pods(cluster)]
    assert len(names) == 3
    for name in names:
        row = page.get_by_role("row", name=name)
        expect(row).to_be_visible(timeout=LIVE)
        expect(row).to_contain_text("Running")
    shoot(page, "pods")
    cluster.kubectl("scale", "rc", "kubia", "--replicas=5")
    expect(page.get_by_role("row", name=re.compile(r"^kubia-"))).to_have_count(5, timeout=LIVE)


def test_scale_from_the_page_is_seen_by_kubectl(page: Page, cluster: RunningCluster) -> None:
    go(page, "/r/core/v1/replicationcontrollers/default/kubia")
    page.get_by_role("button", name="Scale", exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Replicas").fill("3")
    dialog.get_by_role("button", name="Scale", exact=True).click()
    wait_for(lambda: cluster.get_json("rc", "kubia")["spec"]["replicas"] == 3,
             what="kubectl to see 3 replicas")
    wait_for(lambda: len(kubia_pods(cluster)) == 3, timeout=60, what="3 kubia pods")
    shoot(page, "replicationcontroller")


def test_a_pod_deleted_from_the_page_is_replaced(page: Page, cluster: RunningCluster) -> None:
    wait_for(lambda: len(kubia_pods(cluster)) == 3, timeout=60, what="3 kubia pods")
    victim = kubia_pods(cluster)[0]["metadata"]["name"]
    go(page, f"/r/core/v1/pods/default/{victim}")
    page.get_by_role("button", name="Delete", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(victim)
    dialog.get_by_role("button", name="Delete", exact=True).click()
    wait_for(lambda: victim not in {p["metadata"]["name"] for p in
                                    cluster.get_json("pods")["items"]},
             timeout=60, what=f"{victim} to be gone")
    nav(page, "Pods")
    expect(page.get_by_role("row", name=victim)).to_have_count(0, timeout=LIVE)
    wait_for(lambda: len(kubia_pods(cluster)) == 3, timeout=60, what="a replacement pod")
    for pod in kubia_pods(cluster):
        expect(page.get_by_role("row", name=pod["metadata"]["name"])).to_be_visible(timeout=LIVE)


# ---- create and edit -------------------------------------------------------------------------

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: kubia-dash
spec:
  selector:
    run: kubia
  ports:
  - port: {port}
    targetPort: 8080
"""


def test_create_a_service_from_yaml_after_fixing_what_the_page_showed(
        page: Page, cluster: RunningCluster) -> None:
    page.get_by_role("button", name="Create", exact=True).first.click()
    yaml_box = page.get_by_label("YAML")
    yaml_box.fill(SERVICE.format(port=99999))
    page.get_by_role("main").get_by_role("button", name="Create", exact=True).click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("spec.ports[0].port", timeout=LIVE)
    shoot(page, "create-invalid")
    assert cluster.kubectl("get", "svc", "kubia-dash", check=False).returncode != 0
    yaml_box.fill(SERVICE.format(port=8081))
    page.get_by_role("main").get_by_role("button", name="Create", exact=True).click()
    wait_for(lambda: cluster.kubectl("get", "svc", "kubia-dash", check=False).returncode == 0,
             what="the Service to exist")
    expect(page.get_by_role("heading", name=re.compile("kubia-dash"))).to_be_visible(timeout=LIVE)
    # Its relations: the endpoints and pods behind it.
    for pod in kubia_pods(cluster):
        expect(page.get_by_role("link", name=pod["metadata"]["name"]).first).to_be_visible(
            timeout=LIVE)
    shoot(page, "service")


def _edit_labels(page: Page, add: str) -> None:
    page.get_by_role("button", name="Edit", exact=True).click()
    yaml_box = page.get_by_label("YAML")
    expect(yaml_box).to_have_value(re.compile("kubia-dash"), timeout=LIVE)
    text = yaml_box.input_value()
    # Insert the label under metadata (the object has no labels yet, or has some).
    if "\n  labels:\n" in text:
        text = text.replace("\n  labels:\n", f"\n  labels:\n    {add}\n", 1)
    else:
        text = text.replace("\nmetadata:\n", f"\nmetadata:\n  labels:\n    {add}\n", 1)
    yaml_box.fill(text)


def test_edit_a_label_and_a_stale_edit_shows_the_conflict(page: Page,
                                                         cluster: RunningCluster) -> None:
    go(page, "/r/core/v1/services/default/kubia-dash")
    _edit_labels(page, "tier: web")
    page.get_by_role("button", name="Save", exact=True).click()
    wait_for(lambda: cluster.get_json("svc", "kubia-dash")["metadata"].get("labels", {})
             .get("tier") == "web", what="kubectl to see the label")
    # Someone else changes the object while the page's edit is open: no overwrite.
    go(page, "/r/core/v1/services/default/kubia-dash")
    expect(page.get_by_text("tier=web").or_(page.get_by_text("tier: web")).first).to_be_visible(
        timeout=LIVE)
    _edit_labels(page, "stale: edit")
    cluster.kubectl("label", "svc", "kubia-dash", "changed=elsewhere")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Conflict", timeout=LIVE)
    labels = cluster.get_json("svc", "kubia-dash")["metadata"]["labels"]
    assert labels.get("changed") == "elsewhere" and "stale" not in labels
    shoot(page, "edit-conflict")
    cluster.kubectl("delete", "svc", "kubia-dash")


# ---- logs and shell ------------------------------------------------------------------------

def test_logs_and_a_shell_in_the_page(page: Page, cluster: RunningCluster) -> None:
    pod = kubia_pods(cluster)[0]["metadata"]["name"]
    go(page, f"/r/core/v1/pods/default/{pod}")
    page.get_by_role("button", name="Logs", exact=True).click()
    log = page.get_by_role("log")
    expect(log).to_contain_text("Kubia server starting", timeout=LIVE)
    shoot(page, "logs")
    go(page, f"/r/core/v1/pods/default/{pod}")
    page.get_by_role("button", name="Shell", exact=True).click()
    terminal = page.get_by_role("region", name=re.compile("Terminal"))
    expect(terminal).to_be_visible(timeout=LIVE)
    expect(page.get_by_text(re.compile("Connected to"))).to_be_visible(timeout=LIVE)
    terminal.click()
    page.keyboard.type("hostname\n")
    expect(terminal.locator(".xterm-rows")).to_contain_text(pod, timeout=LIVE)
    page.keyboard.type("exit\n")
    shoot(page, "shell")


# ---- safe and for people ---------------------------------------------------------------------

def test_markup_from_the_cluster_is_shown_as_text(page: Page, cluster: RunningCluster) -> None:
    payload = ('<img src=x onerror="document.title=\'pwned\'">'
               '<script>document.title="pwned"</script>')
    cluster.kubectl("annotate", "rc", "kubia", f"note={payload}", "--overwrite")
    try:
        go(page, "/r/core/v1/replicationcontrollers/default/kubia")
        expect(page.get_by_text(payload, exact=False).first).to_be_visible(timeout=LIVE)
        assert page.title() != "pwned"
        assert page.locator("main img").count() == 0
    finally:
        cluster.kubectl("annotate", "rc", "kubia", "note-")


def test_readable_on_a_narrow_window(browser: Browser, page: Page) -> None:
    page.set_viewport_size({"width": 400, "height": 800})
    try:
        nav_button = page.get_by_role("button", name=re.compile("Menu", re.I))
        if nav_button.count():
            nav_button.first.click()
        nav(page, "Pods")
        expect(page.get_by_role("row", name=re.compile(r"^kubia-")).first).to_be_visible(
            timeout=LIVE)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400 + 1, f"the page scrolls sideways at 400 px ({width} px wide)"
        shoot(page, "pods-narrow")
    finally:
        page.set_viewport_size({"width": 1280, "height": 800})


def test_custom_resources_appear_with_no_dashboard_code(page: Page,
                                                        cluster: RunningCluster) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "teapots.kitchen.example.com"},
        "spec": {"group": "kitchen.example.com", "scope": "Namespaced",
                 "names": {"plural": "teapots", "singular": "teapot", "kind": "Teapot"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {
                                   "type": "object", "x-kubernetes-preserve-unknown-fields":
                                   True}}}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(crd))
    try:
        wait_for(lambda: cluster.kubectl("get", "teapots", check=False).returncode == 0,
                 what="the CRD to be served")
        cluster.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "kitchen.example.com/v1", "kind": "Teapot",
            "metadata": {"name": "earl-grey"}, "spec": {"size": "small"}}))
        page.reload()
        nav(page, "Teapots")
        expect(page.get_by_role("row", name="earl-grey")).to_be_visible(timeout=LIVE)
    finally:
        cluster.kubectl("delete", "crd", "teapots.kitchen.example.com", check=False)
