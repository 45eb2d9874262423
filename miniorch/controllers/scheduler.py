"""The scheduler: bind each pending pod to a node that fits it (kube-scheduler, small).

Data flow:

    node events ──► SchedulerCache.nodes ──┐  (and: unschedulable pods retry)
    pod events  ──► SchedulerCache.usage ──┤  bound pods' requests per node
                └─► pending pod keys ──► queue ──► reconcile(key): filter ─► score ─► bind
                                                        │ no fit
                                                        └─► PodScheduled=False, FailedScheduling

Filters, in kube-scheduler's plugin order (a node fails at its first failing filter):
NodeUnschedulable (`spec.unschedulable`), TaintToleration (NoSchedule / NoExecute
taints the pod does not tolerate; a node that is not Ready counts as tainted
`node.kubernetes.io/not-ready`), NodeAffinity (`spec.nodeSelector` and the required
node affinity, `matchFields` on `metadata.name` included), NodeResourcesFit
(pod count < allocatable pods; cpu and memory requests fit `status.allocatable`).
Scores: fewest pods of the same controller (ownerReference uid) first, so replicas
spread; then least requested (with kube-scheduler's non-zero defaults of 100m cpu and
200 MB for pods that request nothing); then the node name, for determinism.

Invariants:
- Decisions read only the in-memory cache, kept current by the watches and by
  *assuming* each binding the moment it is written: no re-list per pod, and the next
  pod of a burst sees the previous one's usage (scheduling a pod is O(nodes)).
- One worker: pods are scheduled one at a time, as kube-scheduler does, so two
  decisions never race for the same free capacity.
- Binding is one write through the registry (`Registry.bind`: nodeName and
  PodScheduled together) that refuses a pod already bound; pods with
  `spec.nodeName` set by their author are never touched (but count as usage).
- An unschedulable pod is retried whenever a node or a bound pod changes, and at
  least every `UNSCHEDULABLE_RETRY` seconds.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog

from miniorch.api.errors import Conflict, NotFound
from miniorch.api.kinds import NODES, PODS
from miniorch.api.registry import Registry
from miniorch.controllers.pods import TERMINAL_PHASES, condition, phase_of, set_condition
from miniorch.core.clock import Clock, SystemClock, rfc3339
from miniorch.core.objects import Obj, controller_ref, is_terminating, name_of
from miniorch.core.quantity import QuantityError, cpu_millis, to_int
from miniorch.machinery.controller import Controller, ObjectKey, Result, Source
from miniorch.machinery.informer import InformerEvent, SharedInformerFactory

log = structlog.get_logger(__name__)

SCHEDULER_NAME = "default-scheduler"
DEFAULT_MILLI_CPU_REQUEST = 100
"""kube-scheduler scores a pod that requests no cpu as if it asked for 100m..."""
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024
"""...and 200 MB of memory, so best-effort pods spread too."""
UNSCHEDULABLE_RETRY = 60.0
DEFAULT_MAX_PODS = 110


@dataclass(frozen=True)
class PodRequest:
    cpu: int = 0
    """millicores"""
    memory: int = 0
    """bytes"""

    @property
    def nonzero_cpu(self) -> int:
        return self.cpu or DEFAULT_MILLI_CPU_REQUEST

    @property
    def nonzero_memory(self) -> int:
        return self.memory or DEFAULT_MEMORY_REQUEST


def _quantity(value: Any, parse: Any) -> int:
    if value is None:
        return 0
    try:
        return int(parse(value))
    except (QuantityError, ValueError, TypeError):
        log.warning("ignoring unparsable quantity", value=value)
        return 0


def pod_request(pod: Obj) -> PodRequest:
    """Sum of the containers' requests (limits stand in for absent requests, as
    defaulting would fill them), or the largest init container's, if larger."""
    def one(container: Obj) -> tuple[int, int]:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        return (_quantity(requests.get("cpu", limits.get("cpu")), cpu_millis),
                _quantity(requests.get("memory", limits.get("memory")), to_int))
    spec = pod.get("spec") or {}
    cpu = memory = 0
    for container in spec.get("containers") or []:
        c, m = one(container)
        cpu, memory = cpu + c, memory + m
    for container in spec.get("initContainers") or []:
        c, m = one(container)
        cpu, memory = max(cpu, c), max(memory, m)
    return PodRequest(cpu, memory)


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for tol in tolerations:
        effect = tol.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = tol.get("key") or ""
        operator = tol.get("operator") or "Equal"
        if not key:
            if operator == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if operator == "Exists" or (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


@dataclass
class NodeInfo:
    """One node as the scheduler sees it: its object and what is bound to it."""

    node: Obj
    cpu: int | None
    """allocatable millicores (None: not reported, treated as unlimited)"""
    memory: int | None
    max_pods: int
    requested: PodRequest = PodRequest()
    nonzero_cpu: int = 0
    nonzero_memory: int = 0
    pods: int = 0
    owners: Counter[str] = field(default_factory=Counter)

    @property
    def name(self) -> str:
        return name_of(self.node)


@dataclass(frozen=True)
class _Usage:
    node: str
    request: PodRequest
    owner: str | None


class SchedulerCache:
    """Nodes and the resources their bound pods request, updated incrementally."""

    def __init__(self, *, default_max_pods: int = DEFAULT_MAX_PODS) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self._usage: dict[str, _Usage] = {}
        self._default_max_pods = default_max_pods

    def set_node(self, node: Obj) -> None:
        status = node.get("status") or {}
        alloc = status.get("allocatable") or status.get("capacity") or {}
        info = NodeInfo(
            node,
            cpu=_quantity(alloc["cpu"], cpu_millis) if "cpu" in alloc else None,
            memory=_quantity(alloc["memory"], to_int) if "memory" in alloc else None,
            max_pods=_quantity(alloc["pods"], to_int) if "pods" in alloc
            else self._default_max_pods)
        old = self.nodes.get(info.name)
        if old is not None:
            info.requested, info.pods, info.owners = old.requested, old.pods, old.owners
            info.nonzero_cpu, info.nonzero_memory = old.nonzero_cpu, old.nonzero_memory
        else:
            for usage in self._usage.values():
                if usage.node == info.name:
                    self._account(info, usage, +1)
        self.nodes[info.name] = info

    def remove_node(self, name: str) -> None:
        self.nodes.pop(name, None)

    def set_pod(self, pod: Obj) -> None:
        """Account a pod bound to a node (replacing what was known about it)."""
        key = str(ObjectKey.of(pod))
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or phase_of(pod) in TERMINAL_PHASES:
            self.remove_pod(key)
            return
        ref = controller_ref(pod)
        usage = _Usage(node, pod_request(pod), str(ref["uid"]) if ref else None)
        if self._usage.get(key) == usage:
            return
        self.remove_pod(key)
        self._usage[key] = usage
        if node in self.nodes:
            self._account(self.nodes[node], usage, +1)

    def remove_pod(self, key: str) -> bool:
        usage = self._usage.pop(key, None)
        if usage is None:
            return False
        if usage.node in self.nodes:
            self._account(self.nodes[usage.node], usage, -1)
        return True

    @staticmethod
    def _account(info: NodeInfo, usage: _Usage, sign: int) -> None:
        req = usage.request
        info.requested = PodRequest(info.requested.cpu + sign * req.cpu,
                                    info.requested.memory + sign * req.memory)
        info.nonzero_cpu += sign * req.nonzero_cpu
        info.nonzero_memory += sign * req.nonzero_memory
        info.pods += sign
        if usage.owner:
            info.owners[usage.owner] += sign
            if info.owners[usage.owner] <= 0:
                del info.owners[usage.owner]


def _is_ready(node: Obj) -> bool:
    cond = condition(node, "Ready")
    return cond is not None and cond.get("status") == "True"


def _taint_text(taint: Obj) -> str:
    return f"{{{taint.get('key', '')}: {taint.get('value', '')}}}"


def _node_requirement(expr: Obj, value: str | None) -> bool:
    op = expr.get("operator")
    values = [str(v) for v in expr.get("values") or []]
    if op == "In":
        return value in values
    if op == "NotIn":
        return value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def matches_node_selection(pod: Obj, node: Obj) -> bool:
    """NodeAffinity's filter: `spec.nodeSelector` and the required node affinity
    (terms ORed; within a term, `matchExpressions` over labels and `matchFields` over
    `metadata.name` ANDed). DaemonSet pods reach their node this way."""
    spec = pod.get("spec") or {}
    meta = node.get("metadata") or {}
    labels: dict[str, str] = meta.get("labels") or {}
    selector: dict[str, str] = spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution")
    if not isinstance(affinity, dict):
        return True
    terms = [t for t in affinity.get("nodeSelectorTerms") or [] if isinstance(t, dict)]
    fields = {"metadata.name": str(meta.get("name", ""))}
    for term in terms:
        exprs = term.get("matchExpressions") or []
        by_field = term.get("matchFields") or []
        if not exprs and not by_field:
            continue  # an empty term matches nothing
        if all(_node_requirement(e, labels.get(str(e.get("key")))) for e in exprs) and \
                all(_node_requirement(f, fields.get(str(f.get("key")))) for f in by_field):
            return True
    return False


def filter_node(info: NodeInfo, pod: Obj, request: PodRequest) -> list[str]:
    """Why `pod` cannot go to this node (kube-scheduler's reason strings); [] if it fits."""
    spec = pod.get("spec") or {}
    tolerations: list[Obj] = spec.get("tolerations") or []
    node_spec = info.node.get("spec") or {}
    if node_spec.get("unschedulable") and not tolerates(tolerations, {
            "key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}):
        return ["node(s) were unschedulable"]
    taints: list[Obj] = list(node_spec.get("taints") or [])
    if not _is_ready(info.node) and not any(
            t.get("key") in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
            for t in taints):
        taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
    for taint in taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and \
                not tolerates(tolerations, taint):
            return [f"node(s) had untolerated taint {_taint_text(taint)}"]
    if not matches_node_selection(pod, info.node):
        return ["node(s) didn't match Pod's node affinity/selector"]
    reasons = []
    if info.pods + 1 > info.max_pods:
        reasons.append("Too many pods")
    if request.cpu and info.cpu is not None and request.cpu > info.cpu - info.requested.cpu:
        reasons.append("Insufficient cpu")
    if request.memory and info.memory is not None and \
            request.memory > info.memory - info.requested.memory:
        reasons.append("Insufficient memory")
    return reasons


def score_key(info: NodeInfo, request: PodRequest, owner: str | None) -> tuple[Any, ...]:
    """Smaller is better: fewest siblings, then least requested, then the name."""
    siblings = info.owners.get(owner, 0) if owner else 0
    fractions = []
    for used, want, total in ((info.nonzero_cpu, request.nonzero_cpu, info.cpu),
                              (info.nonzero_memory, request.nonzero_memory, info.memory)):
        fractions.append(Decimal(used + want) / Decimal(total) if total else Decimal(0))
    return (siblings, sum(fractions) / 2, info.name)


def unschedulable_message(total: int, reasons: Counter[str]) -> str:
    if total == 0:
        return "no nodes available to schedule pods"
    parts = sorted(f"{count} {reason}" for reason, count in reasons.items())
    return f"0/{total} nodes are available: {', '.join(parts)}."


class Scheduler:
    """The reconciler; `scheduler(registry)` wraps it in its controller actor."""

    def __init__(self, registry: Registry, *, clock: Clock | None = None,
                 default_max_pods: int = DEFAULT_MAX_PODS) -> None:
        self.registry = registry
        self.clock = clock or SystemClock()
        self.cache = SchedulerCache(default_max_pods=default_max_pods)
        self.unschedulable: set[ObjectKey] = set()
        self._pending_since: dict[str, float] = {}
        """Pod uid → perf_counter() when the scheduler first saw it pending: the
        `scheduled` step of miniorch_pod_start_phase_duration_seconds ends at its bind."""
        self._scheduled = registry.metrics.pod_phase.labels("scheduled")

    def sources(self) -> list[Source[ObjectKey]]:
        return [Source(NODES, self.map_node), Source(PODS, self.map_pod)]

    def _retry_unschedulable(self) -> list[ObjectKey]:
        return list(self.unschedulable)

    def map_node(self, event: InformerEvent) -> list[ObjectKey]:
        if event.type == "DELETED":
            self.cache.remove_node(name_of(event.object))
            return []
        self.cache.set_node(event.object)
        return self._retry_unschedulable()

    def map_pod(self, event: InformerEvent) -> list[ObjectKey]:
        pod = event.object
        key = ObjectKey.of(pod)
        if event.type == "DELETED":
            self.unschedulable.discard(key)
            self._pending_since.pop(str(pod["metadata"].get("uid")), None)
            freed = self.cache.remove_pod(str(key))
            return self._retry_unschedulable() if freed else []
        if (pod.get("spec") or {}).get("nodeName"):
            self._pending_since.pop(str(pod["metadata"].get("uid")), None)
            self.unschedulable.discard(key)
            self.cache.set_pod(pod)
            if phase_of(pod) in TERMINAL_PHASES:
                return self._retry_unschedulable()  # finished pods free their requests
            return []
        if key in self.unschedulable and event.old is not None and \
                event.old.get("spec") == pod.get("spec"):
            return []  # our own status write (or a label change): nothing new to try
        if not self._wants(pod):
            return []
        self._pending_since.setdefault(str(pod["metadata"].get("uid")), time.perf_counter())
        return [key]

    @staticmethod
    def _wants(pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        return (not spec.get("nodeName") and not is_terminating(pod)
                and phase_of(pod) not in TERMINAL_PHASES
                and (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME)

    async def reconcile(self, key: ObjectKey) -> Result:
        pod = self.registry.try_get(PODS, key.namespace, key.name)
        if pod is None or not self._wants(pod):
            self.unschedulable.discard(key)
            return Result()
        best, message = self.pick(pod)
        if best is None:
            self._unschedulable(pod, key, message)
            return Result(requeue_after=UNSCHEDULABLE_RETRY)
        self.unschedulable.discard(key)
        self._bind(pod, best)
        return Result()

    def pick(self, pod: Obj) -> tuple[str | None, str]:
        """The best node for `pod` from the cache, or None and kube-scheduler's
        message saying why none fits. Pure: O(nodes), no API calls."""
        request = pod_request(pod)
        ref = controller_ref(pod)
        owner = str(ref["uid"]) if ref else None
        reasons: Counter[str] = Counter()
        best: NodeInfo | None = None
        best_score: tuple[Any, ...] | None = None
        for info in self.cache.nodes.values():
            failed = filter_node(info, pod, request)
            if failed:
                reasons.update(failed)
                continue
            score = score_key(info, request, owner)
            if best_score is None or score < best_score:
                best, best_score = info, score
        if best is None:
            return None, unschedulable_message(len(self.cache.nodes), reasons)
        return best.name, ""

    def _bind(self, pod: Obj, node: str) -> None:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        try:
            # One write: nodeName and PodScheduled together (pods/binding).
            bound = self.registry.bind(ns, name, node, uid=str(pod["metadata"].get("uid")))
        except (NotFound, Conflict):
            return  # gone, or bound meanwhile by someone else: theirs stands
        since = self._pending_since.pop(str(pod["metadata"].get("uid")), None)
        if since is not None:
            self._scheduled.observe(time.perf_counter() - since)
        # Assume the binding now, before the watch reports it: the next pod sees it.
        self.cache.set_pod(bound)
        self.registry.record_event(bound, type="Normal", reason="Scheduled",
                                   message=f"Successfully assigned {ns}/{name} to {node}",
                                   component=SCHEDULER_NAME)
        log.debug("bound pod", pod=f"{ns}/{name}", node=node)

    def _unschedulable(self, pod: Obj, key: ObjectKey, message: str) -> None:
        self.unschedulable.add(key)
        now = rfc3339(self.clock.now())
        status: Obj = dict(pod.get("status") or {})
        status["conditions"] = [dict(c) for c in status.get("conditions") or []]
        status.setdefault("phase", "Pending")
        changed = set_condition(status, {"type": "PodScheduled", "status": "False",
                                         "lastProbeTime": None, "lastTransitionTime": now,
                                         "reason": "Unschedulable", "message": message})
        if changed:
            try:
                pod = self.registry.update_status(PODS, key.namespace, key.name, status)
            except NotFound:
                return
        self.registry.record_event(pod, type="Warning", reason="FailedScheduling",
                                   message=message, component=SCHEDULER_NAME)
        log.info("pod unschedulable", pod=str(key), message=message)


def scheduler(registry: Registry, *, clock: Clock | None = None,
              default_max_pods: int = DEFAULT_MAX_PODS,
              informers: SharedInformerFactory | None = None) -> Controller[ObjectKey]:
    """The scheduler actor: `await tg.start(scheduler(registry).run)`."""
    reconciler = Scheduler(registry, clock=clock, default_max_pods=default_max_pods)
    return Controller(name=SCHEDULER_NAME, registry=registry, reconciler=reconciler,
                      sources=reconciler.sources(), workers=1, informers=informers)
