"""CustomResourceDefinition (apiextensions.k8s.io/v1): a kind defined by an object.

    kubectl apply -f crd.yaml ─► Registry.create(CRDS) ─► default → prepare (status) → check
                                      │ store write succeeded
                                      └► after_write: kinds_for(crd) ─► registry.kinds.add
                                                                         (discovery, routes,
                                                                          OpenAPI at once)
    delete ─► after_write(old, None): its kinds removed, every object of them deleted

The status is the server's (prepare, on every write): `NamesAccepted` and
`Established` True, `acceptedNames` = the spec's names, `storedVersions` = the stored
ones so far plus the current storage version. Validation follows apiextensions'
`ValidateCustomResourceDefinition` in its essentials (names, scope, versions, one
storage version, structural schemas, subresources, printer columns).

Invariant: the catalog serves exactly the served versions of the stored CRDs; the
registry calls `after_write` after every successful write of one (and for every stored
CRD at start-up), so a client that just created a CRD finds its API in discovery.
"""

from __future__ import annotations

from datetime import datetime

from miniorch.api import validation
from miniorch.api.errors import Cause
from miniorch.api.kinds.base import CatalogContext, Kind, WriteContext
from miniorch.api.kinds.customresource import kinds_for, resources_of, structural_errors
from miniorch.api.resource import Resource
from miniorch.api.tables import NAME_COLUMN, Row, column
from miniorch.core.clock import rfc3339
from miniorch.core.objects import Obj, as_dict, as_list

CUSTOM_RESOURCE_DEFINITIONS = Resource(
    group="apiextensions.k8s.io", version="v1", plural="customresourcedefinitions",
    singular="customresourcedefinition", kind="CustomResourceDefinition", namespaced=False,
    short_names=("crd", "crds"), categories=("api-extensions",))

_V1 = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."
_ROOT = _V1 + "CustomResourceDefinition"

DEFINITIONS = {
    _ROOT: {"apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
            "spec": "CustomResourceDefinitionSpec!", "status": "CustomResourceDefinitionStatus"},
    _V1 + "CustomResourceDefinitionSpec": {
        "group": "string!", "names": "CustomResourceDefinitionNames!", "scope": "string!",
        "versions": "[]CustomResourceDefinitionVersion!", "conversion": "any",
        "preserveUnknownFields": "boolean",
    },
    _V1 + "CustomResourceDefinitionNames": {
        "plural": "string!", "singular": "string", "kind": "string!", "listKind": "string",
        "shortNames": "[]string", "categories": "[]string",
    },
    _V1 + "CustomResourceDefinitionVersion": {
        "name": "string!", "served": "boolean!", "storage": "boolean!",
        "deprecated": "boolean", "deprecationWarning": "string",
        "schema": "CustomResourceValidation", "subresources": "CustomResourceSubresources",
        "additionalPrinterColumns": "[]CustomResourceColumnDefinition",
        "selectableFields": "any",
    },
    _V1 + "CustomResourceValidation": {"openAPIV3Schema": "any"},
    _V1 + "CustomResourceSubresources": {"status": "any",
                                         "scale": "CustomResourceSubresourceScale"},
    _V1 + "CustomResourceSubresourceScale": {
        "specReplicasPath": "string!", "statusReplicasPath": "string!",
        "labelSelectorPath": "string",
    },
    _V1 + "CustomResourceColumnDefinition": {
        "name": "string!", "type": "string!", "format": "string", "description": "string",
        "priority": "int32", "jsonPath": "string!",
    },
    _V1 + "CustomResourceDefinitionStatus": {
        "conditions": "[]CustomResourceDefinitionCondition@type",
        "acceptedNames": "CustomResourceDefinitionNames", "storedVersions": "[]string",
    },
    _V1 + "CustomResourceDefinitionCondition": {
        "type": "string!", "status": "string!", "lastTransitionTime": "time",
        "reason": "string", "message": "string",
    },
}

_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
_COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64",
                   "name", "password")


# ---- defaults and status -----------------------------------------------------------------

def _default(crd: Obj) -> None:
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict) and isinstance(names.get("kind"), str) and names["kind"]:
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    conversion = spec.setdefault("conversion", {})
    if isinstance(conversion, dict):
        conversion.setdefault("strategy", "None")


def _condition(old: list[Obj], type_: str, reason: str, message: str, now: str) -> Obj:
    for c in old:
        if c.get("type") == type_ and c.get("status") == "True":
            return {**c, "reason": reason, "message": message}
    return {"type": type_, "status": "True", "lastTransitionTime": now, "reason": reason,
            "message": message}


def _prepare(ctx: WriteContext, crd: Obj, old: Obj | None) -> None:
    """The status apiextensions' controllers would write: names accepted, established."""
    spec = as_dict(crd.get("spec"))
    status = as_dict((old or crd).get("status"))
    now = rfc3339(ctx.clock.now())
    conditions = [as_dict(c) for c in as_list(status.get("conditions"))]
    stored = [str(v) for v in as_list(status.get("storedVersions"))]
    for version in as_list(spec.get("versions")):
        if as_dict(version).get("storage") and version.get("name") not in stored:
            stored.append(str(version["name"]))
    crd["status"] = {
        "conditions": [
            _condition(conditions, "NamesAccepted", "NoConflicts", "no conflicts found", now),
            _condition(conditions, "Established", "InitialNamesAccepted",
                       "the initial names have been accepted", now)],
        "acceptedNames": dict(as_dict(spec.get("names"))),
        "storedVersions": stored,
    }


# ---- validation -------------------------------------------------------------------------

def _dns1035(path: str, value: object, causes: list[Cause]) -> None:
    for problem in validation.is_dns1035_label(str(value)):
        causes.append(validation.invalid(path, value, problem))


def _validate_names(names: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for field in ("plural", "kind"):
        if not names.get(field):
            causes.append(validation.required(f"{path}.{field}"))
    if names.get("plural"):
        _dns1035(f"{path}.plural", names["plural"], causes)
    if names.get("singular"):
        _dns1035(f"{path}.singular", names["singular"], causes)
    kind = str(names.get("kind") or "")
    if kind:
        _dns1035(f"{path}.kind", kind.lower(), causes)
    list_kind = str(names.get("listKind") or "")
    if list_kind:
        _dns1035(f"{path}.listKind", list_kind.lower(), causes)
        if list_kind == kind:
            causes.append(validation.invalid(f"{path}.listKind", list_kind,
                                             "kind and listKind may not be the same"))
    for field in ("shortNames", "categories"):
        for i, value in enumerate(as_list(names.get(field))):
            _dns1035(f"{path}.{field}[{i}]", value, causes)
    return causes


def _validate_version(version: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    name = version.get("name")
    if not name:
        causes.append(validation.required(f"{path}.name"))
    else:
        _dns1035(f"{path}.name", name, causes)
    schema = as_dict(version.get("schema")).get("openAPIV3Schema")
    if version.get("served") and schema is None:
        causes.append(validation.required(f"{path}.schema.openAPIV3Schema",
                                          "schemas are required"))
    elif schema is not None:
        causes.extend(structural_errors(schema, f"{path}.schema.openAPIV3Schema"))
    scale = as_dict(as_dict(version.get("subresources")).get("scale"))
    if scale:
        for field, prefix in (("specReplicasPath", ".spec."), ("statusReplicasPath",
                                                                 ".status.")):
            value = str(scale.get(field) or "")
            if not value:
                causes.append(validation.required(f"{path}.subresources.scale.{field}"))
            elif not value.startswith(prefix):
                causes.append(validation.invalid(
                    f"{path}.subresources.scale.{field}", value,
                    f"should be a json path under {prefix.rstrip('.')}"))
    for i, col in enumerate(as_list(version.get("additionalPrinterColumns"))):
        col_path = f"{path}.additionalPrinterColumns[{i}]"
        col = as_dict(col)
        for field in ("name", "type", "jsonPath"):
            if not col.get(field):
                causes.append(validation.required(f"{col_path}.{field}"))
        if col.get("type") and col["type"] not in _COLUMN_TYPES:
            causes.append(validation.not_supported(f"{col_path}.type", col["type"],
                                                   _COLUMN_TYPES))
        if col.get("format") and col["format"] not in _COLUMN_FORMATS:
            causes.append(validation.not_supported(f"{col_path}.format", col["format"],
                                                   _COLUMN_FORMATS))
        if col.get("jsonPath") and not str(col["jsonPath"]).lstrip("{").startswith("."):
            causes.append(validation.invalid(f"{col_path}.jsonPath", col["jsonPath"],
                                             "must be a simple json path starting with ."))
    return causes


def _validate(crd: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    spec = as_dict(crd.get("spec"))
    names = as_dict(spec.get("names"))
    group = str(spec.get("group") or "")
    name = str(as_dict(crd.get("metadata")).get("name") or "")
    if name != f"{names.get('plural', '')}.{group}":
        causes.append(validation.invalid("metadata.name", name,
                                         'must be spec.names.plural+"."+spec.group'))
    if not group:
        causes.append(validation.required("spec.group"))
    else:
        for problem in validation.is_dns1123_subdomain(group):
            causes.append(validation.invalid("spec.group", group, problem))
        if "." not in group:
            causes.append(validation.invalid("spec.group", group,
                                             "should be a domain with at least one dot"))
    scope = spec.get("scope")
    if not scope:
        causes.append(validation.required("spec.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        causes.append(validation.not_supported("spec.scope", scope, ("Cluster", "Namespaced")))
    causes.extend(_validate_names(names, "spec.names"))
    versions = [as_dict(v) for v in as_list(spec.get("versions"))]
    if not versions:
        causes.append(validation.required("spec.versions", "must have at least one version"))
    seen: set[str] = set()
    for i, version in enumerate(versions):
        if version.get("name") in seen:
            causes.append(validation.duplicate(f"spec.versions[{i}].name", version["name"]))
        seen.add(str(version.get("name")))
        causes.extend(_validate_version(version, f"spec.versions[{i}]"))
    if versions and sum(1 for v in versions if v.get("storage") is True) != 1:
        causes.append(Cause("spec.versions", "Invalid value: \"\": must have exactly one "
                                             "version marked as storage version",
                            validation.INVALID))
    if old is not None:
        old_spec = as_dict(old.get("spec"))
        for field in ("scope", "group"):
            if old_spec.get(field) and spec.get(field) != old_spec.get(field):
                causes.append(validation.invalid(f"spec.{field}", spec.get(field),
                                                 "field is immutable"))
    return causes


# ---- serving the kinds it defines ---------------------------------------------------------

def _after_write(ctx: CatalogContext, old: Obj | None, new: Obj | None) -> None:
    if old is not None:
        for resource in resources_of(old):
            ctx.kinds.remove(resource)
    if new is not None:
        for kind in kinds_for(new):
            ctx.kinds.add(kind)
        return
    # Deleted: its objects go with it (apiextensions' finalizer deletes them first).
    assert old is not None
    gone = resources_of(old)
    if gone:
        resource = gone[0]  # one store key for every version: plural.group
        items, _ = ctx.store.list(resource)
        for item in items:
            meta = item["metadata"]
            ctx.store.delete(resource, meta.get("namespace", ""), meta["name"])


# ---- printing -------------------------------------------------------------------------

_CREATED_AT = column("Created At", "CreationTimestamp is a timestamp representing the server "
                     "time when this object was created.", type="date")


def _cells(crd: Obj, now: datetime) -> Row:
    meta = as_dict(crd.get("metadata"))
    return [str(meta.get("name", "")), str(meta.get("creationTimestamp", ""))], []


CUSTOM_RESOURCE_DEFINITION = Kind(
    resource=CUSTOM_RESOURCE_DEFINITIONS, definitions=DEFINITIONS, root=_ROOT,
    default=_default, validate=_validate, prepare=_prepare,
    columns=(NAME_COLUMN, _CREATED_AT), cells=_cells, status_subresource=True,
    after_write=_after_write)

__all__ = ["CUSTOM_RESOURCE_DEFINITION", "CUSTOM_RESOURCE_DEFINITIONS"]
