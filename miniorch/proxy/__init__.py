"""The Service proxy: kube-proxy and the LoadBalancer implementation (see service_proxy)."""

from miniorch.proxy.service_proxy import LocalAddresses, NoLocalAddresses, ServiceProxy

__all__ = ["LocalAddresses", "NoLocalAddresses", "ServiceProxy"]
