"""The virtual review kinds (kubectl auth can-i / whoami) and `/openapi/v2`, in-process
with aiohttp's TestClient and, where kubectl is installed, with the real kubectl."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from miniorch.api.kinds import SELF_SUBJECT_ACCESS_REVIEWS
from miniorch.api.registry import Registry
from tests.api.server_support import app_client, make_registry, running_cluster

Client = TestClient[Any, Any]
SSAR = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
SSRR = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"
SSR = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None,
                                   reason="kubectl is not installed")


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    yield make_registry(tmp_path)


@pytest.fixture
async def client(tmp_path: Path, registry: Registry) -> AsyncIterator[Client]:
    async with app_client(tmp_path, registry=registry) as c:
        yield c


async def test_access_review_is_allowed_and_never_stored(client: Client,
                                                         registry: Registry) -> None:
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": {"namespace": "default", "verb": "create",
                                              "resource": "pods"}}}
    rv_before = registry.store.resource_version
    r = await client.post(SSAR, json=review)
    assert r.status == 201
    body = await r.json()
    assert body["spec"] == review["spec"]
    assert body["status"] == {"allowed": True, "reason": (
        'RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" '
        'to Group "system:masters"')}
    assert registry.store.resource_version == rv_before
    assert registry.list(SELF_SUBJECT_ACCESS_REVIEWS)[0] == []


async def test_reviews_serve_only_create(client: Client) -> None:
    for method, path in (("GET", SSAR), ("GET", SSAR + "/x"), ("DELETE", SSAR),
                         ("PUT", SSR + "/x")):
        r = await client.request(method, path)
        assert r.status == 405, (method, path)
        assert (await r.json())["reason"] == "MethodNotAllowed"


async def test_access_review_needs_attributes(client: Client) -> None:
    r = await client.post(SSAR, json={"apiVersion": "authorization.k8s.io/v1",
                                      "kind": "SelfSubjectAccessReview", "spec": {}})
    assert r.status == 422
    assert "exactly one of nonResourceAttributes or resourceAttributes" in (
        await r.json())["message"]
    r = await client.post(SSAR, json={"apiVersion": "authorization.k8s.io/v1",
                                      "kind": "SelfSubjectAccessReview", "spec": "no"})
    assert r.status == 400


async def test_rules_review_and_whoami(client: Client) -> None:
    r = await client.post(SSRR, json={"apiVersion": "authorization.k8s.io/v1",
                                      "kind": "SelfSubjectRulesReview",
                                      "spec": {"namespace": "default"}})
    status = (await r.json())["status"]
    assert status["resourceRules"][0] == {"verbs": ["*"], "apiGroups": ["*"],
                                          "resources": ["*"]}
    assert status["nonResourceRules"] == [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
    assert status["incomplete"] is False
    r = await client.post(SSR, json={"apiVersion": "authentication.k8s.io/v1",
                                     "kind": "SelfSubjectReview"})
    assert r.status == 201
    assert (await r.json())["status"]["userInfo"] == {
        "username": "miniorch-admin", "groups": ["system:masters", "system:authenticated"]}


async def test_discovery_lists_the_review_groups(client: Client) -> None:
    groups = {g["name"] for g in (await (await client.get("/apis")).json())["groups"]}
    assert {"authorization.k8s.io", "authentication.k8s.io"} <= groups
    listed = (await (await client.get("/apis/authorization.k8s.io/v1")).json())["resources"]
    assert [(e["name"], e["verbs"]) for e in listed] == [
        ("selfsubjectaccessreviews", ["create"]), ("selfsubjectrulesreviews", ["create"])]
    doc = await (await client.get("/openapi/v3/apis/authorization.k8s.io/v1")).json()
    assert list(doc["paths"]) == [SSAR, SSRR]
    assert list(doc["paths"][SSAR]) == ["post", "parameters"]


async def test_openapi_v2_is_an_empty_swagger_document(client: Client) -> None:
    r = await client.get("/openapi/v2", headers={
        "Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert r.status == 200
    assert await r.read() == b"\n\x032.0\x12\x15\n\nKubernetes\x12\x07v1.32.0"
    r = await client.get("/openapi/v2", headers={"Accept": "application/json"})
    assert (await r.json())["definitions"] == {}


@needs_kubectl
def test_kubectl_auth_and_create_list(tmp_path: Path) -> None:
    manifest = tmp_path / "list.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: List\nmetadata: {resourceVersion: ''}\nitems:\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}, data: {x: '1'}}\n"
        "- {apiVersion: v1, kind: Secret, metadata: {name: b}, stringData: {y: '2'}}\n")
    with running_cluster(tmp_path) as cluster:
        assert cluster.kubectl("auth", "can-i", "create", "pods")[:2] == (0, "yes\n")
        code, out, err = cluster.kubectl("auth", "can-i", "--list")
        assert code == 0, err
        assert out.splitlines()[1].split() == ["*.*", "[]", "[]", "[*]"]
        code, out, err = cluster.kubectl("auth", "whoami")
        assert (code, out.splitlines()[1].split()) == (0, ["Username", "miniorch-admin"]), err
        code, out, err = cluster.kubectl("create", "-f", str(manifest))
        assert (code, out) == (0, "configmap/a created\nsecret/b created\n"), err
        code, listed, err = cluster.kubectl("get", "cm,secret", "-o", "yaml")
        assert code == 0, err
        assert cluster.kubectl("delete", "cm/a", "secret/b")[0] == 0
        again = tmp_path / "again.yaml"
        again.write_text(listed)
        code, out, err = cluster.kubectl("create", "-f", str(again))
        assert (code, out) == (0, "configmap/a created\nsecret/b created\n"), err
        manifest.write_text(manifest.read_text().replace("data: {x", "bogus: 1, data: {x"))
        code, out, err = cluster.kubectl("create", "-f", str(manifest))
        assert code == 1 and 'strict decoding error: unknown field "bogus"' in err
