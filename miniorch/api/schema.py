"""The field schema of every kind miniorch serves, as data.

    definitions() (field name → type spec, per OpenAPI definition: SHARED + each kind's)
        ├─► validation.unknown_fields / type checks   (`?fieldValidation=Strict`)
        ├─► patch (strategic merge: list merge keys and strategies)
        └─► openapi (the `/openapi/v3` documents kubectl reads)

One table feeds all three, so what the strict check accepts, what the OpenAPI
document promises and how a strategic-merge patch merges lists never disagree.

A type spec is a small string:

    string | int32 | int64 | boolean | number | int-or-string | quantity | time
    | microtime | any                       scalars; `any` is a free-form object
    SomeDefinition                           a reference, by short name
    []T                                      a list replaced as a whole (atomic)
    []T@key                                  a list merged by `key` (patchStrategy merge)
    []T@key+retainKeys                       ... with `merge,retainKeys`
    []string@                                a list of scalars merged as a set
    {}T                                      a map from string to T
    trailing !                               required

Definitions are keyed by their OpenAPI name (`io.k8s.api.core.v1.Pod`); references use
the last dotted component, which is unique across the table. `SHARED` holds the
vocabulary many kinds use (meta/v1, the pod spec, Scale); each kind module under
`api/kinds/` declares its own types. The fields are those of Kubernetes 1.32 that
manifests use; rarely used deep structures (affinity, SELinux options, CSI volumes)
are `any`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

Kind = Literal["scalar", "list", "map", "object", "any"]

SCALARS: Final = frozenset({"string", "int32", "int64", "boolean", "number", "int-or-string",
                            "quantity", "time", "microtime"})


@dataclass(frozen=True)
class FieldType:
    kind: Kind
    scalar: str = ""
    """For scalars: one of SCALARS."""
    ref: str = ""
    """For objects: the full definition name."""
    item: FieldType | None = None
    """For lists and maps: the element type."""
    merge_key: str = ""
    strategy: str = ""
    """`merge`, `merge,retainKeys` or "" (replace) — Kubernetes' patchStrategy tag."""
    required: bool = False


META = "io.k8s.apimachinery.pkg.apis.meta.v1."
CORE = "io.k8s.api.core.v1."

_CONTAINER: Final = {
    "name": "string!", "image": "string", "command": "[]string", "args": "[]string",
    "workingDir": "string", "ports": "[]ContainerPort@containerPort",
    "envFrom": "[]EnvFromSource", "env": "[]EnvVar@name", "resources": "ResourceRequirements",
    "resizePolicy": "[]ContainerResizePolicy", "restartPolicy": "string",
    "volumeMounts": "[]VolumeMount@mountPath", "volumeDevices": "[]VolumeDevice@devicePath",
    "livenessProbe": "Probe", "readinessProbe": "Probe", "startupProbe": "Probe",
    "lifecycle": "Lifecycle", "terminationMessagePath": "string",
    "terminationMessagePolicy": "string", "imagePullPolicy": "string",
    "securityContext": "SecurityContext", "stdin": "boolean", "stdinOnce": "boolean",
    "tty": "boolean",
}

_HANDLER: Final = {"exec": "ExecAction", "httpGet": "HTTPGetAction",
                   "tcpSocket": "TCPSocketAction"}

SHARED: Final[dict[str, dict[str, str]]] = {
    # ---- meta/v1 -------------------------------------------------------------------
    META + "ObjectMeta": {
        "name": "string", "generateName": "string", "namespace": "string",
        "selfLink": "string", "uid": "string", "resourceVersion": "string",
        "generation": "int64", "creationTimestamp": "time", "deletionTimestamp": "time",
        "deletionGracePeriodSeconds": "int64", "labels": "{}string",
        "annotations": "{}string", "ownerReferences": "[]OwnerReference@uid",
        "finalizers": "[]string@", "managedFields": "[]ManagedFieldsEntry",
    },
    META + "OwnerReference": {
        "apiVersion": "string!", "kind": "string!", "name": "string!", "uid": "string!",
        "controller": "boolean", "blockOwnerDeletion": "boolean",
    },
    META + "ManagedFieldsEntry": {
        "manager": "string", "operation": "string", "apiVersion": "string", "time": "time",
        "fieldsType": "string", "fieldsV1": "any", "subresource": "string",
    },
    META + "ListMeta": {
        "selfLink": "string", "resourceVersion": "string", "continue": "string",
        "remainingItemCount": "int64",
    },
    META + "LabelSelector": {
        "matchLabels": "{}string", "matchExpressions": "[]LabelSelectorRequirement",
    },
    META + "LabelSelectorRequirement": {
        "key": "string!", "operator": "string!", "values": "[]string",
    },
    META + "Condition": {
        "type": "string!", "status": "string!", "observedGeneration": "int64",
        "lastTransitionTime": "time!", "reason": "string!", "message": "string!",
    },
    META + "Status": {
        "apiVersion": "string", "kind": "string", "metadata": "ListMeta", "status": "string",
        "message": "string", "reason": "string", "details": "StatusDetails", "code": "int32",
    },
    META + "StatusDetails": {
        "name": "string", "group": "string", "kind": "string", "uid": "string",
        "causes": "[]StatusCause", "retryAfterSeconds": "int32",
    },
    META + "StatusCause": {"reason": "string", "message": "string", "field": "string"},
    META + "DeleteOptions": {
        "apiVersion": "string", "kind": "string", "gracePeriodSeconds": "int64",
        "preconditions": "Preconditions", "orphanDependents": "boolean",
        "propagationPolicy": "string", "dryRun": "[]string",
    },
    META + "Preconditions": {"uid": "string", "resourceVersion": "string"},
    META + "WatchEvent": {"type": "string!", "object": "any"},
    # ---- core/v1: shared ------------------------------------------------------------
    CORE + "ObjectReference": {
        "kind": "string", "namespace": "string", "name": "string", "uid": "string",
        "apiVersion": "string", "resourceVersion": "string", "fieldPath": "string",
    },
    CORE + "LocalObjectReference": {"name": "string"},
    # ---- core/v1: the pod spec (pods and every workload's template) ----------------
    CORE + "PodSpec": {
        "volumes": "[]Volume@name+retainKeys", "initContainers": "[]Container@name",
        "containers": "[]Container@name!", "ephemeralContainers": "[]EphemeralContainer@name",
        "restartPolicy": "string", "terminationGracePeriodSeconds": "int64",
        "activeDeadlineSeconds": "int64", "dnsPolicy": "string", "nodeSelector": "{}string",
        "serviceAccountName": "string", "serviceAccount": "string",
        "automountServiceAccountToken": "boolean", "nodeName": "string",
        "hostNetwork": "boolean", "hostPID": "boolean", "hostIPC": "boolean",
        "shareProcessNamespace": "boolean", "securityContext": "PodSecurityContext",
        "imagePullSecrets": "[]LocalObjectReference@name", "hostname": "string",
        "subdomain": "string", "affinity": "any", "schedulerName": "string",
        "tolerations": "[]Toleration", "hostAliases": "[]HostAlias@ip",
        "priorityClassName": "string", "priority": "int32", "dnsConfig": "PodDNSConfig",
        "readinessGates": "[]PodReadinessGate", "runtimeClassName": "string",
        "enableServiceLinks": "boolean", "preemptionPolicy": "string",
        "overhead": "{}quantity",
        "topologySpreadConstraints": "[]TopologySpreadConstraint@topologyKey",
        "setHostnameAsFQDN": "boolean", "os": "PodOS", "hostUsers": "boolean",
        "schedulingGates": "[]PodSchedulingGate@name",
        "resourceClaims": "[]PodResourceClaim@name+retainKeys",
        "resources": "ResourceRequirements",
    },
    CORE + "Container": dict(_CONTAINER),
    CORE + "EphemeralContainer": {**_CONTAINER, "targetContainerName": "string"},
    CORE + "ContainerPort": {
        "name": "string", "hostPort": "int32", "containerPort": "int32!",
        "protocol": "string", "hostIP": "string",
    },
    CORE + "EnvVar": {"name": "string!", "value": "string", "valueFrom": "EnvVarSource"},
    CORE + "EnvVarSource": {
        "fieldRef": "ObjectFieldSelector", "resourceFieldRef": "ResourceFieldSelector",
        "configMapKeyRef": "ConfigMapKeySelector", "secretKeyRef": "SecretKeySelector",
    },
    CORE + "ObjectFieldSelector": {"apiVersion": "string", "fieldPath": "string!"},
    CORE + "ResourceFieldSelector": {
        "containerName": "string", "resource": "string!", "divisor": "quantity",
    },
    CORE + "ConfigMapKeySelector": {"name": "string", "key": "string!", "optional": "boolean"},
    CORE + "SecretKeySelector": {"name": "string", "key": "string!", "optional": "boolean"},
    CORE + "EnvFromSource": {
        "prefix": "string", "configMapRef": "ConfigMapEnvSource",
        "secretRef": "SecretEnvSource",
    },
    CORE + "ConfigMapEnvSource": {"name": "string", "optional": "boolean"},
    CORE + "SecretEnvSource": {"name": "string", "optional": "boolean"},
    CORE + "ResourceRequirements": {
        "limits": "{}quantity", "requests": "{}quantity", "claims": "[]ResourceClaim",
    },
    CORE + "ResourceClaim": {"name": "string!", "request": "string"},
    CORE + "ContainerResizePolicy": {"resourceName": "string!", "restartPolicy": "string!"},
    CORE + "VolumeMount": {
        "name": "string!", "readOnly": "boolean", "recursiveReadOnly": "string",
        "mountPath": "string!", "subPath": "string", "mountPropagation": "string",
        "subPathExpr": "string",
    },
    CORE + "VolumeDevice": {"name": "string!", "devicePath": "string!"},
    CORE + "Probe": {
        **_HANDLER, "grpc": "GRPCAction", "initialDelaySeconds": "int32",
        "timeoutSeconds": "int32", "periodSeconds": "int32", "successThreshold": "int32",
        "failureThreshold": "int32", "terminationGracePeriodSeconds": "int64",
    },
    CORE + "ExecAction": {"command": "[]string"},
    CORE + "HTTPGetAction": {
        "path": "string", "port": "int-or-string!", "host": "string", "scheme": "string",
        "httpHeaders": "[]HTTPHeader",
    },
    CORE + "HTTPHeader": {"name": "string!", "value": "string!"},
    CORE + "TCPSocketAction": {"port": "int-or-string!", "host": "string"},
    CORE + "GRPCAction": {"port": "int32!", "service": "string"},
    CORE + "SleepAction": {"seconds": "int64!"},
    CORE + "Lifecycle": {"postStart": "LifecycleHandler", "preStop": "LifecycleHandler"},
    CORE + "LifecycleHandler": {**_HANDLER, "sleep": "SleepAction"},
    CORE + "SecurityContext": {
        "capabilities": "Capabilities", "privileged": "boolean", "seLinuxOptions": "any",
        "windowsOptions": "any", "runAsUser": "int64", "runAsGroup": "int64",
        "runAsNonRoot": "boolean", "readOnlyRootFilesystem": "boolean",
        "allowPrivilegeEscalation": "boolean", "procMount": "string",
        "seccompProfile": "SeccompProfile", "appArmorProfile": "AppArmorProfile",
    },
    CORE + "Capabilities": {"add": "[]string", "drop": "[]string"},
    CORE + "SeccompProfile": {"type": "string!", "localhostProfile": "string"},
    CORE + "AppArmorProfile": {"type": "string!", "localhostProfile": "string"},
    CORE + "PodSecurityContext": {
        "seLinuxOptions": "any", "windowsOptions": "any", "runAsUser": "int64",
        "runAsGroup": "int64", "runAsNonRoot": "boolean", "supplementalGroups": "[]int64",
        "supplementalGroupsPolicy": "string", "fsGroup": "int64", "sysctls": "[]Sysctl",
        "fsGroupChangePolicy": "string", "seccompProfile": "SeccompProfile",
        "appArmorProfile": "AppArmorProfile", "seLinuxChangePolicy": "string",
    },
    CORE + "Sysctl": {"name": "string!", "value": "string!"},
    CORE + "Volume": {
        "name": "string!", "hostPath": "HostPathVolumeSource",
        "emptyDir": "EmptyDirVolumeSource", "secret": "SecretVolumeSource",
        "configMap": "ConfigMapVolumeSource",
        "persistentVolumeClaim": "PersistentVolumeClaimVolumeSource",
        "downwardAPI": "any", "projected": "any", "nfs": "NFSVolumeSource", "csi": "any",
        "ephemeral": "any", "image": "any",
    },
    CORE + "HostPathVolumeSource": {"path": "string!", "type": "string"},
    CORE + "EmptyDirVolumeSource": {"medium": "string", "sizeLimit": "quantity"},
    CORE + "SecretVolumeSource": {
        "secretName": "string", "items": "[]KeyToPath", "defaultMode": "int32",
        "optional": "boolean",
    },
    CORE + "ConfigMapVolumeSource": {
        "name": "string", "items": "[]KeyToPath", "defaultMode": "int32",
        "optional": "boolean",
    },
    CORE + "KeyToPath": {"key": "string!", "path": "string!", "mode": "int32"},
    CORE + "PersistentVolumeClaimVolumeSource": {"claimName": "string!", "readOnly": "boolean"},
    CORE + "NFSVolumeSource": {"server": "string!", "path": "string!", "readOnly": "boolean"},
    CORE + "Toleration": {
        "key": "string", "operator": "string", "value": "string", "effect": "string",
        "tolerationSeconds": "int64",
    },
    CORE + "HostAlias": {"ip": "string!", "hostnames": "[]string"},
    CORE + "PodDNSConfig": {
        "nameservers": "[]string", "searches": "[]string", "options": "[]PodDNSConfigOption",
    },
    CORE + "PodDNSConfigOption": {"name": "string", "value": "string"},
    CORE + "PodReadinessGate": {"conditionType": "string!"},
    CORE + "TopologySpreadConstraint": {
        "maxSkew": "int32!", "topologyKey": "string!", "whenUnsatisfiable": "string!",
        "labelSelector": "LabelSelector", "minDomains": "int32",
        "nodeAffinityPolicy": "string", "nodeTaintsPolicy": "string",
        "matchLabelKeys": "[]string",
    },
    CORE + "PodOS": {"name": "string!"},
    CORE + "PodSchedulingGate": {"name": "string!"},
    CORE + "PodResourceClaim": {
        "name": "string!", "resourceClaimName": "string", "resourceClaimTemplateName": "string",
    },
    CORE + "PodTemplateSpec": {"metadata": "ObjectMeta", "spec": "PodSpec"},
    # ---- autoscaling/v1: Scale (every kind's /scale subresource) --------------------
    "io.k8s.api.autoscaling.v1.Scale": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "ScaleSpec", "status": "ScaleStatus",
    },
    "io.k8s.api.autoscaling.v1.ScaleSpec": {"replicas": "int32"},
    "io.k8s.api.autoscaling.v1.ScaleStatus": {"replicas": "int32!", "selector": "string"},
}

SCALE_DEFINITION: Final = "io.k8s.api.autoscaling.v1.Scale"


@functools.cache
def definitions() -> Mapping[str, Mapping[str, str]]:
    """Every built-in definition: full OpenAPI name → {field name: type spec}; the
    shared vocabulary above plus the types each kind module declares."""
    # Imported here, not at the top: the kind modules import the validation helpers,
    # which import this module; the table is first wanted when an object is checked.
    from miniorch.api.kinds import BUILTIN_KINDS

    table: dict[str, Mapping[str, str]] = {n: MappingProxyType(f) for n, f in SHARED.items()}
    for kind in BUILTIN_KINDS:
        for name, fields in kind.definitions.items():
            assert name not in table, f"definition {name} declared twice"
            table[name] = MappingProxyType(dict(fields))
    return MappingProxyType(table)


@functools.cache
def _short_names() -> Mapping[str, str]:
    index: dict[str, str] = {}
    for full in definitions():
        short = full.rsplit(".", 1)[1]
        assert short not in index, f"duplicate short definition name {short}"
        index[short] = full
    return MappingProxyType(index)


def full_name(short: str) -> str:
    return _short_names()[short]


@functools.cache
def parse_type(spec: str) -> FieldType:
    """Turn a type spec (see the module docstring) into a `FieldType`."""
    required = spec.endswith("!")
    spec = spec.rstrip("!")
    if spec.startswith("[]"):
        body, _, merge = spec[2:].partition("@")
        strategy = ""
        key = merge
        if "@" in spec:
            key, _, extra = merge.partition("+")
            strategy = "merge" + (f",{extra}" if extra else "")
        return FieldType("list", item=parse_type(body), merge_key=key, strategy=strategy,
                         required=required)
    if spec.startswith("{}"):
        return FieldType("map", item=parse_type(spec[2:]), required=required)
    if spec == "any":
        return FieldType("any", required=required)
    if spec in SCALARS:
        return FieldType("scalar", scalar=spec, required=required)
    return FieldType("object", ref=_short_names()[spec], required=required)


def fields_of(definition: str) -> Mapping[str, FieldType]:
    """The typed fields of a definition (full name)."""
    return _typed_fields(definition)


@functools.cache
def _typed_fields(definition: str) -> Mapping[str, FieldType]:
    return MappingProxyType({name: parse_type(spec)
                             for name, spec in definitions()[definition].items()})


def field_type(definition: str | None, name: str) -> FieldType | None:
    """The type of `name` inside `definition`, or None when either is unknown."""
    if definition is None:
        return None
    return fields_of(definition).get(name)
