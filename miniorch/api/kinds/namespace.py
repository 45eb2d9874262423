"""Namespace (core/v1): a scope for names; deleting one deletes what is inside.

    create ─► _default (the `kubernetes.io/metadata.name` label, phase Active)
    DELETE ─► phase Terminating, every namespaced object inside deleted, then removed
              (the system namespaces are refused: Forbidden)
"""

from __future__ import annotations

from datetime import datetime

from miniorch.api.errors import Cause
from miniorch.api.kinds.base import Kind
from miniorch.api.resource import Resource
from miniorch.api.schema import CORE
from miniorch.api.tables import AGE_COLUMN, NAME_COLUMN, Row, column, since
from miniorch.api.validation import invalid, is_dns1123_label, is_qualified_name
from miniorch.core.objects import Obj, as_dict, as_list, ensure_dict

NAMESPACES = Resource(group="", version="v1", plural="namespaces", singular="namespace",
                      kind="Namespace", namespaced=False, short_names=("ns",))

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
"""Namespaces that always exist (created at first start, refused for deletion)."""


DEFINITIONS: dict[str, dict[str, str]] = {
    CORE + "Namespace": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "NamespaceSpec", "status": "NamespaceStatus",
    },
    CORE + "NamespaceSpec": {"finalizers": "[]string"},
    CORE + "NamespaceStatus": {
        "phase": "string", "conditions": "[]NamespaceCondition@type",
    },
    CORE + "NamespaceCondition": {
        "type": "string!", "status": "string!", "lastTransitionTime": "time",
        "reason": "string", "message": "string",
    },
}


def _default(obj: Obj) -> None:
    meta = obj["metadata"]
    name = meta.get("name")
    if isinstance(name, str) and name:
        labels = ensure_dict(meta, "labels")
        if labels is not None:
            # Set unconditionally by the namespace strategy: it always equals the name.
            labels["kubernetes.io/metadata.name"] = name
    spec = ensure_dict(obj, "spec")
    if spec is not None:
        spec.setdefault("finalizers", ["kubernetes"])
    status = ensure_dict(obj, "status")
    if status is not None:
        status.setdefault("phase", "Active")


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, finalizer in enumerate(as_list(as_dict(obj.get("spec")).get("finalizers"))):
        if finalizer != "kubernetes" and isinstance(finalizer, str):
            causes.extend(invalid(f"spec.finalizers[{i}]", finalizer, m)
                          for m in is_qualified_name(finalizer))
    return causes


def namespace_cells(ns: Obj, now: datetime) -> Row:
    meta = as_dict(ns.get("metadata"))
    return [str(meta.get("name", "")), str(as_dict(ns.get("status")).get("phase", "")),
            since(meta.get("creationTimestamp"), now)], []


COLUMNS = (
    NAME_COLUMN,
    column("Status", "The status of the namespace"),
    AGE_COLUMN,
)


NAMESPACE = Kind(
    resource=NAMESPACES, definitions=DEFINITIONS, default=_default, validate=_validate,
    name_rule=is_dns1123_label, columns=COLUMNS, cells=namespace_cells,
    status_subresource=True, returns_deleted=True, deletes_contents=True,
    undeletable=frozenset(SYSTEM_NAMESPACES),
)
