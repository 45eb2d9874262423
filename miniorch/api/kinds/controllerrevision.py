"""ControllerRevision (apps/v1): an immutable snapshot of a workload's pod template.

    controllers/history.py ──creates──► ControllerRevision `<owner>-<hash>`
                                         (data: the template, revision: 1, 2, …)
    kubectl rollout history ds/x | sts/x ──lists──► them (selector + controller ref)
    Table ─► NAME CONTROLLER REVISION AGE

`data` never changes once written (only `revision` may, when an old template is
rolled back to and becomes the newest again).
"""

from __future__ import annotations

from datetime import datetime

from miniorch.api.errors import Cause
from miniorch.api.kinds.apps import APPS
from miniorch.api.kinds.base import Kind
from miniorch.api.resource import Resource
from miniorch.api.tables import AGE_COLUMN, NAME_COLUMN, Row, column, since
from miniorch.api.validation import invalid
from miniorch.core.objects import Obj, as_dict, controller_ref

CONTROLLER_REVISIONS = Resource(
    group="apps", version="v1", plural="controllerrevisions", singular="controllerrevision",
    kind="ControllerRevision", namespaced=True)

DEFINITIONS: dict[str, dict[str, str]] = {
    APPS + "ControllerRevision": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta", "data": "any",
        "revision": "int64!",
    },
}


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    revision = obj.get("revision")
    if isinstance(revision, int) and revision < 0:
        causes.append(invalid("revision", revision, "must be greater than or equal to 0"))
    if old is not None and obj.get("data") != old.get("data"):
        causes.append(invalid("data", obj.get("data"), "field is immutable"))
    return causes


def controller_revision_cells(rev: Obj, now: datetime) -> Row:
    meta = as_dict(rev.get("metadata"))
    ref = controller_ref(rev)
    controller = "<none>"
    if ref is not None:
        group = str(ref.get("apiVersion", "")).rpartition("/")[0]
        kind = str(ref.get("kind", "")).lower()
        controller = f"{kind}.{group}/{ref.get('name', '')}" if group else \
            f"{kind}/{ref.get('name', '')}"
    return [str(meta.get("name", "")), controller, int(rev.get("revision") or 0),
            since(meta.get("creationTimestamp"), now)], []


COLUMNS = (
    NAME_COLUMN,
    column("Controller", "Controller of the object"),
    column("Revision", "Revision indicates the revision of the state represented by Data.",
           type="integer"),
    AGE_COLUMN,
)

CONTROLLER_REVISION = Kind(
    resource=CONTROLLER_REVISIONS, definitions=DEFINITIONS, validate=_validate,
    columns=COLUMNS, cells=controller_revision_cells,
)
