"""Client-side apply: kubectl's last-applied annotation and 3-way strategic merge patch.

Data flow (kubectl apply, client side):
    original = the live object's `kubectl.kubernetes.io/last-applied-configuration`
    modified = the file's object + that annotation set to the file's object as JSON
    current  = the live object
    patch    = deletions(original → modified)  merged with  changes(current → modified)

so fields the user removed from their file are deleted, fields set by others (the
server, controllers) are left alone, and everything in the file wins. Lists of maps
with a strategic merge key (containers by `name`, container ports by `containerPort`,
Service ports by `port`, …) are merged item by item with `$setElementOrder/<list>`
and `{"$patch": "delete"}` directives, as apimachinery's strategicpatch writes them.
An empty patch (`{}`) means `unchanged`: nothing is sent.
"""

from __future__ import annotations

import copy
import json
from typing import Any

Obj = dict[str, Any]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def merge_key(path: tuple[str, ...], *, kind: str) -> str | None:
    """The strategic merge key of the list at `path` (field names, indices omitted)."""
    if not path:
        return None
    last, parent = path[-1], (path[-2] if len(path) > 1 else "")
    if last in _CONTAINER_LISTS or last in ("volumes", "imagePullSecrets"):
        return "name"
    if last == "env" and parent in _CONTAINER_LISTS:
        return "name"
    if last == "ports":
        if parent in _CONTAINER_LISTS:
            return "containerPort"
        if kind == "Service" and path == ("spec", "ports"):
            return "port"
        return None
    if last == "volumeMounts":
        return "mountPath"
    if last == "volumeDevices":
        return "devicePath"
    if last == "hostAliases":
        return "ip"
    if last == "ownerReferences":
        return "uid"
    if last == "conditions" and "status" in path:
        return "type"
    return None


def last_applied_json(obj: Obj) -> str:
    """The annotation's value: the object without the annotation, compact JSON + \\n."""
    clean = copy.deepcopy(obj)
    metadata = clean.setdefault("metadata", {})
    # kubectl always writes the annotations map, empty if it held only this one.
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(LAST_APPLIED, None)
    metadata["annotations"] = annotations
    return json.dumps(clean, sort_keys=True, separators=(",", ":")) + "\n"


def with_last_applied(obj: Obj) -> Obj:
    """`modified`: the object carrying its own last-applied annotation."""
    annotated = copy.deepcopy(obj)
    metadata = annotated.setdefault("metadata", {})
    annotations = metadata.get("annotations") or {}
    annotations[LAST_APPLIED] = last_applied_json(obj)
    metadata["annotations"] = annotations
    return annotated


def three_way_patch(original: Obj | None, modified: Obj, current: Obj, *, kind: str) -> Obj:
    """kubectl's CreateThreeWayMergePatch for core/v1 kinds."""
    delta = _diff_maps(current, modified, (), kind=kind, ignore_deletions=True,
                       ignore_changes=False)
    deletions = _diff_maps(original or {}, modified, (), kind=kind, ignore_deletions=False,
                           ignore_changes=True)
    return _merge_patches(deletions, delta, (), kind=kind)


def _diff_maps(original: Obj, modified: Obj, path: tuple[str, ...], *, kind: str,
               ignore_deletions: bool, ignore_changes: bool) -> Obj:
    patch: Obj = {}
    for key, mod in modified.items():
        if key not in original:
            if not ignore_changes:
                patch[key] = mod
            continue
        orig = original[key]
        sub = (*path, key)
        if isinstance(orig, dict) and isinstance(mod, dict):
            diff = _diff_maps(orig, mod, sub, kind=kind, ignore_deletions=ignore_deletions,
                              ignore_changes=ignore_changes)
            if diff:
                patch[key] = diff
        elif isinstance(orig, list) and isinstance(mod, list):
            mkey = merge_key(sub, kind=kind)
            if mkey and all(isinstance(i, dict) for i in [*orig, *mod]):
                _diff_list_of_maps(key, orig, mod, sub, mkey, patch, kind=kind,
                                   ignore_deletions=ignore_deletions,
                                   ignore_changes=ignore_changes)
            elif orig != mod and not ignore_changes:
                patch[key] = mod
        elif (orig != mod or type(orig) is not type(mod)) and not ignore_changes:
            patch[key] = mod
    if not ignore_deletions:
        for key in original:
            if key not in modified:
                patch[key] = None
    return patch


def _diff_list_of_maps(key: str, original: list[Obj], modified: list[Obj],
                       path: tuple[str, ...], mkey: str, patch: Obj, *, kind: str,
                       ignore_deletions: bool, ignore_changes: bool) -> None:
    orig_by_key = {item.get(mkey): item for item in original}
    mod_keys = [item.get(mkey) for item in modified]
    items: list[Obj] = []
    for item in modified:
        value = item.get(mkey)
        if value not in orig_by_key:
            if not ignore_changes:
                items.append(item)
            continue
        diff = _diff_maps(orig_by_key[value], item, path, kind=kind,
                          ignore_deletions=ignore_deletions, ignore_changes=ignore_changes)
        if diff:
            diff[mkey] = value
            items.append(diff)
    if not ignore_deletions:
        items.extend({mkey: item.get(mkey), "$patch": "delete"}
                     for item in original if item.get(mkey) not in mod_keys)
    order_same = [k for k in (i.get(mkey) for i in original) if k in mod_keys] == \
        [k for k in mod_keys if k in orig_by_key]
    if items:
        patch[key] = items
    if (not ignore_changes and (items or not order_same)) or (not ignore_deletions and items):
        patch[f"$setElementOrder/{key}"] = [{mkey: k} for k in mod_keys]


def _merge_patches(base: Obj, overlay: Obj, path: tuple[str, ...], *, kind: str) -> Obj:
    """Merge two patches (deletions, then changes) into one, lists by merge key."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        sub = (*path, key)
        if key in merged and isinstance(merged[key], dict) and isinstance(value, dict):
            merged[key] = _merge_patches(merged[key], value, sub, kind=kind)
        elif (key in merged and isinstance(merged[key], list) and isinstance(value, list)
              and not key.startswith("$") and (mkey := merge_key(sub, kind=kind))):
            items = list(merged[key])
            index = {item.get(mkey): n for n, item in enumerate(items) if isinstance(item, dict)}
            for item in value:
                n = index.get(item.get(mkey)) if isinstance(item, dict) else None
                if n is None:
                    items.append(item)
                else:
                    items[n] = _merge_patches(items[n], item, sub, kind=kind)
            merged[key] = items
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_strategic_patch(target: Obj, patch: Obj, *, kind: str,
                          path: tuple[str, ...] = ()) -> Obj:
    """Apply a strategic merge patch (the subset `three_way_patch` writes) to `target`.

    Used by tests to check that current + patch == what the user asked for; the server
    has its own implementation."""
    result = copy.deepcopy(target)
    for key, value in patch.items():
        if key.startswith("$setElementOrder/"):
            continue
        sub = (*path, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = apply_strategic_patch(result[key], value, kind=kind, path=sub)
        elif isinstance(value, list) and (mkey := merge_key(sub, kind=kind)) \
                and isinstance(result.get(key), list):
            items: list[Any] = list(result[key])
            for item in value:
                at = next((n for n, cur in enumerate(items)
                           if isinstance(cur, dict) and cur.get(mkey) == item.get(mkey)), None)
                if item.get("$patch") == "delete":
                    if at is not None:
                        del items[at]
                elif at is None:
                    items.append(copy.deepcopy(item))
                else:
                    items[at] = apply_strategic_patch(items[at], item, kind=kind, path=sub)
            order = patch.get(f"$setElementOrder/{key}")
            if order:
                rank = {o.get(mkey): n for n, o in enumerate(order)}
                items.sort(key=lambda i: rank.get(i.get(mkey), len(rank)))
            result[key] = items
        else:
            result[key] = copy.deepcopy(value)
    return result
