"""The field schema of every kind miniorch serves, as data.

    DEFINITIONS (field name → type spec, per OpenAPI definition)
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
the last dotted component, which is unique across the table. The fields are those of
Kubernetes 1.32's core/v1, coordination/v1 and meta/v1 types that manifests use;
rarely used deep structures (affinity, SELinux options, CSI volumes) are `any`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from miniorch.api.kinds import Resource

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


_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_CORE = "io.k8s.api.core.v1."

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

_DEFINITIONS: dict[str, dict[str, str]] = {
    # ---- meta/v1 -------------------------------------------------------------------
    _META + "ObjectMeta": {
        "name": "string", "generateName": "string", "namespace": "string",
        "selfLink": "string", "uid": "string", "resourceVersion": "string",
        "generation": "int64", "creationTimestamp": "time", "deletionTimestamp": "time",
        "deletionGracePeriodSeconds": "int64", "labels": "{}string",
        "annotations": "{}string", "ownerReferences": "[]OwnerReference@uid",
        "finalizers": "[]string@", "managedFields": "[]ManagedFieldsEntry",
    },
    _META + "OwnerReference": {
        "apiVersion": "string!", "kind": "string!", "name": "string!", "uid": "string!",
        "controller": "boolean", "blockOwnerDeletion": "boolean",
    },
    _META + "ManagedFieldsEntry": {
        "manager": "string", "operation": "string", "apiVersion": "string", "time": "time",
        "fieldsType": "string", "fieldsV1": "any", "subresource": "string",
    },
    _META + "ListMeta": {
        "selfLink": "string", "resourceVersion": "string", "continue": "string",
        "remainingItemCount": "int64",
    },
    _META + "LabelSelector": {
        "matchLabels": "{}string", "matchExpressions": "[]LabelSelectorRequirement",
    },
    _META + "LabelSelectorRequirement": {
        "key": "string!", "operator": "string!", "values": "[]string",
    },
    _META + "Condition": {
        "type": "string!", "status": "string!", "observedGeneration": "int64",
        "lastTransitionTime": "time!", "reason": "string!", "message": "string!",
    },
    _META + "Status": {
        "apiVersion": "string", "kind": "string", "metadata": "ListMeta", "status": "string",
        "message": "string", "reason": "string", "details": "StatusDetails", "code": "int32",
    },
    _META + "StatusDetails": {
        "name": "string", "group": "string", "kind": "string", "uid": "string",
        "causes": "[]StatusCause", "retryAfterSeconds": "int32",
    },
    _META + "StatusCause": {"reason": "string", "message": "string", "field": "string"},
    _META + "DeleteOptions": {
        "apiVersion": "string", "kind": "string", "gracePeriodSeconds": "int64",
        "preconditions": "Preconditions", "orphanDependents": "boolean",
        "propagationPolicy": "string", "dryRun": "[]string",
    },
    _META + "Preconditions": {"uid": "string", "resourceVersion": "string"},
    _META + "WatchEvent": {"type": "string!", "object": "any"},
    # ---- core/v1: shared ------------------------------------------------------------
    _CORE + "ObjectReference": {
        "kind": "string", "namespace": "string", "name": "string", "uid": "string",
        "apiVersion": "string", "resourceVersion": "string", "fieldPath": "string",
    },
    _CORE + "LocalObjectReference": {"name": "string"},
    # ---- core/v1: Pod --------------------------------------------------------------
    _CORE + "Pod": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "PodSpec", "status": "PodStatus",
    },
    _CORE + "PodSpec": {
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
    _CORE + "Container": dict(_CONTAINER),
    _CORE + "EphemeralContainer": {**_CONTAINER, "targetContainerName": "string"},
    _CORE + "ContainerPort": {
        "name": "string", "hostPort": "int32", "containerPort": "int32!",
        "protocol": "string", "hostIP": "string",
    },
    _CORE + "EnvVar": {"name": "string!", "value": "string", "valueFrom": "EnvVarSource"},
    _CORE + "EnvVarSource": {
        "fieldRef": "ObjectFieldSelector", "resourceFieldRef": "ResourceFieldSelector",
        "configMapKeyRef": "ConfigMapKeySelector", "secretKeyRef": "SecretKeySelector",
    },
    _CORE + "ObjectFieldSelector": {"apiVersion": "string", "fieldPath": "string!"},
    _CORE + "ResourceFieldSelector": {
        "containerName": "string", "resource": "string!", "divisor": "quantity",
    },
    _CORE + "ConfigMapKeySelector": {"name": "string", "key": "string!", "optional": "boolean"},
    _CORE + "SecretKeySelector": {"name": "string", "key": "string!", "optional": "boolean"},
    _CORE + "EnvFromSource": {
        "prefix": "string", "configMapRef": "ConfigMapEnvSource",
        "secretRef": "SecretEnvSource",
    },
    _CORE + "ConfigMapEnvSource": {"name": "string", "optional": "boolean"},
    _CORE + "SecretEnvSource": {"name": "string", "optional": "boolean"},
    _CORE + "ResourceRequirements": {
        "limits": "{}quantity", "requests": "{}quantity", "claims": "[]ResourceClaim",
    },
    _CORE + "ResourceClaim": {"name": "string!", "request": "string"},
    _CORE + "ContainerResizePolicy": {"resourceName": "string!", "restartPolicy": "string!"},
    _CORE + "VolumeMount": {
        "name": "string!", "readOnly": "boolean", "recursiveReadOnly": "string",
        "mountPath": "string!", "subPath": "string", "mountPropagation": "string",
        "subPathExpr": "string",
    },
    _CORE + "VolumeDevice": {"name": "string!", "devicePath": "string!"},
    _CORE + "Probe": {
        **_HANDLER, "grpc": "GRPCAction", "initialDelaySeconds": "int32",
        "timeoutSeconds": "int32", "periodSeconds": "int32", "successThreshold": "int32",
        "failureThreshold": "int32", "terminationGracePeriodSeconds": "int64",
    },
    _CORE + "ExecAction": {"command": "[]string"},
    _CORE + "HTTPGetAction": {
        "path": "string", "port": "int-or-string!", "host": "string", "scheme": "string",
        "httpHeaders": "[]HTTPHeader",
    },
    _CORE + "HTTPHeader": {"name": "string!", "value": "string!"},
    _CORE + "TCPSocketAction": {"port": "int-or-string!", "host": "string"},
    _CORE + "GRPCAction": {"port": "int32!", "service": "string"},
    _CORE + "SleepAction": {"seconds": "int64!"},
    _CORE + "Lifecycle": {"postStart": "LifecycleHandler", "preStop": "LifecycleHandler"},
    _CORE + "LifecycleHandler": {**_HANDLER, "sleep": "SleepAction"},
    _CORE + "SecurityContext": {
        "capabilities": "Capabilities", "privileged": "boolean", "seLinuxOptions": "any",
        "windowsOptions": "any", "runAsUser": "int64", "runAsGroup": "int64",
        "runAsNonRoot": "boolean", "readOnlyRootFilesystem": "boolean",
        "allowPrivilegeEscalation": "boolean", "procMount": "string",
        "seccompProfile": "SeccompProfile", "appArmorProfile": "AppArmorProfile",
    },
    _CORE + "Capabilities": {"add": "[]string", "drop": "[]string"},
    _CORE + "SeccompProfile": {"type": "string!", "localhostProfile": "string"},
    _CORE + "AppArmorProfile": {"type": "string!", "localhostProfile": "string"},
    _CORE + "PodSecurityContext": {
        "seLinuxOptions": "any", "windowsOptions": "any", "runAsUser": "int64",
        "runAsGroup": "int64", "runAsNonRoot": "boolean", "supplementalGroups": "[]int64",
        "supplementalGroupsPolicy": "string", "fsGroup": "int64", "sysctls": "[]Sysctl",
        "fsGroupChangePolicy": "string", "seccompProfile": "SeccompProfile",
        "appArmorProfile": "AppArmorProfile", "seLinuxChangePolicy": "string",
    },
    _CORE + "Sysctl": {"name": "string!", "value": "string!"},
    _CORE + "Volume": {
        "name": "string!", "hostPath": "HostPathVolumeSource",
        "emptyDir": "EmptyDirVolumeSource", "secret": "SecretVolumeSource",
        "configMap": "ConfigMapVolumeSource",
        "persistentVolumeClaim": "PersistentVolumeClaimVolumeSource",
        "downwardAPI": "any", "projected": "any", "nfs": "NFSVolumeSource", "csi": "any",
        "ephemeral": "any", "image": "any",
    },
    _CORE + "HostPathVolumeSource": {"path": "string!", "type": "string"},
    _CORE + "EmptyDirVolumeSource": {"medium": "string", "sizeLimit": "quantity"},
    _CORE + "SecretVolumeSource": {
        "secretName": "string", "items": "[]KeyToPath", "defaultMode": "int32",
        "optional": "boolean",
    },
    _CORE + "ConfigMapVolumeSource": {
        "name": "string", "items": "[]KeyToPath", "defaultMode": "int32",
        "optional": "boolean",
    },
    _CORE + "KeyToPath": {"key": "string!", "path": "string!", "mode": "int32"},
    _CORE + "PersistentVolumeClaimVolumeSource": {"claimName": "string!", "readOnly": "boolean"},
    _CORE + "NFSVolumeSource": {"server": "string!", "path": "string!", "readOnly": "boolean"},
    _CORE + "Toleration": {
        "key": "string", "operator": "string", "value": "string", "effect": "string",
        "tolerationSeconds": "int64",
    },
    _CORE + "HostAlias": {"ip": "string!", "hostnames": "[]string"},
    _CORE + "PodDNSConfig": {
        "nameservers": "[]string", "searches": "[]string", "options": "[]PodDNSConfigOption",
    },
    _CORE + "PodDNSConfigOption": {"name": "string", "value": "string"},
    _CORE + "PodReadinessGate": {"conditionType": "string!"},
    _CORE + "TopologySpreadConstraint": {
        "maxSkew": "int32!", "topologyKey": "string!", "whenUnsatisfiable": "string!",
        "labelSelector": "LabelSelector", "minDomains": "int32",
        "nodeAffinityPolicy": "string", "nodeTaintsPolicy": "string",
        "matchLabelKeys": "[]string",
    },
    _CORE + "PodOS": {"name": "string!"},
    _CORE + "PodSchedulingGate": {"name": "string!"},
    _CORE + "PodResourceClaim": {
        "name": "string!", "resourceClaimName": "string", "resourceClaimTemplateName": "string",
    },
    _CORE + "PodStatus": {
        "phase": "string", "conditions": "[]PodCondition@type", "message": "string",
        "reason": "string", "nominatedNodeName": "string", "hostIP": "string",
        "hostIPs": "[]HostIP@ip", "podIP": "string", "podIPs": "[]PodIP@ip",
        "startTime": "time", "initContainerStatuses": "[]ContainerStatus",
        "containerStatuses": "[]ContainerStatus", "qosClass": "string",
        "ephemeralContainerStatuses": "[]ContainerStatus", "resize": "string",
        "resourceClaimStatuses": "[]any",
    },
    _CORE + "PodCondition": {
        "type": "string!", "status": "string!", "lastProbeTime": "time",
        "lastTransitionTime": "time", "reason": "string", "message": "string",
    },
    _CORE + "HostIP": {"ip": "string!"},
    _CORE + "PodIP": {"ip": "string!"},
    _CORE + "ContainerStatus": {
        "name": "string!", "state": "ContainerState", "lastState": "ContainerState",
        "ready": "boolean!", "restartCount": "int32!", "image": "string!",
        "imageID": "string!", "containerID": "string", "started": "boolean",
        "allocatedResources": "{}quantity", "resources": "ResourceRequirements",
        "volumeMounts": "[]any", "user": "any", "allocatedResourcesStatus": "[]any",
    },
    _CORE + "ContainerState": {
        "waiting": "ContainerStateWaiting", "running": "ContainerStateRunning",
        "terminated": "ContainerStateTerminated",
    },
    _CORE + "ContainerStateWaiting": {"reason": "string", "message": "string"},
    _CORE + "ContainerStateRunning": {"startedAt": "time"},
    _CORE + "ContainerStateTerminated": {
        "exitCode": "int32!", "signal": "int32", "reason": "string", "message": "string",
        "startedAt": "time", "finishedAt": "time", "containerID": "string",
    },
    # ---- core/v1: ReplicationController ---------------------------------------------
    _CORE + "ReplicationController": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "ReplicationControllerSpec", "status": "ReplicationControllerStatus",
    },
    _CORE + "ReplicationControllerSpec": {
        "replicas": "int32", "minReadySeconds": "int32", "selector": "{}string",
        "template": "PodTemplateSpec",
    },
    _CORE + "PodTemplateSpec": {"metadata": "ObjectMeta", "spec": "PodSpec"},
    _CORE + "ReplicationControllerStatus": {
        "replicas": "int32!", "fullyLabeledReplicas": "int32", "readyReplicas": "int32",
        "availableReplicas": "int32", "observedGeneration": "int64",
        "conditions": "[]ReplicationControllerCondition@type",
    },
    _CORE + "ReplicationControllerCondition": {
        "type": "string!", "status": "string!", "lastTransitionTime": "time",
        "reason": "string", "message": "string",
    },
    # ---- core/v1: Service ----------------------------------------------------------
    _CORE + "Service": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "ServiceSpec", "status": "ServiceStatus",
    },
    _CORE + "ServiceSpec": {
        "ports": "[]ServicePort@port", "selector": "{}string", "clusterIP": "string",
        "clusterIPs": "[]string", "type": "string", "externalIPs": "[]string",
        "sessionAffinity": "string", "loadBalancerIP": "string",
        "loadBalancerSourceRanges": "[]string", "externalName": "string",
        "externalTrafficPolicy": "string", "healthCheckNodePort": "int32",
        "publishNotReadyAddresses": "boolean",
        "sessionAffinityConfig": "SessionAffinityConfig", "ipFamilies": "[]string",
        "ipFamilyPolicy": "string", "allocateLoadBalancerNodePorts": "boolean",
        "loadBalancerClass": "string", "internalTrafficPolicy": "string",
        "trafficDistribution": "string",
    },
    _CORE + "ServicePort": {
        "name": "string", "protocol": "string", "appProtocol": "string", "port": "int32!",
        "targetPort": "int-or-string", "nodePort": "int32",
    },
    _CORE + "SessionAffinityConfig": {"clientIP": "ClientIPConfig"},
    _CORE + "ClientIPConfig": {"timeoutSeconds": "int32"},
    _CORE + "ServiceStatus": {
        "loadBalancer": "LoadBalancerStatus", "conditions": "[]Condition@type",
    },
    _CORE + "LoadBalancerStatus": {"ingress": "[]LoadBalancerIngress"},
    _CORE + "LoadBalancerIngress": {
        "ip": "string", "hostname": "string", "ipMode": "string", "ports": "[]PortStatus",
    },
    _CORE + "PortStatus": {"port": "int32!", "protocol": "string!", "error": "string"},
    # ---- core/v1: Endpoints --------------------------------------------------------
    _CORE + "Endpoints": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "subsets": "[]EndpointSubset",
    },
    _CORE + "EndpointSubset": {
        "addresses": "[]EndpointAddress", "notReadyAddresses": "[]EndpointAddress",
        "ports": "[]EndpointPort",
    },
    _CORE + "EndpointAddress": {
        "ip": "string!", "hostname": "string", "nodeName": "string",
        "targetRef": "ObjectReference",
    },
    _CORE + "EndpointPort": {
        "name": "string", "port": "int32!", "protocol": "string", "appProtocol": "string",
    },
    # ---- core/v1: Node -------------------------------------------------------------
    _CORE + "Node": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "NodeSpec", "status": "NodeStatus",
    },
    _CORE + "NodeSpec": {
        "podCIDR": "string", "podCIDRs": "[]string@", "providerID": "string",
        "unschedulable": "boolean", "taints": "[]Taint", "configSource": "any",
        "externalID": "string",
    },
    _CORE + "Taint": {
        "key": "string!", "value": "string", "effect": "string!", "timeAdded": "time",
    },
    _CORE + "NodeStatus": {
        "capacity": "{}quantity", "allocatable": "{}quantity", "phase": "string",
        "conditions": "[]NodeCondition@type", "addresses": "[]NodeAddress@type",
        "daemonEndpoints": "NodeDaemonEndpoints", "nodeInfo": "NodeSystemInfo",
        "images": "[]ContainerImage", "volumesInUse": "[]string",
        "volumesAttached": "[]AttachedVolume", "config": "any", "runtimeHandlers": "[]any",
        "features": "any",
    },
    _CORE + "NodeCondition": {
        "type": "string!", "status": "string!", "lastHeartbeatTime": "time",
        "lastTransitionTime": "time", "reason": "string", "message": "string",
    },
    _CORE + "NodeAddress": {"type": "string!", "address": "string!"},
    _CORE + "NodeDaemonEndpoints": {"kubeletEndpoint": "DaemonEndpoint"},
    _CORE + "DaemonEndpoint": {"Port": "int32!"},
    _CORE + "NodeSystemInfo": {
        "machineID": "string!", "systemUUID": "string!", "bootID": "string!",
        "kernelVersion": "string!", "osImage": "string!",
        "containerRuntimeVersion": "string!", "kubeletVersion": "string!",
        "kubeProxyVersion": "string!", "operatingSystem": "string!",
        "architecture": "string!",
    },
    _CORE + "ContainerImage": {"names": "[]string", "sizeBytes": "int64"},
    _CORE + "AttachedVolume": {"name": "string!", "devicePath": "string!"},
    # ---- core/v1: Event ------------------------------------------------------------
    _CORE + "Event": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta!",
        "involvedObject": "ObjectReference!", "reason": "string", "message": "string",
        "source": "EventSource", "firstTimestamp": "time", "lastTimestamp": "time",
        "count": "int32", "type": "string", "eventTime": "microtime",
        "series": "EventSeries", "action": "string", "related": "ObjectReference",
        "reportingComponent": "string", "reportingInstance": "string",
    },
    _CORE + "EventSource": {"component": "string", "host": "string"},
    _CORE + "EventSeries": {"count": "int32", "lastObservedTime": "microtime"},
    # ---- core/v1: Namespace --------------------------------------------------------
    _CORE + "Namespace": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "NamespaceSpec", "status": "NamespaceStatus",
    },
    _CORE + "NamespaceSpec": {"finalizers": "[]string"},
    _CORE + "NamespaceStatus": {
        "phase": "string", "conditions": "[]NamespaceCondition@type",
    },
    _CORE + "NamespaceCondition": {
        "type": "string!", "status": "string!", "lastTransitionTime": "time",
        "reason": "string", "message": "string",
    },
    # ---- coordination/v1: Lease ----------------------------------------------------
    "io.k8s.api.coordination.v1.Lease": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "LeaseSpec",
    },
    "io.k8s.api.coordination.v1.LeaseSpec": {
        "holderIdentity": "string", "leaseDurationSeconds": "int32",
        "acquireTime": "microtime", "renewTime": "microtime", "leaseTransitions": "int32",
        "strategy": "string", "preferredHolder": "string",
    },
    # ---- autoscaling/v1: Scale (the replicationcontrollers/scale subresource) ------
    "io.k8s.api.autoscaling.v1.Scale": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "ScaleSpec", "status": "ScaleStatus",
    },
    "io.k8s.api.autoscaling.v1.ScaleSpec": {"replicas": "int32"},
    "io.k8s.api.autoscaling.v1.ScaleStatus": {"replicas": "int32!", "selector": "string"},
}

DEFINITIONS: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {name: MappingProxyType(fields) for name, fields in _DEFINITIONS.items()})
"""Every definition: full OpenAPI name → {field name: type spec}."""

SCALE_DEFINITION: Final = "io.k8s.api.autoscaling.v1.Scale"


def _short_names() -> Mapping[str, str]:
    index: dict[str, str] = {}
    for full in DEFINITIONS:
        short = full.rsplit(".", 1)[1]
        assert short not in index, f"duplicate short definition name {short}"
        index[short] = full
    return MappingProxyType(index)


_SHORT: Final = _short_names()


def full_name(short: str) -> str:
    return _SHORT[short]


def root_definition(resource: Resource) -> str:
    """The definition of a served kind: `io.k8s.api.core.v1.Pod`."""
    group = resource.group.split(".", 1)[0] if resource.group else "core"
    return f"io.k8s.api.{group}.{resource.version}.{resource.kind}"


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
    return FieldType("object", ref=_SHORT[spec], required=required)


def fields_of(definition: str) -> Mapping[str, FieldType]:
    """The typed fields of a definition (full name)."""
    return _typed_fields(definition)


@functools.cache
def _typed_fields(definition: str) -> Mapping[str, FieldType]:
    return MappingProxyType({name: parse_type(spec)
                             for name, spec in DEFINITIONS[definition].items()})


def field_type(definition: str | None, name: str) -> FieldType | None:
    """The type of `name` inside `definition`, or None when either is unknown."""
    if definition is None:
        return None
    return fields_of(definition).get(name)
