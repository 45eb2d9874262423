"""OpenAPI v3: the shape kubectl 1.32 reads for `create -f` / `apply -f`."""

from __future__ import annotations

import pytest

from miniorch.api import openapi
from miniorch.api.errors import NotFound
from miniorch.api.kinds import BUILTIN_KINDS, RESOURCES, Resource, kind_of
from miniorch.core.objects import Obj

REF = "#/components/schemas/"


def test_root_points_at_each_group_version_with_its_hash() -> None:
    root = openapi.openapi_v3_root(BUILTIN_KINDS)
    served = {f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}"
              for r in RESOURCES}
    assert {"api/v1", "apis/coordination.k8s.io/v1", "apis/apps/v1",
            "apis/authorization.k8s.io/v1", "apis/batch/v1",
            "apis/apiextensions.k8s.io/v1"} <= served
    assert set(root["paths"]) == served
    for key, entry in root["paths"].items():
        url = entry["serverRelativeURL"]
        assert url.startswith(f"/openapi/v3/{key}?hash=")
        document = openapi.openapi_v3_document(BUILTIN_KINDS, key)
        assert url.split("hash=")[1] == openapi.document_hash(document)


@pytest.mark.parametrize("name", ["api/v1", "v1", "/api/v1", "coordination.k8s.io/v1",
                                  "apis/coordination.k8s.io/v1"])
def test_group_version_spellings(name: str) -> None:
    assert openapi.openapi_v3_document(BUILTIN_KINDS, name)["openapi"] == "3.0.0"


def test_unknown_group_version() -> None:
    with pytest.raises(NotFound):
        openapi.openapi_v3_document(BUILTIN_KINDS, "apis/example.com/v1")


def _doc_for(resource: Resource) -> Obj:
    key = f"apis/{resource.group}/{resource.version}" if resource.group else "api/v1"
    return openapi.openapi_v3_document(BUILTIN_KINDS, key)


@pytest.mark.parametrize("resource", [pytest.param(r, id=r.kind) for r in RESOURCES
                                      if "patch" in r.verbs])
def test_patch_operation_supports_field_validation(resource: Resource) -> None:
    """What kubectl's QueryParamVerifierV3 looks for: the first PATCH operation with the
    kind's GVK must have a `fieldValidation` query parameter."""
    doc = _doc_for(resource)
    gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
    patches = [item["patch"] for item in doc["paths"].values()
               if "patch" in item and item["patch"]["x-kubernetes-group-version-kind"] == gvk]
    assert patches
    for op in patches:
        assert any(p["name"] == "fieldValidation" and p["in"] == "query"
                   for p in op["parameters"])
        assert op["x-kubernetes-action"] == "patch"


@pytest.mark.parametrize("resource", [pytest.param(r, id=r.kind) for r in RESOURCES])
def test_kind_schema_has_gvk_and_every_ref_resolves(resource: Resource) -> None:
    doc = _doc_for(resource)
    schemas = doc["components"]["schemas"]
    root = schemas[kind_of(resource).root_definition]
    assert root["x-kubernetes-group-version-kind"] == [
        {"group": resource.group, "kind": resource.kind, "version": resource.version}]
    for ref in openapi._refs_of(doc):
        assert ref in schemas, ref


def test_patch_merge_keys_on_lists() -> None:
    schemas = openapi.openapi_v3_document(BUILTIN_KINDS, "api/v1")["components"]["schemas"]
    pod_spec = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]
    assert pod_spec["containers"]["x-kubernetes-patch-merge-key"] == "name"
    assert pod_spec["containers"]["x-kubernetes-patch-strategy"] == "merge"
    assert pod_spec["containers"]["items"] == {
        "allOf": [{"$ref": REF + "io.k8s.api.core.v1.Container"}], "default": {}}
    assert pod_spec["volumes"]["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    assert "x-kubernetes-patch-strategy" not in pod_spec["tolerations"]
    container = schemas["io.k8s.api.core.v1.Container"]
    assert container["required"] == ["name"]
    assert container["properties"]["ports"]["x-kubernetes-patch-merge-key"] == "containerPort"
    assert container["properties"]["env"]["x-kubernetes-patch-merge-key"] == "name"
    assert container["properties"]["volumeMounts"]["x-kubernetes-patch-merge-key"] == \
        "mountPath"
    ports = schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
    assert ports["x-kubernetes-patch-merge-key"] == "port"
    meta = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
    assert meta["labels"] == {"type": "object",
                              "additionalProperties": {"type": "string", "default": ""}}
    assert meta["finalizers"]["x-kubernetes-patch-strategy"] == "merge"


def test_scale_and_status_paths() -> None:
    paths = openapi.openapi_v3_document(BUILTIN_KINDS, "api/v1")["paths"]
    scale = paths["/api/v1/namespaces/{namespace}/replicationcontrollers/{name}/scale"]
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert "/api/v1/namespaces/{namespace}/pods/{name}/status" in paths
    assert "/api/v1/nodes/{name}" in paths
    assert "/api/v1/pods" in paths
    assert "/api/v1/namespaces/{namespace}/nodes/{name}" not in paths


def test_document_is_json_and_stable() -> None:
    first = openapi.openapi_v3_document(BUILTIN_KINDS, "api/v1")
    assert openapi.document_hash(first) == openapi.document_hash(
        openapi.openapi_v3_document(BUILTIN_KINDS, "api/v1"))
