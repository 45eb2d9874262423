"""metrics.k8s.io and /metrics through the real app (aiohttp's TestClient); the
kubelets are stand-in sources (the true boundary: what a node read), fed by hand."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from miniorch.api.kinds import NODES, PODS
from miniorch.api.metrics_api import (
    ContainerSample,
    NodeScrape,
    PodSample,
    ResourceMetrics,
    go_duration,
)
from miniorch.api.registry import Registry
from miniorch.api.server import build_app
from miniorch.core.clock import SystemClock
from miniorch.core.settings import Settings
from tests.api.server_support import TOKEN, local_spawner, make_registry, pod

Client = TestClient[Any, Any]
BASE = "/apis/metrics.k8s.io/v1beta1"
T0 = 1_700_000_000.0


class FakeKubelet:
    """A MetricsSource whose next reading the test sets."""

    def __init__(self) -> None:
        self.next: NodeScrape | None = None

    async def scrape(self) -> NodeScrape:
        assert self.next is not None
        return self.next


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Client, Registry, ResourceMetrics,
                                                        FakeKubelet]]:
    registry = make_registry(tmp_path)
    for name in ("node-1", "node-2"):
        registry.create(NODES, {"metadata": {"name": name, "labels": {"tier": name}}})
    a = registry.create(PODS, pod("a", app="web"))
    registry.create(PODS, pod("b", app="db"))
    metrics = ResourceMetrics(clock=SystemClock(), resolution=1.0)
    kubelet = FakeKubelet()
    metrics.add_source(kubelet)
    uid = a["metadata"]["uid"]

    async def scrape(at: float, node_cpu: int, a_cpu: int) -> None:
        kubelet.next = NodeScrape(node="node-1", at=at, cpu_ns=node_cpu,
                                  memory_bytes=512 << 20, pods=(
                                      PodSample("default", "a", uid, (
                                          ContainerSample("kubia", a_cpu, 3 << 20),
                                          ContainerSample("side", 0, 1000))),))
        await metrics.scrape_once()
    metrics_scrape = scrape
    app = build_app(settings=Settings(home=tmp_path, api_port=0), registry=registry,
                    clock=SystemClock(), token=TOKEN, spawn_exec=local_spawner,
                    resource_metrics=metrics)
    async with TestClient(TestServer(app), headers={"Authorization": f"Bearer {TOKEN}"}
                          ) as client:
        client.scrape = metrics_scrape  # type: ignore[attr-defined]
        yield client, registry, metrics, kubelet
    registry.store.close()


async def get(client: Client, path: str, status: int = 200) -> Any:
    r = await client.get(path)
    assert r.status == status, await r.text()
    return json.loads(await r.text())


async def test_discovery_lists_the_group(setup: Any) -> None:
    client, *_ = setup
    groups = await get(client, "/apis")
    assert {"name": "metrics.k8s.io",
            "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
            "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1",
                                 "version": "v1beta1"}} in groups["groups"]
    resources = await get(client, BASE)
    assert [(r["name"], r["kind"], r["namespaced"], r["verbs"])
            for r in resources["resources"]] == [
        ("nodes", "NodeMetrics", False, ["get", "list"]),
        ("pods", "PodMetrics", True, ["get", "list"])]


async def test_usage_is_the_rate_over_the_window(setup: Any) -> None:
    client, *_ = setup
    await client.scrape(T0, 10_000_000_000, 1_000_000_000)
    # One reading is no figure yet (kubectl: "metrics not available yet").
    assert (await get(client, f"{BASE}/nodes"))["items"] == []
    assert (await get(client, f"{BASE}/namespaces/default/pods"))["items"] == []
    await get(client, f"{BASE}/nodes/node-1", 404)
    # 5.5 s later the node used 2.75 CPU-s (0.5 cores), pod a's kubia 0.25 cores.
    await client.scrape(T0 + 5.5, 12_750_000_000, 2_375_000_000)
    node = await get(client, f"{BASE}/nodes/node-1")
    assert node["kind"] == "NodeMetrics" and node["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert node["metadata"]["name"] == "node-1"
    assert node["metadata"]["labels"] == {"tier": "node-1"}
    assert node["timestamp"] == "2023-11-14T22:13:25Z"  # the last reading's
    assert node["window"] == "5.5s"
    assert node["usage"] == {"cpu": "500m", "memory": "512Mi"}
    listed = await get(client, f"{BASE}/pods")
    assert [p["metadata"]["name"] for p in listed["items"]] == ["a"]
    a = listed["items"][0]
    assert a["metadata"]["namespace"] == "default" and a["window"] == "5.5s"
    assert a["metadata"]["labels"] == {"app": "web"}
    assert a["containers"] == [
        {"name": "kubia", "usage": {"cpu": "250m", "memory": "3Mi"}},
        {"name": "side", "usage": {"cpu": "0", "memory": "1000"}}]
    assert (await get(client, f"{BASE}/namespaces/default/pods/a"))["containers"] == \
        a["containers"]


async def test_selectors_and_not_found(setup: Any) -> None:
    client, *_ = setup
    await client.scrape(T0, 0, 0)
    await client.scrape(T0 + 5, 5_000_000_000, 1_000_000)
    selected = await get(client, f"{BASE}/namespaces/default/pods?labelSelector=app%3Dweb")
    assert [p["metadata"]["name"] for p in selected["items"]] == ["a"]
    assert (await get(client, f"{BASE}/namespaces/default/pods?labelSelector=app%3Ddb")
            )["items"] == []
    assert (await get(client, f"{BASE}/pods?fieldSelector=metadata.namespace%3Dkube-system")
            )["items"] == []
    assert len((await get(client, f"{BASE}/nodes?labelSelector=tier%3Dnode-1"))["items"]) == 1
    assert (await get(client, f"{BASE}/nodes?labelSelector=tier%3Dnode-2"))["items"] == []
    missing = await get(client, f"{BASE}/namespaces/default/pods/b", 404)
    assert missing["message"] == 'podmetrics.metrics.k8s.io "default/b" not found'
    gone = await get(client, f"{BASE}/nodes/node-2", 404)
    assert gone["message"] == 'nodemetrics.metrics.k8s.io "node-2" not found'
    r = await client.post(f"{BASE}/nodes", json={})
    assert r.status == 405


async def test_restarted_counter_and_vanished_pod(setup: Any) -> None:
    client, _registry, metrics, kubelet = setup
    await client.scrape(T0, 0, 5_000_000_000)
    await client.scrape(T0 + 5, 1, 6_000_000_000)
    assert metrics.pod_usage("default", "a") is not None
    # The container restarted: a new cgroup, its counter back near zero. No negative
    # rate: the pod waits for a new pair.
    await client.scrape(T0 + 10, 2, 1_000)
    assert metrics.pod_usage("default", "a") is None
    await client.scrape(T0 + 15, 3, 500_001_000)
    assert metrics.pod_usage("default", "a").containers[0][1].cpu_nanocores == 100_000_000
    # A namesake (another uid) never gets the old pod's figures.
    assert metrics.pod_usage("default", "a", uid="another") is None
    kubelet.next = NodeScrape(node="node-1", at=T0 + 20, cpu_ns=4, memory_bytes=1)
    await metrics.scrape_once()
    assert metrics.pod_usage("default", "a") is None  # stopped: dropped at once


@pytest.mark.parametrize(("seconds", "text"), [
    pytest.param(5.012, "5.012s", id="seconds"), pytest.param(15, "15s", id="whole"),
    pytest.param(0.25, "250ms", id="millis"), pytest.param(60.5, "1m0.5s", id="minute"),
    pytest.param(0, "0s", id="zero"), pytest.param(3725, "1h2m5s", id="hour")])
def test_window_is_a_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


async def test_prometheus_metrics_count_requests_by_verb(setup: Any) -> None:
    client, *_ = setup
    await get(client, "/api/v1/namespaces/default/pods")
    await get(client, "/api/v1/namespaces/default/pods/a")
    await get(client, "/api/v1/namespaces/default/pods/nope", 404)
    r = await client.post("/api/v1/namespaces/default/pods", json=pod("c"))
    assert r.status == 201
    r = await client.get("/metrics", headers={"Authorization": ""})
    assert r.status == 401  # authenticated like the rest of the API
    r = await client.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await r.text()
    labels = ('component="apiserver",dry_run="",group="",resource="pods",scope="{scope}",'
              'subresource="",verb="{verb}",version="v1"')
    for verb, scope, code in (("LIST", "namespace", 200), ("GET", "resource", 200),
                              ("GET", "resource", 404), ("CREATE", "namespace", 201)):
        want = "apiserver_request_total{" + labels.format(scope=scope, verb=verb)[:-1] + \
            f'",code="{code}"' + "}"
        assert any(_same_sample(line, want) for line in text.splitlines()), want
    assert "apiserver_request_duration_seconds_bucket{" in text
    assert "# TYPE workqueue_depth gauge" in text


def _same_sample(line: str, want: str) -> bool:
    """Label order aside (prometheus_client writes them as declared)."""
    if not line.startswith(want.split("{")[0] + "{"):
        return False
    _name, _, rest = line.partition("{")
    got_labels, _, value = rest.rpartition("} ")
    wanted = want.partition("{")[2].rstrip("}")
    return set(got_labels.split(",")) == set(wanted.split(",")) and float(value) == 1.0
