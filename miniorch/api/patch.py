"""PATCH bodies: JSON merge patch, JSON patch and Kubernetes' strategic merge patch.

    server (PATCH, Content-Type) ─► apply_patch(original, body, content_type, definition)
                                 ─► the patched object ─► Registry.update

- `application/merge-patch+json` — RFC 7386: objects merge recursively, `null`
  deletes, anything else (lists included) replaces.
- `application/json-patch+json` — RFC 6902 operations over JSON pointers.
- `application/strategic-merge-patch+json` — apimachinery's strategic merge patch, as
  kubectl apply and the Python client send it: maps merge, `null` deletes, lists merge
  by their patch merge key where the schema (`schema.py`) declares one (containers by
  `name`, container ports by `containerPort`, ...) and are replaced otherwise; the
  directives `$patch` (replace/delete/merge), `$setElementOrder/<list>`,
  `$deleteFromPrimitiveList/<list>` and `$retainKeys` are honoured, and the order rules
  of apimachinery's `normalizeElementOrder` keep list order stable.

Errors: an unparsable or malformed patch is a 400 BadRequest; a JSON patch that
cannot be applied (a failed `test`, a missing path) is a 422 Invalid, as kube-apiserver
answers; any other content type is a 415. A JSON patch of more than 10,000 operations,
or whose `copy` operations would add more than `COPY_SIZE_LIMIT`, is a 413 (the bounds
kube-apiserver sets). The original is never modified.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from miniorch.api import jsontext, schema
from miniorch.api.errors import BadRequest, Invalid, RequestEntityTooLarge, UnsupportedMediaType
from miniorch.core.objects import Obj

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

MAX_JSON_PATCH_OPERATIONS = 10_000
"""kube-apiserver's bound on the operations of one JSON patch."""
COPY_SIZE_LIMIT = 3 * 1024 * 1024
"""Bytes (as JSON) that the `copy` operations of one JSON patch may add in total.
Without a bound, each `copy` of a value into itself doubles the document: a 2 kB
patch of 25 copies asked for gigabytes (json-patch's AccumulatedCopySizeLimit)."""

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVES = "$deleteFromPrimitiveList/"


def apply_patch(original: Obj, patch: bytes | str | Obj | list[Any], content_type: str,
                definition: str | None) -> Obj:
    """Return `original` with `patch` applied; `definition` names the schema a strategic
    merge follows (the kind's `root_definition`, `schema.SCALE_DEFINITION` for the
    `/scale` subresource; None: no schema, every list is replaced)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in PATCH_TYPES:
        raise UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types "
            "include: " + ", ".join(PATCH_TYPES))
    body = _decode(patch)
    if media == JSON_PATCH:
        return json_patch(original, body)
    if not isinstance(body, dict):
        raise BadRequest(f"json: cannot unmarshal {_json_kind(body)} into Go value of type "
                         "map[string]interface {}")
    if media == MERGE_PATCH:
        result = merge_patch(original, body)
        assert isinstance(result, dict)
        return result
    return strategic_merge_patch(original, body, definition)


def _decode(patch: bytes | str | Obj | list[Any]) -> Any:
    if isinstance(patch, bytes | str):
        try:
            return jsontext.loads(patch)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"error decoding patch: {exc}") from None
    return copy.deepcopy(patch)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else "object"


# ---- RFC 7386 --------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch(target, patch)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ---- RFC 6902 --------------------------------------------------------------------------------


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise BadRequest(f"invalid JSON pointer: {path!r}")
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, path: str, *, for_add: bool) -> int:
    if for_add and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise Invalid(f"doc is missing path: {path!r}: invalid array index: {token}")
    index = int(token)
    limit = len(container) if for_add else len(container) - 1
    if index > limit:
        raise Invalid(f"doc is missing path: {path!r}: index out of bounds: {index}")
    return index


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise Invalid(f"doc is missing path: {path!r}: missing value")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, path, for_add=False)]
        else:
            raise Invalid(f"doc is missing path: {path!r}: missing value")
    return node


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise Invalid(f"doc is missing path: {path!r}: missing value")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path, for_add=False)]
    raise Invalid(f"doc is missing path: {path!r}: missing value")


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, for_add=True), value)
    else:
        raise Invalid(f"doc is missing path: {path!r}: missing value")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _pointer(path)
    if not tokens:
        raise Invalid("unable to remove the document root")
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise Invalid(f"error in remove for path: {path!r}: Unable to remove nonexistent "
                          f"key: {last}: missing value")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, path, for_add=False))
    raise Invalid(f"error in remove for path: {path!r}: missing value")


def json_patch(original: Obj, operations: Any) -> Obj:
    """RFC 6902: add, remove, replace, move, copy and test, applied in order, atomically."""
    if not isinstance(operations, list):
        raise BadRequest(f"json: cannot unmarshal {_json_kind(operations)} into Go value of "
                         "type jsonpatch.Patch")
    if len(operations) > MAX_JSON_PATCH_OPERATIONS:
        raise RequestEntityTooLarge(
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
            f"got {len(operations)}")
    doc: Any = copy.deepcopy(original)
    copied = 0
    for op in operations:
        if not isinstance(op, dict):
            raise BadRequest("json: cannot unmarshal into Go value of type jsonpatch.Operation")
        kind = op.get("op")
        path = op.get("path")
        if not isinstance(path, str):
            raise BadRequest(f"operation missing path field: {json.dumps(op)}")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise BadRequest(f"operation missing value field: {json.dumps(op)}")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)  # must exist
            doc, _ = _remove(doc, path) if _pointer(path) else (doc, None)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            source = op.get("from")
            if not isinstance(source, str):
                raise BadRequest(f"operation missing from field: {json.dumps(op)}")
            if kind == "move":
                if path.startswith(source + "/"):
                    raise Invalid(f"Unable to move {source!r} into its own child {path!r}")
                doc, value = _remove(doc, source)
            else:
                value = _get(doc, source)
                # Measured before copying: the bound holds for the work done, too.
                copied += len(json.dumps(value, separators=(",", ":")))
                if copied > COPY_SIZE_LIMIT:
                    raise RequestEntityTooLarge(
                        f"Unable to copy, the accumulated size increase of copy is {copied}, "
                        f"exceeding the limit {COPY_SIZE_LIMIT}")
                value = copy.deepcopy(value)
            doc = _add(doc, path, value)
        elif kind == "test":
            try:
                current = _get(doc, path)
            except Invalid:
                current = _MISSING
            if current is _MISSING or current != op["value"]:
                raise Invalid(f"testing value {path} failed: test failed")
        else:
            raise BadRequest(f"Unexpected kind: {kind}")
    if not isinstance(doc, dict):
        raise Invalid("the patched document is not an object")
    return doc


_MISSING = object()


# ---- strategic merge patch ---------------------------------------------------------------


def strategic_merge_patch(original: Obj, patch: Obj, definition: str | None) -> Obj:
    """apimachinery's StrategicMergeMapPatch with the server's options (merge parallel
    deletion lists, ignore nulls that match nothing)."""
    return _merge_map(copy.deepcopy(original), copy.deepcopy(patch), definition)


def _field(definition: str | None, key: str) -> schema.FieldType | None:
    return schema.field_type(definition, key) if definition in schema.definitions() else None


def _sub_definition(ftype: schema.FieldType | None) -> str | None:
    if ftype is None:
        return None
    if ftype.kind == "object":
        return ftype.ref
    if ftype.kind in ("list", "map") and ftype.item is not None and ftype.item.kind == "object":
        return ftype.item.ref
    return None


def _merge_map(original: Obj, patch: Obj, definition: str | None) -> Obj:
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            replaced: Obj = _strip({k: v for k, v in patch.items() if k != _DIRECTIVE})
            return replaced
        if directive == "delete":
            return {}
        if directive != "merge":
            raise BadRequest(f"unknown patch type: {directive} in map: {patch}")
        patch = {k: v for k, v in patch.items() if k != _DIRECTIVE}
    _apply_retain_keys(original, patch)
    patch = _merge_ordered_lists(original, patch, definition)
    for key, value in patch.items():
        is_delete_list = key.startswith(_DELETE_PRIMITIVES)
        if is_delete_list:
            key = key[len(_DELETE_PRIMITIVES):]
        if value is None:
            original.pop(key, None)
            continue
        if key not in original:
            if not is_delete_list:
                original[key] = _strip(value)
            continue
        current = original[key]
        ftype = _field(definition, key)
        if isinstance(current, dict) and isinstance(value, dict):
            if ftype is not None and ftype.strategy == "replace":
                original[key] = _strip(value)
            else:
                original[key] = _merge_map(current, value, _sub_definition(ftype))
        elif isinstance(current, list) and isinstance(value, list):
            original[key] = _merge_list_field(current, value, ftype,
                                              is_delete_list=is_delete_list)
        elif not is_delete_list:
            original[key] = _strip(value)
    return original


def _merge_list_field(current: list[Any], value: list[Any], ftype: schema.FieldType | None,
                      *, is_delete_list: bool) -> list[Any]:
    if is_delete_list:
        return [item for item in current if item not in value]
    if ftype is not None and ftype.kind == "list" and ftype.strategy.startswith("merge"):
        return _merge_list(current, value, _sub_definition(ftype), ftype.merge_key)
    return _strip_list(value)


def _apply_retain_keys(original: Obj, patch: Obj) -> None:
    if _RETAIN_KEYS not in patch:
        return
    retain = patch.pop(_RETAIN_KEYS)
    if not isinstance(retain, list):
        raise BadRequest("invalid patch format of retainKeys")
    keep = set(retain)
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_PRIMITIVES, _SET_ORDER)):
            continue
        if key not in keep:
            raise Invalid("doesn't match the retainKeys directive")
    for key in list(original):
        if key not in keep:
            del original[key]


def _merge_ordered_lists(original: Obj, patch: Obj, definition: str | None) -> Obj:
    """`$setElementOrder/<list>`: merge the list, then order it as the directive says
    (apimachinery's mergePatchIntoOriginal)."""
    patch = dict(patch)
    for key in [k for k in patch if k.startswith(_SET_ORDER)]:
        order = patch.pop(key)
        list_key = key[len(_SET_ORDER):]
        if not isinstance(order, list):
            raise BadRequest("invalid patch format of setElementOrder list")
        ftype = _field(definition, list_key)
        merge_key = ftype.merge_key if ftype is not None else ""
        found_original = list_key in original
        found_patch = list_key in patch
        original_list = original.get(list_key) if found_original else []
        patch_list = patch.get(list_key) if found_patch else []
        if not isinstance(original_list, list) or not isinstance(patch_list, list):
            raise BadRequest("invalid patch format of setElementOrder list")
        _check_order_list(patch_list, order, merge_key)
        if found_original and not found_patch:
            merged = original_list
        elif found_patch and not found_original:
            merged = _strip_list(patch_list)
        elif found_patch and found_original:
            merged = _merge_list_field(original_list, patch_list, ftype, is_delete_list=False)
        else:
            continue
        in_order, server_only = _partition(merged, order, merge_key)
        original[list_key] = _normalize_order(in_order, server_only, order, original_list,
                                              merge_key)
        patch.pop(list_key, None)
    return patch


def _check_order_list(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """Every non-directive patch item must appear in the order list, in the same order."""
    positions = []
    for item in patch_list:
        if isinstance(item, dict) and _DIRECTIVE in item:
            continue
        position = _position(order, item, merge_key)
        if position < 0:
            raise BadRequest("invalid patch format of setElementOrder list")
        positions.append(position)
    if positions != sorted(positions):
        raise BadRequest("invalid patch format of setElementOrder list")


def _key_of(item: Any, merge_key: str) -> Any:
    if merge_key and isinstance(item, dict):
        return ("key", json.dumps(item.get(merge_key), sort_keys=True))
    return ("value", json.dumps(item, sort_keys=True))


def _position(items: list[Any], item: Any, merge_key: str) -> int:
    wanted = _key_of(item, merge_key)
    for i, candidate in enumerate(items):
        if _key_of(candidate, merge_key) == wanted:
            return i
    return -1


def _partition(merged: list[Any], order: list[Any], merge_key: str
               ) -> tuple[list[Any], list[Any]]:
    present: list[Any] = []
    absent: list[Any] = []
    for item in merged:
        (present if _position(order, item, merge_key) >= 0 else absent).append(item)
    return present, absent


def _normalize_order(patch_items: list[Any], server_only: list[Any], patch_order: list[Any],
                     server_order: list[Any], merge_key: str) -> list[Any]:
    """normalizeElementOrder: patch items in the patch's order, server-only items in the
    live order, interleaved where the live order says they sat (mergeSortedSlice)."""
    patch_items = sorted(patch_items, key=lambda i: _position(patch_order, i, merge_key))
    server_only = sorted(server_only, key=lambda i: _position(server_order, i, merge_key))
    result: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(patch_items):
        if i >= len(server_only):
            result.append(patch_items[j])
            j += 1
        elif j >= len(patch_items):
            result.append(server_only[i])
            i += 1
        else:
            left = _position(server_order, server_only[i], merge_key)
            right = _position(server_order, patch_items[j], merge_key)
            if left >= 0 and right >= 0 and left < right:
                result.append(server_only[i])
                i += 1
            else:
                result.append(patch_items[j])
                j += 1
    return result


def _merge_list(original: list[Any], patch: list[Any], item_definition: str | None,
                merge_key: str) -> list[Any]:
    """mergeSlice: scalars as a set, maps by their merge key."""
    if not original and not patch:
        return original
    sample = (patch or original)[0]
    if not isinstance(sample, dict):
        merged = list(original)
        for item in patch:
            if item not in merged:
                merged.append(item)
        in_patch, server_only = _partition(merged, patch, "")
        return _normalize_order(in_patch, server_only, patch, original, "")
    if not merge_key:
        raise BadRequest("cannot merge lists without merge key")
    # `$patch` elements first: delete by key, or replace the whole list.
    plain: list[Any] = []
    replace = False
    for item in patch:
        if not isinstance(item, dict):
            raise BadRequest("invalid patch: list items must all be objects")
        directive = item.get(_DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if merge_key not in item:
                raise BadRequest(f"map: {item} does not contain declared merge key: {merge_key}")
            original = [o for o in original
                        if not (isinstance(o, dict) and o.get(merge_key) == item[merge_key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise BadRequest("merging lists cannot yet be specified in the patch")
        else:
            raise BadRequest(f"unknown patch type: {directive} in map: {item}")
    if replace:
        return _strip_list(plain)
    merged = list(original)
    for item in plain:
        if merge_key not in item:
            raise BadRequest(f"map: {item} does not contain declared merge key: {merge_key}")
        for index, existing in enumerate(merged):
            if isinstance(existing, dict) and existing.get(merge_key) == item[merge_key]:
                merged[index] = _merge_map(existing, item, item_definition)
                break
        else:
            merged.append(_strip(item))
    in_patch, server_only = _partition(merged, plain, merge_key)
    return _normalize_order(in_patch, server_only, plain, original, merge_key)


def _strip(value: Any) -> Any:
    """A patch value that lands where nothing was: drop nulls and directives
    (apimachinery's discardNullValuesFromPatch + removeDirectives)."""
    if isinstance(value, dict):
        if value.get(_DIRECTIVE) == "delete":
            return {}
        return {k: _strip(v) for k, v in value.items()
                if v is not None and not k.startswith("$")}
    if isinstance(value, list):
        return _strip_list(value)
    return value


def _strip_list(items: list[Any]) -> list[Any]:
    kept = []
    for item in items:
        if isinstance(item, dict) and _DIRECTIVE in item and (
                item[_DIRECTIVE] == "delete" or set(item) == {_DIRECTIVE}):
            continue  # a deletion or a bare list-level marker: nothing to add
        kept.append(_strip(item))
    return kept
