"""Shared by tests/api/test_server*.py: a registry, the app under TestClient, a real
ApiServer on a random port, and stand-ins for sibling modules not yet written.

Stand-ins live here (never in the modules they stand in for) and are used only when
the real module is missing or still a placeholder.
"""

from __future__ import annotations

import copy
import json
import os
import pty
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import CancelledError
from contextlib import asynccontextmanager, contextmanager, suppress
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
from aiohttp.test_utils import TestClient, TestServer
from anyio.from_thread import BlockingPortal, start_blocking_portal

from miniorch.api.kinds import Resource
from miniorch.api.registry import Registry
from miniorch.api.server import build_app
from miniorch.api.server_common import Plugins
from miniorch.api.server_exec import ExecProcess, ExecRequest
from miniorch.api.store import Store
from miniorch.core.clock import SystemClock
from miniorch.core.objects import Obj
from miniorch.core.settings import Settings

T = TypeVar("T")
TOKEN = "test-token-" + os.urandom(4).hex()


# ---- stand-ins ------------------------------------------------------------------------

def _standin_table(resource: Resource, objects: list[Obj], *, resource_version: str,
                   now: datetime, include_object: str = "Metadata") -> Obj:
    del now
    rows = []
    for obj in objects:
        row: Obj = {"cells": [obj["metadata"]["name"], "1s"]}
        if include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "description": "",
                 "priority": 0},
                {"name": "Age", "type": "string", "format": "", "description": "",
                 "priority": 0}],
            "rows": rows}


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def _standin_patch(original: Obj, patch: bytes, content_type: str, resource: Resource) -> Obj:
    del resource
    from miniorch.api.errors import BadRequest, UnsupportedMediaType
    if content_type == "application/apply-patch+yaml":
        raise UnsupportedMediaType("apply patch is not supported")
    try:
        parsed = json.loads(patch)
    except ValueError as exc:
        raise BadRequest(f"invalid patch: {exc}") from None
    if content_type == "application/json-patch+json":
        obj = copy.deepcopy(original)
        for op in parsed:
            parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
            node = obj
            for part in parts[:-1]:
                node = node[int(part)] if isinstance(node, list) else node[part]
            if op["op"] in ("add", "replace"):
                node[parts[-1]] = op["value"]
            elif op["op"] == "remove":
                del node[parts[-1]]
        return obj
    merged: Obj = _merge(original, parsed)
    return merged


def _standin_openapi_root() -> Obj:
    return {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=1"}}}


def _standin_openapi_document(group_version: str) -> Obj:
    from miniorch.api.kinds import RESOURCES
    if group_version != "v1":
        raise LookupError(group_version)
    paths: Obj = {}
    for r in RESOURCES:
        if r.group:
            continue
        path = f"/api/v1/namespaces/{{namespace}}/{r.plural}/{{name}}" if r.namespaced \
            else f"/api/v1/{r.plural}/{{name}}"
        paths[path] = {"patch": {
            "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": r.kind},
            "parameters": [{"name": "fieldValidation", "in": "query",
                            "schema": {"type": "string"}}],
            "responses": {"200": {"description": "OK"}}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": paths, "components": {"schemas": {}}}


async def local_spawner(request: ExecRequest) -> ExecProcess:
    """Runs the command as a plain local process (no namespaces): tests the framing."""
    from miniorch.sandbox.pod import ExecProcess as SandboxExecProcess
    if not request.tty:
        process = await anyio.open_process(request.argv)
        return SandboxExecProcess(process, master=None)
    master, slave = pty.openpty()
    try:
        process = await anyio.open_process(request.argv, stdin=slave, stdout=slave,
                                           stderr=slave, start_new_session=True)
    finally:
        os.close(slave)
    return SandboxExecProcess(process, master=master)


def test_plugins(settings: Settings) -> Plugins:
    """The real plugins where their modules exist; stand-ins for the missing ones. Exec
    always runs local processes (real namespaces are the e2e suite's business)."""
    del settings
    import importlib

    def real(module_name: str, attribute: str) -> Any:
        try:
            return getattr(importlib.import_module(module_name), attribute, None)
        except ImportError:
            return None

    unknown = real("miniorch.api.validation", "unknown_fields")
    return Plugins(
        to_table=real("miniorch.api.tables", "to_table") or _standin_table,
        apply_patch=real("miniorch.api.patch", "apply_patch") or _standin_patch,
        openapi_root=real("miniorch.api.openapi", "openapi_v3_root") or _standin_openapi_root,
        openapi_document=real("miniorch.api.openapi", "openapi_v3_document")
        or _standin_openapi_document,
        unknown_fields=(lambda resource, obj: list(unknown(resource, obj))) if unknown
        else (lambda resource, obj: []),
        spawn_exec=local_spawner,
    )


# ---- fixtures' building blocks ------------------------------------------------------------

def make_registry(tmp_path: Path) -> Registry:
    registry = Registry(Store(tmp_path / "store.db"))
    registry.ensure_system_objects()
    return registry


@asynccontextmanager
async def app_client(tmp_path: Path, *, registry: Registry | None = None,
                     settings: Settings | None = None) -> AsyncIterator[TestClient[Any, Any]]:
    settings = settings or Settings(home=tmp_path, api_port=0)
    registry = registry or make_registry(tmp_path)
    app = build_app(settings=settings, registry=registry, clock=SystemClock(), token=TOKEN,
                    plugins=test_plugins(settings))
    server = TestServer(app, handler_cancellation=True)
    async with TestClient(server, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client
    registry.store.close()


POD: Obj = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "kubia-manual", "labels": {"app": "kubia"}},
    "spec": {"containers": [{"name": "kubia", "image": "kubia",
                             "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]},
}


def pod(name: str, **labels: str) -> Obj:
    obj = copy.deepcopy(POD)
    obj["metadata"]["name"] = name
    if labels:
        obj["metadata"]["labels"] = dict(labels)
    return obj


# ---- a real ApiServer (TLS, token, random port) ---------------------------------------------

class Cluster:
    """A real ApiServer on its own event loop thread (a blocking portal), so tests can run
    kubectl and the synchronous Python client directly; registry calls go through
    `call()` to stay on the server's thread."""

    def __init__(self, home: Path, registry: Registry, portal: BlockingPortal) -> None:
        self.home = home
        self.registry = registry
        self.portal = portal
        self.kubeconfig = home / "kubeconfig"
        self.cache_dir = home / "kubectl-cache"

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self.portal.call(partial(fn, *args, **kwargs))

    def kubectl_argv(self, *args: str) -> list[str]:
        return ["kubectl", f"--kubeconfig={self.kubeconfig}",
                f"--cache-dir={self.cache_dir}", *args]

    def kubectl(self, *args: str, stdin: bytes | None = None,
                timeout: float = 30) -> tuple[int, str, str]:
        result = subprocess.run(self.kubectl_argv(*args), input=stdin, capture_output=True,
                                timeout=timeout, check=False)
        return result.returncode, result.stdout.decode(), result.stderr.decode()


@contextmanager
def running_cluster(tmp_path: Path) -> Iterator[Cluster]:
    from miniorch.api.server import ApiServer
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    settings = Settings(home=home, api_port=0)
    with start_blocking_portal() as portal:
        registry = portal.call(make_registry, home)
        server = ApiServer(settings=settings, registry=registry, clock=SystemClock(),
                           plugins=test_plugins(settings))
        future, _url = portal.start_task(server.run)
        try:
            yield Cluster(home, registry, portal)
        finally:
            future.cancel()
            with suppress(CancelledError):
                future.result(timeout=10)
            portal.call(registry.store.close)
