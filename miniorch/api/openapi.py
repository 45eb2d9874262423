"""OpenAPI v3 documents for the served kinds, built from the field schema.

    registry.kinds + schema.definitions() ─► openapi_v3_document(kinds, gv) ─► /openapi/v3/<gv>
                                          └► openapi_v3_root(kinds)         ─► /openapi/v3

kubectl 1.32 reads these for `create -f` / `apply -f` (default `--validate=strict`):
it looks for the kind's PATCH operation (found by `x-kubernetes-group-version-kind`)
and, seeing a `fieldValidation` query parameter there, leaves validation to the server
(`?fieldValidation=Strict`). `kubectl apply` then computes its strategic-merge patch
from `components.schemas`, following `$ref`s (wrapped in `allOf`, as Kubernetes does) and
reading `x-kubernetes-patch-merge-key` / `x-kubernetes-patch-strategy` on lists, so the
schemas carry every field manifests use; the same table drives the server's strict
field check, so the document never promises a field the server would refuse.

Documents are pure functions of the code: the hash in the root's `serverRelativeURL`
is the SHA-512 of the document, so clients' caches invalidate when it changes.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from miniorch.api import schema
from miniorch.api.errors import NotFound
from miniorch.api.kinds import Kind
from miniorch.api.resource import Resource
from miniorch.core.objects import Obj

_REF = "#/components/schemas/"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_PATCH = _META + "Patch"


_SCALAR_SCHEMAS: dict[str, Obj] = {
    "string": {"type": "string"},
    "int32": {"type": "integer", "format": "int32"},
    "int64": {"type": "integer", "format": "int64"},
    "boolean": {"type": "boolean"},
    "number": {"type": "number", "format": "double"},
}
_SCALAR_REFS = {"int-or-string": _INT_OR_STRING, "quantity": _QUANTITY,
                "time": _META + "Time", "microtime": _META + "MicroTime"}

# Schemas that are not objects with fields (Kubernetes declares them by hand, too).
_SPECIAL_SCHEMAS: dict[str, Obj] = {
    _QUANTITY: {"description": "Quantity is a fixed-point representation of a number, e.g. "
                               "`500m`, `128Mi`.",
                "oneOf": [{"type": "string"}, {"type": "number"}]},
    _INT_OR_STRING: {"description": "IntOrString is a type that can hold an int32 or a string.",
                     "format": "int-or-string",
                     "oneOf": [{"type": "integer"}, {"type": "string"}]},
    _META + "Time": {"description": "Time is RFC 3339, to the second.", "type": "string",
                     "format": "date-time"},
    _META + "MicroTime": {"description": "MicroTime is RFC 3339 with microseconds.",
                          "type": "string", "format": "date-time"},
    _PATCH: {"description": "Patch is provided to give a concrete name and type to the "
                            "Kubernetes PATCH request body.", "type": "object"},
}


def _gvk(resource: Resource, kind: str | None = None) -> Obj:
    return {"group": resource.group, "version": resource.version, "kind": kind or resource.kind}


def _wrap_ref(name: str) -> Obj:
    return {"allOf": [{"$ref": _REF + name}], "default": {}}


def _type_schema(ftype: schema.FieldType) -> Obj:
    if ftype.kind == "scalar":
        if ftype.scalar in _SCALAR_REFS:
            return {"allOf": [{"$ref": _REF + _SCALAR_REFS[ftype.scalar]}]}
        return dict(_SCALAR_SCHEMAS[ftype.scalar])
    if ftype.kind == "object":
        return _wrap_ref(ftype.ref)
    if ftype.kind == "any":
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert ftype.item is not None
    item = _type_schema(ftype.item)
    if ftype.item.kind == "scalar" and ftype.item.scalar in ("string", "int32", "int64",
                                                              "boolean", "number"):
        item = {**item, "default": "" if ftype.item.scalar == "string" else 0}
    if ftype.kind == "map":
        return {"type": "object", "additionalProperties": item}
    out: Obj = {"type": "array", "items": item}
    if ftype.strategy:
        out["x-kubernetes-patch-strategy"] = ftype.strategy
    if ftype.merge_key:
        out["x-kubernetes-patch-merge-key"] = ftype.merge_key
        out["x-kubernetes-list-type"] = "map"
        out["x-kubernetes-list-map-keys"] = [ftype.merge_key]
    elif ftype.strategy:
        out["x-kubernetes-list-type"] = "set"
    else:
        out["x-kubernetes-list-type"] = "atomic"
    return out


def definition_schema(name: str) -> Obj:
    """The OpenAPI schema of one definition (by full name)."""
    if name in _SPECIAL_SCHEMAS:
        return dict(_SPECIAL_SCHEMAS[name])
    properties = {field: _type_schema(ftype)
                  for field, ftype in schema.fields_of(name).items()}
    out: Obj = {"type": "object", "properties": properties}
    required = [field for field, ftype in schema.fields_of(name).items() if ftype.required]
    if required:
        out["required"] = required
    return out


def _refs_of(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            found.add(ref[len(_REF):])
        for item in value.values():
            found |= _refs_of(item)
    elif isinstance(value, list):
        for item in value:
            found |= _refs_of(item)
    return found


def _list_schema(kind: Kind) -> Obj:
    resource = kind.resource
    return {
        "type": "object", "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "items": {"type": "array", "items": _wrap_ref(kind.root_definition)},
            "metadata": _wrap_ref(_META + "ListMeta"),
        },
        "x-kubernetes-group-version-kind": [_gvk(resource, resource.list_kind)],
    }


def _param(name: str, where: str = "query", *, type: str = "string",
           required: bool = False, description: str = "") -> Obj:
    param: Obj = {"name": name, "in": where, "description": description,
                  "schema": {"type": type, "uniqueItems": True}}
    if required:
        param["required"] = True
    return param


_FIELD_VALIDATION = _param(
    "fieldValidation", description="fieldValidation instructs the server on how to handle "
    "objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid "
    "values are: - Ignore - Warn (the default) - Strict")
_DRY_RUN = _param("dryRun", description="When present, indicates that modifications should "
                                        "not be persisted. Valid value: All")
_FIELD_MANAGER = _param("fieldManager", description="fieldManager is a name associated with "
                                                    "the actor or entity making these changes.")
_LIST_PARAMS = [
    _param("allowWatchBookmarks", type="boolean"), _param("continue"),
    _param("fieldSelector"), _param("labelSelector"), _param("limit", type="integer"),
    _param("resourceVersion"), _param("resourceVersionMatch"),
    _param("sendInitialEvents", type="boolean"), _param("timeoutSeconds", type="integer"),
    _param("watch", type="boolean"),
]
_DELETE_PARAMS = [
    _DRY_RUN, _param("gracePeriodSeconds", type="integer"),
    _param("orphanDependents", type="boolean"), _param("propagationPolicy"),
]
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
                "application/strategic-merge-patch+json")


def _content(name: str, *, watch: bool = False) -> Obj:
    types = ["application/json", "application/yaml"]
    if watch:
        types.append("application/json;stream=watch")
    return {t: {"schema": {"$ref": _REF + name}} for t in types}


def _operation(resource: Resource, action: str, op_id: str, *, kind: str | None = None,
               body: str | None = None, response: str, params: list[Obj],
               patch: bool = False, watch: bool = False, created: bool = False,
               strategic: bool = True) -> Obj:
    tag = ("core" if not resource.group else resource.group.split(".", 1)[0]) + \
        f"_{resource.version}"
    op: Obj = {
        "tags": [tag], "description": f"{action} {kind or resource.kind}",
        "operationId": op_id, "parameters": params,
        "responses": {"200": {"description": "OK", "content": _content(response, watch=watch)},
                      "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(resource, kind),
    }
    if created:
        op["responses"]["201"] = {"description": "Created", "content": _content(response)}
    if patch:
        # kubectl apply computes a strategic merge patch only where the PATCH operation
        # accepts one; for custom resources it then sends a JSON merge patch.
        types = _PATCH_TYPES if strategic else [t for t in _PATCH_TYPES if "strategic" not in t]
        op["requestBody"] = {"content": {t: {"schema": {"$ref": _REF + _PATCH}}
                                         for t in types}, "required": True}
    elif body is not None:
        op["requestBody"] = {"content": {"*/*": {"schema": {"$ref": _REF + body}}},
                             "required": True}
    return op


def _op_prefix(resource: Resource) -> str:
    group = resource.group.split(".", 1)[0].capitalize() if resource.group else "Core"
    return f"{group}{resource.version.capitalize()}"


def _paths_for(record: Kind) -> Obj:
    resource = record.resource
    prefix = _op_prefix(resource)
    kind = resource.kind
    root = record.root_definition
    ns = "Namespaced" if resource.namespaced else ""
    base = (f"/apis/{resource.group}/{resource.version}" if resource.group
            else f"/api/{resource.version}")
    collection = (f"{base}/namespaces/{{namespace}}/{resource.plural}" if resource.namespaced
                  else f"{base}/{resource.plural}")
    item = collection + "/{name}"
    path_params = [_param("name", "path", required=True, description=f"name of the {kind}")]
    ns_params = ([_param("namespace", "path", required=True, description="object name and "
                         "auth scope, such as for teams and projects")]
                 if resource.namespaced else [])
    write = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
    if record.answer is not None:  # a review: only ever created (answered), never stored
        return {collection: {
            "post": _operation(resource, "post", f"create{prefix}{ns}{kind}", body=root,
                               response=root, params=list(write), created=True),
            "parameters": ns_params}}
    paths: Obj = {
        collection: {
            "get": _operation(resource, "list", f"list{prefix}{ns}{kind}",
                              response=f"{root}List", params=list(_LIST_PARAMS), watch=True),
            "post": _operation(resource, "post", f"create{prefix}{ns}{kind}", body=root,
                               response=root, params=list(write), created=True),
            "delete": _operation(resource, "deletecollection",
                                 f"delete{prefix}Collection{ns}{kind}",
                                 body=_META + "DeleteOptions", response=_META + "Status",
                                 params=[*_DELETE_PARAMS, *_LIST_PARAMS]),
            "parameters": ns_params,
        },
        item: {
            "get": _operation(resource, "get", f"read{prefix}{ns}{kind}", response=root,
                              params=[]),
            "put": _operation(resource, "put", f"replace{prefix}{ns}{kind}", body=root,
                              response=root, params=list(write), created=True),
            "patch": _operation(resource, "patch", f"patch{prefix}{ns}{kind}", response=root,
                                params=[*write, _param("force", type="boolean")],
                                patch=True, created=True, strategic=record.strategic_merge),
            "delete": _operation(resource, "delete", f"delete{prefix}{ns}{kind}",
                                 body=_META + "DeleteOptions", response=_META + "Status",
                                 params=list(_DELETE_PARAMS)),
            "parameters": path_params + ns_params,
        },
    }
    if resource.namespaced:
        paths[f"{base}/{resource.plural}"] = {
            "get": _operation(resource, "list", f"list{prefix}{kind}ForAllNamespaces",
                              response=f"{root}List", params=list(_LIST_PARAMS), watch=True),
        }
    if record.status_subresource:
        paths[item + "/status"] = {
            "get": _operation(resource, "get", f"read{prefix}{ns}{kind}Status", response=root,
                              params=[]),
            "put": _operation(resource, "put", f"replace{prefix}{ns}{kind}Status", body=root,
                              response=root, params=list(write), created=True),
            "patch": _operation(resource, "patch", f"patch{prefix}{ns}{kind}Status",
                                response=root, params=[*write, _param("force", type="boolean")],
                                patch=True, created=True, strategic=record.strategic_merge),
            "parameters": path_params + ns_params,
        }
    if record.scale is not None:
        scale = schema.SCALE_DEFINITION
        scale_gvk = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
        ops = {
            "get": _operation(resource, "get", f"read{prefix}{ns}{kind}Scale", response=scale,
                              params=[], kind="Scale"),
            "put": _operation(resource, "put", f"replace{prefix}{ns}{kind}Scale", body=scale,
                              response=scale, params=list(write), created=True, kind="Scale"),
            "patch": _operation(resource, "patch", f"patch{prefix}{ns}{kind}Scale",
                                response=scale, params=[*write, _param("force", type="boolean")],
                                patch=True, created=True, kind="Scale"),
        }
        for op in ops.values():
            op["x-kubernetes-group-version-kind"] = dict(scale_gvk)
        paths[item + "/scale"] = {**ops, "parameters": path_params + ns_params}
    return paths


def _group_version_key(group_version: str) -> str:
    """`api/v1`, `v1`, `apis/coordination.k8s.io/v1` or `coordination.k8s.io/v1` →
    the root's key (`api/v1`, `apis/coordination.k8s.io/v1`)."""
    gv = group_version.strip("/")
    if gv.startswith(("api/", "apis/")):
        return gv
    return "api/" + gv if "/" not in gv else "apis/" + gv


def _kinds_in(kinds: Iterable[Kind], key: str) -> list[Kind]:
    return [k for k in kinds if _key_of(k.resource) == key]


def _key_of(r: Resource) -> str:
    return f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}"


def openapi_v3_document(kinds: Iterable[Kind], group_version: str) -> Obj:
    """The OpenAPI 3.0 document of one group-version (`api/v1`,
    `apis/coordination.k8s.io/v1`); NotFound for any other."""
    key = _group_version_key(group_version)
    served = _kinds_in(kinds, key)
    if not served:
        raise NotFound("the server could not find the requested resource")
    paths: Obj = {}
    roots: list[str] = [_META + "Status", _META + "DeleteOptions", _PATCH]
    list_schemas: dict[str, Obj] = {}
    ready: dict[str, Obj] = {}
    for kind in served:
        paths.update(_paths_for(kind))
        root = kind.root_definition
        if kind.openapi_schema is not None:
            ready[root] = copy.deepcopy(dict(kind.openapi_schema))
        else:
            roots.append(root)
        if kind.answer is None:
            list_schemas[f"{root}List"] = _list_schema(kind)
        if kind.scale is not None:
            roots.append(schema.SCALE_DEFINITION)
    schemas: dict[str, Obj] = {**list_schemas, **ready}
    roots.extend(sorted(_refs_of(ready)))
    pending = roots + sorted(_refs_of(list_schemas))
    while pending:
        name = pending.pop()
        if name in schemas:
            continue
        schemas[name] = definition_schema(name)
        pending.extend(_refs_of(schemas[name]) - set(schemas))
    for kind in served:
        schemas[kind.root_definition]["x-kubernetes-group-version-kind"] = [_gvk(kind.resource)]
    if schema.SCALE_DEFINITION in schemas:
        schemas[schema.SCALE_DEFINITION]["x-kubernetes-group-version-kind"] = [
            {"group": "autoscaling", "version": "v1", "kind": "Scale"}]
    for meta_kind in ("Status", "DeleteOptions"):
        schemas[_META + meta_kind]["x-kubernetes-group-version-kind"] = [
            {"group": "", "version": "v1", "kind": meta_kind}]
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description":
                                                "Bearer Token authentication",
                                                "name": "authorization", "in": "header"}},
        },
        "security": [{"BearerToken": []}],
    }


def document_hash(document: Obj) -> str:
    """Kubernetes' content hash for `?hash=`: SHA-512 of the JSON, upper-case hex."""
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha512(encoded).hexdigest().upper()


def group_versions(kinds: Iterable[Kind]) -> list[str]:
    """The root's keys, one per served group-version: `api/v1`, `apis/coordination.k8s.io/v1`."""
    keys: list[str] = []
    for k in kinds:
        key = _key_of(k.resource)
        if key not in keys:
            keys.append(key)
    return keys


OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
"""The answer's media type. kubectl asks for `…spec.v2@v1.0+protobuf`, but Go's
mime parser (which reads the reply's Content-Type) refuses the `@`: kube-openapi
answers with this spelling."""


def openapi_v2_document() -> Obj:
    """`GET /openapi/v2`: a Swagger 2.0 document with no definitions.

    kubectl 1.32 reads it for one thing only: `create|apply -f` of a `kind: List` skips
    the OpenAPI v3 field-validation probe (a List has no PATCH operation to find) and
    validates each item against the v2 definitions, skipping kinds it finds none for.
    With none here, each item is checked where every other object is, by the server
    (kubectl still sends `?fieldValidation=Strict` with each create). The v3 documents
    remain the schema; kubectl falls back to v2 only where v3 is missing."""
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": {}, "definitions": {}}


def openapi_v2_protobuf() -> bytes:
    """`openapi_v2_document()` as the gnostic `openapi.v2.Document` message kubectl asks
    for: `swagger` (field 1) and `info` (field 2: title 1, version 2); empty maps are
    absent on the wire."""
    def field(number: int, value: bytes) -> bytes:
        assert len(value) < 128  # one-byte varint lengths suffice here
        return bytes([number << 3 | 2, len(value)]) + value
    info = field(1, b"Kubernetes") + field(2, b"v1.32.0")
    return field(1, b"2.0") + field(2, info)


def openapi_v3_root(kinds: Iterable[Kind]) -> Obj:
    """`GET /openapi/v3`: where each group-version's document lives."""
    served = list(kinds)
    return {"paths": {
        key: {"serverRelativeURL": f"/openapi/v3/{key}?hash="
                                   f"{document_hash(openapi_v3_document(served, key))}"}
        for key in group_versions(served)}}
