"""Server-side printing: objects → a `meta.k8s.io/v1` Table, as kube-apiserver serves it.

    server (Accept: ...;as=Table;g=meta.k8s.io;v=v1) ─► to_table(...) ─► kubectl get

kubectl 1.32 prints no columns of its own for built-in kinds: the columns, their
order and every cell's text come from here, ported from Kubernetes'
`pkg/printers/internalversion/printers.go` (the server always generates the wide
columns; kubectl hides priority-1 columns unless `-o wide`). Ages follow
apimachinery's `HumanDuration`.

Pure functions: time is passed in (`now`), nothing is read from a clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from miniorch.api.resource import Resource
from miniorch.core.clock import parse_rfc3339
from miniorch.core.objects import Obj, as_dict, as_list

Cell = str | int
Row = tuple[list[Cell], list[Obj]]
"""Cells, and row conditions (only completed pods have any)."""

# ---- durations ----------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """apimachinery's `duration.HumanDuration`: `59s`, `2m30s`, `10m`, `3h15m`, `2d5h`, `8d`,
    `3y45d`. Up to two seconds in the future counts as now (clock skew)."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 60 * 2:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def since(timestamp: Any, now: datetime) -> str:
    """translateTimestampSince: `<unknown>` for a missing timestamp."""
    if not timestamp or not isinstance(timestamp, str):
        return "<unknown>"
    try:
        then = parse_rfc3339(timestamp)
    except ValueError:
        return "<unknown>"
    return human_duration((now - then).total_seconds())


def parse_time(timestamp: Any) -> datetime | None:
    if not timestamp or not isinstance(timestamp, str):
        return None
    try:
        return parse_rfc3339(timestamp)
    except ValueError:
        return None


def format_labels(labels: Any) -> str:
    """labels.FormatLabels: `a=b,c=d` sorted by key, `<none>` when empty."""
    labels = as_dict(labels)
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


# ---- columns ---------------------------------------------------------------------------------

NAME_DESCRIPTION = ("Name must be unique within a namespace. Is required when creating resources, "
              "although some resources may allow a client to request the generation of an "
              "appropriate name automatically. Name is primarily intended for creation "
              "idempotence and configuration definition. Cannot be updated. More info: "
              "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
AGE_DESCRIPTION = ("CreationTimestamp is a timestamp representing the server time when this object "
             "was created. It is not guaranteed to be set in happens-before order across "
             "separate operations. Clients may not set this value. It is represented in "
             "RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for "
             "lists. More info: https://git.k8s.io/community/contributors/devel/"
             "sig-architecture/api-conventions.md#metadata")


def column(name: str, description: str = "", *, type: str = "string", priority: int = 0,
         format: str = "") -> Obj:
    return {"name": name, "type": type, "format": format, "description": description,
            "priority": priority}


NAME_COLUMN = column("Name", NAME_DESCRIPTION, format="name")
AGE_COLUMN = column("Age", AGE_DESCRIPTION)


# ---- rows ------------------------------------------------------------------------------------


def containers_and_images(containers: Any) -> tuple[str, str]:
    names = [str(as_dict(c).get("name", "")) for c in as_list(containers)]
    images = [str(as_dict(c).get("image", "")) for c in as_list(containers)]
    return ",".join(names), ",".join(images)


def default_cells(obj: Obj, now: datetime) -> Row:
    meta = as_dict(obj.get("metadata"))
    return [str(meta.get("name", "")), since(meta.get("creationTimestamp"), now)], []


class Printable(Protocol):
    """What printing needs of a kind (its `Kind` record is one)."""

    @property
    def resource(self) -> Resource: ...

    @property
    def columns(self) -> tuple[Obj, ...]: ...

    @property
    def cells(self) -> Callable[[Obj, datetime], Row]: ...


def row_for(kind: Printable, obj: Obj, *, now: datetime,
            include_object: str = "Metadata") -> Obj:
    """One Table row; `include_object` is the request's `includeObject`
    (`None` | `Metadata` (the default) | `Object`)."""
    cells, conditions = kind.cells(obj, now)
    row: Obj = {"cells": cells}
    if conditions:
        row["conditions"] = [dict(c) for c in conditions]
    if include_object == "Object":
        full = dict(obj)
        full.setdefault("kind", kind.resource.kind)
        full.setdefault("apiVersion", kind.resource.api_version)
        row["object"] = full
    elif include_object == "None":
        row["object"] = None
    else:
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": obj.get("metadata", {})}
    return row


def to_table(kind: Printable, objects: list[Obj], *, resource_version: str,
             now: datetime, include_object: str = "Metadata") -> Obj:
    """A `meta.k8s.io/v1` Table of `objects` (a list, or one object for a GET or a watch
    event), with every column including the wide (priority 1) ones."""
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [dict(c) for c in kind.columns],
        "rows": [row_for(kind, obj, now=now, include_object=include_object)
                 for obj in objects],
    }
