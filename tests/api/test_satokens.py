"""Service-account tokens (api/satokens.py), the ServiceAccount admission plugin and
the `kubernetes` Service's Endpoints: in-process with aiohttp's TestClient, and against
a real ApiServer with the real kubectl and the Python client's in-cluster loader."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from miniorch.api.kinds import ENDPOINTS, PODS, SERVICE_ACCOUNTS, SERVICES
from miniorch.api.registry import Registry
from miniorch.api.server import publish_api_endpoints
from tests.api.server_support import app_client, make_registry, pod, running_cluster

Client = TestClient[Any, Any]
SSR = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
SSAR = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
PODS_URL = "/api/v1/namespaces/default/pods"
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None,
                                   reason="kubectl is not installed")
MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    registry = make_registry(tmp_path)
    # The system namespaces' `default` accounts exist from the start.
    assert registry.try_get(SERVICE_ACCOUNTS, "default", "default") is not None
    yield registry


@pytest.fixture
async def client(tmp_path: Path, registry: Registry) -> AsyncIterator[Client]:
    async with app_client(tmp_path, registry=registry) as c:
        yield c


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _token(client: Client, sa: str = "default", **spec: Any) -> str:
    r = await client.post(f"/api/v1/namespaces/default/serviceaccounts/{sa}/token",
                          json={"apiVersion": "authentication.k8s.io/v1",
                                "kind": "TokenRequest", "spec": spec})
    body = await r.json()
    assert r.status == 201, body
    assert body["kind"] == "TokenRequest" and body["status"]["expirationTimestamp"]
    token: str = body["status"]["token"]
    return token


def _claims(token: str) -> Any:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


async def test_a_token_request_gives_a_jwt_the_api_accepts_as_the_service_account(
        client: Client, registry: Registry) -> None:
    token = await _token(client)
    header = token.split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["alg"] \
        == "ES256"
    claims = _claims(token)
    sa = registry.get(SERVICE_ACCOUNTS, "default", "default")
    assert claims["sub"] == "system:serviceaccount:default:default"
    assert claims["kubernetes.io"] == {
        "namespace": "default",
        "serviceaccount": {"name": "default", "uid": sa["metadata"]["uid"]}}
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["aud"] == ["https://kubernetes.default.svc.cluster.local"]
    r = await client.get(PODS_URL, headers=_bearer(token))
    assert r.status == 200
    r = await client.post(SSR, headers=_bearer(token), json={
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    user = (await r.json())["status"]["userInfo"]
    assert user["username"] == "system:serviceaccount:default:default"
    assert user["uid"] == sa["metadata"]["uid"]
    assert user["groups"] == ["system:serviceaccounts", "system:serviceaccounts:default",
                              "system:authenticated"]
    # No RBAC: allowed, and the reason says why instead of naming system:masters.
    r = await client.post(SSAR, headers=_bearer(token), json={
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}})
    status = (await r.json())["status"]
    assert status["allowed"] is True and "no RBAC" in status["reason"]
    # The admin token still works and is still the admin.
    r = await client.post(SSR, json={"apiVersion": "authentication.k8s.io/v1",
                                     "kind": "SelfSubjectReview"})
    assert (await r.json())["status"]["userInfo"]["username"] == "miniorch-admin"


async def test_a_pod_bound_token_stops_working_when_the_pod_goes(client: Client,
                                                                  registry: Registry) -> None:
    created = registry.create(PODS, pod("bound"))
    token = await _token(client, boundObjectRef={"kind": "Pod", "apiVersion": "v1",
                                                 "name": "bound"})
    private = _claims(token)["kubernetes.io"]
    assert private["pod"] == {"name": "bound", "uid": created["metadata"]["uid"]}
    r = await client.get(PODS_URL, headers=_bearer(token))
    assert r.status == 200
    r = await client.post(SSR, headers=_bearer(token), json={
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    extra = (await r.json())["status"]["userInfo"]["extra"]
    assert extra["authentication.kubernetes.io/pod-name"] == ["bound"]
    registry.delete(PODS, "default", "bound")  # not on a node: removed at once
    r = await client.get(PODS_URL, headers=_bearer(token))
    assert r.status == 401
    assert (await r.json())["reason"] == "Unauthorized"
    # A namesake pod (another uid) does not revive it.
    registry.create(PODS, pod("bound"))
    assert (await client.get(PODS_URL, headers=_bearer(token))).status == 401


async def test_a_recreated_service_account_invalidates_its_old_tokens(
        client: Client, registry: Registry) -> None:
    registry.create(SERVICE_ACCOUNTS, {"metadata": {"name": "robot", "namespace": "default"}})
    token = await _token(client, "robot")
    assert (await client.get(PODS_URL, headers=_bearer(token))).status == 200
    registry.delete(SERVICE_ACCOUNTS, "default", "robot")
    assert (await client.get(PODS_URL, headers=_bearer(token))).status == 401
    registry.create(SERVICE_ACCOUNTS, {"metadata": {"name": "robot", "namespace": "default"}})
    assert (await client.get(PODS_URL, headers=_bearer(token))).status == 401


async def test_forged_foreign_and_expired_tokens_are_refused(client: Client) -> None:
    token = await _token(client)
    head, body, sig = token.split(".")
    claims = _claims(token)
    claims["sub"] = "system:serviceaccount:kube-system:admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for bad in (f"{head}.{forged}.{sig}", f"{head}.{body}.{sig[:-4]}AAAA", "a.b.c",
                "not-a-token"):
        r = await client.get(PODS_URL, headers=_bearer(bad))
        assert r.status == 401, bad
    # A token for another audience is issued but is no key to the API.
    other = await _token(client, audiences=["vault"])
    assert _claims(other)["aud"] == ["vault"]
    assert (await client.get(PODS_URL, headers=_bearer(other))).status == 401
    r = await client.post("/api/v1/namespaces/default/serviceaccounts/default/token",
                          json={"spec": {"expirationSeconds": 60}})
    assert r.status == 422
    assert "may not specify a duration less than 10 minutes" in (await r.json())["message"]
    r = await client.post("/api/v1/namespaces/default/serviceaccounts/nobody/token",
                          json={"spec": {}})
    assert r.status == 404
    assert (await r.json())["message"] == 'serviceaccounts "nobody" not found'


async def test_expired_tokens_are_refused(tmp_path: Path, registry: Registry) -> None:
    from miniorch.api.satokens import ServiceAccountTokens
    tokens = ServiceAccountTokens.load(tmp_path / "keys")
    sa = registry.get(SERVICE_ACCOUNTS, "default", "default")
    token, expires = tokens.issue(namespace="default", service_account=sa, pod=None,
                                  audiences=list(tokens.api_audiences),
                                  expiration_seconds=600, now=1000.0)
    assert expires == 1600.0
    assert tokens.authenticate(registry, token, 1599.0) is not None
    assert tokens.authenticate(registry, token, 1600.0) is None
    # The key is kept: a second load (a restarted cluster) accepts earlier tokens.
    again = ServiceAccountTokens.load(tmp_path / "keys")
    assert again.authenticate(registry, token, 1500.0) is not None
    assert (tmp_path / "keys" / "sa.key").stat().st_mode & 0o777 == 0o600


async def test_admission_mounts_the_api_access_volume_in_every_container(
        registry: Registry) -> None:
    spec = pod("web")
    spec["spec"]["initContainers"] = [{"name": "init", "image": "busybox"}]
    created = registry.create(PODS, spec)["spec"]
    assert created["serviceAccountName"] == "default"
    assert created["serviceAccount"] == "default"
    (volume,) = [v for v in created["volumes"] if v["name"].startswith("kube-api-access-")]
    assert len(volume["name"]) == len("kube-api-access-") + 5
    sources = volume["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == \
        "metadata.namespace"
    for container in created["containers"] + created["initContainers"]:
        assert {"name": volume["name"], "readOnly": True, "mountPath": MOUNT} in \
            container["volumeMounts"]


async def test_automount_off_on_the_pod_or_its_account_mounts_nothing(
        registry: Registry) -> None:
    off = pod("off")
    off["spec"]["automountServiceAccountToken"] = False
    assert not registry.create(PODS, off)["spec"].get("volumes")
    registry.create(SERVICE_ACCOUNTS, {"metadata": {"name": "quiet", "namespace": "default"},
                                       "automountServiceAccountToken": False})
    quiet = pod("quiet")
    quiet["spec"]["serviceAccountName"] = "quiet"
    spec = registry.create(PODS, quiet)["spec"]
    assert not any(v["name"].startswith("kube-api-access-") for v in spec.get("volumes", []))
    assert not any(c.get("volumeMounts") for c in spec["containers"])
    # The pod's own `true` wins over the account's `false`.
    loud = pod("loud")
    loud["spec"].update(serviceAccountName="quiet", automountServiceAccountToken=True)
    assert any(v["name"].startswith("kube-api-access-")
               for v in registry.create(PODS, loud)["spec"]["volumes"])


async def test_a_pod_naming_a_missing_service_account_is_refused(client: Client) -> None:
    body = pod("lost")
    body["spec"]["serviceAccountName"] = "ghost"
    r = await client.post(PODS_URL, json=body)
    assert r.status == 403
    status = await r.json()
    assert status["reason"] == "Forbidden"
    assert status["message"] == ('pods "lost" is forbidden: error looking up service account '
                                 'default/ghost: serviceaccount "ghost" not found')


async def test_the_kubernetes_service_endpoints_follow_the_api_port(
        registry: Registry) -> None:
    publish_api_endpoints(registry, "10.244.0.1", 40123)
    endpoints = registry.get(ENDPOINTS, "default", "kubernetes")
    assert endpoints["subsets"] == [{"addresses": [{"ip": "10.244.0.1"}],
                                     "ports": [{"name": "https", "port": 40123,
                                                "protocol": "TCP"}]}]
    service = registry.get(SERVICES, "default", "kubernetes")
    assert service["spec"]["clusterIP"] == "10.96.0.1"
    assert service["spec"]["ports"][0]["targetPort"] == 40123
    rv = registry.store.resource_version
    publish_api_endpoints(registry, "10.244.0.1", 40123)  # a restart on the same port
    assert registry.store.resource_version == rv
    publish_api_endpoints(registry, "10.244.0.1", 40124)
    assert registry.get(ENDPOINTS, "default", "kubernetes")["subsets"][0]["ports"][0][
        "port"] == 40124


@needs_kubectl
def test_kubectl_create_token_and_the_python_clients_in_cluster_config(
        tmp_path: Path) -> None:
    from kubernetes import client as k8s
    from kubernetes.config.incluster_config import InClusterConfigLoader

    with running_cluster(tmp_path) as cluster:
        code, token, err = cluster.kubectl("create", "token", "default")
        assert code == 0, err
        token = token.strip()
        code, out, err = cluster.kubectl("--token", token, "auth", "whoami")
        assert code == 0, err
        assert out.splitlines()[1].split() == ["Username",
                                               "system:serviceaccount:default:default"]
        code, out, err = cluster.kubectl("--token", token, "auth", "can-i", "list", "pods")
        assert (code, out) == (0, "yes\n"), err
        # What a pod has: the mounted files and the env; here the endpoint the Service
        # names (loopback for this server) stands in for 10.96.0.1.
        endpoints = cluster.call(cluster.registry.get, ENDPOINTS, "default", "kubernetes")
        subset = endpoints["subsets"][0]
        mounted = tmp_path / "serviceaccount"
        mounted.mkdir()
        (mounted / "token").write_text(token)
        (mounted / "ca.crt").write_bytes((cluster.home / "tls" / "ca.crt").read_bytes())
        configuration = k8s.Configuration()
        InClusterConfigLoader(
            token_filename=str(mounted / "token"), cert_filename=str(mounted / "ca.crt"),
            environ={"KUBERNETES_SERVICE_HOST": subset["addresses"][0]["ip"],
                     "KUBERNETES_SERVICE_PORT": str(subset["ports"][0]["port"])},
        ).load_and_set(configuration)
        with k8s.ApiClient(configuration) as api:
            names = [p.metadata.name for p in k8s.CoreV1Api(api).list_namespaced_pod(
                "default").items]
        assert names == []
