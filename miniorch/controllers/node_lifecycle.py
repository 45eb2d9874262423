"""Node lifecycle: notice dead nodes, stop routing to their pods, replace the pods.

Data flow (one periodic check, every `period` seconds, reading the registry):

    Node Ready condition lastHeartbeatTime ─┐ newest one = the node's last sign of life
    Lease kube-node-lease/<node> renewTime ─┘
        older than settings.node_grace_seconds:
            Node conditions → Unknown (NodeStatusUnknown, "Kubelet stopped posting
            node status."), event NodeNotReady
            taints node.kubernetes.io/unreachable NoSchedule + NoExecute (timeAdded)
            its pods → Ready=False (endpoints drop them; the proxy stops routing)
        unreachable for settings.pod_eviction_seconds (since the NoExecute taint):
            delete its pods with grace 0 (the kubelet that would finish a graceful
            deletion is gone), event TaintManagerEviction; the RC replaces them and
            the scheduler, seeing the taints, puts them elsewhere
        fresh again: remove the unreachable taints (the kubelet rewrites its status)

Invariants:
- Staleness is measured on the controller's own clock from when it last saw the
  heartbeat *change* (kube-controller-manager's probeTimestamp), not by comparing the
  kubelet's timestamps with ours: a cluster restarted after a long stop gives every
  node a full grace period to check in, instead of evicting everything at once.
- Time comes from the injected Clock, so tests move it by hand.
- Every write happens only when something changes; an idle cluster writes nothing.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

import anyio
import structlog
from anyio.abc import TaskStatus

from miniorch.api.errors import NotFound
from miniorch.api.kinds import LEASES, NODES, PODS
from miniorch.api.registry import Registry
from miniorch.controllers.pods import condition, set_condition
from miniorch.core.clock import Clock, parse_rfc3339, rfc3339
from miniorch.core.objects import Obj, name_of
from miniorch.core.settings import Settings

log = structlog.get_logger(__name__)

COMPONENT = "node-controller"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
LEASE_NAMESPACE = "kube-node-lease"
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."


def _time(text: object) -> datetime | None:
    if not text:
        return None
    try:
        return parse_rfc3339(str(text))
    except ValueError:
        return None


class NodeLifecycleController:
    def __init__(self, registry: Registry, settings: Settings, clock: Clock, *,
                 period: float = 1.0) -> None:
        self.registry = registry
        self.grace = settings.node_grace_seconds
        self.eviction = settings.pod_eviction_seconds
        self.clock = clock
        self.period = period
        # node name → (last heartbeat seen, our monotonic time when it changed)
        self._observed: dict[str, tuple[datetime | None, float]] = {}

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            try:
                self.check()
            except Exception:
                log.exception("node lifecycle check failed")
            await anyio.sleep(self.period)

    def last_heartbeat(self, node: Obj, lease: Obj | None) -> datetime | None:
        seen = [_time((condition(node, "Ready") or {}).get("lastHeartbeatTime")),
                _time((lease or {}).get("spec", {}).get("renewTime")),
                _time(node.get("metadata", {}).get("creationTimestamp"))]
        moments = [m for m in seen if m is not None]
        return max(moments) if moments else None

    def check(self) -> None:
        """One pass over every node (synchronous: atomic with respect to the loop)."""
        now = self.clock.now()
        nodes, _ = self.registry.list(NODES)
        leases = {name_of(lease): lease
                  for lease in self.registry.list(LEASES, LEASE_NAMESPACE)[0]}
        mono = self.clock.monotonic()
        names = {name_of(node) for node in nodes}
        for gone in set(self._observed) - names:
            del self._observed[gone]
        for node in nodes:
            name = name_of(node)
            heartbeat = self.last_heartbeat(node, leases.get(name))
            seen = self._observed.get(name)
            if seen is None or seen[0] != heartbeat:
                seen = self._observed[name] = (heartbeat, mono)
            if mono - seen[1] > self.grace:
                self._unreachable(node, now)
            else:
                self._reachable(node)

    def _unreachable(self, node: Obj, now: datetime) -> None:
        name = name_of(node)
        ready = condition(node, "Ready")
        if ready is None or ready.get("status") != "Unknown":
            log.warning("node stopped posting status", node=name)

            def unknown(obj: Obj) -> None:
                status = obj.setdefault("status", {})
                conditions = status.get("conditions") or [{"type": "Ready"}]
                for cond in conditions:
                    new = {**cond, "status": "Unknown", "reason": UNKNOWN_REASON,
                           "message": UNKNOWN_MESSAGE, "lastTransitionTime": rfc3339(now)}
                    set_condition(status, new)
            node = self.registry.mutate(NODES, "", name, unknown, subresource="status")
            self.registry.record_event(node, type="Normal", reason="NodeNotReady",
                                       message=f"Node {name} status is now: NodeNotReady",
                                       component=COMPONENT)
        taints: list[Obj] = (node.get("spec") or {}).get("taints") or []
        if not any(t.get("key") == UNREACHABLE_TAINT and t.get("effect") == "NoExecute"
                   for t in taints):
            def taint(obj: Obj) -> None:
                spec = obj.setdefault("spec", {})
                current = spec.get("taints") or []
                kept = [t for t in current if t.get("key") != UNREACHABLE_TAINT]
                spec["taints"] = [
                    *kept, {"key": UNREACHABLE_TAINT, "effect": "NoSchedule"},
                    {"key": UNREACHABLE_TAINT, "effect": "NoExecute",
                     "timeAdded": rfc3339(now)}]
            node = self.registry.mutate(NODES, "", name, taint)
            taints = node["spec"]["taints"]
        added = next((_time(t.get("timeAdded")) for t in taints
                      if t.get("key") == UNREACHABLE_TAINT and t.get("effect") == "NoExecute"),
                     None) or now
        pods, _ = self.registry.list(PODS, field_selector=f"spec.nodeName={name}")
        evict = (now - added).total_seconds() >= self.eviction
        for pod in pods:
            if evict:
                self._evict(pod)
            else:
                self._mark_not_ready(pod, now)

    def _mark_not_ready(self, pod: Obj, now: datetime) -> None:
        ready = condition(pod, "Ready")
        if ready is not None and ready.get("status") == "False":
            return
        meta = pod["metadata"]

        def not_ready(obj: Obj) -> None:
            status = obj.setdefault("status", {})
            set_condition(status, {"type": "Ready", "status": "False",
                                   "lastProbeTime": None, "lastTransitionTime": rfc3339(now)})
        with contextlib.suppress(NotFound):  # deleted meanwhile: nothing to mark
            self.registry.mutate(PODS, meta["namespace"], meta["name"], not_ready,
                                 subresource="status")

    def _evict(self, pod: Obj) -> None:
        meta = pod["metadata"]
        self.registry.record_event(pod, type="Normal", reason="TaintManagerEviction",
                                   message=f"Marking for deletion Pod "
                                           f"{meta['namespace']}/{meta['name']}",
                                   component="taint-eviction-controller")
        try:
            self.registry.delete(PODS, meta["namespace"], meta["name"], grace_period_seconds=0)
            log.info("evicted pod from unreachable node", pod=meta["name"],
                     node=pod["spec"].get("nodeName"))
        except NotFound:
            pass

    def _reachable(self, node: Obj) -> None:
        taints: list[Obj] = (node.get("spec") or {}).get("taints") or []
        if not any(t.get("key") == UNREACHABLE_TAINT for t in taints):
            return
        log.info("node is reachable again", node=name_of(node))

        def untaint(obj: Obj) -> None:
            kept = [t for t in obj["spec"].get("taints") or []
                    if t.get("key") != UNREACHABLE_TAINT]
            if kept:
                obj["spec"]["taints"] = kept
            else:
                obj["spec"].pop("taints", None)
        self.registry.mutate(NODES, "", name_of(node), untaint)
