"""API access from pods on the node side: the projected `kube-api-access-*` volume
(token, ca.crt, namespace; the token renewed at 80 % of its life) and the Service
variables (KUBERNETES_SERVICE_HOST, Docker-link KUBERNETES_PORT_*), as rules and
through a kubelet running plain processes (ProcessRuntime)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from miniorch.api.kinds import PODS, SERVICES
from miniorch.api.kinds.serviceaccount import api_access_volume
from miniorch.api.registry import Registry
from miniorch.api.satokens import ServiceAccountTokens
from miniorch.core import podfiles
from miniorch.core.objects import Obj
from miniorch.core.settings import Settings
from miniorch.node.envvars import service_env
from miniorch.node.processes import ProcessRuntime
from miniorch.node.volumes import PodVolumes, TokenError, VolumeError
from tests.node.nodehelpers import PY, container_status, make_pod, pod_of, running_kubelet, wait_for

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class Objects:
    def __init__(self) -> None:
        self.config_maps: dict[str, Obj] = {"kube-root-ca.crt": {"data": {"ca.crt": CA}}}

    def config_map(self, namespace: str, name: str) -> Obj | None:
        return self.config_maps.get(name)

    def secret(self, namespace: str, name: str) -> Obj | None:
        return None


class Issuer:
    """A stand-in TokenSource (the kubelet's is the API's issuer): counts requests."""

    def __init__(self) -> None:
        self.issued = 0
        self.fail = False

    def __call__(self, audience: str, seconds: int) -> tuple[str, float]:
        if self.fail:
            raise TokenError('serviceaccounts "default" not found')
        self.issued += 1
        return f"token-{self.issued}-{audience}-{seconds}", 1000.0 + seconds


def projected_pod() -> Obj:
    return {"metadata": {"name": "p", "namespace": "shop", "uid": "u-1"},
            "spec": {"volumes": [api_access_volume("kube-api-access-abcde")],
                     "containers": [{"name": "c"}]}}


def test_projected_volume_files_and_token_renewal(tmp_path: Path) -> None:
    clock = [1000.0]
    issuer = Issuer()
    volumes = PodVolumes(projected_pod(), tmp_path, Objects(), tokens=issuer,
                         now=lambda: clock[0])
    assert volumes.has_tokens
    volumes.setup()
    root = tmp_path / ".volumes/kubernetes.io~projected/kube-api-access-abcde"
    assert (root / "token").read_text() == "token-1--3607"
    assert (root / "ca.crt").read_text() == CA
    assert (root / "namespace").read_text() == "shop"
    assert (root / "token").stat().st_mode & 0o777 == 0o644
    # Due at 80 % of its 3607 s life.
    assert volumes.next_token_refresh() == pytest.approx(1000.0 + 0.8 * 3607)
    clock[0] = 1000.0 + 0.79 * 3607
    assert volumes.refresh() == [] and issuer.issued == 1
    clock[0] = 1000.0 + 0.81 * 3607
    assert volumes.refresh() == ["kube-api-access-abcde"]
    assert (root / "token").read_text() == "token-2--3607"
    # The issuer failing later keeps the token in place (it has not expired).
    issuer.fail = True
    clock[0] += 3000
    assert volumes.refresh() == []
    assert (root / "token").read_text() == "token-2--3607"


def test_a_token_that_cannot_be_had_is_a_failed_mount(tmp_path: Path) -> None:
    issuer = Issuer()
    issuer.fail = True
    volumes = PodVolumes(projected_pod(), tmp_path, Objects(), tokens=issuer)
    with pytest.raises(VolumeError) as caught:
        volumes.setup()
    assert caught.value.event_message() == (
        'MountVolume.SetUp failed for volume "kube-api-access-abcde" : failed to fetch '
        'token: serviceaccounts "default" not found')


def _service(name: str, namespace: str, ip: str, *ports: Obj) -> Obj:
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": ip, "ports": list(ports)}}


def test_service_variables_as_kubelet_sets_them() -> None:
    kubernetes = _service("kubernetes", "default", "10.96.0.1",
                          {"name": "https", "port": 443, "protocol": "TCP"})
    web = _service("kubia-http", "shop", "10.96.0.20", {"port": 8080, "protocol": "TCP"},
                   {"name": "dns-udp", "port": 53, "protocol": "UDP"})
    headless = _service("db", "shop", "None", {"port": 5432})
    elsewhere = _service("other", "default", "10.96.0.30", {"port": 80})
    pod = {"metadata": {"name": "p", "namespace": "shop"}, "spec": {}}
    env = service_env(pod, [kubernetes, web, headless, elsewhere])
    assert {k: v for k, v in env.items() if k.startswith("KUBERNETES_")} == {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443", "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp", "KUBERNETES_PORT_443_TCP_PORT": "443",
        "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1"}
    assert env["KUBIA_HTTP_SERVICE_HOST"] == "10.96.0.20"
    assert env["KUBIA_HTTP_SERVICE_PORT"] == "8080"
    assert env["KUBIA_HTTP_SERVICE_PORT_DNS_UDP"] == "53"
    assert env["KUBIA_HTTP_PORT"] == "tcp://10.96.0.20:8080"
    assert env["KUBIA_HTTP_PORT_53_UDP"] == "udp://10.96.0.20:53"
    assert not any(k.startswith(("DB_", "OTHER_")) for k in env)
    # enableServiceLinks: false keeps only the master service's.
    pod["spec"]["enableServiceLinks"] = False
    assert all(k.startswith("KUBERNETES_") for k in service_env(pod, [kubernetes, web]))


PRINT = ("import json, os; d = '/var/run/secrets/kubernetes.io/serviceaccount'; "
         "print(json.dumps({k: v for k, v in os.environ.items() "
         "if k.startswith('KUBERNETES_')}))")


async def test_a_pod_gets_a_token_bound_to_it_and_the_api_variables(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    tokens = ServiceAccountTokens.load(settings.tls_dir)
    async with running_kubelet(registry, settings, runtime) as node:
        pod = make_pod(registry, node.name, image="python", restart_policy="Never",
                       command=[PY, "-c", PRINT])
        (volume,) = [v["name"] for v in pod["spec"]["volumes"]]
        await wait_for(lambda: "terminated" in container_status(registry, pod).get("state", {}),
                       what="terminated")
        directory = podfiles.pod_dir(settings.pods_dir, "default", pod["metadata"]["name"],
                                     pod["metadata"]["uid"])
        files = directory / ".volumes/kubernetes.io~projected" / volume
        assert (files / "namespace").read_text() == "default"
        assert (files / "ca.crt").read_bytes() == (settings.tls_dir / "ca.crt").read_bytes()
        token = (files / "token").read_text()
        user = tokens.authenticate(registry, token, registry.clock.now().timestamp())
        assert user is not None
        assert user.username == "system:serviceaccount:default:default"
        assert user.extra["authentication.kubernetes.io/pod-uid"] == [pod["metadata"]["uid"]]
        log = podfiles.container_log(directory, "kubia", 0).read_text()
        env = json.loads(log.splitlines()[0].split(" ", 3)[3])
        service = registry.get(SERVICES, "default", "kubernetes")
        assert env["KUBERNETES_SERVICE_HOST"] == service["spec"]["clusterIP"] == "10.96.0.1"
        assert env["KUBERNETES_SERVICE_PORT"] == env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
        assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.96.0.1"
        registry.delete(PODS, "default", pod["metadata"]["name"], grace_period_seconds=0)
        await wait_for(lambda: pod_of(registry, pod) is None, what="pod removed")
        # Gone with its pod.
        assert tokens.authenticate(registry, token, registry.clock.now().timestamp()) is None
