"""DaemonSet, StatefulSet and ControllerRevision kinds: defaults, validation, Tables."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from miniorch.api.errors import Invalid
from miniorch.api.kinds import (
    CONTROLLER_REVISIONS,
    DAEMON_SETS,
    STATEFUL_SETS,
    Resource,
    kind_of,
    resource_for,
)
from miniorch.api.tables import to_table
from miniorch.core.clock import rfc3339
from miniorch.core.objects import Obj

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def workload(name: str = "web", **spec: object) -> Obj:
    body: Obj = {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "kubia", "image": "kubia"}]}}}
    body.update(spec)
    return {"metadata": {"name": name, "namespace": "default"}, "spec": body}


def check(resource: Resource, obj: Obj, old: Obj | None = None) -> Obj:
    obj = copy.deepcopy(obj)
    kind_of(resource).apply_defaults(obj)
    kind_of(resource).check(obj, old)
    return obj


def message(resource: Resource, obj: Obj, old: Obj | None = None) -> str:
    with pytest.raises(Invalid) as info:
        check(resource, obj, old)
    return info.value.message


def test_names() -> None:
    assert resource_for("ds") == DAEMON_SETS
    assert resource_for("sts") == STATEFUL_SETS
    assert resource_for("controllerrevisions") == CONTROLLER_REVISIONS
    assert DAEMON_SETS.categories == ("all",) and STATEFUL_SETS.categories == ("all",)
    assert kind_of(DAEMON_SETS).status_subresource and kind_of(DAEMON_SETS).scale is None
    assert kind_of(STATEFUL_SETS).scale is not None


def test_daemon_set_defaults() -> None:
    ds = check(DAEMON_SETS, workload())
    assert ds["apiVersion"] == "apps/v1"
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                            "rollingUpdate": {"maxUnavailable": 1,
                                                              "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10
    assert ds["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert ds["status"] == {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                            "desiredNumberScheduled": 0, "numberReady": 0}
    on_delete = check(DAEMON_SETS, workload(updateStrategy={"type": "OnDelete"}))
    assert on_delete["spec"]["updateStrategy"] == {"type": "OnDelete"}


def test_stateful_set_defaults() -> None:
    sts = check(STATEFUL_SETS, workload(serviceName="web"))
    spec = sts["spec"]
    assert spec["replicas"] == 1
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate",
                                      "rollingUpdate": {"partition": 0}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain",
                                                            "whenScaled": "Retain"}
    assert sts["status"] == {"replicas": 0, "availableReplicas": 0}


@pytest.mark.parametrize(("resource", "obj", "text"), [
    pytest.param(DAEMON_SETS, workload(selector=None),
                 'DaemonSet.apps "web" is invalid: spec.selector: Required value',
                 id="ds-no-selector"),
    pytest.param(DAEMON_SETS, workload(selector={"matchLabels": {"app": "other"}}),
                 'DaemonSet.apps "web" is invalid: spec.template.metadata.labels: Invalid '
                 'value: map[string]string{"app":"web"}: `selector` does not match template '
                 '`labels`', id="ds-mismatch"),
    pytest.param(DAEMON_SETS, workload(selector={}),
                 "empty selector is invalid for daemonset", id="ds-empty-selector"),
    pytest.param(DAEMON_SETS, workload(updateStrategy={"type": "Sometimes"}),
                 'spec.updateStrategy: Unsupported value: "Sometimes": supported values: '
                 '"OnDelete", "RollingUpdate"', id="ds-strategy"),
    pytest.param(DAEMON_SETS, workload(updateStrategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}),
                 "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not "
                 "be 0 when `maxSurge` is 0", id="ds-zero-unavailable"),
    pytest.param(STATEFUL_SETS, workload(podManagementPolicy="Random"),
                 'spec.podManagementPolicy: Invalid value: "Random": must be \'OrderedReady\' '
                 "or 'Parallel'", id="sts-policy"),
    pytest.param(STATEFUL_SETS, workload(updateStrategy={
        "type": "RollingUpdate", "rollingUpdate": {"partition": -1}}),
                 "spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be "
                 "greater than or equal to 0", id="sts-partition"),
    pytest.param(STATEFUL_SETS, workload(replicas=-1),
                 "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                 id="sts-replicas"),
    pytest.param(STATEFUL_SETS, workload(volumeClaimTemplates=[
        {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]),
                 "spec.volumeClaimTemplates: Forbidden: persistent volumes are not supported "
                 "yet", id="sts-pvc"),
])
def test_validation(resource: Resource, obj: Obj, text: str) -> None:
    if obj["spec"].get("selector") is None:
        del obj["spec"]["selector"]
    assert text in message(resource, obj)


def test_empty_volume_claim_templates_are_accepted() -> None:
    check(STATEFUL_SETS, workload(volumeClaimTemplates=[]))


def test_selector_is_immutable() -> None:
    old = check(DAEMON_SETS, workload())
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "tier": "x"}}
    new["spec"]["template"]["metadata"]["labels"]["tier"] = "x"
    assert "spec.selector: Invalid value" in message(DAEMON_SETS, new, old)
    assert "field is immutable" in message(DAEMON_SETS, new, old)


def test_stateful_set_updates_only_some_fields() -> None:
    old = check(STATEFUL_SETS, workload(serviceName="web"))
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 5
    scaled["spec"]["template"]["spec"]["containers"][0]["image"] = "kubia:v2"
    check(STATEFUL_SETS, scaled, old)
    renamed = copy.deepcopy(old)
    renamed["spec"]["serviceName"] = "other"
    assert "spec: Forbidden: updates to statefulset spec for fields other than 'replicas'" \
        in message(STATEFUL_SETS, renamed, old)


def cells(resource: Resource, obj: Obj) -> list[object]:
    table = to_table(kind_of(resource), [obj], resource_version="1", now=NOW)
    return list(table["rows"][0]["cells"])


def headers(resource: Resource) -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in kind_of(resource).columns]


def test_daemon_set_table() -> None:
    assert headers(DAEMON_SETS) == [
        ("Name", 0), ("Desired", 0), ("Current", 0), ("Ready", 0), ("Up-to-date", 0),
        ("Available", 0), ("Node Selector", 0), ("Age", 0), ("Containers", 1),
        ("Images", 1), ("Selector", 1)]
    ds = check(DAEMON_SETS, workload("ssd-monitor"))
    ds["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    ds["metadata"]["creationTimestamp"] = rfc3339(NOW - timedelta(minutes=5))
    ds["status"] = {"desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                    "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}
    assert cells(DAEMON_SETS, ds) == ["ssd-monitor", 3, 3, 2, 3, 2, "disk=ssd", "5m",
                                      "kubia", "kubia", "app=ssd-monitor"]


def test_stateful_set_table() -> None:
    assert headers(STATEFUL_SETS) == [("Name", 0), ("Ready", 0), ("Age", 0),
                                      ("Containers", 1), ("Images", 1)]
    sts = check(STATEFUL_SETS, workload(replicas=3))
    sts["metadata"]["creationTimestamp"] = rfc3339(NOW - timedelta(seconds=42))
    sts["status"] = {"replicas": 3, "readyReplicas": 2}
    assert cells(STATEFUL_SETS, sts) == ["web", "2/3", "42s", "kubia", "kubia"]


def test_controller_revision_table() -> None:
    rev: Obj = {"metadata": {"name": "web-abc", "namespace": "default",
                             "creationTimestamp": rfc3339(NOW - timedelta(seconds=3)),
                             "ownerReferences": [{"apiVersion": "apps/v1",
                                                  "kind": "StatefulSet", "name": "web",
                                                  "uid": "u", "controller": True}]},
                "data": {}, "revision": 2}
    assert headers(CONTROLLER_REVISIONS) == [("Name", 0), ("Controller", 0),
                                             ("Revision", 0), ("Age", 0)]
    assert cells(CONTROLLER_REVISIONS, rev) == ["web-abc", "statefulset.apps/web", 2, "3s"]
