"""Validation: refuse what Kubernetes refuses, with the field named (placeholder)."""

from __future__ import annotations

from miniorch.api.kinds import Resource
from miniorch.core.objects import Obj


def validate(resource: Resource, obj: Obj, old: Obj | None) -> None:
    """Raise `Invalid` with causes if `obj` (an update of `old`, if given) is invalid."""
