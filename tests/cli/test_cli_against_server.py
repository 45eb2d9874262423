"""The CLI as a subprocess against the real ApiServer (in-process, on a free port).

No kubelet or controllers run here: where the cluster would act (writing a container
log, finishing a graceful pod deletion) the test does it through the registry or the
pod's files, which are the real boundaries those actors use.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from miniorch.api.kinds import PODS
from miniorch.api.registry import Registry
from miniorch.api.store import Store
from miniorch.core import podfiles
from miniorch.core.clock import SystemClock
from miniorch.core.settings import Settings
from tests.cli.cli_support import local_spawner

KUBECTL = shutil.which("kubectl")

MANIFEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: kubia-manual
  labels: {app: kubia}
spec:
  containers:
  - name: kubia
    image: kubia
    ports: [{containerPort: 8080}]
"""


@dataclass
class Cluster:
    home: Path
    registry: Registry
    portal: BlockingPortal

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "miniorch", "--state-dir",
                               str(self.home), *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "miniorch", "--state-dir",
                                 str(self.home), *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    from miniorch.api.server import ApiServer

    home = tmp_path / "home"
    home.mkdir()
    settings = Settings(home=home, api_port=0)
    with start_blocking_portal() as portal:
        def make() -> Registry:
            registry = Registry(Store(home / "store.db"))
            registry.ensure_system_objects()
            return registry

        registry = portal.call(make)
        server = ApiServer(settings=settings, registry=registry, clock=SystemClock(),
                           spawn_exec=local_spawner)
        future, _url = portal.start_task(server.run)
        try:
            yield Cluster(home, registry, portal)
        finally:
            future.cancel()
            with suppress(CancelledError):
                future.result(timeout=10)
            portal.call(registry.store.close)


def test_seed_workflow_through_the_cli(cluster: Cluster, tmp_path: Path) -> None:
    r = cluster.cli("run", "kubia", "--image=kubia", "--port=8080")
    assert (r.returncode, r.stdout) == (0, "replicationcontroller/kubia created\n"), r.stderr
    r = cluster.cli("get", "rc")
    assert r.stdout.splitlines()[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert r.stdout.splitlines()[1].split()[:2] == ["kubia", "1"]

    r = cluster.cli("scale", "rc", "kubia", "--replicas=3")
    assert r.stdout == "replicationcontroller/kubia scaled\n", r.stderr
    r = cluster.cli("get", "rc", "kubia", "-o", "jsonpath={.spec.replicas}")
    assert r.stdout == "3"

    r = cluster.cli("expose", "rc", "kubia", "--type=LoadBalancer", "--name", "kubia-http")
    assert r.stdout == "service/kubia-http exposed\n", r.stderr
    r = cluster.cli("get", "svc", "kubia-http")
    header, row = r.stdout.splitlines()
    assert header.split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert row.split()[1] == "LoadBalancer"

    r = cluster.cli("describe", "rc", "kubia")
    assert "Selector:     run=kubia" in r.stdout
    assert "Replicas:     0 current / 3 desired" in r.stdout

    manifest = tmp_path / "pod.yaml"
    manifest.write_text(MANIFEST)
    r = cluster.cli("create", "-f", str(manifest))
    assert r.stdout == "pod/kubia-manual created\n", r.stderr
    r = cluster.cli("create", "-f", str(manifest))
    assert r.returncode == 1
    assert r.stderr == (f'Error from server (AlreadyExists): error when creating "{manifest}": '
                        'pods "kubia-manual" already exists\n')
    r = cluster.cli("apply", "-f", str(manifest))
    assert r.returncode == 0 and r.stdout == "pod/kubia-manual configured\n", r.stderr
    r = cluster.cli("apply", "-f", str(manifest))
    assert r.stdout == "pod/kubia-manual unchanged\n", r.stderr

    for what in (["describe", "pod", "kubia-manual"], ["describe", "rc", "kubia"],
                 ["describe", "svc", "kubia-http"], ["get", "all", "-o", "wide"]):
        ours = cluster.cli(*what)
        assert ours.returncode == 0, ours.stderr
        if KUBECTL:
            theirs = subprocess.run(
                [KUBECTL, "--kubeconfig", str(cluster.home / "kubeconfig"), "--cache-dir",
                 str(tmp_path / "kcache"), *what], capture_output=True, text=True, timeout=60)
            # AGE may tick between the two calls; everything else must be identical.
            assert _ageless(ours.stdout) == _ageless(theirs.stdout)

    r = cluster.cli("get", "pods", "nope")
    assert (r.returncode, r.stderr) == (1, 'Error from server (NotFound): pods "nope" not '
                                           "found\n")
    r = cluster.cli("get", "foo")
    assert r.stderr == 'error: the server doesn\'t have a resource type "foo"\n'


def test_logs_reads_what_the_kubelet_wrote(cluster: Cluster) -> None:
    pod = cluster.portal.call(lambda: cluster.registry.create(PODS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "logger"},
        "spec": {"containers": [{"name": "app", "image": "kubia"}]}}, namespace="default"))
    directory = podfiles.pod_dir(cluster.home / "pods", "default", "logger",
                                 pod["metadata"]["uid"])
    log = podfiles.container_log(directory, "app", 0)
    log.parent.mkdir(parents=True)
    log.write_text(podfiles.format_log_line("stdout", "Received request from ::1") +
                   podfiles.format_log_line("stderr", "second line"))
    r = cluster.cli("logs", "logger")
    assert (r.returncode, r.stdout) == (0, "Received request from ::1\nsecond line\n")
    r = cluster.cli("logs", "logger", "--tail", "1")
    assert r.stdout == "second line\n"


def test_delete_waits_until_the_pod_is_gone(cluster: Cluster) -> None:
    cluster.portal.call(lambda: cluster.registry.create(PODS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "slow"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "kubia"}]}},
        namespace="default"))
    with cluster.popen("delete", "pod", "slow") as proc:
        _delete_and_confirm(cluster, proc)


def _delete_and_confirm(cluster: Cluster, proc: subprocess.Popen[str]) -> None:
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == 'pod "slow" deleted\n'
        # Graceful: the object stays (Terminating) until its node confirms; the CLI waits.
        deadline = time.monotonic() + 10
        while not cluster.portal.call(
                lambda: cluster.registry.get(PODS, "default", "slow")["metadata"]
                .get("deletionTimestamp")):
            assert time.monotonic() < deadline
        assert proc.poll() is None
        # The kubelet's final word: delete with grace 0.
        cluster.portal.call(lambda: cluster.registry.delete(PODS, "default", "slow",
                                                            grace_period_seconds=0))
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_yaml_changes_nothing(cluster: Cluster, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MANIFEST + "---\nkind: Pod\nmetadata:\n  name: x\n  labels: a: b\n")
    r = cluster.cli("apply", "-f", str(bad))
    assert r.returncode == 1
    assert "error converting YAML to JSON: yaml: line 4: mapping values" in r.stderr
    assert cluster.portal.call(lambda: cluster.registry.try_get(PODS, "default",
                                                                "kubia-manual")) is None


def test_get_startup_is_fast(cluster: Cluster) -> None:
    """Wall-clock of `get pods` through the console entry (budget in the brief: 300 ms);
    the best of three, so a busy CI machine does not make this flaky."""
    best = min(_timed(cluster) for _ in range(3))
    assert best < (1.0 if os.environ.get("CI") else 0.6)


def _timed(cluster: Cluster) -> float:
    start = time.perf_counter()
    r = cluster.cli("get", "pods")
    assert r.returncode == 0
    return time.perf_counter() - start


def _ageless(text: str) -> str:
    return re.sub(r"\b\d+(s|m\d*s?|h\d*m?|d\d*h?)\b", "AGE", text)


def test_exec_streams_and_propagates_the_exit_code(cluster: Cluster) -> None:
    cluster.portal.call(lambda: cluster.registry.create(PODS, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "box"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]}}, namespace="default"))
    r = cluster.cli("exec", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == "out\n"
    assert r.stderr == "err\ncommand terminated with exit code 3\n"
    proc = subprocess.run([sys.executable, "-m", "miniorch", "--state-dir", str(cluster.home),
                           "exec", "-i", "box", "--", "cat"], input="hello\n",
                          capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout) == (0, "hello\n"), proc.stderr


def test_kinds_come_from_the_servers_discovery(cluster: Cluster) -> None:
    """No per-kind table in the CLI: ConfigMaps, Secrets and Leases are resolved,
    printed, described and deleted through what the server serves."""
    from miniorch.api.kinds import CONFIGMAPS

    cluster.portal.call(lambda: cluster.registry.create(CONFIGMAPS, {
        "metadata": {"name": "app-config", "namespace": "default"},
        "data": {"a": "1", "b": "2"}}))
    r = cluster.cli("get", "cm")
    assert r.stdout.splitlines()[0].split() == ["NAME", "DATA", "AGE"], r.stderr
    assert r.stdout.splitlines()[1].split()[:2] == ["app-config", "2"]
    r = cluster.cli("get", "configmaps/app-config", "-o", "name")
    assert r.stdout == "configmap/app-config\n", r.stderr
    r = cluster.cli("get", "leases.coordination.k8s.io", "-A")
    assert r.returncode == 0, r.stderr
    r = cluster.cli("describe", "configmap", "app-config")
    assert r.returncode == 0, r.stderr
    assert "Name:" in r.stdout and "app-config" in r.stdout
    r = cluster.cli("scale", "cm", "app-config", "--replicas=2")
    assert r.returncode == 1
    assert "the server serves no configmaps/scale subresource" in r.stderr
    r = cluster.cli("delete", "cm", "app-config")
    assert r.stdout == 'configmap "app-config" deleted\n', r.stderr
    r = cluster.cli("get", "widgets")
    assert (r.returncode, r.stderr) == (
        1, 'error: the server doesn\'t have a resource type "widgets"\n')
