"""The dashboard's workload actions in a real browser, checked with the real kubectl.

Where `test_dashboard.py` walks a new user through the chapter, this module drives what
a person does with workloads once there: a Deployment's relations, "Rollout restart"
and "Rollout undo" (kubectl must see what `kubectl rollout restart/undo` would have
made), deleting with each Cascade policy (Foreground takes the ReplicaSets and pods
first, Orphan leaves the pods without owners), logs of a two-container pod (container
choice, Follow, Previous), the keyboard (Tab/Enter to a list, a dialog that takes focus
and gives it back on Escape), the relations of nodes and pods, and a page whose
scripts failed to load once.

Every object a test makes is deleted in its `finally`, so a failure leaves nothing for
the next test (nor for `test_dashboard.py`, which counts the demo's three kubia pods).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect

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

REVISION = "deployment.kubernetes.io/revision"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def kubectl_json(cluster: RunningCluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def gone(cluster: RunningCluster, *args: str) -> bool:
    return cluster.kubectl("get", *args, check=False).returncode != 0


def live_items(cluster: RunningCluster, *args: str) -> list[dict[str, Any]]:
    """`kubectl get ARGS -o json`'s items without those already being deleted."""
    items: list[dict[str, Any]] = kubectl_json(cluster, *args)["items"]
    return [o for o in items if not o["metadata"].get("deletionTimestamp")]


def delete(cluster: RunningCluster, *args: str) -> None:
    """Clean up (waiting until the objects are gone, so the next test starts clean)."""
    cluster.kubectl("delete", *args, "--ignore-not-found", "--timeout=120s", timeout=150)


def names(items: list[dict[str, Any]]) -> set[str]:
    return {o["metadata"]["name"] for o in items}


def rollout_status(cluster: RunningCluster, deployment: str) -> None:
    out = cluster.kubectl("rollout", "status", f"deployment/{deployment}", "--timeout=180s",
                          timeout=200).stdout
    assert out.strip().splitlines()[-1] == f'deployment "{deployment}" successfully rolled out'


def section(page: Page, title: str) -> Locator:
    """The <section> of a detail page whose own heading is `title`."""
    return page.locator(f"xpath=//section[h2[normalize-space()='{title}']]")


def delete_from_page(page: Page, cascade: str) -> None:
    page.get_by_role("button", name="Delete", exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Cascade").select_option(cascade)
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(dialog).to_have_count(0, timeout=LIVE)


# ---- Deployments -----------------------------------------------------------------------------

def web_replica_sets(cluster: RunningCluster) -> list[dict[str, Any]]:
    return live_items(cluster, "rs", "-l", "app=web")


def revisions(cluster: RunningCluster) -> dict[int, dict[str, Any]]:
    """The Deployment's ReplicaSets by revision."""
    return {int(rs["metadata"]["annotations"][REVISION]): rs for rs in web_replica_sets(cluster)}


HOLD = "miniorch.test/hold"
"""A finalizer of the test's own, holding a pod in Terminating until the test releases it."""


def release(cluster: RunningCluster, pod: str) -> None:
    cluster.kubectl("patch", "pod", pod, "--type=merge", "-p",
                    json.dumps({"metadata": {"finalizers": None}}), check=False)


def test_deployment_relations_rollout_restart_undo_and_foreground_delete(
        page: Page, cluster: RunningCluster) -> None:
    cluster.kubectl("create", "deployment", "web", "--image=kubia", "--replicas=1")
    try:
        rollout_status(cluster, "web")
        go(page, "/r/apps/v1/deployments/default/web")
        expect(page.get_by_role("heading", name="Deployment web")).to_be_visible(timeout=LIVE)
        # Relations: its ReplicaSet and its pod, each a link to its own page.
        (rs,) = web_replica_sets(cluster)
        (pod,) = live_items(cluster, "pods", "-l", "app=web")
        replica_sets = section(page, "ReplicaSets")
        expect(replica_sets.get_by_role("link", name=rs["metadata"]["name"], exact=True)
               ).to_have_attribute("href", f"#/r/apps/v1/replicasets/default/"
                                   f"{rs['metadata']['name']}", timeout=LIVE)
        expect(section(page, "Pods").get_by_role("link", name=pod["metadata"]["name"],
                                                 exact=True)).to_be_visible(timeout=LIVE)
        shoot(page, "deployment")

        # Rollout restart: a restartedAt annotation on the template, so a new revision.
        page.get_by_role("button", name="Rollout restart", exact=True).click()
        expect(page.get_by_text("Rollout restart: done.")).to_be_visible(timeout=LIVE)
        template = kubectl_json(cluster, "deployment", "web")["spec"]["template"]
        restarted_at = template["metadata"]["annotations"][RESTARTED_AT]
        wait_for(lambda: 2 in revisions(cluster), what="the ReplicaSet of revision 2")
        rollout_status(cluster, "web")
        assert revisions(cluster)[2]["spec"]["template"]["metadata"]["annotations"][
            RESTARTED_AT] == restarted_at

        # A third template (kubectl's), then "Rollout undo" goes back to the second.
        cluster.kubectl("set", "env", "deployment/web", "COLOR=blue")
        wait_for(lambda: 3 in revisions(cluster), what="the ReplicaSet of revision 3")
        rollout_status(cluster, "web")
        expect(section(page, "ReplicaSets").locator("tbody tr")).to_have_count(3, timeout=LIVE)
        page.get_by_role("button", name="Rollout undo", exact=True).click()
        expect(page.get_by_text("Rollout undo: done.")).to_be_visible(timeout=LIVE)

        def undone() -> bool:
            spec = kubectl_json(cluster, "deployment", "web")["spec"]["template"]
            return ("env" not in spec["spec"]["containers"][0]
                    and spec["metadata"].get("annotations", {}).get(RESTARTED_AT)
                    == restarted_at)
        wait_for(undone, what="the template of revision 2 back on the Deployment")
        # As after `kubectl rollout undo`: revision 2's ReplicaSet becomes revision 4 and
        # carries the pods; no fourth ReplicaSet is made.
        wait_for(lambda: set(revisions(cluster)) == {1, 3, 4}, what="revisions 1, 3, 4")
        rollout_status(cluster, "web")
        current = revisions(cluster)[4]
        assert "env" not in current["spec"]["template"]["spec"]["containers"][0]
        deployment = kubectl_json(cluster, "deployment", "web")
        assert deployment["metadata"]["annotations"][REVISION] == "4"
        for p in live_items(cluster, "pods", "-l", "app=web"):
            assert "env" not in p["spec"]["containers"][0], p["metadata"]["name"]

        # Foreground: the Deployment waits for its ReplicaSets, which wait for their pods.
        # A finalizer holds the pod, so the wait can be seen (a Background delete would
        # take the Deployment at once and leave the pod to the garbage collector).
        (held,) = live_items(cluster, "pods", "-l", "app=web")
        held_name = held["metadata"]["name"]
        cluster.kubectl("patch", "pod", held_name, "--type=merge",
                        "-p", json.dumps({"metadata": {"finalizers": [HOLD]}}))
        delete_from_page(page, "Foreground")
        wait_for(lambda: kubectl_json(cluster, "pod", held_name)["metadata"].get(
                     "deletionTimestamp"), timeout=60, what="the held pod to be deleted")
        waiting = kubectl_json(cluster, "deployment", "web")["metadata"]
        assert waiting.get("deletionTimestamp"), waiting
        assert "foregroundDeletion" in waiting.get("finalizers", []), waiting
        release(cluster, held_name)
        wait_for(lambda: gone(cluster, "deployment", "web"), timeout=90,
                 what="the Deployment to be gone")
        assert kubectl_json(cluster, "rs", "-l", "app=web")["items"] == []
        assert kubectl_json(cluster, "pods", "-l", "app=web")["items"] == []
    finally:
        for p in kubectl_json(cluster, "pods", "-l", "app=web")["items"]:
            release(cluster, p["metadata"]["name"])
        delete(cluster, "deployment", "web")
        delete(cluster, "rs,pods", "-l", "app=web")


def test_a_paused_deployment_refuses_restart_and_undo_as_kubectl_does(
        page: Page, cluster: RunningCluster) -> None:
    cluster.kubectl("create", "deployment", "still", "--image=kubia", "--replicas=1")
    try:
        rollout_status(cluster, "still")
        cluster.kubectl("set", "env", "deployment/still", "STAGE=two")  # something to undo
        rollout_status(cluster, "still")
        cluster.kubectl("rollout", "pause", "deployment/still")
        # The oracle: the real kubectl refuses both while the Deployment is paused.
        for verb in ("restart", "undo"):
            refused = cluster.kubectl("rollout", verb, "deployment/still", check=False)
            assert refused.returncode != 0 and "paused" in refused.stderr, refused
        before = kubectl_json(cluster, "deployment", "still")["spec"]["template"]

        go(page, "/r/apps/v1/deployments/default/still")
        expect(page.get_by_text("paused: true")).to_be_visible(timeout=LIVE)
        for button in ("Rollout restart", "Rollout undo"):
            page.get_by_role("button", name=button, exact=True).click()
            expect(page.get_by_role("alert")).to_contain_text("paused", timeout=LIVE)
            assert page.get_by_text(f"{button}: done.").count() == 0
        assert kubectl_json(cluster, "deployment", "still")["spec"]["template"] == before
    finally:
        delete(cluster, "deployment", "still")
        delete(cluster, "rs,pods", "-l", "app=still")


# ---- Cascade Orphan --------------------------------------------------------------------------

ORPHAN_RC = {
    "apiVersion": "v1", "kind": "ReplicationController",
    "metadata": {"name": "orphan-maker"},
    "spec": {"replicas": 1, "selector": {"app": "orphan-maker"},
             "template": {"metadata": {"labels": {"app": "orphan-maker"}},
                          "spec": {"containers": [{"name": "kubia", "image": "kubia"}]}}},
}


def test_delete_with_cascade_orphan_keeps_the_pod(page: Page, cluster: RunningCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(ORPHAN_RC))
    try:
        pod: dict[str, Any] = wait_for(
            lambda: next(iter(p for p in live_items(cluster, "pods", "-l", "app=orphan-maker")
                              if p.get("status", {}).get("phase") == "Running"), None),
            timeout=90, what="the RC's pod running")
        name = pod["metadata"]["name"]
        assert pod["metadata"]["ownerReferences"][0]["name"] == "orphan-maker"
        go(page, "/r/core/v1/replicationcontrollers/default/orphan-maker")
        expect(section(page, "Pods").get_by_role("link", name=name, exact=True)).to_be_visible(
            timeout=LIVE)
        delete_from_page(page, "Orphan")
        wait_for(lambda: gone(cluster, "rc", "orphan-maker"), timeout=60,
                 what="the RC to be gone")

        def orphaned() -> dict[str, Any] | None:
            pods = kubectl_json(cluster, "pods", "-l", "app=orphan-maker")["items"]
            assert len(pods) == 1, f"the orphan-maker pods are {names(pods)}"
            return pods[0] if not pods[0]["metadata"].get("ownerReferences") else None
        kept = wait_for(orphaned, what="the pod without its owner reference")
        assert kept["metadata"]["uid"] == pod["metadata"]["uid"]
        assert not kept["metadata"].get("deletionTimestamp")
    finally:
        delete(cluster, "rc", "orphan-maker")
        delete(cluster, "pods", "-l", "app=orphan-maker")


# ---- logs --------------------------------------------------------------------------------------

LOOP = "i=0; while true; do echo {p}-$i; i=$((i+1)); sleep 0.5; done"
MARKUP = '<img src=x onerror="document.title=1"><b>bold</b>'
TWO_CONTAINERS = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "two-logs", "labels": {"app": "two-logs"}},
    "spec": {
        "restartPolicy": "Always",
        "volumes": [{"name": "state", "emptyDir": {}}],
        "containers": [
            # Its first line is markup: the page must show it as text.
            {"name": "alpha", "image": "busybox",
             "command": ["sh", "-c", f"echo '{MARKUP}'; " + LOOP.format(p="a")]},
            # Its first life prints "first-life" and exits; the emptyDir outlives it, so
            # the second life knows it is one and prints b-0, b-1, … for ever.
            {"name": "beta", "image": "busybox",
             "volumeMounts": [{"name": "state", "mountPath": "/state"}],
             "command": ["sh", "-c", "if [ -e /state/lived ]; then " + LOOP.format(p="b")
                         + "; fi; touch /state/lived; echo first-life; sleep 1; exit 1"]},
        ],
    },
}


def log_lines(log: Locator) -> list[str]:
    return [line for line in (log.text_content() or "").splitlines() if line]


def counters(lines: list[str], prefix: str) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := re.fullmatch(f"{prefix}-(\\d+)", line))]


def test_logs_of_two_containers_follow_and_previous(page: Page,
                                                   cluster: RunningCluster) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(TWO_CONTAINERS))
    try:
        def beta_restarted() -> bool:
            pod = kubectl_json(cluster, "pod", "two-logs")
            statuses = {s["name"]: s for s in pod.get("status", {}).get("containerStatuses", [])}
            beta = statuses.get("beta", {})
            return beta.get("restartCount", 0) >= 1 and "running" in beta.get("state", {})
        wait_for(beta_restarted, timeout=120, what="beta to run its second life")

        go(page, "/r/core/v1/pods/default/two-logs")
        page.get_by_role("button", name="Logs", exact=True).click()
        log = page.get_by_role("log")
        container = page.get_by_label("Container")
        expect(container).to_have_value("alpha", timeout=LIVE)
        expect(log).to_contain_text("a-", timeout=LIVE)
        lines = log_lines(log)
        assert counters(lines, "a") and not counters(lines, "b"), lines
        assert MARKUP in lines and log.locator("img, b").count() == 0, lines
        assert page.title() != "1"

        # Follow (on by default): lines written after the page opened arrive.
        last = max(counters(lines, "a"))
        wait_for(lambda: max(counters(log_lines(log), "a")) >= last + 3, timeout=30,
                 what=f"a-{last + 3} to arrive while following")
        shoot(page, "logs-two-containers")

        # The other container's stream, and only it.
        container.select_option("beta")
        expect(log).to_contain_text("b-", timeout=LIVE)
        lines = log_lines(log)
        assert counters(lines, "b") and not counters(lines, "a"), lines
        assert "first-life" not in lines, "the current log shows the previous life"

        # Previous: the container's first life.
        page.get_by_label("Previous").check()
        expect(log).to_have_text(re.compile(r"^\s*first-life\s*$"), timeout=LIVE)

        page.get_by_label("Previous").uncheck()
        container.select_option("alpha")
        expect(log).to_contain_text("a-", timeout=LIVE)
        assert not counters(log_lines(log), "b")
    finally:
        delete(cluster, "pod", "two-logs")


# ---- keyboard --------------------------------------------------------------------------------

def tab_to(page: Page, target: Locator, *, limit: int = 60) -> None:
    """Press Tab until `target` has the focus (a person's way through the page)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"{limit} presses of Tab never reached {target}")


def test_keyboard_reaches_a_list_and_a_dialog_gives_focus_back(
        page: Page, cluster: RunningCluster) -> None:
    go(page, "/")
    page.reload()  # start from the top of a fresh page, with nothing focused
    expect(page.get_by_role("status")).to_have_text(re.compile("Live"), timeout=LIVE)
    pods_link = page.get_by_role("navigation").get_by_role("link", name="Pods", exact=True)
    tab_to(page, pods_link)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#/r/core/v1/pods$"), timeout=LIVE)
    expect(page.get_by_role("row", name=re.compile(r"^kubia-")).first).to_be_visible(
        timeout=LIVE)

    victim = live_items(cluster, "pods", "-l", "run=kubia")[0]["metadata"]
    go(page, f"/r/core/v1/pods/default/{victim['name']}")
    delete = page.get_by_role("button", name="Delete", exact=True)
    expect(delete).to_be_visible(timeout=LIVE)
    tab_to(page, delete)
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible(timeout=LIVE)
    assert dialog.evaluate("d => d.contains(document.activeElement)"), \
        "the dialog opened without taking the focus"
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0, timeout=LIVE)
    expect(delete).to_be_focused()
    pod = kubectl_json(cluster, "pod", victim["name"])
    assert pod["metadata"]["uid"] == victim["uid"]
    assert not pod["metadata"].get("deletionTimestamp"), "Escape deleted the pod"


# ---- nodes and pods --------------------------------------------------------------------------

def test_a_node_lists_its_pods_and_a_pod_links_its_node_and_owner(
        page: Page, cluster: RunningCluster) -> None:
    nodes = sorted(names(kubectl_json(cluster, "nodes")["items"]))
    assert "node-1" in nodes
    for node in nodes:
        # (All of them, terminating ones too: the page lists those as well.)
        on_node = names(kubectl_json(cluster, "pods", "--all-namespaces",
                                     f"--field-selector=spec.nodeName={node}")["items"])
        go(page, f"/r/core/v1/nodes/_/{node}")
        pods = section(page, "Pods on this node")
        expect(pods.get_by_role("heading", name="Pods on this node")).to_be_visible(
            timeout=LIVE)
        if on_node:
            for name in on_node:
                expect(pods.get_by_role("row", name=name, exact=True)).to_be_visible(
                    timeout=LIVE)
            expect(pods.locator("tbody tr")).to_have_count(len(on_node), timeout=LIVE)
        else:
            expect(pods.get_by_text("None.")).to_be_visible(timeout=LIVE)

    pod = live_items(cluster, "pods", "-l", "run=kubia")[0]
    name, node = pod["metadata"]["name"], pod["spec"]["nodeName"]
    go(page, f"/r/core/v1/pods/default/{name}")
    page.get_by_role("main").get_by_role("link", name=node, exact=True).click()
    expect(page.get_by_role("heading", name=f"Node {node}")).to_be_visible(timeout=LIVE)
    expect(section(page, "Pods on this node").get_by_role("link", name=name, exact=True)
           ).to_be_visible(timeout=LIVE)
    go(page, f"/r/core/v1/pods/default/{name}")
    page.get_by_role("link", name="ReplicationController/kubia", exact=True).click()
    expect(page.get_by_role("heading", name="ReplicationController kubia")).to_be_visible(
        timeout=LIVE)
    nav(page, "Pods")
    expect(page.get_by_role("row", name=name, exact=True)).to_be_visible(timeout=LIVE)


# ---- boot -------------------------------------------------------------------------------------

def test_a_script_that_failed_to_load_is_retried_by_a_reload(browser: Browser,
                                                            cluster: RunningCluster) -> None:
    # Chromium aborts requests in flight (ERR_NETWORK_CHANGED) when a link comes or goes,
    # as the cluster's pod veths do: a module lost that way must not leave the page on
    # "Loading miniorch…". Here one module's first fetch fails, later ones get through.
    context = browser.new_context()
    try:
        failed: list[str] = []

        def once(route: Route) -> None:
            if failed:
                route.continue_()
            else:
                failed.append(route.request.url)
                route.abort("internetdisconnected")
        context.route("**/app/components/table.js", once)
        fresh = context.new_page()
        fresh.goto(login_link(cluster))
        expect(fresh.get_by_role("status")).to_have_text(re.compile("Live"), timeout=LIVE)
        expect(fresh.get_by_text("node-1", exact=True).first).to_be_visible(timeout=LIVE)
        assert failed, "the module's fetch was never aborted"

        # A module that never loads: a few reloads, then the page says so.
        context.unroute("**/app/components/table.js")
        context.route("**/app/components/table.js", lambda r: r.abort("internetdisconnected"))
        fresh.reload()
        expect(fresh.get_by_role("alert")).to_contain_text("could not be loaded",
                                                           timeout=LIVE)
    finally:
        context.close()
