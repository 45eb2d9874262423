"""Kubernetes protobuf request bodies: real kubectl 1.32 bytes decoded to the JSON kubectl
itself prints for `--dry-run=client -o json`.

kubectl posts to an HTTPS stub (our TLS material, a legacy discovery document and two
objects to read) that records every protobuf body and answers with the decoded object,
so each command also succeeds as it would against a real server. The end-to-end checks
run kubectl against the real ApiServer for the kinds it serves.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from miniorch.api import protobuf
from miniorch.api.errors import BadRequest, UnsupportedMediaType
from miniorch.api.kubeconfig import write_kubeconfig
from miniorch.api.tls import ensure_tls
from miniorch.core.objects import Obj
from tests.api.server_support import app_client, running_cluster

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")

BINARY = bytes(range(256))  # not UTF-8: kubectl puts it in binaryData / data as bytes


def _resource(name: str, kind: str) -> Obj:
    return {"name": name, "singularName": "", "namespaced": True, "kind": kind,
            "verbs": ["create", "get", "list"]}


# What kubectl reads before it writes: legacy discovery (for `debug`, `create job --from`
# and `create role`), a Pod to copy and a CronJob to instantiate.
STUB_GETS: dict[str, Obj] = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        {"name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
         "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}}]},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1",
                "resources": [_resource("pods", "Pod")]},
    "/apis/batch/v1": {"kind": "APIResourceList", "groupVersion": "batch/v1",
                       "resources": [_resource("jobs", "Job"), _resource("cronjobs", "CronJob")]},
    "/api/v1/namespaces/default/pods/web": {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "uid-web",
                     "labels": {"app": "web"}},
        "spec": {
            "containers": [{
                "name": "web", "image": "nginx",
                "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
                "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                              "limits": {"memory": "128Mi"}},
                "env": [{"name": "A", "value": "1"},
                        {"name": "POD", "valueFrom": {"fieldRef": {
                            "apiVersion": "v1", "fieldPath": "metadata.name"}}}],
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
            }],
            "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "cfg", "configMap": {"name": "cm", "defaultMode": 420,
                                                      "items": [{"key": "a", "path": "a"}]}}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 0,
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
        }},
    "/apis/batch/v1/namespaces/default/cronjobs/nightly": {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "default", "uid": "uid-nightly"},
        "spec": {"schedule": "0 0 * * *", "jobTemplate": {
            "metadata": {"labels": {"team": "a"}},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox", "command": ["date"],
                                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                                "readinessProbe": {"tcpSocket": {"port": "http"},
                                                   "periodSeconds": 3}}]}}}}}},
}


@dataclass
class Stub:
    home: Path
    bodies: list[tuple[str, bytes]] = field(default_factory=list)
    """(content type, body) of every POST, in order."""

    async def kubectl(self, *args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            "kubectl", f"--kubeconfig={self.home / 'kubeconfig'}",
            f"--cache-dir={self.home / 'cache'}", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(process.communicate(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        return process.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[Stub]:
    tls = ensure_tls(tmp_path / "tls")
    recorder = Stub(tmp_path)

    async def handle(request: web.Request) -> web.Response:
        if request.method == "POST":
            body = await request.read()
            recorder.bodies.append((request.content_type, body))
            return web.json_response(protobuf.decode(body), status=201)
        if request.path in STUB_GETS:
            return web.json_response(STUB_GETS[request.path])
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": "NotFound", "code": 404}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_ssl_context())
    await site.start()
    try:
        port = runner.addresses[0][1]
        write_kubeconfig(tmp_path / "kubeconfig", server=f"https://127.0.0.1:{port}",
                         ca_pem=tls.ca_pem, token=tls.token)
        yield recorder
    finally:
        await runner.cleanup()


async def captured(stub: Stub, *args: str) -> tuple[Obj, Obj]:
    """(the decoded protobuf body of `kubectl create ARGS`, kubectl's dry-run JSON)."""
    split = args.index("--") if "--" in args else len(args)  # flags go before `-- CMD`
    code, out, err = await stub.kubectl("create", *args[:split], "--dry-run=client",
                                        "-o", "json", *args[split:])
    assert code == 0, err
    assert stub.bodies == []  # a client dry run sends nothing
    expected = json.loads(out)
    code, out, err = await stub.kubectl("create", *args)
    assert code == 0, err
    assert out.endswith(" created\n"), out  # kubectl read our JSON answer as its object
    [(content_type, body)] = stub.bodies
    assert content_type == "application/vnd.kubernetes.protobuf"
    assert body.startswith(b"k8s\x00")
    return protobuf.decode(body), expected


@pytest.fixture
def binary_file(tmp_path: Path) -> Path:
    path = tmp_path / "blob.bin"
    path.write_bytes(BINARY)
    return path


CREATES = [
    pytest.param(["namespace", "team-a"], id="namespace"),
    pytest.param(["service", "clusterip", "foo", "--tcp=80:8080", "--tcp=443:https"],
                 id="service-clusterip"),
    pytest.param(["service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"],
                 id="service-nodeport"),
    pytest.param(["configmap", "cm", "--from-literal=a=b", "--from-literal=empty=",
                  "--from-file=blob={binary}"], id="configmap"),
    pytest.param(["secret", "generic", "s", "--from-literal=password=hunter2",
                  "--from-file=key={binary}", "--type=Opaque"], id="secret"),
    pytest.param(["deployment", "web", "--image=nginx", "--replicas=3", "--port=80",
                  "--", "nginx", "-g", "daemon off;"], id="deployment"),
    pytest.param(["deployment", "idle", "--image=nginx", "--replicas=0"],
                 id="deployment-zero-replicas"),
    pytest.param(["job", "once", "--image=busybox", "--", "echo", "hi"], id="job"),
    pytest.param(["job", "manual", "--from=cronjob/nightly"], id="job-from-cronjob"),
    pytest.param(["cronjob", "nightly", "--image=busybox", "--schedule=0 0 * * *",
                  "--restart=OnFailure", "--", "date"], id="cronjob"),
    pytest.param(["quota", "q", "--hard=cpu=1500m,memory=1Gi,pods=10"], id="quota"),
    pytest.param(["serviceaccount", "robot"], id="serviceaccount"),
    pytest.param(["role", "reader", "--verb=get,list", "--resource=pods"], id="role"),
    pytest.param(["poddisruptionbudget", "pdb", "--selector=app=web", "--min-available=50%"],
                 id="poddisruptionbudget"),
]


@needs_kubectl
@pytest.mark.parametrize("args", CREATES)
async def test_kubectl_create_bodies_decode_to_its_json(stub: Stub, binary_file: Path,
                                                        args: list[str]) -> None:
    args = [a.replace("{binary}", str(binary_file)) for a in args]
    decoded, expected = await captured(stub, *args)
    assert decoded == expected


@needs_kubectl
async def test_values_that_need_a_json_form(stub: Stub, binary_file: Path) -> None:
    """Spot checks of what the equality above covers, so a regression reads plainly."""
    svc, _ = await captured(stub, "service", "clusterip", "foo", "--tcp=80:8080",
                            "--tcp=443:https")
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
        (80, 8080), (443, "https")]
    stub.bodies.clear()
    secret, _ = await captured(stub, "secret", "generic", "s", f"--from-file=key={binary_file}")
    assert base64.b64decode(secret["data"]["key"]) == BINARY
    stub.bodies.clear()
    deployment, _ = await captured(stub, "deployment", "idle", "--image=nginx", "--replicas=0")
    assert deployment["spec"]["replicas"] == 0  # a pointer: zero is kept, not dropped
    assert deployment["metadata"]["creationTimestamp"] is None
    stub.bodies.clear()
    quota, _ = await captured(stub, "quota", "q", "--hard=cpu=1500m,memory=1Gi")
    assert quota["spec"]["hard"] == {"cpu": "1500m", "memory": "1Gi"}


@needs_kubectl
async def test_kubectl_debug_copies_a_pod_over_protobuf(stub: Stub) -> None:
    """`kubectl debug --copy-to` posts a whole Pod: resources, env sources, volumes,
    tolerations, a zero grace period (a pointer) round-trip to the JSON it read."""
    code, _out, err = await stub.kubectl("debug", "web", "--copy-to=web-copy",
                                        "--image=busybox", "--container=dbg",
                                        "--attach=false", "-i=false", "--profile=general")
    assert code == 0, err
    [(_ct, body)] = stub.bodies
    pod = protobuf.decode(body)
    source = STUB_GETS["/api/v1/namespaces/default/pods/web"]
    assert pod["metadata"] == {"name": "web-copy", "namespace": "default",
                               "creationTimestamp": None}  # labels dropped by --copy-to
    source_spec = {k: v for k, v in source["spec"].items() if k != "containers"}
    assert {k: v for k, v in pod["spec"].items()
            if k not in ("containers", "shareProcessNamespace")} == source_spec
    web, dbg = pod["spec"]["containers"]
    assert web == source["spec"]["containers"][0]
    assert dbg == {"name": "dbg", "image": "busybox", "resources": {},
                   "terminationMessagePolicy": "File",
                   "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}}
    assert pod["status"] == {}


# ---- bodies kubectl has no typed command for: our own encoder over the same schema ------

def envelope(api_version: str, kind: str, raw: bytes, *, encoding: str = "") -> bytes:
    schema = protobuf._schema()
    unknown = schema.classes["k8s.io.apimachinery.pkg.runtime.Unknown"]()
    unknown.typeMeta.apiVersion = api_version  # type: ignore[attr-defined]
    unknown.typeMeta.kind = kind  # type: ignore[attr-defined]
    unknown.raw = raw  # type: ignore[attr-defined]
    if encoding:
        unknown.contentEncoding = encoding  # type: ignore[attr-defined]
    return protobuf.MAGIC + unknown.SerializeToString()


def test_replication_controller_and_times() -> None:
    classes = protobuf._schema().classes
    rc: Any = classes["k8s.io.api.core.v1.ReplicationController"]()
    rc.metadata.name = "kubia"
    rc.metadata.creationTimestamp.seconds = 1704164645  # 2024-01-02T03:04:05Z
    rc.metadata.generation = 0  # a plain Go int64 written as zero: omitted like omitempty
    rc.spec.replicas = 0
    rc.spec.selector["app"] = "kubia"
    rc.spec.template.metadata.labels["app"] = "kubia"
    container = rc.spec.template.spec.containers.add(name="kubia", image="kubia")
    container.ports.add(containerPort=8080, protocol="TCP")
    container.resources.limits["cpu"].string = "500m"
    # ProbeHandler is embedded in Go (`..handler` in the schema): its JSON joins the Probe's.
    container.readinessProbe.handler.httpGet.port.type = 1
    container.readinessProbe.handler.httpGet.port.strVal = "http"
    condition = rc.status.conditions.add(type="ReplicaFailure", status="False")
    condition.lastTransitionTime.seconds = 1704164645
    decoded = protobuf.decode(envelope("v1", "ReplicationController", rc.SerializeToString()))
    assert decoded == {
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "kubia", "creationTimestamp": "2024-01-02T03:04:05Z"},
        "spec": {"replicas": 0, "selector": {"app": "kubia"}, "template": {
            "metadata": {"labels": {"app": "kubia"}},
            "spec": {"containers": [{
                "name": "kubia", "image": "kubia",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"limits": {"cpu": "500m"}},
                "readinessProbe": {"httpGet": {"port": "http"}}}]}}},
        "status": {"conditions": [{"type": "ReplicaFailure", "status": "False",
                                   "lastTransitionTime": "2024-01-02T03:04:05Z"}]},
    }


def test_micro_time_and_raw_extension() -> None:
    classes = protobuf._schema().classes
    event: Any = classes["k8s.io.api.core.v1.Event"]()
    event.metadata.name = "e"
    event.eventTime.seconds, event.eventTime.nanos = 1704164645, 123456789
    revision: Any = classes["k8s.io.api.apps.v1.ControllerRevision"]()
    revision.metadata.name = "r"
    revision.data.raw = b'{"spec": {"template": {"x": [1, 2]}}}'
    revision.revision = 3
    assert protobuf.decode(envelope("v1", "Event", event.SerializeToString()))["eventTime"] \
        == "2024-01-02T03:04:05.123456Z"
    assert protobuf.decode(envelope("apps/v1", "ControllerRevision",
                                    revision.SerializeToString())) == {
        "apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "r"},
        "data": {"spec": {"template": {"x": [1, 2]}}}, "revision": 3}


# ---- hostile bodies -----------------------------------------------------------------------

@pytest.mark.parametrize("body, wording", [
    pytest.param(b"\x0a\x02{}", "does not appear to be a protobuf message", id="no-magic"),
    pytest.param(protobuf.MAGIC + b"\x0a\xff", "proto:", id="truncated-envelope"),
    pytest.param(envelope("v1", "Namespace", b"\x0a\x05\x0a\x03abc\x12"), "proto:",
                 id="truncated-object"),
    pytest.param(envelope("v1", "Namespace", b"\xf8\x07\x01"), "unknown field(s) [127]",
                 id="unknown-field"),
    pytest.param(envelope("v1", "Namespace", b"\x0a\x05\x0a\x03\xff\xfe\xfd"),
                 "not valid UTF-8", id="invalid-utf8"),
    pytest.param(envelope("v1", "Namespace", b"\x0a\x0b\x42\x09\x08\xff\xff\xff\xff\xff"
                          b"\xff\xff\x7f"), "time out of range", id="time-out-of-range"),
    pytest.param(envelope("apps/v1", "ControllerRevision", b"\x12\x04\x0a\x02{x"),
                 "not JSON", id="raw-extension-not-json"),
    pytest.param(envelope("apps/v1", "ControllerRevision",
                          b"\x12\xca\x01\x0a\xc7\x01" + b"[" * 100 + b"]" * 99),
                 "not JSON", id="raw-extension-unbalanced"),
    pytest.param(envelope("v1", "Namespace", b"", encoding="gzip"),
                 "unsupported content encoding", id="content-encoding"),
])
def test_undecodable_bodies_are_bad_requests(body: bytes, wording: str) -> None:
    with pytest.raises(BadRequest) as info:
        protobuf.decode(body)
    assert wording in str(info.value)
    assert info.value.to_status()["code"] == 400


def test_deep_embedded_json_is_refused() -> None:
    revision: Any = protobuf._schema().classes["k8s.io.api.apps.v1.ControllerRevision"]()
    revision.data.raw = b"[" * 90 + b"]" * 90  # valid JSON, deeper than MAX_DEPTH
    with pytest.raises(BadRequest, match="nesting deeper than"):
        protobuf.decode(envelope("apps/v1", "ControllerRevision", revision.SerializeToString()))


@pytest.mark.parametrize("api_version, kind", [
    pytest.param("v1", "PodSpec", id="not-a-kind"),
    pytest.param("apps/v1", "Pod", id="wrong-group"),
    pytest.param("networking.k8s.io/v1", "Ingress", id="group-without-schema"),
    pytest.param("", "", id="empty-type-meta"),
])
def test_kinds_without_a_schema_are_415(api_version: str, kind: str) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        protobuf.decode(envelope(api_version, kind, b""))
    assert info.value.to_status()["code"] == 415


def test_random_bytes_never_crash() -> None:
    """Fuzz: random envelopes and random object bytes only ever give 400 or 415."""
    rng = random.Random(1234)
    seeds = [envelope("v1", kind, b"") for kind in ("Namespace", "Pod", "Service")]
    for i in range(3000):
        if i % 3 == 0:
            body = protobuf.MAGIC + rng.randbytes(rng.randint(0, 64))
        elif i % 3 == 1:
            kind = rng.choice(["Pod", "Service", "ConfigMap", "Secret"])
            body = envelope("v1", kind, rng.randbytes(rng.randint(0, 96)))
        else:  # flip bytes of a valid envelope
            body = bytearray(rng.choice(seeds) + rng.randbytes(8))
            for _ in range(3):
                body[rng.randrange(4, len(body))] = rng.randrange(256)
            body = bytes(body)
        try:
            result = protobuf.decode(body)
        except (BadRequest, UnsupportedMediaType):
            continue
        json.dumps(result)  # whatever decoded is plain JSON


# ---- through the API server ---------------------------------------------------------------

async def test_server_answers_bad_protobuf_with_a_status(tmp_path: Path) -> None:
    client: TestClient[Any, Any]
    async with app_client(tmp_path) as client:
        for body, code in ((protobuf.MAGIC + b"\x0a\xff", 400),
                           (envelope("v1", "PodSpec", b""), 415),
                           (envelope("networking.k8s.io/v1", "Ingress", b""), 415)):
            response = await client.post("/api/v1/namespaces", data=body, headers={
                "Content-Type": "application/vnd.kubernetes.protobuf"})
            status = json.loads(await response.text())
            assert (response.status, status["kind"], status["code"]) == (code, "Status", code)


@needs_kubectl
def test_kubectl_creates_through_the_api_server(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        code, out, err = cluster.kubectl("create", "namespace", "team-a")
        assert (code, out) == (0, "namespace/team-a created\n"), err
        code, out, err = cluster.kubectl("create", "service", "clusterip", "foo",
                                         "--tcp=80:8080")
        assert (code, out) == (0, "service/foo created\n"), err
        code, out, err = cluster.kubectl("get", "service", "foo", "-o", "json")
        assert code == 0, err
        service = json.loads(out)
        assert service["spec"]["ports"] == [{"name": "80-8080", "port": 80, "protocol": "TCP",
                                            "targetPort": 8080}]
        assert service["spec"]["selector"] == {"app": "foo"}
        assert service["spec"]["type"] == "ClusterIP"


def test_protobuf_runtime_loads_only_for_a_protobuf_body() -> None:
    """CLI start-up and the server's import never pay for the runtime or the schema."""
    probe = ("import sys, miniorch.api.server, miniorch.cli.main; "
             "print(sorted(m for m in sys.modules "
             "if m.startswith(('google.protobuf', 'miniorch.api.protobuf'))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True, cwd=Path(__file__).parents[2])
    assert result.stdout.strip() == "[]"
