"""ConfigMap and Secret: defaulting, validation and printing, through their Kind records
and through the REST API."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from miniorch.api.errors import Invalid
from miniorch.api.kinds import CONFIGMAPS, SECRETS, kind_of
from miniorch.api.registry import Registry
from miniorch.api.tables import row_for
from miniorch.core.objects import Obj
from tests.api.server_support import app_client, make_registry

Client = TestClient[Any, Any]
NOW = datetime(2024, 1, 1, 0, 1, 0, tzinfo=UTC)


def cm(**fields: Any) -> Obj:
    return {"metadata": {"name": "settings", "namespace": "default"}, **fields}


def secret(**fields: Any) -> Obj:
    return {"metadata": {"name": "creds", "namespace": "default"}, **fields}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def checked(resource: Any, obj: Obj, old: Obj | None = None) -> Obj:
    obj = copy.deepcopy(obj)
    kind = kind_of(resource)
    kind.apply_defaults(obj)
    kind.check(obj, old)
    return obj


# ---- ConfigMap ------------------------------------------------------------------------------

def test_configmap_keys_follow_the_config_key_rule() -> None:
    checked(CONFIGMAPS, cm(data={"app.properties": "x=1", "LOG_LEVEL": "debug"}))
    with pytest.raises(Invalid) as info:
        checked(CONFIGMAPS, cm(data={"bad key": "x", "..hidden": "y"}))
    fields = {(c.field, c.message.split(":")[0]) for c in info.value.causes}
    assert ("data", 'Invalid value') in fields
    assert any("must not start with '..'" in c.message for c in info.value.causes)
    assert any("regex used for validation is '[-._a-zA-Z0-9]+'" in c.message
               for c in info.value.causes)


def test_configmap_key_in_data_and_binary_data_is_refused() -> None:
    with pytest.raises(Invalid) as info:
        checked(CONFIGMAPS, cm(data={"k": "v"}, binaryData={"k": b64("v")}))
    assert "duplicate of key present in binaryData" in info.value.message


def test_configmap_over_one_mebibyte_is_refused() -> None:
    with pytest.raises(Invalid) as info:
        checked(CONFIGMAPS, cm(data={"big": "x" * (1024 * 1024 + 1)}))
    assert "may not be more than 1048576 bytes" in info.value.message


def test_immutable_configmap_cannot_change_or_thaw() -> None:
    old = checked(CONFIGMAPS, cm(data={"k": "v"}, immutable=True))
    checked(CONFIGMAPS, cm(data={"k": "v"}, immutable=True), old)  # unchanged: fine
    with pytest.raises(Invalid) as info:
        checked(CONFIGMAPS, cm(data={"k": "changed"}, immutable=True), old)
    assert "data: Forbidden: field is immutable when `immutable` is set" in info.value.message
    with pytest.raises(Invalid):
        checked(CONFIGMAPS, cm(data={"k": "v"}), old)


def test_configmap_row_counts_both_kinds_of_data() -> None:
    obj = checked(CONFIGMAPS, cm(data={"a": "1", "b": "2"}, binaryData={"c": b64("3")}))
    obj["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z"
    assert row_for(kind_of(CONFIGMAPS), obj, now=NOW)["cells"] == ["settings", 3, "60s"]
    assert [c["name"] for c in kind_of(CONFIGMAPS).columns] == ["Name", "Data", "Age"]


# ---- Secret ---------------------------------------------------------------------------------

def test_secret_string_data_is_merged_into_data_and_dropped() -> None:
    obj = checked(SECRETS, secret(data={"user": b64("admin")},
                                  stringData={"password": "s3cr3t", "user": "root"}))
    assert "stringData" not in obj
    assert obj["type"] == "Opaque"
    # stringData wins over data for the same key, as in Kubernetes.
    assert obj["data"] == {"user": b64("root"), "password": b64("s3cr3t")}


def test_secret_data_must_be_base64() -> None:
    with pytest.raises(Invalid) as info:
        checked(SECRETS, secret(data={"k": "not base64!"}))
    assert info.value.causes[0].field == "data[k]"
    assert "illegal base64 data" in info.value.message
    assert "not base64!" not in info.value.message  # contents never echoed back


def test_well_known_secret_types_require_their_keys() -> None:
    with pytest.raises(Invalid) as info:
        checked(SECRETS, secret(type="kubernetes.io/tls", data={"tls.crt": b64("c")}))
    assert [c.field for c in info.value.causes] == ["data[tls.key]"]
    checked(SECRETS, secret(type="kubernetes.io/tls",
                            data={"tls.crt": b64("c"), "tls.key": b64("k")}))


def test_secret_type_is_immutable() -> None:
    old = checked(SECRETS, secret(data={"k": b64("v")}))
    with pytest.raises(Invalid) as info:
        checked(SECRETS, secret(type="kubernetes.io/basic-auth",
                                data={"username": b64("u")}), old)
    assert "type: Invalid value" in info.value.message
    assert "field is immutable" in info.value.message


def test_secret_row() -> None:
    obj = checked(SECRETS, secret(stringData={"a": "1"}))
    obj["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z"
    assert row_for(kind_of(SECRETS), obj, now=NOW)["cells"] == ["creds", "Opaque", 1, "60s"]


# ---- through the API ------------------------------------------------------------------------

@pytest.fixture
async def registry(tmp_path: Path) -> Registry:
    return make_registry(tmp_path)


@pytest.fixture
async def client(tmp_path: Path, registry: Registry) -> AsyncIterator[Client]:
    async with app_client(tmp_path, registry=registry) as c:
        yield c


async def test_served_with_discovery_and_short_name(client: Client) -> None:
    listing = json.loads(await (await client.get("/api/v1")).text())
    entries = {r["name"]: r for r in listing["resources"]}
    assert entries["configmaps"]["shortNames"] == ["cm"]
    assert entries["configmaps"]["kind"] == "ConfigMap"
    assert entries["secrets"]["kind"] == "Secret"


async def test_secret_create_and_bad_update_changes_nothing(client: Client,
                                                            registry: Registry) -> None:
    url = "/api/v1/namespaces/default/secrets"
    r = await client.post(url, json={"apiVersion": "v1", "kind": "Secret",
                                     "metadata": {"name": "creds"},
                                     "stringData": {"password": "pw"}})
    assert r.status == 201, await r.text()
    created = json.loads(await r.text())
    assert created["data"] == {"password": b64("pw")}
    assert "stringData" not in registry.get(SECRETS, "default", "creds")
    r = await client.patch(f"{url}/creds", data=json.dumps({"data": {"password": "%%%"}}),
                           headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 422
    status = json.loads(await r.text())
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "data[password]"
    assert registry.get(SECRETS, "default", "creds")["data"] == {"password": b64("pw")}
