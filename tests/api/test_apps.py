"""apps/v1 Deployments and ReplicaSets: defaults, validation and Tables, as Kubernetes'."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from miniorch.api import tables
from miniorch.api.errors import Invalid
from miniorch.api.kinds import DEPLOYMENTS, REPLICA_SETS, Resource, kind_of, resource_for
from miniorch.api.kinds.apps import selector_string
from miniorch.core.clock import rfc3339
from miniorch.core.objects import Obj

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def workload(kind: str = "Deployment", **spec: Any) -> Obj:
    body: Obj = {
        "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "web", "image": "kubia"}]}}}
    body.update(spec)
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": "web", "namespace": "default"}, "spec": body}


def checked(resource: Resource, obj: Obj, old: Obj | None = None) -> Obj:
    obj = copy.deepcopy(obj)
    kind_of(resource).apply_defaults(obj)
    kind_of(resource).check(obj, old)
    return obj


def causes(resource: Resource, obj: Obj, old: Obj | None = None) -> list[tuple[str, str]]:
    with pytest.raises(Invalid) as info:
        checked(resource, obj, old)
    return [(c.field, c.message) for c in info.value.causes]


def test_names_and_categories() -> None:
    assert resource_for("deploy") == DEPLOYMENTS and resource_for("rs") == REPLICA_SETS
    assert DEPLOYMENTS.api_version == "apps/v1" and DEPLOYMENTS.categories == ("all",)
    assert kind_of(DEPLOYMENTS).scale is not None and kind_of(REPLICA_SETS).status_subresource


def test_deployment_defaults() -> None:
    d = checked(DEPLOYMENTS, workload(replicas=None))
    spec = d["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Always" and pod["terminationGracePeriodSeconds"] == 30
    assert pod["containers"][0]["imagePullPolicy"] == "Always"
    recreate = checked(DEPLOYMENTS, workload(strategy={"type": "Recreate"}))
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}


def test_replica_set_defaults_keep_the_selector_explicit() -> None:
    rs = checked(REPLICA_SETS, workload("ReplicaSet", replicas=None))
    assert rs["spec"]["replicas"] == 1 and rs["status"] == {"replicas": 0}
    assert causes(REPLICA_SETS, workload("ReplicaSet", selector=None)) == [
        ("spec.selector", "Required value")]


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param({"replicas": -1}, [("spec.replicas", "Invalid value: -1: must be greater "
                                     "than or equal to 0")], id="replicas"),
    pytest.param({"selector": {"matchLabels": {"app": "other"}}},
                 [("spec.template.metadata.labels",
                   'Invalid value: map[string]string{"app":"web"}: `selector` does not match '
                   "template `labels`")], id="mismatch"),
    pytest.param({"selector": {}},
                 [("spec.selector", "Invalid value: map[string]string{}: empty selector is "
                   "invalid for deployment")], id="empty-selector"),
    pytest.param({"strategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}},
                 [("spec.strategy.rollingUpdate.maxUnavailable",
                   'Invalid value: "0%": may not be 0 when `maxSurge` is 0')], id="both-zero"),
    pytest.param({"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}},
                 [("spec.strategy.rollingUpdate",
                   "Forbidden: may not be specified when strategy `type` is 'Recreate'")],
                 id="recreate-rolling"),
    pytest.param({"strategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": "150%"}}},
                 [("spec.strategy.rollingUpdate.maxUnavailable",
                   'Invalid value: "150%": must not be greater than 100%')], id="over-100"),
    pytest.param({"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "x"}}},
                 [("spec.strategy.rollingUpdate.maxSurge",
                   "Invalid value: \"x\": a valid percent string must be a numeric string "
                   "followed by an ending '%' (e.g. '1%',  or '93%', regex used for "
                   "validation is '[0-9]+%')")], id="bad-percent"),
    pytest.param({"strategy": {"type": "Blue"}},
                 [("spec.strategy.type", 'Unsupported value: "Blue": supported values: '
                   '"Recreate", "RollingUpdate"')], id="strategy-type"),
    pytest.param({"minReadySeconds": 10, "progressDeadlineSeconds": 10},
                 [("spec.progressDeadlineSeconds",
                   "Invalid value: 10: must be greater than minReadySeconds")], id="deadline"),
    pytest.param({"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}},
                 [("spec.selector.matchExpressions[0].values",
                   "Required value: must be specified when `operator` is 'In' or 'NotIn'")],
                 id="expression-values"),
])
def test_deployment_validation(spec: Obj, expected: list[tuple[str, str]]) -> None:
    assert causes(DEPLOYMENTS, workload(**spec)) == expected


def test_selector_is_immutable() -> None:
    old = checked(DEPLOYMENTS, workload())
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "x"}}
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    assert causes(DEPLOYMENTS, new, old) == [
        ("spec.selector", 'Invalid value: {"matchLabels": {"app": "web", "tier": "x"}}: '
         "field is immutable")]
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 5
    checked(DEPLOYMENTS, scaled, old)


def test_selector_string_includes_expressions() -> None:
    rs = workload("ReplicaSet", selector={
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]},
                             {"key": "legacy", "operator": "DoesNotExist"}]})
    assert selector_string(rs) == "app=web,!legacy,tier in (a,b)"


def test_deployment_table() -> None:
    kind = kind_of(DEPLOYMENTS)
    assert [(c["name"], c["priority"]) for c in kind.columns] == [
        ("Name", 0), ("Ready", 0), ("Up-to-date", 0), ("Available", 0), ("Age", 0),
        ("Containers", 1), ("Images", 1), ("Selector", 1)]
    d = workload()
    d["metadata"]["creationTimestamp"] = rfc3339(NOW - timedelta(minutes=5))
    d["status"] = {"replicas": 3, "updatedReplicas": 2, "readyReplicas": 1,
                   "availableReplicas": 1}
    assert tables.row_for(kind, d, now=NOW)["cells"] == [
        "web", "1/3", 2, 1, "5m", "web", "kubia", "app=web"]


def test_replica_set_table() -> None:
    kind = kind_of(REPLICA_SETS)
    assert [c["name"] for c in kind.columns] == [
        "Name", "Desired", "Current", "Ready", "Age", "Containers", "Images", "Selector"]
    rs = workload("ReplicaSet")
    rs["metadata"]["creationTimestamp"] = rfc3339(NOW - timedelta(hours=2))
    rs["status"] = {"replicas": 2, "readyReplicas": 1}
    assert tables.row_for(kind, rs, now=NOW)["cells"] == [
        "web", 3, 2, 1, "120m", "web", "kubia", "app=web"]
