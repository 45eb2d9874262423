"""Helpers for Kubernetes objects as plain JSON dicts (the wire format is the model).

Objects travel as `dict[str, Any]` exactly as the API serves them; these helpers read
the few fields everyone needs without each caller re-spelling `.get(...).get(...)`.
"""

from __future__ import annotations

import secrets
from typing import Any, NewType

Obj = dict[str, Any]
ObjectUid = NewType("ObjectUid", str)
NodeName = NewType("NodeName", str)

# apimachinery's utilrand alphabet: no vowels (no words), no confusable 0/1/3.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(length))


def meta(obj: Obj) -> Obj:
    m: Obj = obj.setdefault("metadata", {})
    return m


def name_of(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def namespace_of(obj: Obj) -> str:
    return str(obj.get("metadata", {}).get("namespace", ""))


def uid_of(obj: Obj) -> ObjectUid:
    return ObjectUid(str(obj.get("metadata", {}).get("uid", "")))


def labels_of(obj: Obj) -> dict[str, str]:
    labels: dict[str, str] = obj.get("metadata", {}).get("labels") or {}
    return labels


def resource_version_of(obj: Obj) -> int:
    return int(obj.get("metadata", {}).get("resourceVersion") or 0)


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference with `controller: true`, if any."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def is_terminating(obj: Obj) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


# ---- raw JSON access: tolerant of values of the wrong type (validation reports those) ----

def as_dict(value: Any) -> Obj:
    """`value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """`value` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def dicts_in(value: Any) -> list[Obj]:
    """The JSON objects in `value`, when it is an array (others skipped)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def ensure_dict(parent: Obj, key: str) -> Obj | None:
    """`parent[key]`, created as {} when absent or null; None if it holds a non-object
    (for defaulting, which fills what is missing and leaves bad values to validation)."""
    value = parent.setdefault(key, {})
    if value is None:
        value = parent[key] = {}
    return value if isinstance(value, dict) else None
