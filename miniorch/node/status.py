"""Pod status from the pod worker's view of its containers (pure functions).

    PodWorker (ContainerView per container, sandbox ready?, IPs) ──► pod_status() ──► Obj
                                                 previous status ──┘  (keeps transition times)

Rules are the kubelet's: phase from `getPhase`, conditions in kubelet order with a
`lastTransitionTime` that only moves when the condition's status does, QoS class from
requests and limits.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from miniorch.core.objects import Obj

CONDITION_ORDER = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                   "PodScheduled")


@dataclass
class ContainerView:
    """What the kubelet knows about one container (mutated by its supervisor only)."""

    name: str
    image: str
    image_id: str = ""
    container_id: str = ""
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    restart_count: int = 0

    def to_status(self) -> Obj:
        status: Obj = {
            "name": self.name,
            "state": copy.deepcopy(self.state),
            "lastState": copy.deepcopy(self.last_state),
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": self.image,
            "imageID": self.image_id,
            "started": self.started,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def phase(pod: Obj, views: list[ContainerView]) -> str:
    """kubelet's getPhase for a pod without init containers."""
    policy = pod.get("spec", {}).get("restartPolicy") or "Always"
    running = waiting = stopped = succeeded = 0
    for view in views:
        if "running" in view.state:
            running += 1
        elif "terminated" in view.state:
            stopped += 1
            if view.state["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif "terminated" in view.last_state:
            stopped += 1  # waiting to restart after having run: not Pending any more
        else:
            waiting += 1
    if waiting > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped > 0:
        if policy == "Always":
            return "Running"
        if policy == "OnFailure":
            return "Succeeded" if stopped == succeeded else "Running"
        return "Succeeded" if stopped == succeeded else "Failed"
    return "Pending"


def qos_class(pod: Obj) -> str:
    containers = pod.get("spec", {}).get("containers") or []
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = {**limits, **(resources.get("requests") or {})}
        if limits or requests:
            any_set = True
        for res in ("cpu", "memory"):
            if res not in limits or str(requests.get(res)) != str(limits[res]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed and containers else "Burstable"


def _condition(ctype: str, ok: bool, *, previous: dict[str, Obj], now: str,
               reason: str = "", message: str = "") -> Obj:
    status = "True" if ok else "False"
    before = previous.get(ctype)
    since = before.get("lastTransitionTime") if before and before.get("status") == status \
        else None
    cond: Obj = {"type": ctype, "status": status, "lastProbeTime": None,
                 "lastTransitionTime": since or now}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def pod_status(*, pod: Obj, views: list[ContainerView], sandbox_ready: bool, host_ip: str,
               pod_ip: str, start_time: str, now: str) -> Obj:
    """The whole status the kubelet owns (it replaces the previous one)."""
    old: Obj = pod.get("status") or {}
    previous = {c.get("type"): c for c in old.get("conditions") or [] if c.get("type")}
    pod_phase = phase(pod, views)
    unready = [v.name for v in views if not v.ready]
    if pod_phase in ("Succeeded", "Failed"):
        not_ready_reason = "PodCompleted"
        message = ""
    else:
        not_ready_reason = "ContainersNotReady"
        message = f"containers with unready status: [{' '.join(unready)}]"
    ready = not unready
    conditions = [
        _condition("PodReadyToStartContainers", sandbox_ready, previous=previous, now=now),
        _condition("Initialized", True, previous=previous, now=now),
        _condition("Ready", ready, previous=previous, now=now,
                   reason="" if ready else not_ready_reason, message="" if ready else message),
        _condition("ContainersReady", ready, previous=previous, now=now,
                   reason="" if ready else not_ready_reason, message="" if ready else message),
    ]
    scheduled = previous.get("PodScheduled")
    conditions.append(scheduled if scheduled else
                      _condition("PodScheduled", True, previous=previous, now=now))
    status: Obj = {
        "phase": pod_phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "qosClass": qos_class(pod),
        "containerStatuses": [v.to_status() for v in views],
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status

