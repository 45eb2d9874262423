"""Validation refuses what Kubernetes refuses, in Kubernetes' words."""

from __future__ import annotations

import copy

import pytest

from miniorch.api.errors import BadRequest, Invalid
from miniorch.api.kinds import (
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    REPLICATION_CONTROLLERS,
    SERVICES,
    Resource,
    kind_of,
)
from miniorch.core.objects import Obj

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    r"used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
DNS1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


def pod(name: str = "kubia", **container: object) -> Obj:
    c: Obj = {"name": "kubia", "image": "kubia", "ports": [{"containerPort": 8080}]}
    c.update(container)
    return {"metadata": {"name": name, "namespace": "default"}, "spec": {"containers": [c]}}


def rc(replicas: int = 3, selector: dict[str, str] | None = None) -> Obj:
    spec: Obj = {"replicas": replicas,
                 "template": {"metadata": {"labels": {"app": "kubia"}},
                              "spec": {"containers": [{"name": "kubia", "image": "kubia"}]}}}
    if selector is not None:
        spec["selector"] = selector
    return {"metadata": {"name": "kubia", "namespace": "default"}, "spec": spec}


def svc(name: str = "kubia-http", **spec: object) -> Obj:
    body: Obj = {"ports": [{"port": 8080}], "selector": {"app": "kubia"}}
    body.update(spec)
    return {"metadata": {"name": name, "namespace": "default"}, "spec": body}


def check(resource: Resource, obj: Obj, old: Obj | None = None) -> Obj:
    """Default then validate, as the registry does; return the defaulted object."""
    obj = copy.deepcopy(obj)
    kind_of(resource).apply_defaults(obj)
    kind_of(resource).check(obj, old)
    return obj


def invalid(resource: Resource, obj: Obj, old: Obj | None = None) -> Invalid:
    with pytest.raises(Invalid) as info:
        check(resource, obj, old)
    return info.value


@pytest.mark.parametrize(("resource", "obj"), [
    pytest.param(PODS, pod(), id="pod"),
    pytest.param(REPLICATION_CONTROLLERS, rc(), id="rc"),
    pytest.param(SERVICES, svc(), id="service"),
    pytest.param(SERVICES, svc(type="LoadBalancer"), id="service-lb"),
    pytest.param(NAMESPACES, {"metadata": {"name": "team-a"}}, id="namespace"),
    pytest.param(NODES, {"metadata": {"name": "node-1.example"}}, id="node"),
    pytest.param(LEASES, {"metadata": {"name": "node-1", "namespace": "kube-node-lease"},
                          "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}},
                 id="lease"),
])
def test_valid_objects_pass(resource: Resource, obj: Obj) -> None:
    check(resource, obj)


@pytest.mark.parametrize(("resource", "obj", "message"), [
    pytest.param(PODS, pod("Bad_Name"),
                 'Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
                 + SUBDOMAIN_MESSAGE, id="pod-name"),
    pytest.param(PODS, {"metadata": {"namespace": "default"}, "spec": pod()["spec"]},
                 'Pod "" is invalid: metadata.name: Required value: name or generateName is '
                 "required", id="name-required"),
    pytest.param(SERVICES, svc("1http"),
                 'Service "1http" is invalid: metadata.name: Invalid value: "1http": '
                 + DNS1035_MESSAGE, id="service-name-dns1035"),
    pytest.param(NAMESPACES, {"metadata": {"name": "a.b"}},
                 'Namespace "a.b" is invalid: metadata.name: Invalid value: "a.b": '
                 + LABEL_MESSAGE, id="namespace-name-label"),
    pytest.param(REPLICATION_CONTROLLERS, rc(replicas=-1),
                 'ReplicationController "kubia" is invalid: spec.replicas: Invalid value: -1: '
                 "must be greater than or equal to 0", id="negative-replicas"),
    pytest.param(PODS, {"metadata": {"name": "p", "namespace": "default"}, "spec": {}},
                 'Pod "p" is invalid: spec.containers: Required value', id="no-containers"),
    pytest.param(PODS, pod(image=""),
                 'Pod "kubia" is invalid: spec.containers[0].image: Required value',
                 id="no-image"),
    pytest.param(PODS, pod(ports=[{"containerPort": 70000}]),
                 'Pod "kubia" is invalid: spec.containers[0].ports[0].containerPort: Invalid '
                 "value: 70000: must be between 1 and 65535, inclusive", id="container-port"),
    pytest.param(PODS, pod(ports=[{"containerPort": 80, "protocol": "HTTP"}]),
                 'Pod "kubia" is invalid: spec.containers[0].ports[0].protocol: Unsupported '
                 'value: "HTTP": supported values: "SCTP", "TCP", "UDP"', id="protocol"),
    pytest.param(PODS, pod(imagePullPolicy="Sometimes"),
                 'Pod "kubia" is invalid: spec.containers[0].imagePullPolicy: Unsupported '
                 'value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"',
                 id="pull-policy"),
    pytest.param(REPLICATION_CONTROLLERS, rc(selector={"app": "other"}),
                 'ReplicationController "kubia" is invalid: spec.template.metadata.labels: '
                 'Invalid value: map[string]string{"app":"kubia"}: `selector` does not match '
                 "template `labels`", id="selector-mismatch"),
    pytest.param(SERVICES, svc(ports=[]),
                 'Service "kubia-http" is invalid: spec.ports: Required value',
                 id="service-ports-required"),
    pytest.param(SERVICES, svc(ports=[{"port": 0}]),
                 'Service "kubia-http" is invalid: [spec.ports[0].port: Invalid value: 0: must '
                 "be between 1 and 65535, inclusive, spec.ports[0].targetPort: Invalid value: "
                 "0: must be between 1 and 65535, inclusive]", id="service-port-range"),
    pytest.param(SERVICES, svc(ports=[{"port": 80}, {"port": 81}]),
                 'Service "kubia-http" is invalid: [spec.ports[0].name: Required value, '
                 "spec.ports[1].name: Required value]", id="service-port-names"),
    pytest.param(SERVICES, svc(type="Fancy"),
                 'Service "kubia-http" is invalid: spec.type: Unsupported value: "Fancy": '
                 'supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
                 id="service-type"),
    pytest.param(SERVICES, svc(ports=[{"port": 80, "nodePort": 30001}]),
                 'Service "kubia-http" is invalid: spec.ports[0].nodePort: Forbidden: may not '
                 "be used when `type` is 'ClusterIP'", id="node-port-on-cluster-ip"),
])
def test_kubernetes_wording(resource: Resource, obj: Obj, message: str) -> None:
    assert invalid(resource, obj).message == message


def test_causes_carry_field_reason_and_message() -> None:
    error = invalid(PODS, pod("Bad_Name", image=""))
    status = error.to_status()
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["details"] == {
        "name": "Bad_Name", "kind": "Pod",
        "causes": [
            {"reason": "FieldValueInvalid", "field": "metadata.name",
             "message": 'Invalid value: "Bad_Name": ' + SUBDOMAIN_MESSAGE},
            {"reason": "FieldValueRequired", "field": "spec.containers[0].image",
             "message": "Required value"},
        ]}


@pytest.mark.parametrize(("labels", "field_message"), [
    pytest.param({"bad key": "x"},
                 'metadata.labels: Invalid value: "bad key": name part must consist of '
                 "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                 "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                 "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                 id="key"),
    pytest.param({"app": "bad value"},
                 'metadata.labels: Invalid value: "bad value": a valid label must be an empty '
                 "string or consist of alphanumeric characters, '-', '_' or '.', and must start "
                 "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                 "'12345', regex used for validation is "
                 "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')", id="value"),
    pytest.param({"app": "x" * 64},
                 f'metadata.labels: Invalid value: "{"x" * 64}": must be no more than 63 '
                 "characters", id="value-too-long"),
    pytest.param({"a/b/c": "x"},
                 'metadata.labels: Invalid value: "a/b/c": a qualified name must consist of '
                 "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                 "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                 "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an "
                 "optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                 id="two-slashes"),
])
def test_labels(labels: dict[str, str], field_message: str) -> None:
    obj = pod()
    obj["metadata"]["labels"] = labels
    assert invalid(PODS, obj).message == f'Pod "kubia" is invalid: {field_message}'


def test_label_prefixes_are_accepted() -> None:
    obj = pod()
    obj["metadata"]["labels"] = {"app.kubernetes.io/name": "kubia", "empty": ""}
    check(PODS, obj)


def test_generate_name_prefix_may_end_with_a_dash() -> None:
    obj = pod()
    obj["metadata"]["generateName"] = "kubia-"
    check(PODS, obj)


def test_type_errors_are_bad_requests_worded_like_go() -> None:
    obj = rc()
    obj["spec"]["replicas"] = "3"
    with pytest.raises(BadRequest) as info:
        check(REPLICATION_CONTROLLERS, obj)
    assert info.value.message == (
        'ReplicationController in version "v1" cannot be handled as a ReplicationController: '
        "json: cannot unmarshal string into Go struct field ReplicationControllerSpec."
        "spec.replicas of type int32")


def test_bad_quantity_is_a_bad_request() -> None:
    obj = pod(resources={"limits": {"cpu": "lots"}})
    with pytest.raises(BadRequest, match="quantities must match the regular expression"):
        check(PODS, obj)


def test_requests_above_limits() -> None:
    obj = pod(resources={"limits": {"cpu": "500m"}, "requests": {"cpu": "1"}})
    assert invalid(PODS, obj).message == (
        'Pod "kubia" is invalid: spec.containers[0].resources.requests: Invalid value: "1": '
        "must be less than or equal to cpu limit of 500m")


# ---- updates -------------------------------------------------------------------------------


def stored(resource: Resource, obj: Obj) -> Obj:
    created = check(resource, obj)
    created["metadata"].update(uid="1234", resourceVersion="5",
                               creationTimestamp="2024-01-01T00:00:00Z")
    return created


def test_pod_image_and_binding_may_change() -> None:
    old = stored(PODS, pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "kubia:v2"
    new["spec"]["nodeName"] = "node-1"
    new["metadata"]["labels"] = {"app": "kubia"}
    kind_of(PODS).check(new, old)


def test_pod_spec_is_otherwise_immutable() -> None:
    old = stored(PODS, pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["ports"][0]["containerPort"] = 9090
    with pytest.raises(Invalid) as info:
        kind_of(PODS).check(new, old)
    cause = info.value.causes[0]
    assert (cause.field, cause.reason) == ("spec", "FieldValueForbidden")
    assert cause.message.startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
        "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to "
        "be set to 1 if it was previously negative)\n")
    assert "spec.containers[0].ports[0].containerPort" in cause.message


def test_pod_containers_cannot_be_added() -> None:
    old = stored(PODS, pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"].append(dict(new["spec"]["containers"][0], name="two"))
    assert invalid(PODS, new, old).message == (
        'Pod "kubia" is invalid: spec.containers: Forbidden: pod updates may not add or remove '
        "containers")


def test_metadata_identity_is_immutable() -> None:
    old = stored(REPLICATION_CONTROLLERS, rc())
    new = copy.deepcopy(old)
    new["metadata"]["uid"] = "other"
    assert invalid(REPLICATION_CONTROLLERS, new, old).message == (
        'ReplicationController "kubia" is invalid: metadata.uid: Invalid value: "other": '
        "field is immutable")


def test_service_cluster_ip_is_immutable() -> None:
    old = stored(SERVICES, svc(clusterIP="10.96.0.5"))
    old["spec"]["clusterIPs"] = ["10.96.0.5"]
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.96.0.6"
    new["spec"]["clusterIPs"] = ["10.96.0.6"]
    assert invalid(SERVICES, new, old).message == (
        'Service "kubia-http" is invalid: spec.clusterIPs[0]: Invalid value: '
        '[]string{"10.96.0.6"}: may not change once set')


def test_rc_update_may_change_replicas() -> None:
    old = stored(REPLICATION_CONTROLLERS, rc())
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 10
    kind_of(REPLICATION_CONTROLLERS).check(new, old)


def test_lease_kind_is_group_qualified() -> None:
    lease: Obj = {"metadata": {"name": "n", "namespace": "kube-node-lease"},
                  "spec": {"leaseDurationSeconds": 0}}
    assert invalid(LEASES, lease).message == (
        'Lease.coordination.k8s.io "n" is invalid: spec.leaseDurationSeconds: Invalid value: 0: '
        "must be greater than 0")


# ---- strict field validation ----------------------------------------------------------------


def test_unknown_fields_paths() -> None:
    obj = rc()
    obj["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    obj["spec"]["bogus"] = 1
    obj["metadata"]["labels"] = {"any-key": "fine"}
    assert kind_of(REPLICATION_CONTROLLERS).find_unknown_fields(obj) == [
        "spec.template.spec.containers[0].imagee", "spec.bogus"]


def test_known_manifest_has_no_unknown_fields() -> None:
    obj = pod(env=[{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
              readinessProbe={"httpGet": {"path": "/", "port": 8080}},
              resources={"limits": {"cpu": "1"}})
    obj["spec"]["affinity"] = {"nodeAffinity": {"anything": ["goes"]}}
    assert kind_of(PODS).find_unknown_fields(obj) == []


def test_prune_and_check_unknown_fields() -> None:
    obj = pod()
    obj["spec"]["containers"][0]["imagee"] = "x"
    assert kind_of(PODS).find_unknown_fields(obj) == ["spec.containers[0].imagee"]
    assert "imagee" in obj["spec"]["containers"][0]
    assert kind_of(PODS).find_unknown_fields(obj, prune=True) == ["spec.containers[0].imagee"]
    assert "imagee" not in obj["spec"]["containers"][0]
    assert "imagee" not in obj["spec"]["containers"][0]


# ---- env sources and volumes ------------------------------------------------------------


def with_volumes(*volumes: Obj, **container: object) -> Obj:
    obj = pod(**container)
    obj["spec"]["volumes"] = list(volumes)
    return obj


def test_env_sources_volumes_and_mounts_that_kubernetes_accepts() -> None:
    check(PODS, with_volumes(
        {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "a.b", "path": "x/y",
                                                               "mode": 0o400}]}},
        {"name": "sec", "secret": {"secretName": "s", "defaultMode": 0o440}},
        {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        env=[{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
             {"name": "B", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                              "divisor": "1Mi"}}},
             {"name": "C", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k",
                                                          "optional": True}}}],
        envFrom=[{"prefix": "CFG_", "configMapRef": {"name": "c"}}],
        volumeMounts=[{"name": "cfg", "mountPath": "/etc/cfg"},
                      {"name": "mem", "mountPath": "/m", "subPath": "a/b"}]))


@pytest.mark.parametrize(("obj", "cause"), [
    pytest.param(pod(env=[{"name": "A", "value": "x", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.name"}}}]),
        'spec.containers[0].env[0].valueFrom: Invalid value: "": may not be specified when '
        "`value` is not empty", id="value-and-valueFrom"),
    pytest.param(pod(env=[{"name": "A", "valueFrom": {}}]),
                 'spec.containers[0].env[0].valueFrom: Invalid value: "": must specify one of: '
                 "`fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                 id="empty-valueFrom"),
    pytest.param(pod(env=[{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.x"}}}]),
                 'spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: '
                 '"spec.x": supported values: "metadata.annotations", "metadata.labels", '
                 '"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", '
                 '"spec.serviceAccountName", "status.hostIP", "status.hostIPs", '
                 '"status.podIP", "status.podIPs"', id="field-path"),
    pytest.param(pod(env=[{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "c",
                                                                          "key": "a b"}}}]),
                 "spec.containers[0].env[0].valueFrom.configMapKeyRef.key: Invalid value: "
                 "\"a b\": a valid config key must consist of alphanumeric characters, '-', "
                 "'_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
                 "validation is '[-._a-zA-Z0-9]+')", id="config-key"),
    pytest.param(pod(envFrom=[{"prefix": "P"}]),
                 'spec.containers[0].envFrom[0]: Invalid value: "": must specify one of: '
                 "`configMapRef` or `secretRef`", id="envFrom-source"),
    pytest.param(with_volumes({"name": "v", "configMap": {"name": "c"}, "emptyDir": {}}),
                 "spec.volumes[0].configMap: Forbidden: may not specify more than 1 volume type",
                 id="two-sources"),
    pytest.param(with_volumes({"name": "v", "secret": {}}),
                 "spec.volumes[0].secret.secretName: Required value", id="secret-name"),
    pytest.param(with_volumes({"name": "v", "configMap": {"name": "c", "defaultMode": 0o1000}}),
                 "spec.volumes[0].configMap.defaultMode: Invalid value: 512: must be a number "
                 "between 0 and 0777 (octal), both inclusive", id="mode"),
    pytest.param(with_volumes({"name": "v", "configMap": {"name": "c", "items": [
        {"key": "k", "path": "../k"}]}}),
        "[spec.volumes[0].configMap.items[0].path: Invalid value: \"../k\": must not contain "
        "'..', spec.volumes[0].configMap.items[0].path: Invalid value: \"../k\": must not "
        "start with '..']", id="item-path"),
    pytest.param(with_volumes({"name": "v", "emptyDir": {"medium": "Disk"}}),
                 'spec.volumes[0].emptyDir.medium: Unsupported value: "Disk": supported '
                 'values: "", "Memory", "HugePages"', id="medium"),
    pytest.param(with_volumes({"name": "v", "emptyDir": {}}, volumeMounts=[
        {"name": "v", "mountPath": "/v", "subPath": "/abs"}]),
        'spec.containers[0].volumeMounts[0].subPath: Invalid value: "/abs": must be a '
        "relative path", id="subPath"),
])
def test_env_source_and_volume_errors(obj: Obj, cause: str) -> None:
    assert invalid(PODS, obj).message == f'Pod "kubia" is invalid: {cause}'
