"""ServiceAccount (core/v1): an identity for processes in pods.

    create/update ─► validation of the names it refers to
    Table ─► Name, Secrets (number of referenced secrets), Age

Every namespace has a `default` one (the service-account controller,
`controllers/serviceaccounts.py`, creates it, as kube-controller-manager does).
Tokens mounted into pods are not issued yet.
"""

from __future__ import annotations

from datetime import datetime

from miniorch.api.errors import Cause
from miniorch.api.kinds.base import Kind
from miniorch.api.resource import Resource
from miniorch.api.schema import CORE
from miniorch.api.tables import AGE_COLUMN, NAME_COLUMN, Row, column, since
from miniorch.api.validation import invalid, is_dns1123_subdomain
from miniorch.core.objects import Obj, as_dict, as_list

SERVICE_ACCOUNTS = Resource(group="", version="v1", plural="serviceaccounts",
                            singular="serviceaccount", kind="ServiceAccount", namespaced=True,
                            short_names=("sa",))

DEFINITIONS: dict[str, dict[str, str]] = {
    CORE + "ServiceAccount": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "secrets": "[]ObjectReference@name", "imagePullSecrets": "[]LocalObjectReference",
        "automountServiceAccountToken": "boolean",
    },
}


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, ref in enumerate(as_list(obj.get("imagePullSecrets"))):
        name = str(as_dict(ref).get("name") or "")
        causes.extend(invalid(f"imagePullSecrets[{i}].name", name, m)
                      for m in is_dns1123_subdomain(name))
    return causes


def _cells(sa: Obj, now: datetime) -> Row:
    meta = as_dict(sa.get("metadata"))
    return [str(meta.get("name", "")), len(as_list(sa.get("secrets"))),
            since(meta.get("creationTimestamp"), now)], []


COLUMNS = (
    NAME_COLUMN,
    column("Secrets", "Secrets is a list of the secrets in the same namespace that pods "
                      "running using this ServiceAccount are allowed to use.",
           type="integer"),
    AGE_COLUMN,
)

SERVICE_ACCOUNT = Kind(resource=SERVICE_ACCOUNTS, definitions=DEFINITIONS, validate=_validate,
                       columns=COLUMNS, cells=_cells)
