"""Real sandboxed pods resolve cluster names through the DNS server (root only).

A test bridge of its own (10.X.0.0/16, X random in 100-149) with the DNS server on its
gateway, port 53, as the cluster runs it; the kubelet's `dns.service_ip` is that gateway
here, because the ServiceProxy that carries 10.96.0.10 to the gateway is not part of
this test. The pods' resolv.conf is the kubelet's ClusterFirst file, read by glibc
(python's getaddrinfo) and busybox's nslookup. Nothing leaves the machine: the server's
only upstream is the fake on loopback, and every name asked is in the cluster.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from miniorch.api.kinds import ENDPOINTS, PODS, SERVICES
from miniorch.api.registry import Registry
from miniorch.api.store import Store
from miniorch.core import podfiles
from miniorch.core.objects import Obj
from miniorch.core.settings import DnsSettings, NetworkSettings, Settings
from miniorch.dns import DnsServer
from miniorch.machinery.informer import SharedInformerFactory
from tests.dns.conftest import FakeUpstream
from tests.leakcheck import LeakChecker
from tests.node.nodehelpers import FAST, container_status, running_kubelet, wait_for

pytestmark = pytest.mark.root

try:
    from miniorch.images.store import ImageStore
    from miniorch.node.runtime import SandboxRuntime
    from miniorch.sandbox.network import HostNetwork
    IMPORT_ERROR = ""
except ImportError as exc:
    IMPORT_ERROR = str(exc)

RESOLVE = ("import socket\n"
           "for name in ('web', 'web.default', 'web.default.svc.cluster.local', 'db', "
           "'db-0.db.default.svc.cluster.local'):\n"
           "    try:\n"
           "        ips = sorted({a[4][0] for a in socket.getaddrinfo(name, 80, "
           "type=socket.SOCK_STREAM)})\n"
           "    except OSError as exc:\n"
           "        ips = ['error ' + str(exc)]\n"
           "    print(name, ' '.join(ips), flush=True)\n"
           "print(open('/etc/resolv.conf').read(), flush=True)\n")


class PodNet:
    """The test bridge; `running()` starts the registry, informers, fake upstream and
    the DNS server on the gateway (in the test's task: a task group cannot span a
    fixture's setup and teardown)."""

    def __init__(self, tmp_path: Path, network: NetworkSettings, gateway: str,
                 tag: str) -> None:
        self.tmp_path = tmp_path
        self.network = network
        self.gateway = gateway
        self.upstream = FakeUpstream()
        self.store = Store(None)
        self.registry = Registry(self.store, network=network)
        self.registry.ensure_system_objects()
        self.settings = Settings(home=tmp_path)
        self.runtime = SandboxRuntime(images=ImageStore(self.settings.images_dir),
                                      id_prefix=f"zd{tag}")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[PodNet]:
        async with anyio.create_task_group() as tg:
            await tg.start(self.upstream.run)
            self.settings = Settings(
                home=self.tmp_path, node_heartbeat_seconds=0.5, network=self.network,
                dns=DnsSettings(service_ip=self.gateway, listen_host=self.gateway,
                                upstreams=(("127.0.0.1", self.upstream.port),),
                                upstream_timeout=0.5))
            informers = SharedInformerFactory(self.registry)
            await tg.start(informers.run)
            await tg.start(DnsServer(registry=self.registry, settings=self.settings,
                                     informers=informers, listen_host=self.gateway).run)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()


@pytest.fixture
async def pod_net(tmp_path: Path) -> AsyncIterator[PodNet]:
    if IMPORT_ERROR:
        pytest.skip(f"sandbox runtime not importable: {IMPORT_ERROR}")
    if os.geteuid() != 0:
        pytest.skip("real sandboxes need root")
    tag = secrets.token_hex(3)
    # 10.100-149: away from the default pod/service ranges and the other root tests'.
    subnet = secrets.choice(range(100, 150))
    gateway = f"10.{subnet}.0.1"
    network = NetworkSettings(pod_cidr=f"10.{subnet}.0.0/16", bridge_name=f"mod{tag}")
    checker = LeakChecker(prefixes=[f"zd{tag}", network.bridge_name], mount_roots=[tmp_path])
    checker.start()
    host = HostNetwork(bridge=network.bridge_name, gateway_cidr=f"{gateway}/16")
    await host.setup()
    net = PodNet(tmp_path, network, gateway, tag)
    try:
        yield net
    finally:
        net.store.close()
        await host.teardown()
    checker.check()


def log_of(net: PodNet, pod: Obj) -> str:
    meta = pod["metadata"]
    directory = podfiles.pod_dir(net.settings.pods_dir, meta["namespace"], meta["name"],
                                 meta["uid"])
    path = podfiles.container_log(directory, "main", 0)
    return "\n".join(line.text for line in podfiles.read_log_lines(path)) if path.exists() else ""


def finished(net: PodNet, pod: Obj) -> bool:
    return bool(container_status(net.registry, pod).get("state", {}).get("terminated"))


def run_pod(net: PodNet, node: str, name: str, image: str, command: list[str]) -> Obj:
    return net.registry.create(PODS, {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "restartPolicy": "Never",
                 "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "image": image, "command": command}]}})


async def test_pods_resolve_services_through_their_resolv_conf(pod_net: PodNet) -> None:
    async with pod_net.running():
        await _resolve_in_pods(pod_net)
    # Every name asked was the cluster's: nothing went to the upstream.
    assert pod_net.upstream.questions == []


async def _resolve_in_pods(pod_net: PodNet) -> None:
    registry = pod_net.registry
    web = registry.create(SERVICES, {"metadata": {"name": "web", "namespace": "default"},
                                     "spec": {"ports": [{"port": 80}]}})
    web_ip = web["spec"]["clusterIP"]
    registry.create(SERVICES, {"metadata": {"name": "db", "namespace": "default"},
                               "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}})
    registry.create(ENDPOINTS, {"metadata": {"name": "db", "namespace": "default"},
                                "subsets": [{"addresses": [
                                    {"ip": "10.250.0.7", "hostname": "db-0"},
                                    {"ip": "10.250.0.8"}],
                                    "ports": [{"port": 5432, "protocol": "TCP"}]}]})
    async with running_kubelet(registry, pod_net.settings, pod_net.runtime, config=FAST,
                               index=4) as node:
        glibc = run_pod(pod_net, node.name, "resolve", "python", ["python3", "-c", RESOLVE])
        lookup = run_pod(pod_net, node.name, "lookup", "busybox", [
            "sh", "-c", "nslookup web.default.svc.cluster.local. && "
                        "nslookup db.default.svc.cluster.local."])
        await wait_for(lambda: finished(pod_net, glibc) and finished(pod_net, lookup),
                       within=60, what="both pods finished (python's first unpack is slow)")
        lines = log_of(pod_net, glibc).splitlines()
        answers = dict(line.split(" ", 1) for line in lines[:5])
        assert answers == {"web": web_ip, "web.default": web_ip,
                           "web.default.svc.cluster.local": web_ip,
                           "db": "10.250.0.7 10.250.0.8",
                           "db-0.db.default.svc.cluster.local": "10.250.0.7"}, lines
        assert lines[5:8] == [
            "search default.svc.cluster.local svc.cluster.local cluster.local",
            f"nameserver {pod_net.gateway}", "options ndots:5"]
        assert container_status(registry, glibc)["state"]["terminated"]["exitCode"] == 0
        nslookup = log_of(pod_net, lookup)
        assert container_status(registry, lookup)["state"]["terminated"]["exitCode"] == 0, \
            nslookup
        assert f"Server:\t\t{pod_net.gateway}" in nslookup, nslookup
        assert f"Address: {web_ip}" in nslookup, nslookup
        assert "Address: 10.250.0.7" in nslookup and "Address: 10.250.0.8" in nslookup
