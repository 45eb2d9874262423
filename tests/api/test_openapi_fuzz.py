"""Schemathesis over the API's own OpenAPI v3 documents: no 5xx, ever, and a request
the server refuses changes nothing.

    openapi_v3_document(gv) ─► schemathesis (hypothesis, derandomized) ─► cases
        cases ─► a real ApiServer (TLS, token, random port, no cluster) ─► status
        store snapshot before/after each write ─► "refused (4xx) or dry run ⇒ unchanged"

Each group-version's operations are fuzzed from three angles: free generation (random
names, namespaces, query parameters and bodies as the schema allows), the same aimed at
an existing object (`default/fuzz`, re-created before each case if a case deleted it),
so updates, patches and deletes reach the registry instead of stopping at a 404, and
schema-violating (negative) bodies and parameters aimed at it too. Dry-run writes
(`dryRun=All`) are aimed there as well: even when accepted they must change nothing.

Bounded and reproducible: a fixed number of examples per operation, derandomized, no
example database, no shrinking (a failure is reported with the case that hit it), so
the file runs in well under a minute and fails the same way on every machine.

`watch` is left out of the list operations' parameters: a watch is a stream that stays
open by design (tests/api/test_server_streams.py covers it).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import structlog
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from miniorch.api import openapi
from miniorch.api.kinds import BUILTIN_KINDS, RESOURCES, Resource
from miniorch.core.objects import Obj
from tests.api.server_support import Cluster, running_cluster

EXAMPLES = 12
"""Examples per operation (over its angles): ~190 operations, ~2500 requests."""
POD_BODY_EXAMPLES = 4
"""Examples for a create/replace whose body holds a PodSpec: generating one costs ~0.3 s
(the schema is large), and the registry paths behind them are the same as the others'."""
POD_BODY_KINDS = {"Pod", "ReplicationController", "Deployment"}

NAME = "fuzz"
WRITES = ("POST", "PUT", "PATCH", "DELETE")

_TEMPLATE: Obj = {"metadata": {"labels": {"app": NAME}},
                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
_SELECTOR: Obj = {"matchLabels": {"app": NAME}}

# One valid object per kind, named `fuzz` (in `default` where namespaced): the target
# of the "aimed" angles.
SEEDS: dict[str, Obj] = {
    "pods": {"spec": copy.deepcopy(_TEMPLATE["spec"])},
    "replicationcontrollers": {"spec": {"replicas": 1, "selector": {"app": NAME},
                                        "template": _TEMPLATE}},
    "services": {"spec": {"ports": [{"port": 80}]}},
    "endpoints": {"subsets": []},
    "nodes": {},
    "events": {"involvedObject": {"kind": "Pod", "namespace": "default", "name": NAME},
               "reason": "Fuzzed", "message": "seed"},
    "namespaces": {},
    "configmaps": {"data": {"key": "value"}},
    "secrets": {"data": {"key": base64.b64encode(b"value").decode()}},
    "serviceaccounts": {},
    "deployments": {"spec": {"replicas": 1, "selector": _SELECTOR, "template": _TEMPLATE}},
    "replicasets": {"spec": {"replicas": 1, "selector": _SELECTOR, "template": _TEMPLATE}},
    "daemonsets": {"spec": {"selector": _SELECTOR, "template": _TEMPLATE}},
    "statefulsets": {"spec": {"replicas": 1, "serviceName": NAME, "selector": _SELECTOR,
                              "template": _TEMPLATE}},
    "controllerrevisions": {"revision": 1, "data": {}},
    "jobs": {"spec": {"template": {**_TEMPLATE, "spec": {**_TEMPLATE["spec"],
                                                         "restartPolicy": "Never"}}}},
    "cronjobs": {"spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {
        **_TEMPLATE, "spec": {**_TEMPLATE["spec"], "restartPolicy": "Never"}}}}}},
}

# Every core/v1 kind, and Deployment for the workloads: the other apps and batch kinds
# share its code paths (generic registry, pod-template validation), at the price of
# the slowest bodies to generate.
GROUP_VERSIONS = [pytest.param("api/v1", None, id="core-v1"),
                  pytest.param("apis/apps/v1", {"deployments"}, id="apps-v1-deployments")]


@dataclass
class Target:
    cluster: Cluster
    url: str
    token: str
    ca: Path
    session: requests.Session

    def seed(self) -> None:
        """Puts back every `fuzz` object a case deleted (or a namespace it left
        Terminating is left as it is: that is a state the API must handle too)."""
        self.cluster.call(_seed, self.cluster)

    def snapshot(self) -> tuple[int, str]:
        return self.cluster.call(_snapshot, self.cluster)


def _stored(resource: Resource) -> bool:
    return resource.plural in SEEDS


def _seed(cluster: Cluster) -> None:
    registry = cluster.registry
    for resource in RESOURCES:
        if not _stored(resource):
            continue
        namespace = "default" if resource.namespaced else ""
        if registry.try_get(resource, namespace, NAME) is not None:
            continue
        obj = copy.deepcopy(SEEDS[resource.plural])
        obj["metadata"] = {"name": NAME, **({"namespace": namespace} if namespace else {})}
        registry.create(resource, obj)


def _snapshot(cluster: Cluster) -> tuple[int, str]:
    """The store's resourceVersion and every stored object, as one comparable value."""
    store = cluster.registry.store
    everything = {}
    for resource in RESOURCES:
        if _stored(resource):
            items, _rv = cluster.registry.list(resource)
            everything[resource.plural] = items
    return store.resource_version, json.dumps(everything, sort_keys=True)


@pytest.fixture(scope="module")
def plain_logs() -> Iterator[None]:
    """The cluster's own log format (key=value, no caching) while fuzzing: structlog's
    development default renders a failed request's locals with rich, which takes
    minutes on a hostile body; restored afterwards."""
    saved = structlog.get_config()
    structlog.configure(processors=[structlog.processors.format_exc_info,
                                    structlog.processors.KeyValueRenderer()],
                        cache_logger_on_first_use=False)
    try:
        yield
    finally:
        structlog.configure(**saved)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, plain_logs: None) -> Iterator[Target]:
    with running_cluster(tmp_path_factory.mktemp("fuzz")) as cluster:
        config = yaml.safe_load(cluster.kubeconfig.read_text())
        server = config["clusters"][0]["cluster"]
        ca = cluster.home / "fuzz-ca.pem"
        ca.write_bytes(base64.b64decode(server["certificate-authority-data"]))
        with requests.Session() as session:
            t = Target(cluster, server["server"], config["users"][0]["user"]["token"], ca,
                       session)
            t.seed()
            yield t


def _document(group_version: str) -> Obj:
    """The served document, as a client sees it, adapted for a generator: request
    bodies declared `*/*` (as Kubernetes declares them) are sent as JSON, and list
    operations do not open watches."""
    doc = openapi.openapi_v3_document(BUILTIN_KINDS, group_version)
    doc = json.loads(json.dumps(doc).replace('"*/*"', '"application/json"'))
    for item in doc["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and op.get("x-kubernetes-action") in (
                    "list", "deletecollection"):
                op["parameters"] = [p for p in op["parameters"]
                                    if p["name"] not in ("watch", "allowWatchBookmarks",
                                                         "sendInitialEvents")]
    return doc


def _angles(operation: Any) -> Any:
    """free | aimed at `fuzz` | negative aimed at `fuzz` | dry run aimed at `fuzz`."""
    aimed: dict[str, Any] = {}
    if "{namespace}" in operation.path:
        aimed["namespace"] = "default"
    if "{name}" in operation.path:
        aimed["name"] = NAME
    strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                  operation.as_strategy(generation_mode=GenerationMode.POSITIVE,
                                        path_parameters=aimed or None)]
    strategies.append(operation.as_strategy(generation_mode=GenerationMode.NEGATIVE,
                                            path_parameters=aimed or None))
    if operation.method.upper() in WRITES:
        strategies.append(operation.as_strategy(generation_mode=GenerationMode.POSITIVE,
                                                path_parameters=aimed or None,
                                                query={"dryRun": "All"}))
    return st.one_of(strategies)


def _check_operation(target: Target, operation: Any) -> list[str]:
    problems: list[str] = []

    gvk = operation.definition.raw.get("x-kubernetes-group-version-kind", {})
    heavy = operation.method.upper() in ("POST", "PUT") and gvk.get("kind") in POD_BODY_KINDS

    @settings(max_examples=POD_BODY_EXAMPLES if heavy else EXAMPLES, derandomize=True,
              database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=_angles(operation))
    def run(case: Any) -> None:
        write = case.method.upper() in WRITES
        if write:
            target.seed()
            before = target.snapshot()
        what = (f"{case.method} {case.formatted_path} query={case.query} "
                f"body={json.dumps(case.body, default=str)[:400]}")
        try:
            response = case.call(base_url=target.url, session=target.session,
                                 headers={"Authorization": f"Bearer {target.token}"},
                                 verify=str(target.ca), timeout=20)
        except requests.RequestException as exc:  # the server dropped the connection
            problems.append(f"no answer ({exc!r}) for {what}")
            return
        status = response.status_code
        if status >= 500:
            problems.append(f"{status} for {what}: {response.text[:400]}")
            return
        if not write:
            return
        dry_run = "All" in str((case.query or {}).get("dryRun", ""))
        if 400 <= status < 500 or dry_run:
            after = target.snapshot()
            if after != before:
                problems.append(f"{status} (dry run: {dry_run}) changed the store "
                                f"(rv {before[0]} -> {after[0]}) for {what}")

    run()
    return problems


@pytest.mark.parametrize(("group_version", "plurals"), GROUP_VERSIONS)
def test_no_5xx_and_refused_writes_change_nothing(target: Target, group_version: str,
                                                   plurals: set[str] | None) -> None:
    schema = schemathesis.openapi.from_dict(_document(group_version))
    problems: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if plurals is not None and not any(f"/{p}" in operation.path for p in plurals):
            continue
        operations += 1
        problems.extend(_check_operation(target, operation))
    assert operations > 10
    assert not problems, "\n".join(problems[:30])
