"""Node (core/v1): a machine the kubelet registers and heartbeats.

The kubelet (`miniorch/node`) creates it, writes its status (capacity, conditions,
addresses, nodeInfo) through `/status`; the node-lifecycle controller marks it
NotReady when the heartbeats stop. Table ─► node_cells.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime

from miniorch.api.errors import Cause
from miniorch.api.kinds.base import Kind
from miniorch.api.resource import Resource
from miniorch.api.schema import CORE
from miniorch.api.tables import AGE_COLUMN, NAME_COLUMN, Row, column, since
from miniorch.api.validation import forbidden, invalid, not_supported, required
from miniorch.core.objects import Obj, as_dict, as_list, ensure_dict

NODES = Resource(group="", version="v1", plural="nodes", singular="node", kind="Node",
                 namespaced=False, short_names=("no",))


DEFINITIONS: dict[str, dict[str, str]] = {
    CORE + "Node": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "NodeSpec", "status": "NodeStatus",
    },
    CORE + "NodeSpec": {
        "podCIDR": "string", "podCIDRs": "[]string@", "providerID": "string",
        "unschedulable": "boolean", "taints": "[]Taint", "configSource": "any",
        "externalID": "string",
    },
    CORE + "Taint": {
        "key": "string!", "value": "string", "effect": "string!", "timeAdded": "time",
    },
    CORE + "NodeStatus": {
        "capacity": "{}quantity", "allocatable": "{}quantity", "phase": "string",
        "conditions": "[]NodeCondition@type", "addresses": "[]NodeAddress@type",
        "daemonEndpoints": "NodeDaemonEndpoints", "nodeInfo": "NodeSystemInfo",
        "images": "[]ContainerImage", "volumesInUse": "[]string",
        "volumesAttached": "[]AttachedVolume", "config": "any", "runtimeHandlers": "[]any",
        "features": "any",
    },
    CORE + "NodeCondition": {
        "type": "string!", "status": "string!", "lastHeartbeatTime": "time",
        "lastTransitionTime": "time", "reason": "string", "message": "string",
    },
    CORE + "NodeAddress": {"type": "string!", "address": "string!"},
    CORE + "NodeDaemonEndpoints": {"kubeletEndpoint": "DaemonEndpoint"},
    CORE + "DaemonEndpoint": {"Port": "int32!"},
    CORE + "NodeSystemInfo": {
        "machineID": "string!", "systemUUID": "string!", "bootID": "string!",
        "kernelVersion": "string!", "osImage": "string!",
        "containerRuntimeVersion": "string!", "kubeletVersion": "string!",
        "kubeProxyVersion": "string!", "operatingSystem": "string!",
        "architecture": "string!",
    },
    CORE + "ContainerImage": {"names": "[]string", "sizeBytes": "int64"},
    CORE + "AttachedVolume": {"name": "string!", "devicePath": "string!"},
}


def _default(obj: Obj) -> None:
    obj.setdefault("spec", {})
    status = ensure_dict(obj, "status")
    if status is None:
        return
    capacity = status.get("capacity")
    if isinstance(capacity, dict) and capacity and not status.get("allocatable"):
        status["allocatable"] = dict(capacity)


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    spec = as_dict(obj.get("spec"))
    for i, taint in enumerate(as_list(spec.get("taints"))):
        taint = as_dict(taint)
        if not taint.get("key"):
            causes.append(required(f"spec.taints[{i}].key"))
        effect = taint.get("effect") or ""
        if effect not in ("NoExecute", "NoSchedule", "PreferNoSchedule"):
            causes.append(not_supported(f"spec.taints[{i}].effect", effect,
                                        ("NoExecute", "NoSchedule", "PreferNoSchedule")))
    for i, cidr in enumerate(as_list(spec.get("podCIDRs"))):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            causes.append(invalid(f"spec.podCIDRs[{i}]", cidr, "must be a valid CIDR value, "
                                  "(e.g. 10.9.8.0/24 or 2001:db8::/64)"))
    if old is not None:
        old_cidrs = as_list(as_dict(old.get("spec")).get("podCIDRs"))
        if old_cidrs and as_list(spec.get("podCIDRs")) != old_cidrs:
            causes.append(forbidden("spec.podCIDRs", "node updates may not change podCIDR "
                                    "except from \"\" to valid"))
    return causes


def node_roles(node: Obj) -> list[str]:
    roles: set[str] = set()
    for key, value in as_dict(as_dict(node.get("metadata")).get("labels")).items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key[len("node-role.kubernetes.io/"):]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(str(value))
    return sorted(roles)


def node_cells(node: Obj, now: datetime) -> Row:
    meta = as_dict(node.get("metadata"))
    status = as_dict(node.get("status"))
    states: list[str] = []
    for condition in as_list(status.get("conditions")):
        condition = as_dict(condition)
        if condition.get("type") == "Ready":
            states = ["Ready" if condition.get("status") == "True" else "NotReady"]
    if not states:
        states = ["Unknown"]
    if as_dict(node.get("spec")).get("unschedulable"):
        states.append("SchedulingDisabled")
    info = as_dict(status.get("nodeInfo"))

    def address(kind: str) -> str:
        for item in as_list(status.get("addresses")):
            if as_dict(item).get("type") == kind:
                return str(as_dict(item).get("address", ""))
        return "<none>"

    return [
        str(meta.get("name", "")), ",".join(states), ",".join(node_roles(node)) or "<none>",
        since(meta.get("creationTimestamp"), now), str(info.get("kubeletVersion", "")),
        address("InternalIP"), address("ExternalIP"), info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ], []


COLUMNS = (
    NAME_COLUMN,
    column("Status", "The status of the node"),
    column("Roles", "The roles of the node"),
    AGE_COLUMN,
    column("Version", "Kubelet Version reported by the node."),
    column("Internal-IP", "List of addresses reachable to the node.", priority=1),
    column("External-IP", "List of addresses reachable to the node.", priority=1),
    column("OS-Image", "OS Image reported by the node from /etc/os-release.", priority=1),
    column("Kernel-Version", "Kernel Version reported by the node from 'uname -r'.",
         priority=1),
    column("Container-Runtime", "ContainerRuntime Version reported by the node through "
                              "runtime remote API.", priority=1),
)


NODE = Kind(
    resource=NODES, definitions=DEFINITIONS, default=_default, validate=_validate,
    columns=COLUMNS, cells=node_cells, status_subresource=True,
)
