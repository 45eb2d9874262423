"""Event (core/v1): what happened to an object, folded by count.

Recorded through `Registry.record_event` (client-go's recorder folding); a PUT of a
missing Event creates it. Table ─► event_cells (LAST SEEN, TYPE, REASON, OBJECT, …).
"""

from __future__ import annotations

from datetime import datetime

from miniorch.api.errors import Cause
from miniorch.api.kinds.base import Kind
from miniorch.api.resource import Resource
from miniorch.api.schema import CORE
from miniorch.api.tables import NAME_DESCRIPTION, Row, column, since
from miniorch.api.validation import invalid
from miniorch.core.objects import Obj, as_dict

EVENTS = Resource(group="", version="v1", plural="events", singular="event", kind="Event",
                  namespaced=True, short_names=("ev",))


DEFINITIONS: dict[str, dict[str, str]] = {
    CORE + "Event": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta!",
        "involvedObject": "ObjectReference!", "reason": "string", "message": "string",
        "source": "EventSource", "firstTimestamp": "time", "lastTimestamp": "time",
        "count": "int32", "type": "string", "eventTime": "microtime",
        "series": "EventSeries", "action": "string", "related": "ObjectReference",
        "reportingComponent": "string", "reportingInstance": "string",
    },
    CORE + "EventSource": {"component": "string", "host": "string"},
    CORE + "EventSeries": {"count": "int32", "lastObservedTime": "microtime"},
}


def _default(obj: Obj) -> None:
    if "series" not in obj:
        obj.setdefault("count", 1)
    obj.setdefault("involvedObject", {})


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    involved = as_dict(obj.get("involvedObject"))
    namespace = as_dict(obj.get("metadata")).get("namespace") or ""
    inv_ns = involved.get("namespace") or ""
    if inv_ns and namespace and inv_ns != namespace:
        causes.append(invalid("involvedObject.namespace", inv_ns,
                              "does not match event.namespace"))
    return causes


def event_cells(event: Obj, now: datetime) -> Row:
    meta = as_dict(event.get("metadata"))
    first = since(event.get("firstTimestamp"), now)
    if not event.get("firstTimestamp"):
        first = since(event.get("eventTime"), now)
    last = since(event.get("lastTimestamp"), now) if event.get("lastTimestamp") else first
    count = int(event.get("count") or 0)
    series = event.get("series")
    if isinstance(series, dict):
        last = since(series.get("lastObservedTime"), now)
        count = int(series.get("count") or 0)
    elif count == 0:
        count = 1  # singleton events of the new API have no count
    involved = as_dict(event.get("involvedObject"))
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = as_dict(event.get("source"))
    component = source.get("component") or event.get("reportingComponent") or ""
    instance = source.get("host") or event.get("reportingInstance") or ""
    source_text = f"{component}, {instance}" if instance else str(component)
    return [
        last, str(event.get("type", "")), str(event.get("reason", "")), target,
        str(involved.get("fieldPath", "")), source_text,
        str(event.get("message", "")).strip(), first, count, str(meta.get("name", "")),
    ], []


COLUMNS = (
    column("Last Seen", "The time at which the most recent occurrence of this event was "
                      "recorded."),
    column("Type", "Type of this event (Normal, Warning), new types could be added in the "
                 "future"),
    column("Reason", "This should be a short, machine understandable string that gives the "
                   "reason for the transition into the object's current status."),
    column("Object", "The object that this event is about."),
    column("Subobject", "If referring to a piece of an object instead of an entire object, "
                      "this string should contain a valid JSON/Go field access "
                      "statement.", priority=1),
    column("Source", "The component reporting this event.", priority=1),
    column("Message", "A human-readable description of the status of this operation."),
    column("First Seen", "The time at which the event was first recorded.", priority=1),
    column("Count", "The number of times this event has occurred.", priority=1),
    column("Name", NAME_DESCRIPTION, priority=1, format="name"),
)


EVENT = Kind(
    resource=EVENTS, definitions=DEFINITIONS, default=_default, validate=_validate,
    columns=COLUMNS, cells=event_cells, create_on_update=True,
)
