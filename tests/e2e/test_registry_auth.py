"""`kubectl run nginx --image=nginx` on a real cluster, Docker Hub stood in for locally.

A token-auth OCI registry (tests/images/ociserver.py, in a thread with its own event
loop) serves `library/nginx` as a multi-platform index and a private `luksa/app`;
`docker.io` points at it through a loopback mirror in the cluster's registries.json
(re-read by the running cluster). The suite is offline (tests/conftest.py): the real
Docker Hub is never contacted. Also: imagePullSecrets from a real
`kubectl create secret docker-registry`, and a hostile image refused with its pod in
ErrImagePull while the store keeps every other image.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningCluster, wait_for
from tests.images.ociserver import OCI_INDEX, OciServer, image_config, member, tar_layer

pytestmark = [pytest.mark.e2e, pytest.mark.root]


@pytest.fixture(scope="module")
def hub() -> Iterator[tuple[OciServer, str]]:
    server = OciServer(token_auth=True)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    host: list[str] = []

    async def serve() -> None:
        async with server.running() as h:
            host.append(h)
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield server, host[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def _busybox_layer() -> tuple[bytes, str]:
    data = Path("/bin/busybox").read_bytes()
    return tar_layer([member("bin/", type=b"5", mode=0o755),
                      member("bin/busybox", data, mode=0o755),
                      member("bin/sh", type=b"2", linkname="busybox"),
                      member("etc/", type=b"5", mode=0o755),
                      member("etc/flavour", b"stand-in nginx\n")])


def _waiting(cluster: RunningCluster, name: str) -> dict[str, Any]:
    pod = cluster.get_json("pod", name)
    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    return dict(statuses[0].get("state", {}).get("waiting") or {})


def _running(cluster: RunningCluster, name: str) -> bool:
    return bool(cluster.get_json("pod", name).get("status", {}).get("phase") == "Running")


def test_docker_hub_names_through_token_auth_mirror(
        cluster: RunningCluster, hub: tuple[OciServer, str]) -> None:
    s, host = hub
    layer = _busybox_layer()
    cfg = image_config([layer[1]], Cmd=["/bin/busybox", "sleep", "3600"])
    amd = s.add_image("library/nginx", None, [layer], cfg)
    other = s.add_image("library/nginx", None, [tar_layer([member("wrong-arch", b"")])])
    s.add_manifest("library/nginx", "latest", {"schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{**other, "platform": {"os": "linux", "architecture": "arm64"}},
                      {**amd, "platform": {"os": "linux", "architecture": "amd64"}}]},
        OCI_INDEX)
    s.add_image("luksa/app", "v1", [layer], cfg)
    s.private["luksa/app"] = ("luksa", "s3cret")
    (cluster.home / "registries.json").write_text(
        json.dumps({"mirrors": {"docker.io": [f"http://{host}"]}}))
    try:
        # The first command of most tutorials.
        cluster.kubectl("run", "nginx", "--image=nginx")
        wait_for(lambda: _running(cluster, "nginx"), timeout=60, what="nginx running")
        assert "GET /v2/library/nginx/manifests/latest" in s.requests
        out = cluster.kubectl("exec", "nginx", "--", "/bin/busybox", "cat", "/etc/flavour").stdout
        assert out == "stand-in nginx\n"

        # Private: denied without credentials, Kubernetes' reasons and Docker's words.
        cluster.kubectl("run", "private", "--image=luksa/app:v1")
        wait_for(lambda: _waiting(cluster, "private").get("reason") in (
            "ErrImagePull", "ImagePullBackOff"), timeout=60, what="ErrImagePull")
        events = cluster.kubectl("get", "events", "--field-selector",
                                 "involvedObject.name=private", "-o", "json").stdout
        assert "may require 'docker login'" in events

        # ... and pulled with a docker-registry Secret in imagePullSecrets.
        cluster.kubectl("create", "secret", "docker-registry", "regcred",
                        "--docker-server=https://index.docker.io/v1/",
                        "--docker-username=luksa", "--docker-password=s3cret")
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "private-ok"},
               "spec": {"imagePullSecrets": [{"name": "regcred"}],
                        "containers": [{"name": "app", "image": "luksa/app:v1"}]}}
        cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
        wait_for(lambda: _running(cluster, "private-ok"), timeout=60, what="private-ok running")

        # A hostile image: refused, the pod waits in ErrImagePull, nginx keeps running.
        evil = tar_layer([member("etc/", type=b"5"), member("etc/.wh...")])
        s.add_image("library/evil", "latest", [evil])
        cluster.kubectl("run", "evil", "--image=evil")
        wait_for(lambda: _waiting(cluster, "evil").get("reason") in (
            "ErrImagePull", "ImagePullBackOff"), timeout=60, what="evil refused")
        assert "whiteout" in _waiting(cluster, "evil").get("message", "")
        cluster.kubectl("delete", "pod", "nginx", "--wait=true")
        cluster.kubectl("run", "nginx2", "--image=nginx")
        wait_for(lambda: _running(cluster, "nginx2"), timeout=60, what="nginx2 from the store")
    finally:
        for name in ("nginx", "nginx2", "private", "private-ok", "evil"):
            cluster.kubectl("delete", "pod", name, "--ignore-not-found", "--wait=false",
                            check=False)
        cluster.kubectl("delete", "secret", "regcred", "--ignore-not-found", check=False)
        (cluster.home / "registries.json").unlink(missing_ok=True)
