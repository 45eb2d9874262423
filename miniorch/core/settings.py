"""Cluster settings: one frozen dataclass tree, built once by the CLI and injected.

Nothing in miniorch reads environment variables or globals after start-up; every
component receives the `Settings` it needs, so tests can build their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from miniorch.core.home import default_home

__all__ = ["DnsSettings", "NetworkSettings", "Settings", "default_home"]


@dataclass(frozen=True, kw_only=True)
class NetworkSettings:
    """Address plan. These ranges exist only inside miniorch's bridge and namespaces."""

    pod_cidr: str = "10.244.0.0/16"
    """Pods get addresses from here; node N owns 10.244.N.0/24."""
    service_cidr: str = "10.96.0.0/16"
    """ClusterIPs are allocated from here (10.96.0.1 is the `kubernetes` service)."""
    loadbalancer_cidr: str = "127.0.100.0/24"
    """LoadBalancer EXTERNAL-IPs: loopback, so the host can curl them."""
    node_port_range: tuple[int, int] = (30000, 32767)
    bridge_name: str = "miniorch0"
    """One Linux bridge carries every node's pod /24 (pods sit on one L2 segment)."""


@dataclass(frozen=True, kw_only=True)
class DnsSettings:
    """Cluster DNS (miniorch/dns): the server the kube-dns Service fronts, and what
    the kubelet writes into each pod's /etc/resolv.conf."""

    cluster_domain: str = "cluster.local"
    service_ip: str = "10.96.0.10"
    """kube-dns' ClusterIP: the pods' nameserver (the ClusterIP allocator never hands
    out the service CIDR's .10)."""
    listen_host: str | None = None
    """Where the server binds, UDP and TCP; None: the bridge's gateway (10.244.0.1),
    which the kube-dns Endpoints name. Tests bind loopback."""
    port: int = 53
    """0: any free port (the same number for UDP and TCP; tests)."""
    upstreams: tuple[tuple[str, int], ...] | None = None
    """Where names outside the cluster go; None: the nameservers of
    `host_resolv_conf`, read at start. Tests point this at a fake on loopback."""
    host_resolv_conf: Path = Path("/etc/resolv.conf")
    """The host's resolver configuration: the upstreams, and what a `dnsPolicy:
    Default` pod gets."""
    upstream_timeout: float = 2.0
    """Seconds a forwarded query may take per upstream before the next is tried."""
    ttl: int = 5
    """TTL of the cluster's records (CoreDNS' kubernetes plugin default)."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a cluster process needs to know, fixed at `up`."""

    home: Path = field(default_factory=default_home)
    """`$MINIORCH_HOME`: store, TLS material, kubeconfig, images, pod logs, pid file."""
    api_host: str = "127.0.0.1"
    api_port: int = 6443
    dashboard_port: int = 6444
    """The dashboard's plain-HTTP port, on loopback only (0: any free port)."""
    nodes: int = 3
    hollow_nodes: int = 0
    """Nodes whose kubelet runs no processes (node/hollow.py), after the real ones."""
    hollow_profile: str = ""
    """Their pods' delays and failures, `HollowProfile.parse`'s syntax ("": defaults)."""
    demo: bool = True
    """Deploy the seed's kubia RC + LoadBalancer Service at `up`."""
    network: NetworkSettings = field(default_factory=NetworkSettings)
    dns: DnsSettings = field(default_factory=DnsSettings)
    node_heartbeat_seconds: float = 10.0
    """How often a node renews its Lease and Ready condition."""
    node_grace_seconds: float = 40.0
    """A node whose heartbeat is older than this is marked NotReady (k8s default 40 s)."""
    pod_eviction_seconds: float = 5.0
    """How long after NotReady its pods are replaced elsewhere (k8s uses 300 s; we teach)."""
    max_pods_per_node: int = 110
    max_request_bytes: int = 3 * 1024 * 1024
    """Bodies larger than this are refused with 413, as kube-apiserver does."""
    watch_history: int = 10_000
    """How many past events the store keeps for watch resume before answering 410."""
    metrics_resolution: float = 5.0
    """Seconds between scrapes of the kubelets' resource readings, so the window of
    metrics.k8s.io's usage (metrics-server's --metric-resolution; 15 s there)."""
    sandbox_mode: str = "auto"
    """"auto": root sandboxes as root, else user namespaces if the kernel allows them,
    else plain processes; "userns" or "plain" force one (sandbox/mode.py)."""

    @property
    def store_path(self) -> Path:
        return self.home / "store.db"

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    @property
    def kubeconfig_path(self) -> Path:
        return self.home / "kubeconfig"

    @property
    def pods_dir(self) -> Path:
        """Per-pod runtime state and container logs: pods/<ns>_<name>_<uid>/."""
        return self.home / "pods"

    @property
    def images_dir(self) -> Path:
        return self.home / "images"

    @property
    def pid_file(self) -> Path:
        return self.home / "cluster.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "cluster.log"

    @property
    def dashboard_file(self) -> Path:
        """The running dashboard's address, written once its port is bound."""
        return self.home / "dashboard.url"

    @property
    def api_url(self) -> str:
        return f"https://{self.api_host}:{self.api_port}"
