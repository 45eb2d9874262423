"""CustomResourceDefinitions with the real kubectl 1.32 against the real cluster: the
CronTab example of the Kubernetes docs ("Extend the Kubernetes API with
CustomResourceDefinitions"), end to end — define, create, list with printer columns,
watch, validate, explain, patch, patch status, delete."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningCluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]

NS = f"crd-{os.urandom(3).hex()}"
CRD_NAME = "crontabs.stable.example.com"

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              description: The desired schedule of the CronTab.
              properties:
                cronSpec:
                  type: string
                  description: When to run, in cron syntax.
                image:
                  type: string
                replicas:
                  type: integer
                  minimum: 1
                  default: 1
            status:
              type: object
              properties:
                replicas:
                  type: integer
      subresources:
        status: {}
      additionalPrinterColumns:
        - name: Spec
          type: string
          jsonPath: .spec.cronSpec
        - name: Replicas
          type: integer
          jsonPath: .spec.replicas
        - name: Age
          type: date
          jsonPath: .metadata.creationTimestamp
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames:
    - ct
"""

CRONTAB = """\
apiVersion: "stable.example.com/v1"
kind: CronTab
metadata:
  name: my-new-cron-object
spec:
  cronSpec: "* * * * */5"
  image: my-awesome-cron-image
"""


def kubectl(cluster: RunningCluster, *args: str, check: bool = True, input: str | None = None
            ) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("-n", NS, *args, check=check, input=input, timeout=60)


@pytest.fixture(scope="module")
def crd(cluster: RunningCluster) -> Iterator[RunningCluster]:
    cluster.kubectl("create", "namespace", NS)
    try:
        yield cluster
    finally:
        cluster.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", check=False)
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_crontab_lifecycle(crd: RunningCluster) -> None:
    applied = kubectl(crd, "apply", "-f", "-", input=CRD)
    assert applied.stdout.strip() == f"customresourcedefinition.apiextensions.k8s.io/{CRD_NAME} " \
                                     "created"
    listed = rows(kubectl(crd, "get", "crd").stdout)
    assert listed[0] == ["NAME", "CREATED", "AT"]
    assert [r[0] for r in listed[1:]] == [CRD_NAME]

    # Right after the CRD: kubectl finds the new kind (discovery is already consistent).
    created = kubectl(crd, "apply", "-f", "-", input=CRONTAB)
    assert created.stdout.strip() == "crontab.stable.example.com/my-new-cron-object created"
    table = rows(kubectl(crd, "get", "ct").stdout)
    assert table[0] == ["NAME", "SPEC", "REPLICAS", "AGE"]
    assert table[1][:6] == ["my-new-cron-object", "*", "*", "*", "*", "*/5"]
    assert table[1][6] == "1"  # the schema's default

    # A watch sees a change (bounded: the watch runs at most 20 s).
    with subprocess.Popen(
            ["kubectl", "--kubeconfig", str(crd.kubeconfig), "--cache-dir",
             str(crd.home / "kubectl-cache"), "-n", NS, "get", "crontabs", "-w",
             "--request-timeout=20s", "-o",
             "custom-columns=NAME:.metadata.name,IMAGE:.spec.image"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as watch:
        try:
            assert watch.stdout is not None
            seen: list[str] = []
            deadline = time.monotonic() + 20
            patched = False
            while time.monotonic() < deadline and not any("patched-image" in s for s in seen):
                ready, _, _ = select.select([watch.stdout], [], [], 0.5)
                if ready:
                    seen.append(watch.stdout.readline())
                if seen and not patched:
                    kubectl(crd, "patch", "ct", "my-new-cron-object", "--type=merge",
                            "-p", '{"spec":{"image":"patched-image"}}')
                    patched = True
            assert any("patched-image" in s for s in seen), seen
        finally:
            watch.kill()
            watch.wait(timeout=10)
    image = kubectl(crd, "get", "ct", "my-new-cron-object", "-o", "jsonpath={.spec.image}")
    assert image.stdout == "patched-image"

    invalid = kubectl(crd, "apply", "-f", "-", check=False,
                      input=CRONTAB.replace("name: my-new-cron-object", "name: bad") +
                      '  replicas: "three"\n')
    assert invalid.returncode != 0
    assert ('The CronTab "bad" is invalid: spec.replicas: Invalid value: "string": '
            'spec.replicas in body must be of type integer: "string"') in invalid.stderr

    explained = kubectl(crd, "explain", "crontab.spec").stdout
    assert "KIND:       CronTab" in explained and "VERSION:    v1" in explained
    assert "cronSpec\t<string>" in explained and "When to run, in cron syntax." in explained

    status = kubectl(crd, "patch", "ct", "my-new-cron-object", "--subresource=status",
                     "--type=merge", "-p", '{"status":{"replicas":3}}')
    assert "patched" in status.stdout
    assert kubectl(crd, "get", "ct", "my-new-cron-object", "-o",
                   "jsonpath={.status.replicas}").stdout == "3"
    strategic = kubectl(crd, "patch", "ct", "my-new-cron-object", "-p",
                        '{"spec":{"image":"x"}}', check=False)
    assert strategic.returncode != 0
    assert "the body of the request was in an unknown format" in strategic.stderr

    deleted = crd.kubectl("delete", "crd", CRD_NAME)
    assert deleted.stdout.strip() == f'customresourcedefinition.apiextensions.k8s.io ' \
                                     f'"{CRD_NAME}" deleted'

    def gone() -> bool:
        # kubectl's cached discovery may still name the type; the server then says 404.
        result = kubectl(crd, "get", "crontabs", check=False)
        return result.returncode != 0 and (
            'the server doesn\'t have a resource type "crontabs"' in result.stderr
            or "the server could not find the requested resource" in result.stderr)
    wait_for(gone, timeout=20, what="crontabs to stop being served")
    # Re-defining the kind does not bring the old objects back.
    kubectl(crd, "apply", "-f", "-", input=CRD)
    assert kubectl(crd, "get", "crontabs", "-o", "name").stdout.strip() == ""


# ---- an operator framework, unchanged: kopf's own "01-minimal" example --------------------

KOPF_SUITE = Path(sys.prefix) / "kopf-suite"
"""kopf's source tree (its examples and e2e suite are not in the wheel) and a venv with
its test tooling, both set up by `make install` (scripts/install-kopf-suite.sh)."""


def kopf_examples() -> Path:
    """kopf's examples directory: the example and its CRD run exactly as kopf ships
    them. Tests never reach the network themselves."""
    examples = KOPF_SUITE / "src" / "examples"
    if not examples.is_dir():
        pytest.skip(f"{examples} is missing: run `make install`")
    return examples


def test_kopf_minimal_example(crd: RunningCluster, tmp_path: Path) -> None:
    pytest.importorskip("kopf")
    examples = kopf_examples()
    kubectl(crd, "apply", "-f", str(examples / "crd.yaml"))
    log_path = tmp_path / "kopf.log"
    with log_path.open("w") as log, subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--standalone", "-n", NS,
             str(examples / "01-minimal" / "example.py")],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": str(crd.kubeconfig)}) as operator:
        try:
            kubectl(crd, "apply", "-f", str(examples / "obj.yaml"))

            def handled() -> str:
                return kubectl(crd, "get", "kex", "kopf-example-1", "-o",
                               "jsonpath={.status.create_fn.message}").stdout
            assert wait_for(handled, timeout=60, what="kopf's create_fn") == "hello world", \
                log_path.read_text()[-3000:]
            table = rows(kubectl(crd, "get", "kopfexamples").stdout)
            assert table[0] == ["NAME", "DURATION", "CHILDREN", "MESSAGE"]
            # No children: a null cell, which kubectl prints blank.
            assert table[1] == ["kopf-example-1", "1m", "hello", "world"]
            assert "And here we are! Creating: {'duration': '1m'" in log_path.read_text()
            # kopf's own bookkeeping, written with merge patches on the object.
            annotations = kubectl(crd, "get", "kex", "kopf-example-1", "-o",
                                  "jsonpath={.metadata.annotations}").stdout
            assert "kopf.zalando.org/last-handled-configuration" in annotations, annotations
        finally:
            operator.send_signal(signal.SIGTERM)
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                operator.kill()
                operator.wait(timeout=10)
            kubectl(crd, "delete", "crd", "kopfexamples.kopf.dev", "--ignore-not-found",
                    check=False)
