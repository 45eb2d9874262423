"""`Cluster`: the one process `miniorch up` runs — every actor in one task group.

Start order is dependency order, each step awaited with `tg.start(...)` so the next
begins only when the previous is really ready (port bound, node registered):

    store + registry (objects restored from SQLite)
      → host network (bridge)      → ApiServer (HTTPS bound, kubeconfig written)
      → Dashboard                  (loopback HTTP, a client of the API)
      → SharedInformerFactory      (one list + watch per resource, for every actor below)
      → DnsServer                  (root only: UDP+TCP 53 on the gateway, kube-dns Service)
      → ControllerManager          → Kubelet node-1..N (each Node Ready)
      → HollowKubelet hollow-node-1..M (`--hollow-nodes`: Nodes, Leases and pod status,
                                   no processes; node/hollow.py)
      → ServiceProxy               → ResourceMetrics (scrapes every kubelet: kubectl top)
      → demo: kubia image, RC and LoadBalancer Service

Stopping is the reverse, done by cancelling the task group: the proxy closes its
listeners, each kubelet stops its pods gracefully (pod objects stay in the store, so
the next `up` runs them again), then the bridge and every local address go.
Progress goes to a `Reporter`, which the CLI prints or pipes to a detaching parent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import structlog
from anyio.abc import TaskStatus

from miniorch.api.kinds import ENDPOINTS, REPLICATION_CONTROLLERS, SERVICES
from miniorch.api.metrics_api import ResourceMetrics
from miniorch.api.registry import Registry
from miniorch.api.server import ApiServer
from miniorch.api.store import Store
from miniorch.cluster.rootless import runtime_for_mode
from miniorch.controllers.manager import ControllerManager
from miniorch.core.clock import Clock, SystemClock
from miniorch.core.dialer import Dialer
from miniorch.core.objects import NodeName, Obj
from miniorch.core.settings import Settings
from miniorch.dashboard.server import Dashboard
from miniorch.dns import DnsServer
from miniorch.images import ImageStore, build
from miniorch.images.regconfig import open_store
from miniorch.machinery.informer import SharedInformerFactory
from miniorch.node.cri import ContainerRuntime
from miniorch.node.kubelet import Kubelet
from miniorch.node.runtime import SandboxRuntime
from miniorch.proxy import ServiceProxy
from miniorch.proxy.service_proxy import NoLocalAddresses
from miniorch.sandbox.mode import ModeKind, SandboxMode
from miniorch.sandbox.network import HostNetwork
from miniorch.sandbox.pod import ShimSpawner

log = structlog.get_logger(__name__)

DEMO_APP = "kubia"
DEMO_SERVICE = "kubia-http"
DEMO_PORT = 8080
SAMPLE_APP_DIR = Path(__file__).resolve().parents[2] / "sample_app"


Reporter = Callable[[str], None]


@dataclass
class StartupTimes:
    """Seconds from `up` to each milestone (what `up` prints, and `make bench` reads)."""

    started: float = field(default_factory=time.monotonic)
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, what: str) -> float:
        elapsed = time.monotonic() - self.started
        self.marks[what] = round(elapsed, 4)
        return elapsed


def demo_objects() -> tuple[Obj, Obj]:
    """The seed's app: RC `kubia` x 3 and LoadBalancer Service `kubia-http`."""
    labels = {"run": DEMO_APP}
    rc: Obj = {
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": DEMO_APP, "namespace": "default", "labels": labels},
        "spec": {"replicas": 3, "selector": labels, "template": {
            "metadata": {"labels": labels},
            # IfNotPresent: the demo runs the image `up` just built, even when a
            # default registry is configured that does not have it.
            "spec": {"containers": [{"name": DEMO_APP, "image": DEMO_APP,
                                     "imagePullPolicy": "IfNotPresent",
                                     "ports": [{"containerPort": DEMO_PORT,
                                                "protocol": "TCP"}]}]}}},
    }
    svc: Obj = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": DEMO_SERVICE, "namespace": "default", "labels": labels},
        "spec": {"type": "LoadBalancer", "selector": labels,
                 "ports": [{"port": DEMO_PORT, "targetPort": DEMO_PORT, "protocol": "TCP"}]},
    }
    return rc, svc


class Cluster:
    def __init__(self, settings: Settings, *, report: Reporter | None = None,
                 clock: Clock | None = None, mode: SandboxMode | None = None) -> None:
        """`mode`: how pods are sandboxed (cluster/rootless.py); None: as root."""
        self.mode = mode or SandboxMode(ModeKind.ROOT, "root", None)
        self.settings = settings
        self.clock = clock or SystemClock()
        self.report = report or (lambda line: None)
        self.times = StartupTimes()
        self.spawner: ShimSpawner | None = None
        self.resource_metrics = ResourceMetrics(clock=self.clock,
                                                resolution=settings.metrics_resolution)

    async def run(self, *, task_status: TaskStatus[str | None] = anyio.TASK_STATUS_IGNORED
                  ) -> None:
        """Run until cancelled. `task_status.started(url)` once Ready (and the demo, if
        any, answers): `url` is the demo's curl URL, or None without a demo."""
        settings = self.settings
        settings.home.mkdir(parents=True, exist_ok=True)
        store = Store(settings.store_path, clock=self.clock, history=settings.watch_history)
        registry = Registry(store, clock=self.clock, network=settings.network)
        registry.ensure_system_objects()
        network = settings.network
        # Without root there is no bridge: pods are reached through a dialer instead.
        host_network = (HostNetwork(bridge=network.bridge_name,
                                    gateway_cidr=_gateway_cidr(network.pod_cidr))
                        if self.mode.kind is ModeKind.ROOT else None)
        try:
            if host_network is not None:
                await host_network.setup()
            async with anyio.create_task_group() as tg:
                await self._start(tg, registry, host_network, task_status)
        finally:
            with anyio.CancelScope(shield=True):
                if self.spawner is not None:
                    await self.spawner.aclose()  # the kubelets have stopped every pod
                if host_network is not None:
                    await host_network.teardown()
                store.close()

    async def _start(self, tg: anyio.abc.TaskGroup, registry: Registry,
                     host_network: HostNetwork | None,
                     task_status: TaskStatus[str | None]) -> None:
        settings = self.settings
        # The API server makes (or reuses) the CA, certificate and token, and writes
        # the kubeconfig once its port is bound.
        # As root it also listens on the bridge's gateway: pods reach it there through
        # the `kubernetes` Service. Rootless has no bridge (nor ClusterIPs): pods see
        # KUBERNETES_SERVICE_HOST but cannot reach it.
        # metrics-server's part: every kubelet is scraped (added as each starts); the API
        # serves the readings as metrics.k8s.io, for `kubectl top`.
        api = ApiServer(settings=settings, registry=registry, clock=self.clock,
                        pod_gateway=host_network.gateway_ip if host_network else None,
                        resource_metrics=self.resource_metrics)
        await tg.start(api.run)
        self.report(f"API server listening at {settings.api_url} "
                    f"({self.times.mark('api'):.2f}s)")
        # The dashboard is a client of the API with the cluster's own credentials.
        assert api.material is not None
        dashboard_url = await tg.start(Dashboard(
            settings=settings, api_url=api.url, api_ssl=api.material.client_ssl_context(),
            api_token=api.material.token).run)
        self.report(f"dashboard at {dashboard_url} (`miniorch dashboard` logs you in)")

        # Built-in base images, then the registries of $MINIORCH_HOME/registries.json
        # (or $MINIORCH_REGISTRY), so pods and FROM can pull.
        images = open_store(settings.home)
        demo_build = None
        if settings.demo:
            # Build the image while the control plane starts: a cached build is ~ms,
            # a first build pays the base image once.
            demo_build = _BackgroundBuild(images, SAMPLE_APP_DIR, DEMO_APP)
            tg.start_soon(demo_build.run)

        # One informer per resource, shared: the controllers, every kubelet and the
        # proxy register handlers on the same pods/services/... watches.
        informers = SharedInformerFactory(registry)
        await tg.start(informers.run)
        if host_network is not None:
            # Cluster DNS on the gateway, published as kube-system/kube-dns (10.96.0.10),
            # before any pod starts and reads its resolv.conf. Rootless mode has no
            # bridge for pods to reach it by: no DNS there (dns/server.py).
            dns = DnsServer(registry=registry, settings=settings, informers=informers,
                            listen_host=settings.dns.listen_host or host_network.gateway_ip)
            try:
                dns_port = await tg.start(dns.run)
            except OSError as exc:
                # Port 53 taken (a dnsmasq on 0.0.0.0:53): the cluster still runs, as
                # Kubernetes does with CoreDNS down, and says what is missing.
                self.report(f"WARNING: cluster DNS not started: {dns.listen_host}:"
                            f"{settings.dns.port}: {exc.strerror or exc}; pods cannot "
                            "resolve Service names")
            else:
                self.report(f"cluster DNS at {dns.listen_host}:{dns_port} "
                            f"(kube-dns {settings.dns.service_ip})")
        await tg.start(ControllerManager(registry=registry, settings=settings,
                                         clock=self.clock, informers=informers).run)
        runtime, dialer = runtime_for_mode(self.mode, images)
        if isinstance(runtime, SandboxRuntime) and ShimSpawner.available():
            # Pod shims are forked from one small zygote, not from this big process:
            # ~1 ms per pod instead of a big fork plus ~70 ms of interpreter start.
            runtime.spawner = self.spawner = ShimSpawner()
        async with anyio.create_task_group() as nodes_tg:
            for index in range(1, settings.nodes + 1):
                nodes_tg.start_soon(self._start_node, tg, index, registry, informers,
                                    runtime, dialer)
        self.report(f"{settings.nodes} nodes Ready ({self.times.mark('nodes'):.2f}s)")
        if settings.hollow_nodes:
            await self._start_hollow_nodes(tg, registry, informers)
        await tg.start(ServiceProxy(registry=registry, settings=settings,
                                    local_addresses=(_HostAddresses(host_network)
                                                     if host_network is not None
                                                     else NoLocalAddresses()),
                                    dialer=dialer, informers=informers,
                                    clock=self.clock).run)
        await tg.start(self.resource_metrics.run)
        self.report(f"cluster Ready ({self.times.mark('ready'):.2f}s)")

        url: str | None = None
        if demo_build is not None:
            await demo_build.done.wait()
            if demo_build.error:
                raise demo_build.error
            self.report(f"image {DEMO_APP} built ({self.times.mark('image'):.2f}s)")
            url = await self._deploy_demo(registry)
            self.report(f"{DEMO_SERVICE} answering at {url} "
                        f"({self.times.mark('demo'):.2f}s)")
        task_status.started(url)

    async def _start_node(self, tg: anyio.abc.TaskGroup, index: int, registry: Registry,
                          informers: SharedInformerFactory, runtime: ContainerRuntime,
                          dialer: Dialer | None) -> None:
        kubelet = Kubelet(name=NodeName(f"node-{index}"), index=index, registry=registry,
                          settings=self.settings, clock=self.clock, runtime=runtime,
                          dialer=dialer, informers=informers)
        await tg.start(kubelet.run)
        self.resource_metrics.add_source(kubelet)

    async def _start_hollow_nodes(self, tg: anyio.abc.TaskGroup, registry: Registry,
                                  informers: SharedInformerFactory) -> None:
        """hollow-node-1..M, numbered after the real nodes (their pod /24s follow)."""
        from miniorch.node.hollow import HollowKubelet, HollowProfile
        profile = HollowProfile.parse(self.settings.hollow_profile)
        count = self.settings.hollow_nodes
        async with anyio.create_task_group() as nodes_tg:
            for i in range(1, count + 1):
                kubelet = HollowKubelet(name=NodeName(f"hollow-node-{i}"),
                                        index=self.settings.nodes + i, registry=registry,
                                        settings=self.settings, clock=self.clock,
                                        informers=informers, profile=profile)
                nodes_tg.start_soon(tg.start, kubelet.run)
        self.report(f"{count} hollow nodes Ready ({self.times.mark('hollow'):.2f}s)")

    async def _deploy_demo(self, registry: Registry) -> str:
        """Create the demo's objects unless a restored store has them; wait until the
        Service has its EXTERNAL-IP and every replica is a Ready endpoint."""
        rc, svc = demo_objects()
        if registry.try_get(REPLICATION_CONTROLLERS, "default", DEMO_APP) is None:
            registry.create(REPLICATION_CONTROLLERS, rc)
        if registry.try_get(SERVICES, "default", DEMO_SERVICE) is None:
            registry.create(SERVICES, svc)
        return await wait_for_service(registry, "default", DEMO_SERVICE)


async def wait_for_service(registry: Registry, namespace: str, name: str) -> str:
    """Wait (on watches, not polls) until a LoadBalancer Service has an ingress IP and
    as many Ready endpoints as its RC wants; return its curl URL."""
    def ready() -> str | None:
        svc = registry.try_get(SERVICES, namespace, name)
        if svc is None:
            return None
        ingress = (svc.get("status", {}).get("loadBalancer", {}).get("ingress") or [])
        if not ingress or not ingress[0].get("ip"):
            return None
        rc = registry.try_get(REPLICATION_CONTROLLERS, namespace, DEMO_APP)
        wanted = int((rc or {}).get("spec", {}).get("replicas", 1))
        ep = registry.try_get(ENDPOINTS, namespace, name)
        ready_count = sum(len(s.get("addresses") or []) for s in (ep or {}).get("subsets") or [])
        if ready_count < wanted:
            return None
        port = svc["spec"]["ports"][0]["port"]
        return f"http://{ingress[0]['ip']}:{port}"

    since = registry.store.resource_version
    if url := ready():
        return url
    svc_watch = registry.watch(SERVICES, namespace, since=since)
    ep_watch = registry.watch(ENDPOINTS, namespace, since=since)
    woken = anyio.Event()
    result: list[str] = []

    async def follow(watch: object) -> None:
        async for _ in watch:  # type: ignore[attr-defined]
            if url := ready():
                result.append(url)
                woken.set()
                return

    async with svc_watch, ep_watch, anyio.create_task_group() as tg:
        tg.start_soon(follow, svc_watch)
        tg.start_soon(follow, ep_watch)
        await woken.wait()
        tg.cancel_scope.cancel()
    return result[0]


class _BackgroundBuild:
    """Builds the demo image in a worker thread (it is file I/O and hashing)."""

    def __init__(self, images: ImageStore, context: Path, tag: str) -> None:
        self.images = images
        self.context = context
        self.tag = tag
        self.done = anyio.Event()
        self.error: BaseException | None = None

    async def run(self) -> None:
        try:
            await anyio.to_thread.run_sync(
                lambda: build(self.images, self.context, tag=self.tag,
                              progress=lambda line: log.debug("build", line=line)))
        except Exception as exc:  # reported by the cluster, which then stops
            self.error = exc
        finally:
            self.done.set()


class _HostAddresses:
    """The proxy's `LocalAddresses`, served by the host network (ClusterIPs on the host)."""

    def __init__(self, host_network: HostNetwork) -> None:
        self._network = host_network

    async def add(self, ip: str) -> None:
        await self._network.add_local_address(ip)

    async def remove(self, ip: str) -> None:
        await self._network.remove_local_address(ip)


def _gateway_cidr(pod_cidr: str) -> str:
    """10.244.0.0/16 → 10.244.0.1/16: the bridge's address, every pod's default route."""
    import ipaddress
    net = ipaddress.ip_network(pod_cidr)
    return f"{net.network_address + 1}/{net.prefixlen}"


def pid_alive(pid: int) -> bool:
    """True if `pid` runs (a zombie — killed, not yet reaped by its parent — does not)."""
    import psutil
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
