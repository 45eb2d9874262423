"""Cluster DNS: the server behind `kube-system/kube-dns` (see server.py and zone.py)."""

from miniorch.dns.server import DnsServer

__all__ = ["DnsServer"]
