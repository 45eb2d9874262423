"""Regressions from the OpenAPI fuzz run (tests/api/test_openapi_fuzz.py): request bodies
that used to drop the connection, poison a stored object, or exhaust the server — each
now answered with a 2xx or a 4xx, with the store left as it should be."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from miniorch.api import jsontext, patch
from miniorch.api.kinds import CONFIGMAPS, PODS
from miniorch.api.registry import Registry
from tests.api.server_support import POD, app_client, make_registry

Client = TestClient[Any, Any]
PODS_URL = "/api/v1/namespaces/default/pods"
POD_URL = PODS_URL + "/kubia-manual"
CM_URL = "/api/v1/namespaces/default/configmaps"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    yield make_registry(tmp_path)


@pytest.fixture
async def client(tmp_path: Path, registry: Registry) -> AsyncIterator[Client]:
    async with app_client(tmp_path, registry=registry) as c:
        r = await c.post(PODS_URL, json=POD)
        assert r.status == 201
        yield c


# ---- Warning headers quote what the client sent ---------------------------------------------

async def test_unknown_field_with_a_newline_is_warned_about_escaped(client: Client) -> None:
    r = await client.patch(POD_URL, data=json.dumps({"a\r\nX-Injected: 1": 1}),
                           headers=MERGE)
    assert r.status == 200
    assert "X-Injected" not in r.headers
    assert r.headers.getall("Warning") == [
        '299 - "unknown field \\"a\\u000d\\u000aX-Injected: 1\\""']


async def test_thousands_of_unknown_fields_get_a_bounded_set_of_warnings(
        client: Client) -> None:
    r = await client.patch(POD_URL, data=json.dumps({f"f{i}": i for i in range(2000)}),
                           headers=MERGE)
    assert r.status == 200
    warnings = r.headers.getall("Warning")
    assert 1 <= len(warnings) <= 50
    assert sum(len(w) for w in warnings) < 6 * 1024
    assert warnings[0] == '299 - "unknown field \\"f0\\""'


async def test_a_long_warning_is_cut_when_there_are_many(client: Client) -> None:
    fields = {"x" * 1000 + str(i): i for i in range(20)}
    r = await client.patch(POD_URL, data=json.dumps(fields), headers=MERGE)
    assert r.status == 200
    warnings = r.headers.getall("Warning")
    assert all(len(w) < 300 and w.endswith('..."') for w in warnings)


# ---- lone surrogates are U+FFFD, as Go decodes them -----------------------------------------

@pytest.mark.parametrize("headers", [pytest.param(MERGE, id="merge-patch"), pytest.param(
    {"Content-Type": "application/strategic-merge-patch+json"}, id="strategic")])
async def test_a_lone_surrogate_in_a_patch_never_poisons_the_object(
        client: Client, registry: Registry, headers: dict[str, str]) -> None:
    r = await client.patch(POD_URL, data=b'{"metadata": {"annotations": {"a": "\\ud8a9x"}},'
                           b' "\\udc00": 1}', headers=headers)
    assert r.status == 200
    assert registry.get(PODS, "default", "kubia-manual")["metadata"]["annotations"] == {
        "a": "\ufffdx"}
    for url in (POD_URL, PODS_URL, "/api/v1/pods"):
        assert (await client.get(url)).status == 200


async def test_a_lone_surrogate_in_a_created_object(client: Client, registry: Registry) -> None:
    body = b'{"metadata": {"name": "s"}, "data": {"k": "\\udfff"}, "\\ud800\\ud800": "v"}'
    r = await client.post(CM_URL, data=body, headers={"Content-Type": "application/json"})
    assert r.status == 201
    stored = registry.get(CONFIGMAPS, "default", "s")
    assert stored["data"] == {"k": "\ufffd"}
    assert (await client.get(CM_URL)).status == 200


def test_a_surrogate_pair_is_one_character() -> None:
    assert jsontext.loads(b'["\\ud83d\\ude00"]') == ["\U0001F600"]


# ---- nesting is bounded --------------------------------------------------------------------

def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize(("method", "url", "headers", "body"), [
    pytest.param("POST", CM_URL, {"Content-Type": "application/json"},
                 '{"metadata": {"name": "d"}, "x": %s}', id="create-json"),
    pytest.param("POST", CM_URL, {"Content-Type": "application/yaml"},
                 'metadata: {name: d}\nx: %s', id="create-yaml"),
    pytest.param("PATCH", POD_URL, MERGE, '{"x": %s}', id="merge-patch"),
    pytest.param("PATCH", POD_URL, {"Content-Type": "application/strategic-merge-patch+json"},
                 '{"x": %s}', id="strategic-merge-patch"),
    pytest.param("PATCH", POD_URL, JSON_PATCH, '[{"op": "add", "path": "/x", "value": %s}]',
                 id="json-patch"),
])
@pytest.mark.parametrize("levels", [150, 900, 5000])
async def test_deep_nesting_is_a_bad_request_and_changes_nothing(
        client: Client, registry: Registry, method: str, url: str, headers: dict[str, str],
        body: str, levels: int) -> None:
    rv = registry.store.resource_version
    r = await client.request(method, url, data=body % _deep(levels), headers=headers)
    assert r.status == 400, await r.text()
    assert "exceeded max depth of 100" in (await r.json())["message"]
    assert registry.store.resource_version == rv


async def test_nesting_within_the_bound_is_accepted(client: Client) -> None:
    r = await client.patch(POD_URL, data='{"x": ' + _deep(90) + '}', headers=MERGE)
    assert r.status == 200


# ---- JSON patch: operations and copies are bounded ------------------------------------------

async def test_a_copy_bomb_is_refused_before_it_grows(client: Client,
                                                      registry: Registry) -> None:
    """Each copy of a value into itself doubles it: 40 copies of 1 kB ask for a terabyte."""
    ops: list[Any] = [{"op": "add", "path": "/metadata/annotations", "value": {"a": "x" * 1000}}]
    ops += [{"op": "copy", "from": "/metadata/annotations", "path": f"/metadata/annotations/b{i}"}
            for i in range(40)]
    rv = registry.store.resource_version
    started = time.monotonic()
    r = await client.patch(POD_URL, data=json.dumps(ops), headers=JSON_PATCH)
    assert r.status == 413
    assert (await r.json())["message"].startswith("Unable to copy, the accumulated size")
    assert time.monotonic() - started < 5
    assert registry.store.resource_version == rv


async def test_copies_within_the_bound_apply(client: Client, registry: Registry) -> None:
    ops = [{"op": "add", "path": "/metadata/annotations", "value": {"a": "x"}},
           {"op": "copy", "from": "/metadata/annotations/a", "path": "/metadata/annotations/b"}]
    r = await client.patch(POD_URL, data=json.dumps(ops), headers=JSON_PATCH)
    assert r.status == 200
    assert registry.get(PODS, "default", "kubia-manual")["metadata"]["annotations"] == {
        "a": "x", "b": "x"}


async def test_too_many_json_patch_operations(client: Client) -> None:
    ops = [{"op": "test", "path": "/kind", "value": "Pod"}] * (
        patch.MAX_JSON_PATCH_OPERATIONS + 1)
    r = await client.patch(POD_URL, data=json.dumps(ops), headers=JSON_PATCH)
    assert r.status == 413
    assert "maximum operations in a JSON patch is 10000" in (await r.json())["message"]
