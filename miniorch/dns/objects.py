"""The `kube-system/kube-dns` Service and its Endpoints: how pods find the DNS server.

    ensure_kube_dns(registry, dns, address, port)
      Service  kube-system/kube-dns  ClusterIP <dns.service_ip> (10.96.0.10), no selector,
               ports dns 53/UDP, dns-tcp 53/TCP, CoreDNS' labels (so `cluster-info`
               names it "CoreDNS", as kubectl does for a kubeadm cluster)
      Endpoints kube-system/kube-dns  <address>:<port> UDP + TCP — the cluster process on
               the bridge's gateway, like a control plane outside the pod network

Invariants: the Service has no selector, so the endpoints controller leaves these
Endpoints alone; they are rewritten at each start only if the address or port moved.
A Service of that name made by someone else is kept as it is (logged).
"""

from __future__ import annotations

import structlog

from miniorch.api.errors import ApiError
from miniorch.api.kinds import ENDPOINTS, SERVICES
from miniorch.api.registry import Registry
from miniorch.core.objects import Obj
from miniorch.core.settings import DnsSettings

log = structlog.get_logger(__name__)

NAMESPACE = "kube-system"
NAME = "kube-dns"
LABELS = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
          "kubernetes.io/name": "CoreDNS"}


def kube_dns_service(dns: DnsSettings) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
        "spec": {"type": "ClusterIP", "clusterIP": dns.service_ip,
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP",
                            "targetPort": 53}]},
    }


def kube_dns_subsets(address: str, port: int) -> list[Obj]:
    return [{"addresses": [{"ip": address}],
             "ports": [{"name": "dns", "port": port, "protocol": "UDP"},
                       {"name": "dns-tcp", "port": port, "protocol": "TCP"}]}]


def ensure_kube_dns(registry: Registry, dns: DnsSettings, *, address: str, port: int) -> None:
    if registry.try_get(SERVICES, NAMESPACE, NAME) is None:
        try:
            registry.create(SERVICES, kube_dns_service(dns))
        except ApiError as exc:
            # e.g. a user's Service asked for 10.96.0.10 explicitly: pods' resolv.conf
            # then points at it, and the DNS server is only reachable at its address.
            log.warning("cannot create the kube-dns Service", error=str(exc))
            return
    subsets = kube_dns_subsets(address, port)
    endpoints = registry.try_get(ENDPOINTS, NAMESPACE, NAME)
    if endpoints is None:
        registry.create(ENDPOINTS, {"apiVersion": "v1", "kind": "Endpoints",
                                    "metadata": {"name": NAME, "namespace": NAMESPACE,
                                                 "labels": dict(LABELS)},
                                    "subsets": subsets})
    elif endpoints.get("subsets") != subsets:
        def point_here(obj: Obj) -> None:
            obj["subsets"] = subsets
        registry.mutate(ENDPOINTS, NAMESPACE, NAME, point_here)
