"""Fixtures for kubelet tests; see nodehelpers.py."""

from tests.node.nodehelpers import registry, runtime, settings

__all__ = ["registry", "runtime", "settings"]
