"""Server-side printing: objects → a `meta.k8s.io/v1` Table, as kube-apiserver serves it.

    server (Accept: ...;as=Table;g=meta.k8s.io;v=v1) ─► to_table(...) ─► kubectl get

kubectl 1.32 prints no columns of its own for built-in kinds: the columns, their
order and every cell's text come from here, ported from Kubernetes'
`pkg/printers/internalversion/printers.go` (the server always generates the wide
columns; kubectl hides priority-1 columns unless `-o wide`). Ages follow
apimachinery's `HumanDuration`.

Pure functions: time is passed in (`now`), nothing is read from a clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from miniorch.api.kinds import Resource
from miniorch.core.clock import parse_rfc3339
from miniorch.core.objects import Obj

Cell = str | int
Row = tuple[list[Cell], list[Obj]]
"""Cells, and row conditions (only completed pods have any)."""

# ---- durations ----------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """apimachinery's `duration.HumanDuration`: `59s`, `2m30s`, `10m`, `3h15m`, `2d5h`, `8d`,
    `3y45d`. Up to two seconds in the future counts as now (clock skew)."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 60 * 2:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def _since(timestamp: Any, now: datetime) -> str:
    """translateTimestampSince: `<unknown>` for a missing timestamp."""
    if not timestamp or not isinstance(timestamp, str):
        return "<unknown>"
    try:
        then = parse_rfc3339(timestamp)
    except ValueError:
        return "<unknown>"
    return human_duration((now - then).total_seconds())


def _parse(timestamp: Any) -> datetime | None:
    if not timestamp or not isinstance(timestamp, str):
        return None
    try:
        return parse_rfc3339(timestamp)
    except ValueError:
        return None


def _d(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def format_labels(labels: Any) -> str:
    """labels.FormatLabels: `a=b,c=d` sorted by key, `<none>` when empty."""
    labels = _d(labels)
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


# ---- columns ---------------------------------------------------------------------------------

_NAME_DESC = ("Name must be unique within a namespace. Is required when creating resources, "
              "although some resources may allow a client to request the generation of an "
              "appropriate name automatically. Name is primarily intended for creation "
              "idempotence and configuration definition. Cannot be updated. More info: "
              "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names")
_AGE_DESC = ("CreationTimestamp is a timestamp representing the server time when this object "
             "was created. It is not guaranteed to be set in happens-before order across "
             "separate operations. Clients may not set this value. It is represented in "
             "RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for "
             "lists. More info: https://git.k8s.io/community/contributors/devel/"
             "sig-architecture/api-conventions.md#metadata")


def _col(name: str, description: str = "", *, type: str = "string", priority: int = 0,
         format: str = "") -> Obj:
    return {"name": name, "type": type, "format": format, "description": description,
            "priority": priority}


_NAME = _col("Name", _NAME_DESC, format="name")
_AGE = _col("Age", _AGE_DESC)

_COLUMNS: dict[str, list[Obj]] = {
    "Pod": [
        _NAME,
        _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        _col("Status", "The aggregate status of the containers in this pod."),
        _col("Restarts", "The number of times the containers in this pod have been restarted "
                         "and when the last container in this pod has restarted."),
        _AGE,
        _col("IP", "podIP address allocated to the pod. Routable at least within the cluster. "
                   "Empty if not yet allocated.", priority=1),
        _col("Node", "NodeName indicates in which node this pod is scheduled.", priority=1),
        _col("Nominated Node", "nominatedNodeName is set only when this pod preempts other "
                               "pods on the node.", priority=1),
        _col("Readiness Gates", "If specified, all readiness gates will be evaluated for pod "
                                "readiness.", priority=1),
    ],
    "ReplicationController": [
        _NAME,
        _col("Desired", "Replicas is the number of desired replicas.", type="integer"),
        _col("Current", "Replicas is the most recently observed number of replicas.",
             type="integer"),
        _col("Ready", "The number of ready replicas for this replication controller.",
             type="integer"),
        _AGE,
        _col("Containers", "Names of each container in the template.", priority=1),
        _col("Images", "Images referenced by each container in the template.", priority=1),
        _col("Selector", "Selector is a label query over pods that should match the Replicas "
                         "count.", priority=1),
    ],
    "Service": [
        _NAME,
        _col("Type", "type determines how the Service is exposed."),
        _col("Cluster-IP", "clusterIP is the IP address of the service."),
        _col("External-IP", "externalIPs is a list of IP addresses for which nodes in the "
                            "cluster will also accept traffic for this service."),
        _col("Port(s)", "The list of ports that are exposed by this service."),
        _AGE,
        _col("Selector", "Route service traffic to pods with label keys and values matching "
                         "this selector.", priority=1),
    ],
    "Endpoints": [
        _NAME,
        _col("Endpoints", "The set of all endpoints is the union of all subsets."),
        _AGE,
    ],
    "Node": [
        _NAME,
        _col("Status", "The status of the node"),
        _col("Roles", "The roles of the node"),
        _AGE,
        _col("Version", "Kubelet Version reported by the node."),
        _col("Internal-IP", "List of addresses reachable to the node.", priority=1),
        _col("External-IP", "List of addresses reachable to the node.", priority=1),
        _col("OS-Image", "OS Image reported by the node from /etc/os-release.", priority=1),
        _col("Kernel-Version", "Kernel Version reported by the node from 'uname -r'.",
             priority=1),
        _col("Container-Runtime", "ContainerRuntime Version reported by the node through "
                                  "runtime remote API.", priority=1),
    ],
    "Event": [
        _col("Last Seen", "The time at which the most recent occurrence of this event was "
                          "recorded."),
        _col("Type", "Type of this event (Normal, Warning), new types could be added in the "
                     "future"),
        _col("Reason", "This should be a short, machine understandable string that gives the "
                       "reason for the transition into the object's current status."),
        _col("Object", "The object that this event is about."),
        _col("Subobject", "If referring to a piece of an object instead of an entire object, "
                          "this string should contain a valid JSON/Go field access "
                          "statement.", priority=1),
        _col("Source", "The component reporting this event.", priority=1),
        _col("Message", "A human-readable description of the status of this operation."),
        _col("First Seen", "The time at which the event was first recorded.", priority=1),
        _col("Count", "The number of times this event has occurred.", priority=1),
        _col("Name", _NAME_DESC, priority=1, format="name"),
    ],
    "Namespace": [
        _NAME,
        _col("Status", "The status of the namespace"),
        _AGE,
    ],
    "Lease": [
        _NAME,
        _col("Holder", "holderIdentity contains the identity of the holder of a current "
                       "lease."),
        _AGE,
    ],
}


def column_definitions(resource: Resource) -> list[Obj]:
    """The Table columns for a kind (every kind miniorch serves has its own)."""
    return [dict(c) for c in _COLUMNS.get(resource.kind, [_NAME, _AGE])]


# ---- rows ------------------------------------------------------------------------------------

_POD_SUCCEEDED = [{"type": "Completed", "status": "True", "reason": "Succeeded",
                   "message": "The pod has completed successfully."}]
_POD_FAILED = [{"type": "Completed", "status": "True", "reason": "Failed",
                "message": "The pod failed."}]


def _condition_true(conditions: Any, kind: str) -> bool:
    return any(_d(c).get("type") == kind and _d(c).get("status") == "True"
               for c in _l(conditions))


def _later(current: datetime | None, candidate: Any) -> datetime | None:
    moment = _parse(candidate)
    if moment is None:
        return current
    return moment if current is None or moment > current else current


def pod_cells(pod: Obj, now: datetime) -> Row:
    """printPod: Name, Ready, Status, Restarts, Age, IP, Node, Nominated Node, Readiness
    Gates."""
    meta = _d(pod.get("metadata"))
    spec = _d(pod.get("spec"))
    status = _d(pod.get("status"))
    restarts = 0
    restartable_restarts = 0
    total = len(_l(spec.get("containers")))
    ready = 0
    last_restart: datetime | None = None
    last_restartable_restart: datetime | None = None

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for condition in _l(status.get("conditions")):
        condition = _d(condition)
        if condition.get("type") == "PodScheduled" and \
                condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    conditions: list[Obj] = []
    if phase == "Succeeded":
        conditions = _POD_SUCCEEDED
    elif phase == "Failed":
        conditions = _POD_FAILED

    init_specs = {_d(c).get("name"): _d(c) for c in _l(spec.get("initContainers"))}

    def restartable(name: Any) -> bool:
        return init_specs.get(name, {}).get("restartPolicy") == "Always"

    total += sum(1 for c in init_specs.values() if c.get("restartPolicy") == "Always")

    initializing = False
    init_statuses = _l(status.get("initContainerStatuses"))
    for i, container in enumerate(init_statuses):
        container = _d(container)
        state = _d(container.get("state"))
        last_terminated = _d(_d(container.get("lastState")).get("terminated"))
        restarts += int(container.get("restartCount") or 0)
        if last_terminated:
            last_restart = _later(last_restart, last_terminated.get("finishedAt"))
        if restartable(container.get("name")):
            restartable_restarts += int(container.get("restartCount") or 0)
            if last_terminated:
                last_restartable_restart = _later(last_restartable_restart,
                                                  last_terminated.get("finishedAt"))
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if isinstance(terminated, dict) and terminated.get("exitCode", 0) == 0:
            continue
        if restartable(container.get("name")) and container.get("started"):
            if container.get("ready"):
                ready += 1
            continue
        if isinstance(terminated, dict):
            if not terminated.get("reason"):
                if terminated.get("signal"):
                    reason = f"Init:Signal:{terminated['signal']}"
                else:
                    reason = f"Init:ExitCode:{terminated.get('exitCode', 0)}"
            else:
                reason = "Init:" + str(terminated["reason"])
        elif isinstance(waiting, dict) and waiting.get("reason") and \
                waiting.get("reason") != "PodInitializing":
            reason = "Init:" + str(waiting["reason"])
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(status.get("conditions"), "Initialized"):
        restarts = restartable_restarts
        last_restart = last_restartable_restart
        has_running = False
        for container in reversed(_l(status.get("containerStatuses"))):
            container = _d(container)
            state = _d(container.get("state"))
            restarts += int(container.get("restartCount") or 0)
            last_terminated = _d(_d(container.get("lastState")).get("terminated"))
            if last_terminated:
                last_restart = _later(last_restart, last_terminated.get("finishedAt"))
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if isinstance(waiting, dict) and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif isinstance(terminated, dict) and terminated.get("reason"):
                reason = str(terminated["reason"])
            elif isinstance(terminated, dict):
                if terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode', 0)}"
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        # A container still running after another completed: the pod is not Completed.
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status.get("conditions"), "Ready") \
                else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"

    pod_ips = _l(status.get("podIPs"))
    pod_ip = _d(pod_ips[0]).get("ip") if pod_ips else ""
    readiness = "<none>"
    gates = _l(spec.get("readinessGates"))
    if gates:
        true_count = 0
        for gate in gates:
            for condition in _l(status.get("conditions")):
                if _d(condition).get("type") == _d(gate).get("conditionType"):
                    true_count += 1 if _d(condition).get("status") == "True" else 0
                    break
        readiness = f"{true_count}/{len(gates)}"
    cells: list[Cell] = [
        str(meta.get("name", "")), f"{ready}/{total}", reason, restarts_text,
        _since(meta.get("creationTimestamp"), now),
        pod_ip or "<none>", spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>", readiness,
    ]
    return cells, conditions


def _containers_and_images(containers: Any) -> tuple[str, str]:
    names = [str(_d(c).get("name", "")) for c in _l(containers)]
    images = [str(_d(c).get("image", "")) for c in _l(containers)]
    return ",".join(names), ",".join(images)


def replication_controller_cells(rc: Obj, now: datetime) -> Row:
    meta = _d(rc.get("metadata"))
    spec = _d(rc.get("spec"))
    status = _d(rc.get("status"))
    replicas = spec.get("replicas")
    names, images = _containers_and_images(_d(_d(spec.get("template")).get("spec"))
                                           .get("containers"))
    return [
        str(meta.get("name", "")), int(1 if replicas is None else replicas),
        int(status.get("replicas") or 0), int(status.get("readyReplicas") or 0),
        _since(meta.get("creationTimestamp"), now), names, images,
        format_labels(spec.get("selector")),
    ], []


def _service_external_ip(svc: Obj) -> str:
    spec = _d(svc.get("spec"))
    external_ips = [str(ip) for ip in _l(spec.get("externalIPs"))]
    svc_type = spec.get("type")
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else "<none>"
    if svc_type == "LoadBalancer":
        ingress: set[str] = set()
        for item in _l(_d(_d(svc.get("status")).get("loadBalancer")).get("ingress")):
            item = _d(item)
            if item.get("ip"):
                ingress.add(str(item["ip"]))
            elif item.get("hostname"):
                ingress.add(str(item["hostname"]))
        lb_ips = sorted(ingress)  # sets.String.List() is sorted
        if external_ips:
            return ",".join(lb_ips + external_ips)
        return ",".join(lb_ips) if lb_ips else "<pending>"
    if svc_type == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


def service_port_string(ports: Any) -> str:
    """makePortString: `8080/TCP`, or `8080:31234/TCP` with a node port."""
    pieces = []
    for port in _l(ports):
        port = _d(port)
        protocol = port.get("protocol", "")
        if port.get("nodePort"):
            pieces.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            pieces.append(f"{port.get('port')}/{protocol}")
    return ",".join(pieces)


def service_cells(svc: Obj, now: datetime) -> Row:
    meta = _d(svc.get("metadata"))
    spec = _d(svc.get("spec"))
    cluster_ips = _l(spec.get("clusterIPs"))
    internal = str(cluster_ips[0]) if cluster_ips else "<none>"
    return [
        str(meta.get("name", "")), str(spec.get("type", "")), internal,
        _service_external_ip(svc), service_port_string(spec.get("ports")) or "<none>",
        _since(meta.get("creationTimestamp"), now), format_labels(spec.get("selector")),
    ], []


def format_endpoints(endpoints: Obj) -> str:
    """formatEndpoints: up to three `ip:port`, then ` + N more...`."""
    subsets = _l(endpoints.get("subsets"))
    if not subsets:
        return "<none>"
    shown: list[str] = []
    limit = 3
    more = False
    count = 0
    for subset in subsets:
        subset = _d(subset)
        addresses = _l(subset.get("addresses"))
        ports = _l(subset.get("ports"))
        if not ports:
            count += len(addresses)
            for address in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(str(_d(address).get("ip", "")))
            continue
        for port in ports:
            count += len(addresses)
            for address in addresses:
                if len(shown) == limit:
                    more = True
                    break
                ip = str(_d(address).get("ip", ""))
                host = f"[{ip}]" if ":" in ip else ip  # net.JoinHostPort
                shown.append(f"{host}:{_d(port).get('port')}")
    text = ",".join(shown)
    if more:
        return f"{text} + {count - limit} more..."
    return text or "<none>"


def endpoints_cells(endpoints: Obj, now: datetime) -> Row:
    meta = _d(endpoints.get("metadata"))
    return [str(meta.get("name", "")), format_endpoints(endpoints),
            _since(meta.get("creationTimestamp"), now)], []


def node_roles(node: Obj) -> list[str]:
    roles: set[str] = set()
    for key, value in _d(_d(node.get("metadata")).get("labels")).items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key[len("node-role.kubernetes.io/"):]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(str(value))
    return sorted(roles)


def node_cells(node: Obj, now: datetime) -> Row:
    meta = _d(node.get("metadata"))
    status = _d(node.get("status"))
    states: list[str] = []
    for condition in _l(status.get("conditions")):
        condition = _d(condition)
        if condition.get("type") == "Ready":
            states = ["Ready" if condition.get("status") == "True" else "NotReady"]
    if not states:
        states = ["Unknown"]
    if _d(node.get("spec")).get("unschedulable"):
        states.append("SchedulingDisabled")
    info = _d(status.get("nodeInfo"))

    def address(kind: str) -> str:
        for item in _l(status.get("addresses")):
            if _d(item).get("type") == kind:
                return str(_d(item).get("address", ""))
        return "<none>"

    return [
        str(meta.get("name", "")), ",".join(states), ",".join(node_roles(node)) or "<none>",
        _since(meta.get("creationTimestamp"), now), str(info.get("kubeletVersion", "")),
        address("InternalIP"), address("ExternalIP"), info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ], []


def event_cells(event: Obj, now: datetime) -> Row:
    meta = _d(event.get("metadata"))
    first = _since(event.get("firstTimestamp"), now)
    if not event.get("firstTimestamp"):
        first = _since(event.get("eventTime"), now)
    last = _since(event.get("lastTimestamp"), now) if event.get("lastTimestamp") else first
    count = int(event.get("count") or 0)
    series = event.get("series")
    if isinstance(series, dict):
        last = _since(series.get("lastObservedTime"), now)
        count = int(series.get("count") or 0)
    elif count == 0:
        count = 1  # singleton events of the new API have no count
    involved = _d(event.get("involvedObject"))
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = _d(event.get("source"))
    component = source.get("component") or event.get("reportingComponent") or ""
    instance = source.get("host") or event.get("reportingInstance") or ""
    source_text = f"{component}, {instance}" if instance else str(component)
    return [
        last, str(event.get("type", "")), str(event.get("reason", "")), target,
        str(involved.get("fieldPath", "")), source_text,
        str(event.get("message", "")).strip(), first, count, str(meta.get("name", "")),
    ], []


def namespace_cells(ns: Obj, now: datetime) -> Row:
    meta = _d(ns.get("metadata"))
    return [str(meta.get("name", "")), str(_d(ns.get("status")).get("phase", "")),
            _since(meta.get("creationTimestamp"), now)], []


def lease_cells(lease: Obj, now: datetime) -> Row:
    meta = _d(lease.get("metadata"))
    return [str(meta.get("name", "")), str(_d(lease.get("spec")).get("holderIdentity") or ""),
            _since(meta.get("creationTimestamp"), now)], []


def _default_cells(obj: Obj, now: datetime) -> Row:
    meta = _d(obj.get("metadata"))
    return [str(meta.get("name", "")), _since(meta.get("creationTimestamp"), now)], []


_PRINTERS: dict[str, Callable[[Obj, datetime], Row]] = {
    "Pod": pod_cells, "ReplicationController": replication_controller_cells,
    "Service": service_cells, "Endpoints": endpoints_cells, "Node": node_cells,
    "Event": event_cells, "Namespace": namespace_cells, "Lease": lease_cells,
}


def row_for(resource: Resource, obj: Obj, *, now: datetime,
            include_object: str = "Metadata") -> Obj:
    """One Table row; `include_object` is the request's `includeObject`
    (`None` | `Metadata` (the default) | `Object`)."""
    cells, conditions = _PRINTERS.get(resource.kind, _default_cells)(obj, now)
    row: Obj = {"cells": cells}
    if conditions:
        row["conditions"] = [dict(c) for c in conditions]
    if include_object == "Object":
        full = dict(obj)
        full.setdefault("kind", resource.kind)
        full.setdefault("apiVersion", resource.api_version)
        row["object"] = full
    elif include_object == "None":
        row["object"] = None
    else:
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": obj.get("metadata", {})}
    return row


def to_table(resource: Resource, objects: list[Obj], *, resource_version: str,
             now: datetime, include_object: str = "Metadata") -> Obj:
    """A `meta.k8s.io/v1` Table of `objects` (a list, or one object for a GET or a watch
    event), with every column including the wide (priority 1) ones."""
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": column_definitions(resource),
        "rows": [row_for(resource, obj, now=now, include_object=include_object)
                 for obj in objects],
    }
