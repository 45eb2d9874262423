"""CustomResourceDefinitions and the custom resources they serve: CRD validation,
structural schemas, object validation, pruning, defaults, printer columns, and the
REST surface (discovery, patch types, subresources, OpenAPI) in-process."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from miniorch.api.errors import Invalid, NotFound
from miniorch.api.kinds import CUSTOM_RESOURCE_DEFINITIONS, Resource, UnknownResourceError
from miniorch.api.kinds.customresource import prune, structural_errors, validate_value
from miniorch.api.registry import Registry
from miniorch.api.store import Store
from miniorch.core.objects import Obj
from tests.api.server_support import app_client, make_registry

Client = TestClient[Any, Any]
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"

CRONTAB_SCHEMA: Obj = {
    "type": "object",
    "properties": {
        "spec": {"type": "object", "properties": {
            "cronSpec": {"type": "string", "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
            "image": {"type": "string"},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
            "mode": {"type": "string", "enum": ["fast", "slow"]},
            "tags": {"type": "array", "maxItems": 2, "items": {"type": "string",
                                                               "maxLength": 5}},
            "port": {"x-kubernetes-int-or-string": True},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "note": {"type": "string", "nullable": True},
        }, "required": ["cronSpec"]},
        "status": {"type": "object", "properties": {"replicas": {"type": "integer"},
                                                    "selector": {"type": "string"}}},
    },
}


def crontab_crd(**version: Any) -> Obj:
    v1: Obj = {"name": "v1", "served": True, "storage": True,
               "schema": {"openAPIV3Schema": copy.deepcopy(CRONTAB_SCHEMA)},
               "subresources": {"status": {}, "scale": {
                   "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                   "labelSelectorPath": ".status.selector"}},
               "additionalPrinterColumns": [
                   {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                   {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                   {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]}
    v1.update(version)
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {"group": "stable.example.com", "scope": "Namespaced",
                     "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab",
                               "shortNames": ["ct"], "categories": ["all"]},
                     "versions": [v1]}}


CRONTABS = Resource(group="stable.example.com", version="v1", plural="crontabs",
                    singular="crontab", kind="CronTab", namespaced=True)


def crontab(name: str = "c1", **spec: Any) -> Obj:
    return {"apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"cronSpec": "* * * * */5", "image": "img", **spec}}


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return make_registry(tmp_path)


def messages(error: Invalid) -> list[str]:
    return [f"{c.field}: {c.message}" for c in error.causes]


# ---- the CRD itself -------------------------------------------------------------------------

def test_crd_status_and_serving(registry: Registry) -> None:
    created = registry.create(CUSTOM_RESOURCE_DEFINITIONS, crontab_crd())
    status = created["status"]
    assert {(c["type"], c["status"]) for c in status["conditions"]} == {
        ("NamesAccepted", "True"), ("Established", "True")}
    assert status["acceptedNames"]["listKind"] == "CronTabList"
    assert status["storedVersions"] == ["v1"]
    assert registry.kinds.resource_for("ct").kind == "CronTab"
    assert registry.kinds.served("stable.example.com", "v1").keys() == {"crontabs"}


@pytest.mark.parametrize(("change", "expected"), [
    pytest.param(lambda c: c["metadata"].update(name="tabs.stable.example.com"),
                 'metadata.name: Invalid value: "tabs.stable.example.com": must be '
                 'spec.names.plural+"."+spec.group', id="name"),
    pytest.param(lambda c: c["spec"].update(scope="Global"),
                 'spec.scope: Unsupported value: "Global": supported values: "Cluster", '
                 '"Namespaced"', id="scope"),
    pytest.param(lambda c: c["spec"]["versions"][0].update(storage=False),
                 'spec.versions: Invalid value: "": must have exactly one version marked as '
                 'storage version', id="storage"),
    pytest.param(lambda c: c["spec"]["versions"][0].pop("schema"),
                 "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are "
                 "required", id="schema-required"),
    pytest.param(lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"].update(
        type="string"), 'spec.versions[0].schema.openAPIV3Schema.type: Invalid value: '
        '"string": must be object at the root', id="root-type"),
    pytest.param(lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
                 ["properties"]["spec"].pop("type"),
                 "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required "
                 "value: must not be empty for specified object fields", id="structural"),
    pytest.param(lambda c: c["spec"]["names"].update(shortNames=["C T"]),
                 'spec.names.shortNames[0]: Invalid value: "C T"', id="short-name"),
    pytest.param(lambda c: c["spec"]["versions"][0]["additionalPrinterColumns"][0].update(
        type="text"), 'spec.versions[0].additionalPrinterColumns[0].type: Unsupported value: '
        '"text"', id="column-type"),
    pytest.param(lambda c: c["spec"]["versions"][0]["subresources"]["scale"].update(
        specReplicasPath=".replicas"), "spec.versions[0].subresources.scale.specReplicasPath: "
        'Invalid value: ".replicas": should be a json path under .spec', id="scale-path"),
])
def test_crd_validation(registry: Registry, change: Any, expected: str) -> None:
    crd = crontab_crd()
    change(crd)
    with pytest.raises(Invalid) as err:
        registry.create(CUSTOM_RESOURCE_DEFINITIONS, crd)
    assert any(m.startswith(expected) for m in messages(err.value)), messages(err.value)
    assert "crontabs" not in registry.kinds.served("stable.example.com", "v1")


def test_preserve_unknown_fields_root_is_structural() -> None:
    assert structural_errors({"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                              "properties": {"spec": {"x-kubernetes-preserve-unknown-fields":
                                                      True}}}, "s") == []


def test_crd_restored_at_start_up(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    registry.create(CUSTOM_RESOURCE_DEFINITIONS, crontab_crd())
    registry.create(CRONTABS, crontab())
    registry.store.close()
    again = Registry(Store(tmp_path / "store.db"))
    assert again.get(CRONTABS, "default", "c1")["spec"]["replicas"] == 1
    assert again.kinds.resource_for("crontabs").group == "stable.example.com"
    again.store.close()


def test_deleting_the_crd_deletes_its_objects(registry: Registry) -> None:
    registry.create(CUSTOM_RESOURCE_DEFINITIONS, crontab_crd())
    registry.create(CRONTABS, crontab("a"))
    registry.delete(CUSTOM_RESOURCE_DEFINITIONS, "", "crontabs.stable.example.com")
    with pytest.raises(UnknownResourceError):
        registry.kinds.of(CRONTABS)
    assert registry.store.list(CRONTABS)[0] == []
    registry.create(CUSTOM_RESOURCE_DEFINITIONS, crontab_crd())
    with pytest.raises(NotFound):
        registry.get(CRONTABS, "default", "a")


def test_two_served_versions_share_objects(registry: Registry) -> None:
    crd = crontab_crd()
    v2 = copy.deepcopy(crd["spec"]["versions"][0])
    v2.update(name="v2", storage=False)
    crd["spec"]["versions"].append(v2)
    registry.create(CUSTOM_RESOURCE_DEFINITIONS, crd)
    assert set(registry.kinds.group_versions()["stable.example.com"]) == {"v1", "v2"}
    registry.create(CRONTABS, crontab())
    v2_res = registry.kinds.served("stable.example.com", "v2")["crontabs"].resource
    assert [o["metadata"]["name"] for o in registry.list(v2_res, "default")[0]] == ["c1"]
    crd = registry.get(CUSTOM_RESOURCE_DEFINITIONS, "", "crontabs.stable.example.com")
    crd["spec"]["versions"][1]["served"] = False
    registry.update(CUSTOM_RESOURCE_DEFINITIONS, crd)
    assert registry.kinds.group_versions()["stable.example.com"] == ["v1"]


# ---- custom objects ---------------------------------------------------------------------------

@pytest.fixture
def crontabs(registry: Registry) -> Registry:
    registry.create(CUSTOM_RESOURCE_DEFINITIONS, crontab_crd())
    return registry


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param({"replicas": "three"}, 'spec.replicas: Invalid value: "string": '
                 'spec.replicas in body must be of type integer: "string"', id="type"),
    pytest.param({"replicas": 0}, "spec.replicas: Invalid value: 0: spec.replicas in body "
                 "should be greater than or equal to 1", id="minimum"),
    pytest.param({"replicas": 11}, "spec.replicas: Invalid value: 11: spec.replicas in body "
                 "should be less than or equal to 10", id="maximum"),
    pytest.param({"mode": "medium"}, 'spec.mode: Unsupported value: "medium": supported '
                 'values: "fast", "slow"', id="enum"),
    pytest.param({"cronSpec": "often"}, 'spec.cronSpec: Invalid value: "often": '
                 "spec.cronSpec in body should match", id="pattern"),
    pytest.param({"tags": ["a", "b", "c"]}, "spec.tags: Too many: 3: must have at most 2 "
                 "items", id="maxItems"),
    pytest.param({"tags": ["toolong"]}, "spec.tags[0]: Too long: may not be more than 5 bytes",
                 id="maxLength"),
    pytest.param({"port": True}, 'spec.port: Invalid value: "boolean": spec.port in body '
                 'must be of type integer,string: "boolean"', id="int-or-string"),
    pytest.param({"labels": {"a": 1}}, 'spec.labels.a: Invalid value: "integer": '
                 'spec.labels.a in body must be of type string: "integer"',
                 id="additionalProperties"),
    pytest.param({"image": None}, 'spec.image: Invalid value: "null": spec.image in body '
                 'must be of type string: "null"', id="not-nullable"),
])
def test_object_validation(crontabs: Registry, spec: Obj, expected: str) -> None:
    with pytest.raises(Invalid) as err:
        crontabs.create(CRONTABS, crontab(**spec))
    assert str(err.value).startswith('CronTab.stable.example.com "c1" is invalid: ')
    assert any(m.startswith(expected) for m in messages(err.value)), messages(err.value)


def test_required_field(crontabs: Registry) -> None:
    obj = crontab()
    del obj["spec"]["cronSpec"]
    with pytest.raises(Invalid) as err:
        crontabs.create(CRONTABS, obj)
    assert messages(err.value) == ["spec.cronSpec: Required value"]


def test_valid_values_pass(crontabs: Registry) -> None:
    created = crontabs.create(CRONTABS, crontab(port="http", note=None, tags=["a"],
                                                labels={"x": "y"}))
    assert created["spec"]["port"] == "http"
    assert crontabs.create(CRONTABS, crontab("c2", port=8080))["spec"]["port"] == 8080


def test_pruning_and_defaults(crontabs: Registry) -> None:
    obj = crontab(unknown=1, extra={"anything": {"goes": True}})
    obj["top"] = "x"
    obj["metadata"]["labels"] = {"keep": "me"}
    created = crontabs.create(CRONTABS, obj)
    assert "top" not in created and "unknown" not in created["spec"]
    assert created["spec"]["extra"] == {"anything": {"goes": True}}
    assert created["spec"]["replicas"] == 1  # the schema's default
    assert created["metadata"]["labels"] == {"keep": "me"}


def test_unknown_field_paths() -> None:
    obj = {"spec": {"cronSpec": "x", "bogus": 1, "tags": ["a"]}, "bad": {}}
    assert prune(obj, CRONTAB_SCHEMA, remove=False) == ["spec.bogus", "bad"]
    assert "bad" in obj


def test_validate_value_format_int32() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "format": "int32"}}}
    assert [c.message for c in validate_value({"n": 2**31}, schema, "")] == [
        f'Invalid value: {2**31}: n in body must be of type int32: "{2**31}"']


def test_status_kept_on_main_write_and_scale(crontabs: Registry) -> None:
    crontabs.create(CRONTABS, crontab())
    crontabs.update_status(CRONTABS, "default", "c1", {"replicas": 2, "selector": "a=b"})
    obj = crontabs.get(CRONTABS, "default", "c1")
    obj["status"] = {"replicas": 9}
    obj["spec"]["image"] = "new"
    updated = crontabs.update(CRONTABS, obj)
    assert updated["status"] == {"replicas": 2, "selector": "a=b"}
    scale = crontabs.get_scale(CRONTABS, "default", "c1")
    assert scale["spec"]["replicas"] == 1 and scale["status"] == {"replicas": 2,
                                                                   "selector": "a=b"}
    crontabs.update_scale(CRONTABS, "default", "c1", {"spec": {"replicas": 4}})
    assert crontabs.get(CRONTABS, "default", "c1")["spec"]["replicas"] == 4


def test_printer_columns(crontabs: Registry) -> None:
    kind = crontabs.kinds.of(CRONTABS)
    assert [c["name"] for c in kind.columns] == ["Name", "Spec", "Replicas", "Age"]
    obj = crontab()
    obj["metadata"]["creationTimestamp"] = "2025-01-01T00:00:00Z"
    cells, _ = kind.cells(obj, datetime(2025, 1, 1, 0, 3, tzinfo=UTC))
    assert cells == ["c1", "* * * * */5", None, "3m"]


def test_default_printer_columns(registry: Registry) -> None:
    registry.create(CUSTOM_RESOURCE_DEFINITIONS, crontab_crd(additionalPrinterColumns=[]))
    kind = registry.kinds.of(CRONTABS)
    assert [(c["name"], c["type"]) for c in kind.columns] == [("Name", "string"),
                                                              ("Age", "date")]


# ---- over HTTP --------------------------------------------------------------------------------

@pytest.fixture
async def client(tmp_path: Path, crontabs: Registry) -> AsyncIterator[Client]:
    async with app_client(tmp_path, registry=crontabs) as c:
        yield c


URL = "/apis/stable.example.com/v1/namespaces/default/crontabs"


async def test_discovery_and_tables(client: Client) -> None:
    groups = await (await client.get("/apis")).json()
    assert "stable.example.com" in [g["name"] for g in groups["groups"]]
    group = await (await client.get("/apis/stable.example.com")).json()
    assert group["preferredVersion"]["groupVersion"] == "stable.example.com/v1"
    resources = await (await client.get("/apis/stable.example.com/v1")).json()
    names = {r["name"]: r for r in resources["resources"]}
    assert names.keys() == {"crontabs", "crontabs/status", "crontabs/scale"}
    assert names["crontabs"]["shortNames"] == ["ct"]
    assert (await client.post(URL, json=crontab())).status == 201
    table = await (await client.get(URL, headers={"Accept": TABLE})).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Spec", "Replicas",
                                                               "Age"]
    assert table["rows"][0]["cells"][:3] == ["c1", "* * * * */5", 1]
    crd_table = await (await client.get("/apis/apiextensions.k8s.io/v1/"
                                        "customresourcedefinitions",
                                        headers={"Accept": TABLE})).json()
    assert [c["name"] for c in crd_table["columnDefinitions"]] == ["Name", "Created At"]


async def test_patch_types_and_status(client: Client) -> None:
    await client.post(URL, json=crontab())
    strategic = await client.patch(f"{URL}/c1", data='{"spec":{"image":"x"}}', headers={
        "Content-Type": "application/strategic-merge-patch+json"})
    assert strategic.status == 415
    merged = await client.patch(f"{URL}/c1", data='{"spec":{"image":"x"}}', headers={
        "Content-Type": "application/merge-patch+json"})
    assert (await merged.json())["spec"]["image"] == "x"
    jsonp = await client.patch(f"{URL}/c1", data='[{"op":"replace","path":"/spec/replicas",'
                               '"value":3}]', headers={"Content-Type":
                                                       "application/json-patch+json"})
    assert (await jsonp.json())["spec"]["replicas"] == 3
    status = await client.patch(f"{URL}/c1/status", data='{"status":{"replicas":3}}',
                                headers={"Content-Type": "application/merge-patch+json"})
    assert (await status.json())["status"] == {"replicas": 3}
    strict = await client.post(URL + "?fieldValidation=Strict", json=crontab("c2", bogus=1))
    assert strict.status == 400
    assert 'unknown field "spec.bogus"' in (await strict.json())["message"]
    dry = await client.post(URL + "?dryRun=All", json=crontab("c3"))
    assert dry.status == 201
    assert (await client.get(f"{URL}/c3")).status == 404
    selected = await (await client.get(URL + "?fieldSelector=metadata.name=c1")).json()
    assert [i["metadata"]["name"] for i in selected["items"]] == ["c1"]
    assert (await client.delete(URL)).status == 200
    assert (await (await client.get(URL)).json())["items"] == []


async def test_openapi_document(client: Client) -> None:
    root = await (await client.get("/openapi/v3")).json()
    assert "apis/stable.example.com/v1" in root["paths"]
    doc = await (await client.get("/openapi/v3/apis/stable.example.com/v1")).json()
    schema = doc["components"]["schemas"]["com.example.stable.v1.CronTab"]
    assert schema["properties"]["spec"]["properties"]["replicas"]["maximum"] == 10
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "stable.example.com", "version": "v1", "kind": "CronTab"}]
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in doc["components"]["schemas"]
    patch = doc["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]
    assert "application/strategic-merge-patch+json" not in \
        patch["patch"]["requestBody"]["content"]


def test_deleting_a_namespace_deletes_its_custom_objects(crontabs: Registry) -> None:
    from miniorch.api.kinds import NAMESPACES
    crontabs.create(NAMESPACES, {"metadata": {"name": "team"}})
    obj = crontab("in-team")
    obj["metadata"]["namespace"] = "team"
    crontabs.create(CRONTABS, obj)
    crontabs.delete(NAMESPACES, "", "team")
    assert crontabs.store.list(CRONTABS, "team")[0] == []
