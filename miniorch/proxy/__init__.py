"""The Service proxy: kube-proxy and the LoadBalancer implementation.

    service_proxy  the actor: watches Services/Endpoints/Nodes, opens listeners
    fastpath       TCP listeners on bare sockets: accept, sniff, connect, splice
    sniff          appProtocol / first bytes → HTTP/1 path or byte splice
    listener       accepted HTTP connections → asyncio transports → http1
    http1          per-request balancing, keep-alive upstreams, retries, 503s
    udp            UDP ports: a relay per client, replies from the Service address
    connections    what every connection shares: routes, counters, connecting
    balancer       round-robin, ClientIP affinity, failover, waiting for endpoints
"""

from miniorch.proxy.service_proxy import LocalAddresses, NoLocalAddresses, ServiceProxy

__all__ = ["LocalAddresses", "NoLocalAddresses", "ServiceProxy"]
