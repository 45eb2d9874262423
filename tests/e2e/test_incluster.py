"""API access from pods, the user's way, on a real cluster: a pod running the official
`kubernetes` Python client with `config.load_incluster_config()` lists pods.

The image is built in the test from the `python` base image plus the client and its
dependencies copied from the dev venv (pure Python but pydantic_core, built for the same
interpreter the base image carries), so the pod runs the real client code, reading the
mounted token and ca.crt and the KUBERNETES_SERVICE_* variables, not a stand-in.

The client reaches the API the way a pod in Kubernetes does: through the `kubernetes`
Service at 10.96.0.1:443, which the proxy passes through at L4 (TLS untouched) to the
endpoint the Service names (10.244.0.1:<api port>); the same client pointed at that
endpoint directly is checked too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningCluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]

NS = f"sa-{os.urandom(3).hex()}"
IMAGE = "incluster-client"
MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
CLIENT_PACKAGES = ("kubernetes", "urllib3", "certifi", "dateutil", "six", "yaml", "requests",
                   "requests_oauthlib", "oauthlib", "idna", "charset_normalizer", "websocket",
                   "google", "durationpy", "pydantic", "pydantic_core", "annotated_types",
                   "typing_extensions", "typing_inspection")
LISTER = '''
import json, os, sys
from kubernetes import client, config
if len(sys.argv) > 2:
    # The endpoint the `kubernetes` Service names, instead of its ClusterIP.
    os.environ["KUBERNETES_SERVICE_HOST"] = sys.argv[1]
    os.environ["KUBERNETES_SERVICE_PORT"] = sys.argv[2]
config.load_incluster_config()
namespace = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
pods = client.CoreV1Api().list_namespaced_pod(namespace)
print(json.dumps(sorted(p.metadata.name for p in pods.items)))
'''


@pytest.fixture(scope="module")
def ns(cluster: RunningCluster) -> Iterator[str]:
    cluster.kubectl("create", "namespace", NS)
    try:
        # The controller gives the namespace its account and CA bundle.
        wait_for(lambda: cluster.kubectl("get", "sa/default", "cm/kube-root-ca.crt", "-n", NS,
                                         check=False).returncode == 0,
                 what="the namespace's default ServiceAccount and kube-root-ca.crt")
        yield NS
    finally:
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


@pytest.fixture(scope="module")
def client_image(cluster: RunningCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    context = tmp_path_factory.mktemp("incluster")
    site = context / "site"
    site_packages = Path(next(p for p in sys.path if p.endswith("site-packages")
                              and (Path(p) / "kubernetes").is_dir()))
    for name in CLIENT_PACKAGES:
        source = site_packages / name
        if source.is_dir():
            # The asyncio client is not what load_incluster_config users import.
            shutil.copytree(source, site / name, ignore=shutil.ignore_patterns(
                "__pycache__", "aio") if name == "kubernetes"
                else shutil.ignore_patterns("__pycache__"))
        elif (site_packages / f"{name}.py").exists():
            site.mkdir(exist_ok=True)
            shutil.copy(site_packages / f"{name}.py", site / f"{name}.py")
    # The compiled extensions (pydantic_core, charset_normalizer) need a few host
    # libraries the base image's python does not (librt, …): ship them beside.
    libs = context / "libs"
    libs.mkdir()
    for extension in site.rglob("*.so"):
        ldd = subprocess.run(["ldd", str(extension)], capture_output=True, text=True,
                             check=False).stdout
        for line in ldd.splitlines():
            parts = line.split("=>")
            if len(parts) == 2 and parts[1].strip().startswith("/"):
                library = Path(parts[1].split()[0])
                if not (libs / library.name).exists():
                    shutil.copy(library, libs / library.name)
    (context / "lister.py").write_text(LISTER)
    (context / "Dockerfile").write_text(
        "FROM python:3.11-slim\nCOPY site /opt/site\nCOPY libs /opt/libs\n"
        "COPY lister.py /lister.py\nENV PYTHONPATH=/opt/site LD_LIBRARY_PATH=/opt/libs\n"
        "ENTRYPOINT [\"python\", \"-u\", \"/lister.py\"]\n")
    cluster.cli("image", "build", "-t", IMAGE, str(context), timeout=300)
    return IMAGE


def _run_to_completion(cluster: RunningCluster, ns: str, name: str, *args: str) -> str:
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                "spec": {"restartPolicy": "Never", "containers": [{
                    "name": "lister", "image": IMAGE, "imagePullPolicy": "Never",
                    "args": list(args)}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    phase = wait_for(lambda: (p := cluster.kubectl(
        "get", "pod", name, "-n", ns, "-o", "jsonpath={.status.phase}").stdout) in (
        "Succeeded", "Failed") and p, timeout=120, what=f"pod {name} to finish")
    logs = cluster.kubectl("logs", name, "-n", ns).stdout
    assert phase == "Succeeded", logs
    return logs


def test_the_kubernetes_service_names_the_api_on_the_gateway(cluster: RunningCluster) -> None:
    endpoints = json.loads(cluster.kubectl("get", "endpoints", "kubernetes", "-o",
                                           "json").stdout)
    assert endpoints["subsets"] == [{"addresses": [{"ip": "10.244.0.1"}],
                                     "ports": [{"name": "https", "port": cluster.api_port,
                                                "protocol": "TCP"}]}]
    service = json.loads(cluster.kubectl("get", "svc", "kubernetes", "-o", "json").stdout)
    assert service["spec"]["clusterIP"] == "10.96.0.1"
    assert service["spec"]["ports"][0]["port"] == 443


def test_in_cluster_config_against_the_endpoint(cluster: RunningCluster, ns: str,
                                                client_image: str) -> None:
    logs = _run_to_completion(cluster, ns, "lister-direct", "10.244.0.1",
                              str(cluster.api_port))
    assert "lister-direct" in json.loads(logs.splitlines()[-1])


def test_in_cluster_config_through_the_kubernetes_service(cluster: RunningCluster, ns: str,
                                                          client_image: str) -> None:
    logs = _run_to_completion(cluster, ns, "lister-svc")
    assert "lister-svc" in json.loads(logs.splitlines()[-1])


def test_a_pods_token_is_its_own_and_dies_with_it(cluster: RunningCluster, ns: str) -> None:
    cluster.kubectl("run", "holder", "-n", ns, "--image=busybox", "--restart=Never",
                    "--", "sleep", "3600")
    wait_for(lambda: cluster.kubectl("get", "pod", "holder", "-n", ns, "-o",
                                     "jsonpath={.status.phase}").stdout == "Running",
             timeout=60, what="holder Running")
    env = cluster.kubectl("exec", "holder", "-n", ns, "--", "env").stdout
    assert "KUBERNETES_SERVICE_HOST=10.96.0.1" in env
    assert "KUBERNETES_SERVICE_PORT=443" in env and "KUBERNETES_SERVICE_PORT_HTTPS=443" in env
    listing = cluster.kubectl("exec", "holder", "-n", ns, "--", "ls", MOUNT).stdout.split()
    assert listing == ["ca.crt", "namespace", "token"]
    assert cluster.kubectl("exec", "holder", "-n", ns, "--", "cat",
                           f"{MOUNT}/namespace").stdout == ns
    # Read-only, as kubelet mounts it.
    touched = cluster.kubectl("exec", "holder", "-n", ns, "--", "touch", f"{MOUNT}/x",
                              check=False)
    assert touched.returncode != 0
    token = cluster.kubectl("exec", "holder", "-n", ns, "--", "cat", f"{MOUNT}/token").stdout
    whoami = cluster.kubectl("--token", token, "auth", "whoami", "-o", "json").stdout
    user = json.loads(whoami)["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{ns}:default"
    assert user["groups"] == ["system:serviceaccounts", f"system:serviceaccounts:{ns}",
                              "system:authenticated"]
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["holder"]
    cluster.kubectl("delete", "pod", "holder", "-n", ns, "--grace-period=0", "--force")
    wait_for(lambda: cluster.kubectl("get", "pod", "holder", "-n", ns,
                                     check=False).returncode != 0, what="holder gone")
    refused = cluster.kubectl("--token", token, "get", "pods", "-n", ns, check=False)
    assert refused.returncode != 0 and "Unauthorized" in refused.stderr


def test_no_token_without_automount_and_none_for_a_missing_account(
        cluster: RunningCluster, ns: str) -> None:
    overrides = json.dumps({"spec": {"automountServiceAccountToken": False}})
    cluster.kubectl("run", "quiet", "-n", ns, "--image=busybox", "--restart=Never",
                    f"--overrides={overrides}", "--", "sleep", "3600")
    spec = json.loads(cluster.kubectl("get", "pod", "quiet", "-n", ns, "-o", "json").stdout)
    assert not spec["spec"].get("volumes")
    ghost = json.dumps({"spec": {"serviceAccountName": "ghost"}})
    refused = cluster.kubectl("run", "lost", "-n", ns, "--image=busybox", "--restart=Never",
                              f"--overrides={ghost}", "--", "true", check=False)
    assert refused.returncode != 0
    assert (f'pods "lost" is forbidden: error looking up service account {ns}/ghost: '
            'serviceaccount "ghost" not found') in refused.stderr
    cluster.kubectl("delete", "pod", "quiet", "-n", ns, "--grace-period=0", "--force")
