"""ConfigMaps, Secrets and emptyDir volumes end to end, with the real kubectl: typed
`kubectl create configmap|secret|serviceaccount` (protobuf bodies), a pod that reads
them as environment and files (updated in place), and a sidecar sharing an emptyDir."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningCluster, wait_for

NS = "config-e2e"

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: reader
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo ready > /shared/msg; exec sleep 3600"]
    env:
    - name: LEVEL
      valueFrom:
        configMapKeyRef: {name: app, key: level}
    - name: MY_POD
      valueFrom:
        fieldRef: {fieldPath: metadata.name}
    envFrom:
    - secretRef: {name: creds}
      prefix: SECRET_
    volumeMounts:
    - {name: config, mountPath: /etc/app}
    - {name: creds, mountPath: /etc/creds, readOnly: true}
    - {name: shared, mountPath: /shared}
  - name: sidecar
    image: busybox
    command: ["sh", "-c", "until [ -f /in/msg ]; do sleep 0.1; done; cat /in/msg; exec sleep 3600"]
    volumeMounts:
    - {name: shared, mountPath: /in}
  volumes:
  - name: config
    configMap: {name: app}
  - name: creds
    secret: {secretName: creds, defaultMode: 0400}
  - name: shared
    emptyDir: {}
"""


@pytest.fixture(scope="module")
def ns(cluster: RunningCluster) -> Iterator[str]:
    assert cluster.kubectl("create", "namespace", NS).stdout.strip() == f"namespace/{NS} created"
    try:
        yield NS
    finally:
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def kubectl(cluster: RunningCluster, *args: str, input: str | None = None) -> str:
    return cluster.kubectl("-n", NS, *args, input=input).stdout


def test_typed_creates_and_their_tables(cluster: RunningCluster, ns: str,
                                        tmp_path: Path) -> None:
    properties = tmp_path / "app.properties"
    properties.write_text("color=blue\n")
    assert kubectl(cluster, "create", "configmap", "app", "--from-literal=level=debug",
                   f"--from-file={properties}").strip() == "configmap/app created"
    assert kubectl(cluster, "create", "secret", "generic", "creds",
                   "--from-literal=password=s3cr3t").strip() == "secret/creds created"
    assert kubectl(cluster, "create", "serviceaccount", "robot").strip() == \
        "serviceaccount/robot created"
    rows = [line.split() for line in kubectl(cluster, "get", "cm,secret,sa").splitlines()]
    by_name = {r[0]: r for r in rows if r}
    assert by_name["configmap/app"][:2] == ["configmap/app", "2"]
    assert by_name["secret/creds"][:3] == ["secret/creds", "Opaque", "1"]
    names = set(by_name)
    assert {"serviceaccount/robot", "serviceaccount/default"} <= names
    secret = json.loads(kubectl(cluster, "get", "secret", "creds", "-o", "json"))
    assert secret["data"] == {"password": "czNjcjN0"}


def test_pod_reads_config_and_secret_as_env_and_files(cluster: RunningCluster,
                                                      ns: str) -> None:
    assert kubectl(cluster, "apply", "-f", "-", input=POD).strip() == "pod/reader created"
    kubectl(cluster, "wait", "--for=condition=Ready", "pod/reader", "--timeout=60s")

    def run(*command: str) -> str:
        return kubectl(cluster, "exec", "reader", "-c", "main", "--", *command)

    env = dict(line.split("=", 1) for line in run("env").splitlines() if "=" in line)
    assert env["LEVEL"] == "debug"
    assert env["MY_POD"] == "reader"
    assert env["SECRET_password"] == "s3cr3t"
    assert run("cat", "/etc/app/level") == "debug"
    assert run("cat", "/etc/app/app.properties") == "color=blue\n"
    assert run("cat", "/etc/creds/password") == "s3cr3t"
    # defaultMode 0400 on the file behind the key's symlink
    assert run("stat", "-L", "-c", "%a", "/etc/creds/password").strip() == "400"

    # The sidecar read what the main container wrote into the shared emptyDir.
    wait_for(lambda: kubectl(cluster, "logs", "reader", "-c", "sidecar") == "ready\n",
             timeout=20, what="the sidecar's log")

    # A ConfigMap update reaches the mounted files in place (env stays as started).
    kubectl(cluster, "patch", "configmap", "app", "--type=merge", "-p",
            '{"data":{"level":"info"}}')
    wait_for(lambda: run("cat", "/etc/app/level") == "info", timeout=30,
             what="the updated configMap file")
    assert dict(line.split("=", 1) for line in run("env").splitlines()
                if "=" in line)["LEVEL"] == "debug"
