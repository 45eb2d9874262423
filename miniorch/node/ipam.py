"""Pod IP allocation inside the node's /24.

Node N owns 10.244.N.0/24 of the cluster's pod CIDR; pods get .2-.254 (.1 stays free:
the bridge's gateway is the cluster CIDR's first address, 10.244.0.1, which sits in node
0's range, so node 0 is never used). After a cluster restart the kubelet reserves every
`status.podIP` of the pods still bound to it before starting any, so a pod keeps its IP.
"""

from __future__ import annotations

import ipaddress


def node_pod_cidr(cluster_cidr: str, index: int) -> ipaddress.IPv4Network:
    """The /24 of node `index` inside `cluster_cidr` (10.244.0.0/16, 1 → 10.244.1.0/24)."""
    cluster = ipaddress.IPv4Network(cluster_cidr)
    subnets = list(cluster.subnets(new_prefix=24)) if cluster.prefixlen <= 24 else [cluster]
    if not 0 <= index < len(subnets):
        raise ValueError(f"node index {index} does not fit in {cluster_cidr}")
    return subnets[index]


class IpAllocator:
    """Which addresses of the node's /24 are taken, by pod UID."""

    def __init__(self, network: ipaddress.IPv4Network) -> None:
        self.network = network
        hosts = list(network.hosts())
        # .1 is left out: the conventional gateway address of a /24.
        self._pool = [str(h) for h in hosts[1:]]
        self._by_uid: dict[str, str] = {}
        self._taken: set[str] = set()

    def reserve(self, uid: str, ip: str) -> bool:
        """Claim `ip` for `uid` if it is in this node's pool and free."""
        if self._by_uid.get(uid) == ip:
            return True
        if ip not in self._pool or ip in self._taken or uid in self._by_uid:
            return False
        self._by_uid[uid] = ip
        self._taken.add(ip)
        return True

    def allocate(self, uid: str) -> str:
        existing = self._by_uid.get(uid)
        if existing:
            return existing
        for ip in self._pool:
            if ip not in self._taken:
                self._by_uid[uid] = ip
                self._taken.add(ip)
                return ip
        raise RuntimeError(f"no pod IP left in {self.network}")

    def release(self, uid: str) -> None:
        ip = self._by_uid.pop(uid, None)
        if ip:
            self._taken.discard(ip)

    def ip_of(self, uid: str) -> str | None:
        return self._by_uid.get(uid)
