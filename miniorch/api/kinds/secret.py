"""Secret (core/v1): sensitive keys and values; `data` is base64 on the wire.

    create/update ─► _default: `stringData` merged into `data` (base64), then dropped,
                     as kube-apiserver's conversion does; `type` Opaque by default
                  ─► _validate: config keys, base64 values, 1 MiB, the keys each
                     well-known `type` requires, `type` frozen, `immutable`
    Table ─► Name, Type, Data (number of keys), Age
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from miniorch.api.errors import Cause
from miniorch.api.kinds.base import Kind
from miniorch.api.kinds.configmap import (
    MAX_DATA_BYTES,
    config_key_errors,
    decoded_size,
    immutable_update_errors,
)
from miniorch.api.resource import Resource
from miniorch.api.schema import CORE
from miniorch.api.tables import AGE_COLUMN, NAME_COLUMN, Row, column, since
from miniorch.api.validation import TOO_LONG, invalid, required
from miniorch.core.objects import Obj, as_dict

SECRETS = Resource(group="", version="v1", plural="secrets", singular="secret", kind="Secret",
                   namespaced=True)

DEFINITIONS: dict[str, dict[str, str]] = {
    CORE + "Secret": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "data": "{}string", "stringData": "{}string", "type": "string",
        "immutable": "boolean",
    },
}

_REQUIRED_KEYS = {
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}
"""Keys a well-known secret type must carry (pkg/apis/core/validation)."""


def _default(obj: Obj) -> None:
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.get("data")
        if not isinstance(data, dict):
            data = obj["data"] = {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    if not obj.get("type"):
        obj["type"] = "Opaque"


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    data = as_dict(obj.get("data"))
    total = 0
    for key, value in data.items():
        causes.extend(invalid("data", key, m) for m in config_key_errors(str(key)))
        try:
            base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            causes.append(invalid(f"data[{key}]", "<secret contents redacted>",
                                  "illegal base64 data"))
        total += decoded_size(value)
    if total > MAX_DATA_BYTES:
        causes.append(Cause("data", f"Too long: may not be more than {MAX_DATA_BYTES} bytes",
                            TOO_LONG))
    secret_type = str(obj.get("type") or "Opaque")
    for key in _REQUIRED_KEYS.get(secret_type, ()):
        if key not in data:
            causes.append(required(f"data[{key}]"))
    if secret_type == "kubernetes.io/basic-auth" and not (
            "username" in data or "password" in data):
        causes.append(required("data[username]",
                               "either username or password is required to use basic "
                               "authentication"))
    if old is not None and str(old.get("type") or "Opaque") != secret_type:
        causes.append(invalid("type", secret_type, "field is immutable"))
    causes.extend(immutable_update_errors(obj, old, ("data",)))
    return causes


def _cells(secret: Obj, now: datetime) -> Row:
    meta = as_dict(secret.get("metadata"))
    return [str(meta.get("name", "")), str(secret.get("type") or ""),
            len(as_dict(secret.get("data"))), since(meta.get("creationTimestamp"), now)], []


COLUMNS = (
    NAME_COLUMN,
    column("Type", "The type of the secret"),
    column("Data", "The number of entries in the secret", type="integer"),
    AGE_COLUMN,
)

SECRET = Kind(resource=SECRETS, definitions=DEFINITIONS, default=_default, validate=_validate,
              columns=COLUMNS, cells=_cells)
