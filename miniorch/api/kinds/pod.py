"""Pod (core/v1): the unit the scheduler binds and a node runs.

    create/update ─► _default (phase Pending, qosClass, pod-spec defaults) ─► _validate
    create ─► _prepare: the ServiceAccount admission plugin (kinds/serviceaccount.py)
    pods/binding ─► bind(): nodeName + PodScheduled in ONE write (BindingREST)
    DELETE of a bound pod ─► graceful: deletionTimestamp; the node stops the sandbox,
                              then deletes with grace 0
    Table ─► pod_cells (printPod)

One deliberate extension kept from before: an update may set `spec.nodeName` from empty
to a node (the binding subresource is the usual way).
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from miniorch.api.defaults import pod_spec, qos_class
from miniorch.api.errors import Cause, Conflict, Invalid
from miniorch.api.kinds.base import Kind, Subresource, WriteContext
from miniorch.api.kinds.serviceaccount import admit_pod
from miniorch.api.resource import Resource
from miniorch.api.schema import CORE
from miniorch.api.tables import (
    AGE_COLUMN,
    NAME_COLUMN,
    Cell,
    Row,
    column,
    human_duration,
    parse_time,
    since,
)
from miniorch.api.validation import forbidden, invalid, validate_pod_spec
from miniorch.core.objects import Obj, as_dict, as_list, ensure_dict

PODS = Resource(group="", version="v1", plural="pods", singular="pod", kind="Pod",
                namespaced=True, short_names=("po",), categories=("all",))


DEFINITIONS: dict[str, dict[str, str]] = {
    CORE + "Pod": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "PodSpec", "status": "PodStatus",
    },
    CORE + "PodStatus": {
        "phase": "string", "conditions": "[]PodCondition@type", "message": "string",
        "reason": "string", "nominatedNodeName": "string", "hostIP": "string",
        "hostIPs": "[]HostIP@ip", "podIP": "string", "podIPs": "[]PodIP@ip",
        "startTime": "time", "initContainerStatuses": "[]ContainerStatus",
        "containerStatuses": "[]ContainerStatus", "qosClass": "string",
        "ephemeralContainerStatuses": "[]ContainerStatus", "resize": "string",
        "resourceClaimStatuses": "[]any",
    },
    CORE + "PodCondition": {
        "type": "string!", "status": "string!", "lastProbeTime": "time",
        "lastTransitionTime": "time", "reason": "string", "message": "string",
    },
    CORE + "HostIP": {"ip": "string!"},
    CORE + "PodIP": {"ip": "string!"},
    CORE + "ContainerStatus": {
        "name": "string!", "state": "ContainerState", "lastState": "ContainerState",
        "ready": "boolean!", "restartCount": "int32!", "image": "string!",
        "imageID": "string!", "containerID": "string", "started": "boolean",
        "allocatedResources": "{}quantity", "resources": "ResourceRequirements",
        "volumeMounts": "[]any", "user": "any", "allocatedResourcesStatus": "[]any",
    },
    CORE + "ContainerState": {
        "waiting": "ContainerStateWaiting", "running": "ContainerStateRunning",
        "terminated": "ContainerStateTerminated",
    },
    CORE + "ContainerStateWaiting": {"reason": "string", "message": "string"},
    CORE + "ContainerStateRunning": {"startedAt": "time"},
    CORE + "ContainerStateTerminated": {
        "exitCode": "int32!", "signal": "int32", "reason": "string", "message": "string",
        "startedAt": "time", "finishedAt": "time", "containerID": "string",
    },
}


def _default(obj: Obj) -> None:
    spec = ensure_dict(obj, "spec")
    if spec is None:
        return
    pod_spec(spec)
    # Priority admission (no default PriorityClass) and its preemption policy.
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    status = ensure_dict(obj, "status")
    if status is None:
        return
    # The pod REST strategy's PrepareForCreate: every new pod starts Pending.
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", qos_class(spec))


_POD_UPDATABLE = ("`spec.containers[*].image`,`spec.initContainers[*].image`,"
                  "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                  "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 "
                  "if it was previously negative)")


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes = validate_pod_spec(spec, "spec")
    if old is None:
        return causes
    old_spec = as_dict(old.get("spec"))
    new_containers = as_list(spec.get("containers"))
    if len(new_containers) != len(as_list(old_spec.get("containers"))):
        return [*causes, forbidden("spec.containers",
                                   "pod updates may not add or remove containers")]
    deadline = spec.get("activeDeadlineSeconds")
    old_deadline = old_spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and isinstance(old_deadline, int) and old_deadline < deadline:
        return [*causes, invalid("spec.activeDeadlineSeconds", deadline,
                                 "must be less than or equal to previous value")]
    if deadline is None and old_deadline is not None:
        return [*causes, invalid("spec.activeDeadlineSeconds", None,
                                 "must not update from a positive integer to nil value")]
    # Copy the updatable fields from the new spec into the old one; any other
    # difference is forbidden (Kubernetes' "munged" pod spec comparison).
    munged = copy.deepcopy(old_spec)
    for key in ("containers", "initContainers"):
        for new_c, old_c in zip(as_list(spec.get(key)), as_list(munged.get(key)), strict=False):
            if isinstance(new_c, dict) and isinstance(old_c, dict) and "image" in new_c:
                old_c["image"] = new_c["image"]
    for key in ("activeDeadlineSeconds",):
        if key in spec:
            munged[key] = spec[key]
        else:
            munged.pop(key, None)
    old_tolerations = as_list(old_spec.get("tolerations"))
    new_tolerations = as_list(spec.get("tolerations"))
    if all(t in new_tolerations for t in old_tolerations) and "tolerations" in spec:
        munged["tolerations"] = spec["tolerations"]
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 and \
            spec.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = 1
    if not old_spec.get("nodeName") and spec.get("nodeName"):
        munged["nodeName"] = spec["nodeName"]  # binding: see the module docstring
    if munged != spec:
        changed = _changed_paths(munged, spec, "spec")
        causes.append(forbidden("spec", f"pod updates may not change fields other than "
                                        f"{_POD_UPDATABLE}\n" + "\n".join(
                                            f"  {p}: changed" for p in changed)))
    return causes


def _changed_paths(old: Any, new: Any, path: str) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                out.extend(_changed_paths(old.get(key), new.get(key), f"{path}.{key}"))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            if a != b:
                out.extend(_changed_paths(a, b, f"{path}[{i}]"))
        return out
    return [path]


_POD_SUCCEEDED = [{"type": "Completed", "status": "True", "reason": "Succeeded",
                   "message": "The pod has completed successfully."}]


_POD_FAILED = [{"type": "Completed", "status": "True", "reason": "Failed",
                "message": "The pod failed."}]


def _condition_true(conditions: Any, kind: str) -> bool:
    return any(as_dict(c).get("type") == kind and as_dict(c).get("status") == "True"
               for c in as_list(conditions))


def _later(current: datetime | None, candidate: Any) -> datetime | None:
    moment = parse_time(candidate)
    if moment is None:
        return current
    return moment if current is None or moment > current else current


def pod_cells(pod: Obj, now: datetime) -> Row:
    """printPod: Name, Ready, Status, Restarts, Age, IP, Node, Nominated Node, Readiness
    Gates."""
    meta = as_dict(pod.get("metadata"))
    spec = as_dict(pod.get("spec"))
    status = as_dict(pod.get("status"))
    restarts = 0
    restartable_restarts = 0
    total = len(as_list(spec.get("containers")))
    ready = 0
    last_restart: datetime | None = None
    last_restartable_restart: datetime | None = None

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for condition in as_list(status.get("conditions")):
        condition = as_dict(condition)
        if condition.get("type") == "PodScheduled" and \
                condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    conditions: list[Obj] = []
    if phase == "Succeeded":
        conditions = _POD_SUCCEEDED
    elif phase == "Failed":
        conditions = _POD_FAILED

    init_specs = {as_dict(c).get("name"): as_dict(c) for c in as_list(spec.get("initContainers"))}

    def restartable(name: Any) -> bool:
        return init_specs.get(name, {}).get("restartPolicy") == "Always"

    total += sum(1 for c in init_specs.values() if c.get("restartPolicy") == "Always")

    initializing = False
    init_statuses = as_list(status.get("initContainerStatuses"))
    for i, container in enumerate(init_statuses):
        container = as_dict(container)
        state = as_dict(container.get("state"))
        last_terminated = as_dict(as_dict(container.get("lastState")).get("terminated"))
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
        for container in reversed(as_list(status.get("containerStatuses"))):
            container = as_dict(container)
            state = as_dict(container.get("state"))
            restarts += int(container.get("restartCount") or 0)
            last_terminated = as_dict(as_dict(container.get("lastState")).get("terminated"))
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

    pod_ips = as_list(status.get("podIPs"))
    pod_ip = as_dict(pod_ips[0]).get("ip") if pod_ips else ""
    readiness = "<none>"
    gates = as_list(spec.get("readinessGates"))
    if gates:
        true_count = 0
        for gate in gates:
            for condition in as_list(status.get("conditions")):
                if as_dict(condition).get("type") == as_dict(gate).get("conditionType"):
                    true_count += 1 if as_dict(condition).get("status") == "True" else 0
                    break
        readiness = f"{true_count}/{len(gates)}"
    cells: list[Cell] = [
        str(meta.get("name", "")), f"{ready}/{total}", reason, restarts_text,
        since(meta.get("creationTimestamp"), now),
        pod_ip or "<none>", spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>", readiness,
    ]
    return cells, conditions


COLUMNS = (
    NAME_COLUMN,
    column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    column("Status", "The aggregate status of the containers in this pod."),
    column("Restarts", "The number of times the containers in this pod have been restarted "
                     "and when the last container in this pod has restarted."),
    AGE_COLUMN,
    column("IP", "podIP address allocated to the pod. Routable at least within the cluster. "
               "Empty if not yet allocated.", priority=1),
    column("Node", "NodeName indicates in which node this pod is scheduled.", priority=1),
    column("Nominated Node", "nominatedNodeName is set only when this pod preempts other "
                           "pods on the node.", priority=1),
    column("Readiness Gates", "If specified, all readiness gates will be evaluated for pod "
                            "readiness.", priority=1),
)


def grace_period(pod: Obj, requested: int | None) -> int:
    """How long a deletion waits for the node to stop the pod (0: remove at once, as
    for a pod no node runs yet)."""
    if requested is not None:
        if requested < 0:
            raise Invalid.of("Pod", pod["metadata"]["name"], [Cause(
                "gracePeriodSeconds", "must be greater than or equal to 0")])
        grace = requested
    else:
        spec_grace = pod.get("spec", {}).get("terminationGracePeriodSeconds")
        grace = 30 if spec_grace is None else int(spec_grace)
    return grace if pod.get("spec", {}).get("nodeName") else 0


def bind(pod: Obj, *, node: str, uid: str | None, now: str) -> None:
    """Assign `pod` to `node` in place: `spec.nodeName` and the `PodScheduled`
    condition together, so no watcher ever sees one without the other."""
    name = pod["metadata"]["name"]
    bound = pod.get("spec", {}).get("nodeName")
    if bound:
        raise Conflict(f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is '
                       f'already assigned to node "{bound}"', kind="pods/binding", name=name)
    if pod["metadata"].get("deletionTimestamp"):
        raise Conflict(f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} is '
                       "being deleted, cannot be assigned to a host", kind="pods/binding",
                       name=name)
    if uid and uid != pod["metadata"].get("uid"):
        raise Conflict(f'Operation cannot be fulfilled on pods/binding "{name}": the UID in the '
                       "binding does not match the pod", kind="pods/binding", name=name)
    pod.setdefault("spec", {})["nodeName"] = node
    status = pod.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                       "lastTransitionTime": now})
    status["conditions"] = conditions


def _prepare(ctx: WriteContext, pod: Obj, old: Obj | None) -> None:
    if old is None:
        admit_pod(ctx, pod)


POD = Kind(
    resource=PODS, definitions=DEFINITIONS, default=_default, validate=_validate,
    prepare=_prepare,
    columns=COLUMNS, cells=pod_cells, status_subresource=True, returns_deleted=True,
    graceful_delete=grace_period,
    connect=(
        Subresource(name="binding", kind="Binding", verbs=("create",)),
        Subresource(name="eviction", kind="Eviction", verbs=("create",), group="policy",
                    version="v1"),
        Subresource(name="exec", kind="PodExecOptions", verbs=("create", "get")),
        Subresource(name="log", kind="Pod", verbs=("get",)),
        Subresource(name="portforward", kind="PodPortForwardOptions", verbs=("create", "get")),
    ),
)
