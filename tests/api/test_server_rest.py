"""The REST surface, driven in-process with aiohttp's TestClient."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp.test_utils import TestClient

from miniorch.api.kinds import NODES, PODS, REPLICATION_CONTROLLERS, RESOURCES
from miniorch.api.registry import Registry
from miniorch.core.settings import Settings
from tests.api.server_support import TOKEN, app_client, make_registry, pod

Client = TestClient[Any, Any]
PODS_URL = "/api/v1/namespaces/default/pods"
RC_URL = "/api/v1/namespaces/default/replicationcontrollers"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"

RC = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "kubia"},
      "spec": {"replicas": 2, "selector": {"app": "kubia"}, "template": {
          "metadata": {"labels": {"app": "kubia"}},
          "spec": {"containers": [{"name": "kubia", "image": "kubia"}]}}}}


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    reg = make_registry(tmp_path)
    yield reg


@pytest.fixture
async def client(tmp_path: Path, registry: Registry) -> AsyncIterator[Client]:
    async with app_client(tmp_path, registry=registry) as c:
        yield c


async def body(response: Any) -> Any:
    return json.loads(await response.text())


# ---- auth and discovery -----------------------------------------------------------------

async def test_token_required_except_health(client: Client) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"},
                    {"Authorization": f"Basic {TOKEN}"}):
        r = await client.get(PODS_URL, headers=headers)
        assert r.status == 401
        status = await body(r)
        assert (status["kind"], status["reason"], status["code"]) == ("Status", "Unauthorized",
                                                                     401)
    for path in ("/healthz", "/livez", "/readyz"):
        r = await client.get(path, headers={"Authorization": ""})
        assert r.status == 200 and await r.text() == "ok"


async def test_discovery(client: Client) -> None:
    api = await body(await client.get("/api"))
    assert api["versions"] == ["v1"] and api["serverAddressByClientCIDRs"]
    groups = await body(await client.get("/apis"))
    assert [g["name"] for g in groups["groups"]] == list(dict.fromkeys(
        r.group for r in RESOURCES if r.group))
    assert {"coordination.k8s.io", "apps", "authorization.k8s.io", "authentication.k8s.io",
            "apiextensions.k8s.io"} <= {g["name"] for g in groups["groups"]}
    v1 = await body(await client.get("/api/v1"))
    by_name = {r["name"]: r for r in v1["resources"]}
    assert by_name["replicationcontrollers"]["shortNames"] == ["rc"]
    assert by_name["pods"]["categories"] == ["all"]
    assert by_name["replicationcontrollers/scale"]["group"] == "autoscaling"
    assert by_name["pods/exec"]["kind"] == "PodExecOptions"
    for entry in v1["resources"]:
        assert all(entry[k] is not None for k in ("singularName", "kind", "verbs"))
    apps = await body(await client.get("/apis/apps/v1"))
    by_name = {r["name"]: r for r in apps["resources"]}
    assert by_name["deployments"]["shortNames"] == ["deploy"]
    assert by_name["replicasets"]["shortNames"] == ["rs"]
    assert by_name["deployments"]["categories"] == ["all"]
    assert by_name["deployments/scale"]["kind"] == "Scale"
    assert by_name["replicasets/status"]["kind"] == "ReplicaSet"
    batch = {r["name"]: r for r in
             (await body(await client.get("/apis/batch/v1")))["resources"]}
    assert list(batch) == ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]
    assert batch["cronjobs"]["shortNames"] == ["cj"]
    assert batch["jobs"]["categories"] == batch["cronjobs"]["categories"] == ["all"]
    leases = await body(await client.get("/apis/coordination.k8s.io/v1"))
    assert leases["resources"][0]["name"] == "leases"
    version = await body(await client.get("/version"))
    assert (version["major"], version["minor"]) == ("1", "32")
    assert (await client.get("/openapi/v2")).status == 200  # see test_reviews.py
    assert (await client.get("/openapi/v3")).status == 200
    assert (await client.get("/api/v2")).status == 404
    assert (await client.get("/api/v1/widgets")).status == 404


# ---- CRUD ------------------------------------------------------------------------------------

async def test_create_get_list_and_errors(client: Client) -> None:
    r = await client.post(PODS_URL, json=pod("a", app="x"))
    assert r.status == 201
    created = await body(r)
    assert created["metadata"]["uid"] and created["kind"] == "Pod"
    again = await client.post(PODS_URL, json=pod("a"))
    assert again.status == 409
    assert (await body(again))["reason"] == "AlreadyExists"
    await client.post(PODS_URL, json=pod("b", app="y"))
    listed = await body(await client.get(PODS_URL, params={"labelSelector": "app=x"}))
    assert listed["kind"] == "PodList" and [i["metadata"]["name"] for i in listed["items"]] == ["a"]
    assert listed["metadata"]["resourceVersion"]
    everywhere = await body(await client.get("/api/v1/pods", params={
        "fieldSelector": "metadata.name=b", "limit": "500"}))
    assert [i["metadata"]["name"] for i in everywhere["items"]] == ["b"]
    assert not everywhere["metadata"].get("continue")
    missing = await client.get(f"{PODS_URL}/nope")
    assert missing.status == 404
    assert (await body(missing))["message"] == 'pods "nope" not found'
    in_missing_ns = await client.post("/api/v1/namespaces/ghost/pods", json=pod("c"))
    assert in_missing_ns.status == 404
    assert (await body(in_missing_ns))["message"] == 'namespaces "ghost" not found'
    bad_selector = await client.get(PODS_URL, params={"labelSelector": "a in (x"})
    assert bad_selector.status == 400


async def test_generate_name_dry_run_and_yaml(client: Client, registry: Registry) -> None:
    obj = pod("")
    del obj["metadata"]["name"]
    obj["metadata"]["generateName"] = "kubia-"
    r = await client.post(PODS_URL, json=obj)
    name = (await body(r))["metadata"]["name"]
    assert name.startswith("kubia-") and len(name) == len("kubia-") + 5
    dry = await client.post(PODS_URL, params={"dryRun": "All"}, json=pod("dry"))
    assert dry.status == 201 and registry.try_get(PODS, "default", "dry") is None
    manifest = (b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: from-yaml\n"
                b"  annotations: {when: 2024-01-01T00:00:00Z}\n"
                b"spec:\n  containers:\n  - name: c\n    image: kubia\n")
    r = await client.post(PODS_URL, data=manifest, headers={"Content-Type": "application/yaml"})
    assert r.status == 201, await r.text()
    assert (await body(r))["metadata"]["annotations"]["when"] == "2024-01-01T00:00:00Z"


async def test_bad_bodies(client: Client, tmp_path: Path) -> None:
    r = await client.post(PODS_URL, data=b"{not json", headers={"Content-Type":
                                                                "application/json"})
    assert r.status == 400
    assert (await body(r))["message"].startswith("couldn't get version/kind; json parse error")
    r = await client.post(PODS_URL, data=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert r.status == 400
    r = await client.post(PODS_URL, json={**pod("k"), "kind": "Service"})
    assert r.status == 400


async def test_oversized_body_is_413(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, api_port=0, max_request_bytes=1000)
    async with app_client(tmp_path, settings=settings) as client:
        big = pod("big")
        big["metadata"]["annotations"] = {"x": "y" * 2000}
        r = await client.post(PODS_URL, json=big)
        assert r.status == 413
        assert (await body(r))["reason"] == "RequestEntityTooLarge"


async def test_put_with_optimistic_concurrency(client: Client) -> None:
    created = await body(await client.post(PODS_URL, json=pod("a")))
    created["metadata"]["labels"] = {"v": "2"}
    r = await client.put(f"{PODS_URL}/a", json=created)
    assert r.status == 200, await r.text()
    updated = await body(r)
    assert updated["metadata"]["labels"] == {"v": "2"}
    stale = await client.put(f"{PODS_URL}/a", json=created)  # the old resourceVersion
    assert stale.status == 409 and (await body(stale))["reason"] == "Conflict"
    del created["metadata"]["resourceVersion"]
    created["metadata"]["labels"] = {"v": "3"}
    assert (await client.put(f"{PODS_URL}/a", json=created)).status == 200
    renamed = await client.put(f"{PODS_URL}/other", json=created)
    assert renamed.status == 400


async def test_patch_content_types(client: Client) -> None:
    await client.post(RC_URL, json=RC)
    r = await client.patch(f"{RC_URL}/kubia", data=json.dumps({"spec": {"replicas": 5}}),
                           headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200 and (await body(r))["spec"]["replicas"] == 5
    r = await client.patch(f"{RC_URL}/kubia", data=json.dumps(
        [{"op": "replace", "path": "/spec/replicas", "value": 4}]),
        headers={"Content-Type": "application/json-patch+json"})
    assert r.status == 200 and (await body(r))["spec"]["replicas"] == 4
    r = await client.patch(f"{RC_URL}/kubia", data=json.dumps(
        {"metadata": {"labels": {"tier": "web"}}}),
        headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert r.status == 200 and (await body(r))["metadata"]["labels"]["tier"] == "web"
    r = await client.patch(f"{RC_URL}/kubia", data=b"{}",
                           headers={"Content-Type": "application/apply-patch+yaml"})
    assert r.status == 415 and (await body(r))["reason"] == "UnsupportedMediaType"
    r = await client.patch(f"{RC_URL}/nope", data=b"{}",
                           headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 404


async def test_status_subresource(client: Client) -> None:
    await client.post(PODS_URL, json=pod("a"))
    r = await client.patch(f"{PODS_URL}/a/status", data=json.dumps(
        {"status": {"phase": "Running"}, "spec": {"nodeName": "sneaky"}}),
        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200, await r.text()
    patched = await body(r)
    assert patched["status"]["phase"] == "Running"
    assert "nodeName" not in patched["spec"]
    got = await body(await client.get(f"{PODS_URL}/a/status"))
    assert got["status"]["phase"] == "Running"


async def test_delete_returns_object_or_status(client: Client, registry: Registry) -> None:
    await client.post(PODS_URL, json=pod("a"))
    r = await client.delete(f"{PODS_URL}/a", json={"propagationPolicy": "Background"})
    assert r.status == 200 and (await body(r))["kind"] == "Pod"
    assert registry.try_get(PODS, "default", "a") is None  # unbound: gone at once
    await client.post(RC_URL, json=RC)
    r = await client.delete(f"{RC_URL}/kubia", params={"propagationPolicy": "Orphan"})
    status = await body(r)
    assert (status["kind"], status["status"]) == ("Status", "Success")
    assert status["details"]["name"] == "kubia"
    assert registry.try_get(REPLICATION_CONTROLLERS, "default", "kubia") is None
    r = await client.delete(f"{PODS_URL}/a")
    assert r.status == 404


async def test_graceful_delete_of_a_bound_pod(client: Client, registry: Registry) -> None:
    obj = pod("bound")
    obj["spec"]["nodeName"] = "node-1"
    await client.post(PODS_URL, json=obj)
    r = await client.delete(f"{PODS_URL}/bound", json={"gracePeriodSeconds": 5})
    terminating = await body(r)
    assert terminating["metadata"]["deletionTimestamp"]
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 5
    stale = {"preconditions": {"uid": "not-the-uid"}, "gracePeriodSeconds": 0}
    assert (await client.delete(f"{PODS_URL}/bound", json=stale)).status == 409
    r = await client.delete(f"{PODS_URL}/bound", params={"gracePeriodSeconds": "0"})
    assert r.status == 200
    assert registry.try_get(PODS, "default", "bound") is None


async def test_delete_collection(client: Client, registry: Registry) -> None:
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        await client.post(PODS_URL, json=pod(name, app=app))
    r = await client.delete(PODS_URL, params={"labelSelector": "app=x"})
    deleted = await body(r)
    assert deleted["kind"] == "PodList"
    assert sorted(i["metadata"]["name"] for i in deleted["items"]) == ["a", "b"]
    remaining, _ = registry.list(PODS, "default")
    assert [p["metadata"]["name"] for p in remaining] == ["c"]


async def test_scale_subresource(client: Client) -> None:
    await client.post(RC_URL, json=RC)
    scale = await body(await client.get(f"{RC_URL}/kubia/scale"))
    assert (scale["kind"], scale["apiVersion"]) == ("Scale", "autoscaling/v1")
    assert scale["spec"] == {"replicas": 2}
    assert scale["status"] == {"replicas": 0, "selector": "app=kubia"}
    r = await client.patch(f"{RC_URL}/kubia/scale", data=json.dumps({"spec": {"replicas": 3}}),
                           headers={"Content-Type": "application/merge-patch+json"})
    assert (await body(r))["spec"]["replicas"] == 3
    scale = await body(await client.get(f"{RC_URL}/kubia/scale"))
    scale["spec"]["replicas"] = 1
    r = await client.put(f"{RC_URL}/kubia/scale", json=scale)
    assert (await body(r))["spec"]["replicas"] == 1
    r = await client.put(f"{RC_URL}/kubia/scale", json=scale)  # stale resourceVersion now
    assert r.status == 409
    scale["metadata"].pop("resourceVersion")
    scale["spec"]["replicas"] = -1
    r = await client.put(f"{RC_URL}/kubia/scale", json=scale)
    assert r.status == 422 and (await body(r))["reason"] == "Invalid"
    rc = await body(await client.get(f"{RC_URL}/kubia"))
    assert rc["spec"]["replicas"] == 1


async def test_binding(client: Client, registry: Registry) -> None:
    await client.post(PODS_URL, json=pod("a"))
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "a"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}}
    r = await client.post(f"{PODS_URL}/a/binding", json=binding)
    assert r.status == 201, await r.text()
    bound = registry.get(PODS, "default", "a")
    assert bound["spec"]["nodeName"] == "node-1"
    assert any(c["type"] == "PodScheduled" for c in bound["status"]["conditions"])
    r = await client.post(f"{PODS_URL}/a/binding", json=binding)
    assert r.status == 409
    assert 'already assigned to node "node-1"' in (await body(r))["message"]


async def test_tables_and_partial_metadata(client: Client) -> None:
    await client.post(PODS_URL, json=pod("a"))
    table = await body(await client.get(PODS_URL, headers={"Accept": TABLE}))
    assert table["kind"] == "Table" and table["metadata"]["resourceVersion"]
    assert table["rows"][0]["cells"][0] == "a"
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    one = await body(await client.get(f"{PODS_URL}/a", headers={"Accept": TABLE}))
    assert one["kind"] == "Table" and len(one["rows"]) == 1
    described = await body(await client.get(f"{PODS_URL}/a", headers={
        "Accept": "application/vnd.kubernetes.protobuf,application/json"}))
    assert described["kind"] == "Pod"
    partial = await body(await client.get(PODS_URL, headers={
        "Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"}))
    assert partial["kind"] == "PartialObjectMetadataList"


async def test_cluster_scoped_and_leases(client: Client, registry: Registry) -> None:
    r = await client.post("/api/v1/nodes", json={"metadata": {"name": "node-1"}})
    assert r.status == 201, await r.text()
    assert registry.get(NODES, "", "node-1")["metadata"]["name"] == "node-1"
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": "node-1"}}
    url = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1"
    r = await client.put(url, json=lease)  # create on update, as kube-apiserver allows
    assert r.status == 201, await r.text()
    assert (await body(await client.get(url)))["spec"]["holderIdentity"] == "node-1"
    ns = await body(await client.get("/api/v1/namespaces/kube-node-lease"))
    assert ns["kind"] == "Namespace"


async def test_unexpected_exception_is_a_500_status(tmp_path: Path, registry: Registry) -> None:
    def broken(*args: object, **kwargs: object) -> Any:
        raise RuntimeError("boom")
    registry.get = broken  # type: ignore[method-assign]
    async with app_client(tmp_path, registry=registry) as client:
        r = await client.get(f"{PODS_URL}/a")
        assert r.status == 500
        status = await body(r)
        assert status["kind"] == "Status" and status["reason"] == "InternalError"


async def test_get_is_fast(client: Client) -> None:
    await client.post(PODS_URL, json=pod("a"))
    started = anyio.current_time()
    for _ in range(200):
        r = await client.get(f"{PODS_URL}/a")
        await r.read()
    per_request = (anyio.current_time() - started) / 200
    # Client and server together, with slack for a busy 2-core machine; the server part
    # alone measures about 0.9 ms.
    assert per_request < 0.02, per_request
