"""Custom resources: the `Kind` records a CustomResourceDefinition's versions serve.

    CRD object ─► kinds_for(crd) ─► one Kind per served version ─► registry.kinds (catalog)
                                        │
        writes:  default hook = prune unknown fields → apply schema `default`s
                 validate hook = the version's OpenAPI v3 schema (kube-openapi wording)
        reads:   columns/cells from additionalPrinterColumns (NAME AGE when none)
        openapi: the schema itself (`openapi_schema`), so kubectl explain / apply work

This is apiextensions-apiserver's `customresource_handler.go` + `schema/` as data:
the schema is a plain JSON-schema dict (`JSONSchemaProps`), walked by small pure
functions. What is honoured: type, nullable, format int32/int64, enum, required,
minimum/maximum (exclusive too), minLength/maxLength/pattern, minItems/maxItems,
properties, additionalProperties, items, default, x-kubernetes-preserve-unknown-fields,
x-kubernetes-int-or-string and x-kubernetes-embedded-resource (apiVersion/kind
required, metadata kept). Not honoured: x-kubernetes-validations (CEL), oneOf/anyOf/
allOf/not, uniqueItems, list-type/map-keys — they are accepted and ignored.

Invariants: every function here is pure; a schema is never mutated (defaults are
deep-copied into objects); pruning never touches `apiVersion`, `kind` or `metadata` of
the object or of an embedded resource.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from typing import Any

from miniorch.api import validation
from miniorch.api.errors import Cause
from miniorch.api.kinds.base import Kind, ScaleSubresource
from miniorch.api.resource import Resource
from miniorch.api.tables import NAME_COLUMN, Row, column, since
from miniorch.core.objects import Obj

_TYPE_NAMES = ("object", "array", "string", "integer", "number", "boolean")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_ROOT_FIELDS = ("apiVersion", "kind", "metadata")


# ---- validation of objects against a schema -----------------------------------------------

def json_type(value: Any) -> str:
    """The JSON-schema type name of a decoded JSON value (kube-openapi's wording)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(wanted: str, value: Any) -> bool:
    actual = json_type(value)
    return actual == wanted or (wanted == "number" and actual == "integer")


def _type_cause(path: str, wanted: str, value: Any) -> Cause:
    actual = json_type(value)
    return validation.invalid(path, actual, f"{path} in body must be of type {wanted}: "
                                            f'"{actual}"')


def validate_value(value: Any, schema: Obj, path: str) -> list[Cause]:
    """Every violation of `schema` by `value` (at `path`, dotted as field errors are)."""
    causes: list[Cause] = []
    _validate(value, schema, path, causes)
    return causes


def _validate(value: Any, schema: Obj, path: str, causes: list[Cause]) -> None:
    if value is None:
        if not schema.get("nullable") and schema.get("type"):
            causes.append(_type_cause(path, str(schema["type"]), value))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if json_type(value) not in ("integer", "string"):
            causes.append(_type_cause(path, "integer,string", value))
            return
    else:
        wanted = schema.get("type")
        if isinstance(wanted, str) and wanted and not _type_ok(wanted, value):
            causes.append(_type_cause(path, wanted, value))
            return
    fmt = schema.get("format")
    if isinstance(value, int) and not isinstance(value, bool) and fmt in _INT_RANGES:
        low, high = _INT_RANGES[fmt]
        if not low <= value <= high:
            causes.append(validation.invalid(path, value, f"{path} in body must be of type "
                                                          f'{fmt}: "{value}"'))
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        causes.append(validation.not_supported(
            path, value, [e if isinstance(e, str) else json.dumps(e) for e in enum]))
    if isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(value, schema, path, causes)
    if isinstance(value, str):
        _validate_string(value, schema, path, causes)
    if isinstance(value, list):
        _validate_array(value, schema, path, causes)
    if isinstance(value, dict):
        _validate_object(value, schema, path, causes)


def _validate_number(value: float, schema: Obj, path: str, causes: list[Cause]) -> None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if isinstance(low, int | float):
        if schema.get("exclusiveMinimum") and value <= low:
            causes.append(validation.invalid(path, value, f"{path} in body should be greater "
                                                          f"than {low}"))
        elif value < low:
            causes.append(validation.invalid(path, value, f"{path} in body should be greater "
                                                          f"than or equal to {low}"))
    if isinstance(high, int | float):
        if schema.get("exclusiveMaximum") and value >= high:
            causes.append(validation.invalid(path, value, f"{path} in body should be less "
                                                          f"than {high}"))
        elif value > high:
            causes.append(validation.invalid(path, value, f"{path} in body should be less "
                                                          f"than or equal to {high}"))


def _validate_string(value: str, schema: Obj, path: str, causes: list[Cause]) -> None:
    low, high = schema.get("minLength"), schema.get("maxLength")
    if isinstance(low, int) and len(value) < low:
        causes.append(validation.invalid(path, value, f"{path} in body should be at least "
                                                      f"{low} chars long"))
    if isinstance(high, int) and len(value) > high:
        unit = "byte" if high == 1 else "bytes"
        causes.append(Cause(path, f"Too long: may not be more than {high} {unit}",
                            validation.TOO_LONG))
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            matched = re.search(pattern, value) is not None
        except re.error:
            matched = True  # an unparseable pattern was refused with the CRD already
        if not matched:
            causes.append(validation.invalid(path, value, f"{path} in body should match "
                                                          f"'{pattern}'"))


def _validate_array(value: list[Any], schema: Obj, path: str, causes: list[Cause]) -> None:
    low, high = schema.get("minItems"), schema.get("maxItems")
    if isinstance(low, int) and len(value) < low:
        causes.append(validation.invalid(path, len(value), f"{path} in body should have at "
                                                           f"least {low} items"))
    if isinstance(high, int) and len(value) > high:
        causes.append(Cause(path, f"Too many: {len(value)}: must have at most {high} items",
                            "FieldValueTooMany"))
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(item, items, f"{path}[{i}]", causes)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _validate_object(value: Obj, schema: Obj, path: str, causes: list[Cause]) -> None:
    required = schema.get("required")
    for name in required if isinstance(required, list) else []:
        if name not in value:
            causes.append(validation.required(_join(path, str(name))))
    if schema.get("x-kubernetes-embedded-resource"):
        for name in ("apiVersion", "kind"):
            if not value.get(name):
                causes.append(validation.required(_join(path, name), "must not be empty"))
    properties = schema.get("properties")
    props = properties if isinstance(properties, dict) else {}
    extra = schema.get("additionalProperties")
    for name, item in value.items():
        sub = props.get(name)
        if isinstance(sub, dict):
            _validate(item, sub, _join(path, name), causes)
        elif isinstance(extra, dict):
            _validate(item, extra, _join(path, name), causes)


# ---- pruning and defaulting ---------------------------------------------------------------

def prune(value: Any, schema: Obj, path: str = "", *, root: bool = True,
          remove: bool = True) -> list[str]:
    """Paths of the fields `schema` does not declare; `remove` drops them in place
    (apiextensions' structural pruning). `root` spares apiVersion/kind/metadata."""
    found: list[str] = []
    _prune(value, schema, path, found, remove, root)
    return found


def _prune(value: Any, schema: Obj, path: str, found: list[str], remove: bool,
           root: bool) -> None:
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _prune(item, items, f"{path}[{i}]", found, remove, False)
        return
    if not isinstance(value, dict):
        return
    keep_resource = root or bool(schema.get("x-kubernetes-embedded-resource"))
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    properties = schema.get("properties")
    props = properties if isinstance(properties, dict) else {}
    extra = schema.get("additionalProperties")
    for name in list(value):
        if keep_resource and name in _ROOT_FIELDS and name not in props:
            continue
        sub = props.get(name)
        if isinstance(sub, dict):
            _prune(value[name], sub, _join(path, name), found, remove, False)
        elif isinstance(extra, dict):
            _prune(value[name], extra, _join(path, name), found, remove, False)
        elif not (preserve or extra is True):
            found.append(_join(path, name))
            if remove:
                del value[name]


def apply_defaults(value: Any, schema: Obj) -> None:
    """Fill the schema's `default`s into `value`, in place, top-down (as apiextensions'
    structural defaulting does: a defaulted object then gets its own fields' defaults)."""
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                apply_defaults(item, items)
        return
    if not isinstance(value, dict):
        return
    properties = schema.get("properties")
    for name, sub in (properties.items() if isinstance(properties, dict) else ()):
        if not isinstance(sub, dict):
            continue
        if name not in value and "default" in sub:
            value[name] = copy.deepcopy(sub["default"])
        if name in value:
            apply_defaults(value[name], sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for name, item in value.items():
            if not isinstance(properties, dict) or name not in properties:
                apply_defaults(item, extra)


# ---- structural schema checks (for the CRD's own validation) ------------------------------

def structural_errors(schema: Any, path: str) -> list[Cause]:
    """Why `schema` (a version's openAPIV3Schema, at `path`) is not structural."""
    causes: list[Cause] = []
    if not isinstance(schema, dict):
        return [validation.required(path, "")]
    kind = schema.get("type")
    if not kind and not schema.get("x-kubernetes-preserve-unknown-fields"):
        causes.append(validation.required(f"{path}.type", "must not be empty at the root"))
    elif kind and kind != "object":
        causes.append(validation.invalid(f"{path}.type", kind, "must be object at the root"))
    _structural(schema, path, causes, root=True)
    return causes


def _structural(schema: Obj, path: str, causes: list[Cause], *, root: bool = False) -> None:
    kind = schema.get("type")
    if "$ref" in schema:
        causes.append(validation.forbidden(f"{path}.$ref", "$ref is not supported"))
    if kind is not None and kind not in _TYPE_NAMES:
        causes.append(validation.not_supported(f"{path}.type", kind, _TYPE_NAMES))
    exempt = schema.get("x-kubernetes-preserve-unknown-fields") or \
        schema.get("x-kubernetes-int-or-string")
    if not root and not kind and not exempt:
        causes.append(validation.required(f"{path}.type",
                                          "must not be empty for specified object fields"))
    if schema.get("x-kubernetes-int-or-string") and kind:
        causes.append(validation.forbidden(f"{path}.type", "must be empty if "
                                           "x-kubernetes-int-or-string is true"))
    if kind == "array" and not isinstance(schema.get("items"), dict):
        causes.append(validation.required(f"{path}.items", "must be specified"))
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as e:
            causes.append(validation.invalid(f"{path}.pattern", pattern, str(e)))
    properties = schema.get("properties")
    if properties is not None and kind not in (None, "object"):
        causes.append(validation.forbidden(f"{path}.properties",
                                           "must be empty for type other than object"))
    if isinstance(properties, dict):
        if isinstance(schema.get("additionalProperties"), dict):
            causes.append(validation.forbidden(
                f"{path}.additionalProperties",
                "additionalProperties and properties are mutual exclusive"))
        for name, sub in properties.items():
            if isinstance(sub, dict):
                _structural(sub, f"{path}.properties[{name}]", causes)
    for key in ("items", "additionalProperties"):
        sub = schema.get(key)
        if isinstance(sub, dict):
            _structural(sub, f"{path}.{key}", causes)


# ---- printer columns ----------------------------------------------------------------------

_JSON_PATH = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


def json_path(obj: Any, expression: str) -> tuple[bool, Any]:
    """A simple JSONPath (`.spec.x`, `.spec.list[0].y`, braces optional) → (found, value)."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    value = obj
    for field, index in _JSON_PATH.findall(text):
        if field:
            if not isinstance(value, dict) or field not in value:
                return False, None
            value = value[field]
        else:
            if not isinstance(value, list) or int(index) >= len(value):
                return False, None
            value = value[int(index)]
    return True, value


def _cell(col: Obj, obj: Obj, now: datetime) -> Any:
    found, value = json_path(obj, str(col.get("jsonPath", "")))
    if not found or value is None:
        return None
    kind = col.get("type")
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        return json.dumps(value) if isinstance(value, dict | list) else str(value)
    if kind == "integer":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if kind == "number":
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "date":
        return since(value, now) if isinstance(value, str) else None
    return None


_DEFAULT_COLUMNS: tuple[Obj, ...] = (
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},)


def _printer(columns: list[Obj]) -> tuple[tuple[Obj, ...], Any]:
    shown = tuple(columns) or _DEFAULT_COLUMNS
    definitions = (NAME_COLUMN, *(column(str(c.get("name", "")), str(c.get("description", "")),
                                         type=str(c.get("type", "string")),
                                         priority=int(c.get("priority") or 0),
                                         format=str(c.get("format", "")))
                                  for c in shown))

    def cells(obj: Obj, now: datetime) -> Row:
        name = str((obj.get("metadata") or {}).get("name", ""))
        return [name, *(_cell(c, obj, now) for c in shown)], []
    return definitions, cells


# ---- the Kind records ---------------------------------------------------------------------

def _openapi_schema(schema: Obj, resource: Resource) -> Obj:
    """The version's schema as an OpenAPI component: apiVersion/kind/metadata declared
    (metadata as ObjectMeta), as kube-apiserver publishes custom resources."""
    out = copy.deepcopy(schema)
    props = out.setdefault("properties", {})
    props.setdefault("apiVersion", {"type": "string", "description": (
        "APIVersion defines the versioned schema of this representation of an object.")})
    props.setdefault("kind", {"type": "string", "description": (
        "Kind is a string value representing the REST resource this object represents.")})
    props["metadata"] = {"allOf": [{"$ref": "#/components/schemas/"
                                            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]}
    out["type"] = "object"
    out["x-kubernetes-group-version-kind"] = [{"group": resource.group,
                                                "version": resource.version,
                                                "kind": resource.kind}]
    return out


def _root_name(group: str, version: str, kind: str) -> str:
    """apiextensions' definition name: the group reversed (`com.example.stable.v1.CronTab`)."""
    return ".".join([*reversed(group.split(".")), version, kind])


def _scale_of(scale: Any) -> ScaleSubresource | None:
    if not isinstance(scale, dict):
        return None

    def fields(path: Any) -> tuple[str, ...]:
        return tuple(p for p in str(path or "").split(".") if p)
    selector_path = str(scale.get("labelSelectorPath") or "")

    def selector(obj: Obj) -> str:
        found, value = json_path(obj, selector_path) if selector_path else (False, None)
        return value if found and isinstance(value, str) else ""
    return ScaleSubresource(spec_replicas=fields(scale.get("specReplicasPath")),
                            status_replicas=fields(scale.get("statusReplicasPath")),
                            selector=selector, default_replicas=0)


def kind_for(crd: Obj, version: Obj) -> Kind:
    """The record serving one version of a CRD (whose spec is already valid)."""
    spec = crd["spec"]
    names = spec["names"]
    resource = Resource(
        group=spec["group"], version=version["name"], plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(), kind=names["kind"],
        namespaced=spec.get("scope") == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()))
    schema: Obj = ((version.get("schema") or {}).get("openAPIV3Schema")
                   or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    subresources = version.get("subresources") or {}
    columns, cells = _printer(list(version.get("additionalPrinterColumns") or []))

    def default(obj: Obj) -> None:
        prune(obj, schema)
        apply_defaults(obj, schema)

    def validate(obj: Obj, old: Obj | None) -> list[Cause]:
        body = {k: v for k, v in obj.items() if k not in _ROOT_FIELDS}
        props = {k: v for k, v in (schema.get("properties") or {}).items()
                 if k not in _ROOT_FIELDS}
        return validate_value(body, {**schema, "properties": props}, "")

    def type_check(obj: Obj) -> str | None:
        # Custom objects are unstructured: any JSON object decodes; the schema's type
        # errors are 422 field errors (validate), as apiextensions-apiserver answers.
        return None

    def unknown(obj: Obj, remove: bool) -> list[str]:
        return prune(obj, schema, remove=remove)

    return Kind(
        resource=resource, root=_root_name(resource.group, resource.version, resource.kind),
        default=default, validate=validate, columns=columns, cells=cells,
        status_subresource="status" in subresources, scale=_scale_of(subresources.get("scale")),
        type_check=type_check, unknown_fields=unknown, strategic_merge=False,
        openapi_schema=_openapi_schema(schema, resource),
        extra={"crd": crd["metadata"]["name"]})


def kinds_for(crd: Obj) -> list[Kind]:
    """One record per served version of `crd`."""
    return [kind_for(crd, v) for v in crd["spec"].get("versions") or [] if v.get("served")]


def resources_of(crd: Obj) -> list[Resource]:
    """Every version's resource (served or not), for removal from a catalog."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    return [Resource(group=str(spec.get("group", "")), version=str(v.get("name", "")),
                     plural=str(names.get("plural", "")),
                     singular=str(names.get("singular", "")), kind=str(names.get("kind", "")),
                     namespaced=spec.get("scope") == "Namespaced")
            for v in spec.get("versions") or [] if isinstance(v, dict)]


__all__ = ["apply_defaults", "json_path", "kind_for", "kinds_for", "prune", "resources_of",
           "structural_errors", "validate_value"]
