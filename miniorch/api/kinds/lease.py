"""Lease (coordination.k8s.io/v1): the kubelet's heartbeat, one per node.

Lives in `kube-node-lease`; `describe node` reads it. A PUT of a missing Lease
creates it.
"""

from __future__ import annotations

from datetime import datetime

from miniorch.api.errors import Cause
from miniorch.api.kinds.base import Kind
from miniorch.api.resource import Resource
from miniorch.api.tables import AGE_COLUMN, NAME_COLUMN, Row, column, since
from miniorch.api.validation import invalid
from miniorch.core.objects import Obj, as_dict

LEASES = Resource(group="coordination.k8s.io", version="v1", plural="leases", singular="lease",
                  kind="Lease", namespaced=True)


DEFINITIONS: dict[str, dict[str, str]] = {
    "io.k8s.api.coordination.v1.Lease": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "LeaseSpec",
    },
    "io.k8s.api.coordination.v1.LeaseSpec": {
        "holderIdentity": "string", "leaseDurationSeconds": "int32",
        "acquireTime": "microtime", "renewTime": "microtime", "leaseTransitions": "int32",
        "strategy": "string", "preferredHolder": "string",
    },
}


def _default(obj: Obj) -> None:
    obj.setdefault("spec", {})


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    spec = as_dict(obj.get("spec"))
    for key in ("leaseDurationSeconds", "leaseTransitions"):
        value = spec.get(key)
        if key == "leaseDurationSeconds" and isinstance(value, int) and value <= 0:
            causes.append(invalid(f"spec.{key}", value, "must be greater than 0"))
        if key == "leaseTransitions" and isinstance(value, int) and value < 0:
            causes.append(invalid(f"spec.{key}", value, "must be greater than or equal to 0"))
    return causes


def lease_cells(lease: Obj, now: datetime) -> Row:
    meta = as_dict(lease.get("metadata"))
    return [str(meta.get("name", "")), str(as_dict(lease.get("spec")).get("holderIdentity") or ""),
            since(meta.get("creationTimestamp"), now)], []


COLUMNS = (
    NAME_COLUMN,
    column("Holder", "holderIdentity contains the identity of the holder of a current "
                   "lease."),
    AGE_COLUMN,
)


LEASE = Kind(
    resource=LEASES, definitions=DEFINITIONS, default=_default, validate=_validate,
    columns=COLUMNS, cells=lease_cells, create_on_update=True,
)
