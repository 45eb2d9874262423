"""Defaulting: fill what Kubernetes fills before validation (placeholder, see helper)."""

from __future__ import annotations

from miniorch.api.kinds import Resource
from miniorch.core.objects import Obj


def apply(resource: Resource, obj: Obj) -> None:
    """Fill defaults in place, as kube-apiserver's defaulters do for core/v1."""
