"""PATCH: merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from miniorch.api import schema
from miniorch.api.errors import BadRequest, Invalid, UnsupportedMediaType
from miniorch.api.kinds import NAMESPACES, PODS, REPLICATION_CONTROLLERS, SERVICES, kind_of
from miniorch.api.patch import apply_patch
from miniorch.core.objects import Obj

SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


RC_SCHEMA = kind_of(REPLICATION_CONTROLLERS).root_definition

def rc() -> Obj:
    return {
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "kubia", "namespace": "default", "labels": {"app": "kubia"},
                     "annotations": {"note": "x"}, "finalizers": ["a.example/one"]},
        "spec": {"replicas": 3, "selector": {"app": "kubia"},
                 "template": {"metadata": {"labels": {"app": "kubia"}},
                              "spec": {"containers": [{
                                  "name": "kubia", "image": "kubia",
                                  "args": ["--a", "--b"],
                                  "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                  "env": [{"name": "A", "value": "1"},
                                          {"name": "B", "value": "2"}]}],
                                  "tolerations": [{"key": "k", "operator": "Exists"}],
                                  "volumes": [{"name": "data", "emptyDir": {}}]}}},
    }


def containers(obj: Obj) -> list[Obj]:
    result: list[Obj] = obj["spec"]["template"]["spec"]["containers"]
    return result


def smp(patch: Any, original: Obj | None = None) -> Obj:
    return apply_patch(original or rc(), json.dumps(patch).encode(), SMP, RC_SCHEMA)


# ---- strategic merge --------------------------------------------------------------------------


def test_kubectl_apply_example() -> None:
    """kubectl-compat.md §6, byte for byte as kubectl sends it."""
    body = (b'{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":'
            b'"{}"}},"spec":{"replicas":5,"template":{"spec":{"$setElementOrder/containers":'
            b'[{"name":"kubia"}],"containers":[{"image":"kubia:v2","name":"kubia"}]}}}}')
    original = rc()
    result = apply_patch(original, body, SMP + "; charset=utf-8", RC_SCHEMA)
    assert result["spec"]["replicas"] == 5
    assert containers(result) == [dict(containers(original)[0], image="kubia:v2")]
    assert result["metadata"]["annotations"] == {
        "note": "x", "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    assert original == rc()  # never modified
    assert "$setElementOrder/containers" not in json.dumps(result)


def test_null_deletes_and_maps_merge() -> None:
    result = smp({"metadata": {"labels": {"app": None, "tier": "web"}, "missing": None}})
    assert result["metadata"]["labels"] == {"tier": "web"}
    assert "missing" not in result["metadata"]


def test_lists_merge_by_key_at_every_level() -> None:
    result = smp({"spec": {"template": {"spec": {"containers": [
        {"name": "kubia", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
         "ports": [{"containerPort": 9090}]},
        {"name": "side", "image": "busybox"}]}}}})
    kubia, side = containers(result)
    assert kubia["image"] == "kubia"
    assert kubia["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "20"},
                            {"name": "C", "value": "3"}]
    # apimachinery's mergeSortedSlice: an item the live list has never seen goes before
    # server-only items (no live position to compare it with).
    assert kubia["ports"] == [{"containerPort": 9090},
                              {"containerPort": 8080, "protocol": "TCP"}]
    assert side == {"name": "side", "image": "busybox"}


def test_lists_without_merge_key_are_replaced() -> None:
    result = smp({"spec": {"template": {"spec": {
        "containers": [{"name": "kubia", "args": ["--c"]}],
        "tolerations": [{"key": "other", "operator": "Exists"}]}}}})
    assert containers(result)[0]["args"] == ["--c"]
    assert result["spec"]["template"]["spec"]["tolerations"] == [
        {"key": "other", "operator": "Exists"}]


def test_patch_delete_element_and_set_element_order() -> None:
    original = rc()
    containers(original).append({"name": "side", "image": "busybox"})
    result = smp({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "side"}],
        "containers": [{"$patch": "delete", "name": "kubia"}]}}}}, original)
    assert containers(result) == [{"name": "side", "image": "busybox"}]


def test_set_element_order_reorders_and_keeps_server_only_items() -> None:
    original = rc()
    containers(original).extend([{"name": "server-only", "image": "x"},
                                 {"name": "b", "image": "b"}])
    result = smp({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "kubia"}, {"name": "b"}],
        "containers": [{"name": "b", "image": "b:2"}]}}}}, original)
    assert [c["name"] for c in containers(result)] == ["kubia", "server-only", "b"]
    assert containers(result)[2]["image"] == "b:2"
    reordered = smp({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "kubia"}]}}}}, result)
    # Server-only items keep their live position relative to the first patch item they
    # precede (mergeSortedSlice), so `server-only` (live index 1) goes before `b` (2).
    assert [c["name"] for c in containers(reordered)] == ["server-only", "b", "kubia"]


def test_patch_replace_directives() -> None:
    in_list = smp({"spec": {"template": {"spec": {"containers": [
        {"name": "only", "image": "x"}, {"$patch": "replace"}]}}}})
    assert containers(in_list) == [{"name": "only", "image": "x"}]
    in_map = smp({"spec": {"selector": {"$patch": "replace", "run": "kubia"}}})
    assert in_map["spec"]["selector"] == {"run": "kubia"}
    deleted = smp({"metadata": {"annotations": {"$patch": "delete"}}})
    assert deleted["metadata"]["annotations"] == {}


def test_primitive_lists_merge_as_sets_and_delete_from_primitive_list() -> None:
    added = smp({"metadata": {"finalizers": ["b.example/two", "a.example/one"]}})
    assert added["metadata"]["finalizers"] == ["b.example/two", "a.example/one"]
    removed = smp({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example/one"]}},
                  added)
    assert removed["metadata"]["finalizers"] == ["b.example/two"]


def test_retain_keys_clears_the_old_volume_source() -> None:
    result = smp({"spec": {"template": {"spec": {"volumes": [
        {"name": "data", "hostPath": {"path": "/srv"}, "$retainKeys": ["hostPath", "name"]}]}}}})
    assert result["spec"]["template"]["spec"]["volumes"] == [
        {"name": "data", "hostPath": {"path": "/srv"}}]


def test_service_ports_merge_by_port() -> None:
    svc: Obj = {"metadata": {"name": "s"}, "spec": {"ports": [
        {"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30001}]}}
    result = apply_patch(svc, {"spec": {"ports": [{"port": 80, "targetPort": 9090},
                                                  {"name": "https", "port": 443}]}},
                         SMP, kind_of(SERVICES).root_definition)
    assert result["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": 9090, "nodePort": 30001},
        {"name": "https", "port": 443}]


def test_new_values_lose_nulls_and_directives() -> None:
    result = apply_patch({"metadata": {"name": "n"}},
                         {"spec": {"finalizers": ["kubernetes"], "x": None}}, SMP,
                         kind_of(NAMESPACES).root_definition)
    assert result["spec"] == {"finalizers": ["kubernetes"]}


def test_scale_subresource_definition() -> None:
    scale: Obj = {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": "k"},
                  "spec": {"replicas": 1}, "status": {"replicas": 1, "selector": "app=k"}}
    result = apply_patch(scale, b'{"spec":{"replicas":3}}', SMP, schema.SCALE_DEFINITION)
    assert result["spec"] == {"replicas": 3}


@pytest.mark.parametrize("patch", [
    pytest.param({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}},
                 id="missing-merge-key"),
    pytest.param({"spec": {"template": {"spec": {"containers": [{"$patch": "merge"}]}}}},
                 id="list-merge-directive"),
    pytest.param({"spec": {"$patch": "explode"}}, id="unknown-directive"),
    pytest.param([1, 2], id="not-an-object"),
])
def test_malformed_strategic_patches(patch: Any) -> None:
    with pytest.raises(BadRequest):
        smp(patch)


# ---- merge patch --------------------------------------------------------------------------


@pytest.mark.parametrize(("target", "patch", "result"), [
    pytest.param({"a": "b"}, {"a": "c"}, {"a": "c"}, id="replace"),
    pytest.param({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}, id="add"),
    pytest.param({"a": "b"}, {"a": None}, {}, id="delete"),
    pytest.param({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}, id="delete-one"),
    pytest.param({"a": ["b"]}, {"a": "c"}, {"a": "c"}, id="list-to-scalar"),
    pytest.param({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}, id="scalar-to-list"),
    pytest.param({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}},
                 id="nested"),
    pytest.param({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}, id="lists-replace"),
    pytest.param({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}, id="new-nested-null"),
])
def test_merge_patch_rfc7386(target: Obj, patch: Obj, result: Obj) -> None:
    assert apply_patch(target, patch, MERGE, kind_of(PODS).root_definition) == result


def test_merge_patch_scale_as_kubectl_sends_it() -> None:
    result = apply_patch(rc(), b'{"spec":{"replicas":3}}', MERGE, RC_SCHEMA)
    assert result["spec"]["replicas"] == 3
    assert containers(result) == containers(rc())  # lists untouched when not in the patch


# ---- JSON patch -------------------------------------------------------------------------------


def test_json_patch_operations() -> None:
    ops = [
        {"op": "replace", "path": "/spec/replicas", "value": 4},
        {"op": "add", "path": "/metadata/labels/tier", "value": "web"},
        {"op": "remove", "path": "/metadata/annotations/note"},
        {"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--c"},
        {"op": "add", "path": "/spec/template/spec/containers/0/args/0", "value": "--z"},
        {"op": "copy", "from": "/spec/selector", "path": "/metadata/annotations/copied"},
        {"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/labels/role"},
        {"op": "test", "path": "/spec/replicas", "value": 4},
        {"op": "add", "path": "/metadata/labels/a~1b", "value": "slash"},
    ]
    result = apply_patch(rc(), json.dumps(ops).encode(), JSON_PATCH, RC_SCHEMA)
    assert result["spec"]["replicas"] == 4
    assert result["metadata"]["labels"] == {"app": "kubia", "role": "web", "a/b": "slash"}
    assert result["metadata"]["annotations"] == {"copied": {"app": "kubia"}}
    assert containers(result)[0]["args"] == ["--z", "--a", "--b", "--c"]


@pytest.mark.parametrize(("ops", "error", "message"), [
    pytest.param([{"op": "test", "path": "/spec/replicas", "value": 9}], Invalid,
                 "testing value /spec/replicas failed: test failed", id="test-fails"),
    pytest.param([{"op": "remove", "path": "/spec/nope"}], Invalid,
                 "Unable to remove nonexistent key: nope", id="remove-missing"),
    pytest.param([{"op": "replace", "path": "/spec/nope/deeper", "value": 1}], Invalid,
                 "doc is missing path", id="replace-missing"),
    pytest.param([{"op": "add", "path": "/spec/template/spec/containers/7", "value": {}}],
                 Invalid, "index out of bounds", id="index-out-of-bounds"),
    pytest.param([{"op": "frobnicate", "path": "/a"}], BadRequest, "Unexpected kind",
                 id="unknown-op"),
    pytest.param({"op": "add"}, BadRequest, "jsonpatch.Patch", id="not-a-list"),
])
def test_json_patch_errors(ops: Any, error: type[Exception], message: str) -> None:
    original = rc()
    with pytest.raises(error, match=message):
        apply_patch(original, json.dumps(ops).encode(), JSON_PATCH, RC_SCHEMA)
    assert original == rc()


def test_json_patch_is_atomic() -> None:
    original = rc()
    before = copy.deepcopy(original)
    with pytest.raises(Invalid):
        apply_patch(original, [{"op": "replace", "path": "/spec/replicas", "value": 1},
                               {"op": "test", "path": "/spec/replicas", "value": 2}],
                    JSON_PATCH, RC_SCHEMA)
    assert original == before


# ---- content types and bodies --------------------------------------------------------------


def test_unsupported_media_type() -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        apply_patch(rc(), b"spec: {}", "application/apply-patch+yaml", RC_SCHEMA)
    assert info.value.to_status()["code"] == 415
    assert info.value.message == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json")


def test_undecodable_body_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        apply_patch(rc(), b"{not json", MERGE, RC_SCHEMA)
