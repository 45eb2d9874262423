"""ConfigMap (core/v1): configuration as keys and values, for pods' env and volumes.

    create/update ─► _validate: keys are config keys (`[-._a-zA-Z0-9]+`), not in both
                     `data` and `binaryData`, 1 MiB in all; `immutable: true` freezes
                     the data and itself
    Table ─► Name, Data (number of keys), Age

The kubelet (`miniorch/node`) reads ConfigMaps for `env.valueFrom`, `envFrom` and
`configMap` volumes.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any

from miniorch.api.errors import Cause
from miniorch.api.kinds.base import Kind
from miniorch.api.resource import Resource
from miniorch.api.schema import CORE
from miniorch.api.tables import AGE_COLUMN, NAME_COLUMN, Row, column, since
from miniorch.api.validation import TOO_LONG, forbidden, invalid
from miniorch.core.objects import Obj, as_dict

CONFIGMAPS = Resource(group="", version="v1", plural="configmaps", singular="configmap",
                      kind="ConfigMap", namespaced=True, short_names=("cm",))

MAX_DATA_BYTES = 1024 * 1024
"""kube-apiserver's limit on a ConfigMap's (and a Secret's) total data."""

DEFINITIONS: dict[str, dict[str, str]] = {
    CORE + "ConfigMap": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "data": "{}string", "binaryData": "{}string", "immutable": "boolean",
    },
}

_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def config_key_errors(key: str) -> list[str]:
    """apimachinery's IsConfigMapKey: the rules for ConfigMap and Secret keys."""
    errors = []
    if len(key) > 253:
        errors.append("must be no more than 253 characters")
    if not _CONFIG_KEY.fullmatch(key):
        errors.append("a valid config key must consist of alphanumeric characters, '-', '_' "
                      "or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used "
                      "for validation is '[-._a-zA-Z0-9]+')")
    if key == ".":
        errors.append("must not be '.'")
    elif key == "..":
        errors.append("must not be '..'")
    elif key.startswith(".."):
        errors.append("must not start with '..'")
    return errors


def decoded_size(value: Any) -> int:
    """Bytes a base64 value stands for (0 if it is not base64: decoding reports that)."""
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return 0


def immutable_update_errors(obj: Obj, old: Obj | None, fields: tuple[str, ...]) -> list[Cause]:
    """`immutable: true` on the old object: the data fields and the flag are frozen."""
    if old is None or old.get("immutable") is not True:
        return []
    causes = []
    if obj.get("immutable") is not True:
        causes.append(forbidden("immutable", "field is immutable when `immutable` is set"))
    for name in fields:
        if (obj.get(name) or {}) != (old.get(name) or {}):
            causes.append(forbidden(name, "field is immutable when `immutable` is set"))
    return causes


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    data, binary = as_dict(obj.get("data")), as_dict(obj.get("binaryData"))
    total = 0
    for key, value in data.items():
        causes.extend(invalid("data", key, m) for m in config_key_errors(str(key)))
        total += len(str(value).encode())
    for key, value in binary.items():
        causes.extend(invalid("binaryData", key, m) for m in config_key_errors(str(key)))
        if key in data:
            causes.append(invalid("data", key, "duplicate of key present in binaryData"))
        total += decoded_size(value)
    if total > MAX_DATA_BYTES:
        causes.append(Cause("", f"Too long: may not be more than {MAX_DATA_BYTES} bytes",
                            TOO_LONG))
    causes.extend(immutable_update_errors(obj, old, ("data", "binaryData")))
    return causes


def _cells(cm: Obj, now: datetime) -> Row:
    meta = as_dict(cm.get("metadata"))
    count = len(as_dict(cm.get("data"))) + len(as_dict(cm.get("binaryData")))
    return [str(meta.get("name", "")), count, since(meta.get("creationTimestamp"), now)], []


COLUMNS = (
    NAME_COLUMN,
    column("Data", "Number of keys in the configmap", type="integer"),
    AGE_COLUMN,
)

CONFIGMAP = Kind(resource=CONFIGMAPS, definitions=DEFINITIONS, validate=_validate,
                 columns=COLUMNS, cells=_cells)
