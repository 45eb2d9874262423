"""The LoadBalancer EXTERNAL-IP pool (what MetalLB or a cloud provider does in a real cluster).

Addresses come from `NetworkSettings.loadbalancer_cidr` (127.0.100.0/24 by default),
handed out lowest first starting at the first host address (`.1`; the network and
broadcast addresses are never used).

Invariants:
- One address belongs to at most one Service.
- Stable across restarts: the pool keeps no file; the Service's own
  `status.loadBalancer.ingress[0].ip` is the record. At start the proxy `claim()`s
  every address already published in a status before it allocates any new one, so a
  new Service can never take an address an existing one already shows.
- `spec.loadBalancerIP` is honoured when it lies in the pool and is free.
"""

from __future__ import annotations

import ipaddress

ServiceKey = tuple[str, str]
"""(namespace, name)."""


class ExternalIPPool:
    def __init__(self, cidr: str) -> None:
        self._network = ipaddress.ip_network(cidr)
        self._owner: dict[str, ServiceKey] = {}
        self._held: dict[ServiceKey, str] = {}

    def __contains__(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self._network
        except ValueError:
            return False

    def held_by(self, key: ServiceKey) -> str | None:
        return self._held.get(key)

    def owner(self, ip: str) -> ServiceKey | None:
        return self._owner.get(ip)

    def claim(self, key: ServiceKey, ip: str) -> bool:
        """Give `ip` to `key` if it is in the pool and not someone else's; a Service
        holds one address, so a previous one is released."""
        if ip not in self or self._owner.get(ip, key) != key:
            return False
        self.release(key)
        self._owner[ip] = key
        self._held[key] = ip
        return True

    def allocate(self, key: ServiceKey) -> str | None:
        """`key`'s address, or the lowest free one; None when the pool is exhausted."""
        if key in self._held:
            return self._held[key]
        for host in self._network.hosts():
            ip = str(host)
            if ip not in self._owner:
                self._owner[ip] = key
                self._held[key] = ip
                return ip
        return None

    def release(self, key: ServiceKey) -> str | None:
        ip = self._held.pop(key, None)
        if ip is not None:
            self._owner.pop(ip, None)
        return ip
