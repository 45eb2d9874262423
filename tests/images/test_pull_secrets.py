"""A pod's imagePullSecrets are used by the kubelet for that pod's pulls only.

A token-auth registry (tests/images/ociserver.py) stands in for Docker Hub through a
loopback mirror; `luksa/app` is private there. Containers run as host processes
(ProcessRuntime) over the production image half (store + registry puller), as in
test_registry_pods.py.
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from miniorch.api.kinds import PODS, SECRETS
from miniorch.api.registry import Registry
from miniorch.core.settings import Settings
from miniorch.images.regconfig import open_store
from tests.images.ociserver import OciServer, member, tar_layer
from tests.images.test_registry_pods import RegistryBackedProcesses
from tests.node.nodehelpers import (
    container_status,
    events_of,
    registry,
    running_kubelet,
    settings,
    wait_for,
)

__all__ = ["registry", "settings"]  # fixtures, re-exported for pytest

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
async def hub() -> AsyncIterator[tuple[OciServer, str]]:
    s = OciServer(token_auth=True)
    async with s.running() as host:
        yield s, host


def _pod(registry: Registry, node: str, image: str, pull_secrets: list[str]) -> Any:
    spec: dict[str, Any] = {"nodeName": node, "terminationGracePeriodSeconds": 5,
                            "containers": [{"name": "app", "image": image,
                                            "command": SLEEP}]}
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in pull_secrets]
    return registry.create(PODS, {"metadata": {"name": f"app-{secrets.token_hex(3)}",
                                               "namespace": "default"}, "spec": spec})


def _dockerconfigjson(registry_key: str, user: str, password: str) -> str:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    doc = {"auths": {registry_key: {"username": user, "password": password, "auth": auth}}}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def _waiting(registry: Registry, pod: Any) -> dict[str, Any]:
    state: dict[str, Any] = container_status(registry, pod).get("state", {})
    return state.get("waiting") or {}


async def test_image_pull_secrets_authenticate_that_pods_pull(
        registry: Registry, settings: Settings, workdir: Path, base_cache: Path,
        hub: tuple[OciServer, str]) -> None:
    s, host = hub
    s.add_image("luksa/app", "v1", [tar_layer([member("app.txt", b"private\n")])])
    s.private["luksa/app"] = ("luksa", "s3cret")
    home = workdir / "node-home"
    home.mkdir()
    (home / "registries.json").write_text(
        json.dumps({"mirrors": {"docker.io": [f"http://{host}"]}}))
    runtime = RegistryBackedProcesses(open_store(home, base_cache=base_cache))
    registry.create(SECRETS, {
        "metadata": {"name": "regcred", "namespace": "default"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": _dockerconfigjson("https://index.docker.io/v1/",
                                                        "luksa", "s3cret")}})
    async with running_kubelet(registry, settings, runtime) as node:
        # Without the secret: Kubernetes' reasons, the registry's message in events.
        denied = _pod(registry, node.name, "luksa/app:v1", [])
        await wait_for(lambda: _waiting(registry, denied).get("reason") in (
            "ErrImagePull", "ImagePullBackOff"), within=10, what="ErrImagePull")
        message = await wait_for(lambda: next(
            (m for _t, r, m in events_of(registry, denied)
             if r == "Failed" and m.startswith("Failed to pull")), None), what="Failed event")
        assert message.startswith('Failed to pull image "luksa/app:v1": pull access denied '
                                  "for luksa/app, repository does not exist or may require "
                                  "'docker login'")
        # A missing secret is warned about, and the pull goes ahead without it.
        ghost = _pod(registry, node.name, "luksa/app:v1", ["nothere"])
        await wait_for(lambda: any(r == "FailedToRetrieveImagePullSecret"
                                   for _t, r, _m in events_of(registry, ghost)),
                       within=10, what="FailedToRetrieveImagePullSecret")
        assert ("Warning", "FailedToRetrieveImagePullSecret",
                "Unable to retrieve some image pull secrets (nothere); attempting to pull "
                "the image may not succeed.") in events_of(registry, ghost)
        # With the secret: pulled with Basic credentials at the token realm, and runs.
        ok = _pod(registry, node.name, "luksa/app:v1", ["nothere", "regcred"])
        await wait_for(lambda: "running" in container_status(registry, ok).get("state", {}),
                       within=20, what="pod with imagePullSecrets running")
        assert any(t["authorization"] == "Basic " + base64.b64encode(b"luksa:s3cret").decode()
                   for t in s.token_requests)
