"""Sandboxes: Linux namespaces, veth networking, cgroups and root filesystems for pods
and containers. The node layer calls this; it knows nothing of Kubernetes objects.
"""
