"""`metrics.k8s.io/v1beta1`: NodeMetrics and PodMetrics, as metrics-server serves them.

    every `resolution` s:  ResourceMetrics.run ──scrape()──► each MetricsSource (a kubelet:
                             node/stats.py reads psutil for the node, cgroups per container)
                                 │ NodeScrape: cumulative CPU ns + working-set bytes, one
                                 ▼ timestamp per node
                           last two scrapes per node and per container (metrics-server's
                           storage)
    GET /apis/metrics.k8s.io/v1beta1/nodes[/<name>]                    ─┐ usage = the CPU
    GET /apis/metrics.k8s.io/v1beta1/[namespaces/<ns>/]pods[/<name>]   ─┤ counter's rate
        ?labelSelector (the Node's / Pod's labels) &fieldSelector        │ over the window
                                                                         ▼
                           {"kind": "NodeMetrics"|"PodMetrics", "timestamp": <last>,
                            "window": "<last - previous>", "usage"/"containers": …}

It is an aggregated API in Kubernetes (kube-aggregator proxies to metrics-server); here
the API server routes the group to this module itself and lists it in discovery, so
`kubectl top` finds it exactly as it finds metrics-server's.

Invariants (metrics-server's):
- A figure needs two readings: `usage.cpu` is (c₂ - c₁)/(t₂ - t₁) in nanocores and
  `window` is t₂ - t₁; memory is the last working set. Until a second scrape a node or
  container has no metrics (kubectl says "metrics not available yet").
- A pod is served only when every container it reported has a usable pair; a counter
  that went backwards (a restarted container's new cgroup) starts the pair again.
- Readings live in memory only and are replaced, never accumulated: memory is bounded by
  the number of running containers. A container or node absent from a scrape is dropped.
- Objects are made per request (`creationTimestamp` is the request's time, as there);
  labels are the live Node's / Pod's, so label selectors follow the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import anyio
import structlog
from anyio.abc import TaskStatus

from miniorch.api.errors import MethodNotAllowed, NotFound
from miniorch.api.kinds import NODES, PODS
from miniorch.api.registry import Registry
from miniorch.api.selectors import FieldSelector, LabelSelector
from miniorch.core.clock import Clock, rfc3339
from miniorch.core.objects import Obj
from miniorch.core.quantity import format_quantity

log = structlog.get_logger(__name__)

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
DEFAULT_RESOLUTION = 5.0
"""Seconds between scrapes, and so the window (metrics-server's --metric-resolution,
15 s by default there; shorter here because one machine is cheap to read and
`kubectl top` right after `up` should not wait long)."""


# ---- what a source reports -------------------------------------------------------------

@dataclass(frozen=True)
class ContainerSample:
    name: str
    cpu_ns: int
    """Cumulative CPU time of the container's processes (a counter)."""
    memory_bytes: int
    """Working set: usage minus inactive file cache."""


@dataclass(frozen=True)
class PodSample:
    namespace: str
    name: str
    uid: str
    containers: tuple[ContainerSample, ...]


@dataclass(frozen=True)
class NodeScrape:
    """One kubelet's /metrics/resource: the node and its running containers, read at
    one moment (`at`, seconds since the epoch)."""

    node: str
    at: float
    cpu_ns: int
    memory_bytes: int
    pods: tuple[PodSample, ...] = ()


class MetricsSource(Protocol):
    """What ResourceMetrics scrapes: a kubelet's resource readings."""

    async def scrape(self) -> NodeScrape: ...


# ---- storage ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Point:
    at: float
    cpu_ns: int
    memory_bytes: int


@dataclass(frozen=True)
class Usage:
    """A usable pair of readings: the rate over the window and the last working set."""

    timestamp: float
    window: float
    cpu_nanocores: int
    memory_bytes: int


def _usage(prev: _Point | None, last: _Point) -> Usage | None:
    if prev is None or last.at <= prev.at or last.cpu_ns < prev.cpu_ns:
        return None
    window = last.at - prev.at
    return Usage(timestamp=last.at, window=window,
                 cpu_nanocores=round((last.cpu_ns - prev.cpu_ns) / window),
                 memory_bytes=last.memory_bytes)


@dataclass(frozen=True)
class PodUsage:
    timestamp: float
    window: float
    containers: tuple[tuple[str, Usage], ...]


ContainerKey = tuple[str, str, str, str]
"""(namespace, pod, pod uid, container)."""


class ResourceMetrics:
    """metrics-server in one object: the scraper actor and its two-point storage."""

    def __init__(self, *, clock: Clock, resolution: float = DEFAULT_RESOLUTION) -> None:
        self.clock = clock
        self.resolution = resolution
        self._sources: list[MetricsSource] = []
        self._nodes: dict[str, tuple[_Point | None, _Point]] = {}
        self._containers: dict[ContainerKey, tuple[_Point | None, _Point]] = {}
        self._pods: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
        """(namespace, name) → (uid, its containers' names) of the last scrape."""

    def add_source(self, source: MetricsSource) -> None:
        self._sources.append(source)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Scrape every source now and then every `resolution` seconds, until cancelled."""
        task_status.started()
        while True:
            await self.scrape_once()
            await anyio.sleep(self.resolution)

    async def scrape_once(self) -> None:
        scrapes: list[NodeScrape] = []

        async def one(source: MetricsSource) -> None:
            try:
                scrapes.append(await source.scrape())
            except Exception:  # one node's failure must not hide the others
                log.exception("resource metrics scrape failed")
        async with anyio.create_task_group() as tg:
            for source in list(self._sources):
                tg.start_soon(one, source)
        self.store(scrapes)

    def store(self, scrapes: list[NodeScrape]) -> None:
        """Take one round of scrapes: each reading becomes the last, the last the
        previous; whatever no scrape reported any more is dropped."""
        nodes: dict[str, tuple[_Point | None, _Point]] = {}
        containers: dict[ContainerKey, tuple[_Point | None, _Point]] = {}
        pods: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
        for scrape in scrapes:
            point = _Point(scrape.at, scrape.cpu_ns, scrape.memory_bytes)
            nodes[scrape.node] = (_advance(self._nodes.get(scrape.node), point), point)
            for pod in scrape.pods:
                names = []
                for c in pod.containers:
                    key = (pod.namespace, pod.name, pod.uid, c.name)
                    point = _Point(scrape.at, c.cpu_ns, c.memory_bytes)
                    containers[key] = (_advance(self._containers.get(key), point), point)
                    names.append(c.name)
                pods[(pod.namespace, pod.name)] = (pod.uid, tuple(names))
        self._nodes, self._containers, self._pods = nodes, containers, pods

    def node_usage(self, name: str) -> Usage | None:
        pair = self._nodes.get(name)
        return None if pair is None else _usage(*pair)

    def pod_usage(self, namespace: str, name: str, uid: str | None = None) -> PodUsage | None:
        """`uid`: the pod's as the API has it (a namesake's readings are not its)."""
        known = self._pods.get((namespace, name))
        if known is None or not known[1] or (uid is not None and known[0] != uid):
            return None
        uid, names = known
        usages = []
        for container in names:
            pair = self._containers.get((namespace, name, uid, container))
            usage = None if pair is None else _usage(*pair)
            if usage is None:
                return None  # metrics-server drops a pod with any container incomplete
            usages.append((container, usage))
        first = usages[0][1]
        return PodUsage(timestamp=first.timestamp, window=first.window,
                        containers=tuple(sorted(usages)))


def _advance(pair: tuple[_Point | None, _Point] | None, point: _Point) -> _Point | None:
    """The previous reading for `point`: the last one, unless its counter went back
    (a restarted container, a new cgroup): then none, and the pair starts again."""
    if pair is None:
        return None
    last = pair[1]
    return last if point.cpu_ns >= last.cpu_ns and point.at > last.at else None


# ---- the API ---------------------------------------------------------------------------

def api_group() -> Obj:
    """The group's entry in /apis (an APIGroup)."""
    listed = {"groupVersion": GROUP_VERSION, "version": VERSION}
    return {"name": GROUP, "versions": [listed], "preferredVersion": listed}


def resource_list() -> Obj:
    """/apis/metrics.k8s.io/v1beta1: what metrics-server registers."""
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION,
            "resources": [
                {"name": "nodes", "singularName": "", "namespaced": False,
                 "kind": "NodeMetrics", "verbs": ["get", "list"]},
                {"name": "pods", "singularName": "", "namespaced": True,
                 "kind": "PodMetrics", "verbs": ["get", "list"]}]}


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String() at millisecond precision: 5.012s, 1m0.5s, 0s."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    minutes, rest = divmod(millis, 60_000)
    hours, minutes = divmod(minutes, 60)
    secs = f"{Decimal(rest).scaleb(-3).normalize():f}s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


def _cpu(nanocores: int) -> str:
    return format_quantity(Decimal(nanocores).scaleb(-9))


def _memory(value: int) -> str:
    return format_quantity(value, binary=True)


def _stamp(seconds: float) -> str:
    from datetime import UTC, datetime
    return rfc3339(datetime.fromtimestamp(seconds, UTC))


class MetricsApi:
    """The group's handlers over a `ResourceMetrics` and the registry's Nodes/Pods."""

    def __init__(self, metrics: ResourceMetrics, registry: Registry, clock: Clock) -> None:
        self.metrics = metrics
        self.registry = registry
        self.clock = clock

    def handle(self, method: str, rest: list[str], query: dict[str, str]) -> Obj:
        """`rest`: the path after /apis/metrics.k8s.io/v1beta1."""
        if not rest:
            if method != "GET":
                raise MethodNotAllowed("the server does not allow this method on the "
                                       "requested resource")
            return resource_list()
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] == "pods":
            namespace, rest = rest[1], rest[2:]
        if rest[0] not in ("nodes", "pods") or len(rest) > 2 or \
                (rest[0] == "nodes" and namespace is not None) or \
                (rest[0] == "pods" and len(rest) == 2 and namespace is None):
            raise NotFound("the server could not find the requested resource")
        if method != "GET":
            raise MethodNotAllowed("the server does not allow this method on the requested "
                                   "resource")
        labels = LabelSelector.parse(query.get("labelSelector"))
        fields = FieldSelector.parse(query.get("fieldSelector"))
        now = rfc3339(self.clock.now())
        if rest[0] == "nodes":
            if len(rest) == 2:
                node = self.registry.try_get(NODES, "", rest[1])
                found = None if node is None else self._node(node, now)
                if found is None:
                    raise NotFound.of("nodemetrics", rest[1], GROUP)
                return found
            nodes, _ = self.registry.list(NODES, label_selector=labels, shared=True)
            items = [m for n in nodes if (m := self._node(n, now)) is not None
                     and fields.matches_object(m)]
            return _list("NodeMetricsList", items)
        if len(rest) == 2:
            assert namespace is not None
            pod = self.registry.try_get(PODS, namespace, rest[1])
            found = None if pod is None else self._pod(pod, now)
            if found is None:
                raise NotFound.of("podmetrics", f"{namespace}/{rest[1]}", GROUP)
            return found
        pods, _ = self.registry.list(PODS, namespace or None, label_selector=labels,
                                     shared=True)
        items = [m for p in pods if (m := self._pod(p, now)) is not None
                 and fields.matches_object(m)]
        return _list("PodMetricsList", items)

    def _node(self, node: Obj, now: str) -> Obj | None:
        meta = node.get("metadata") or {}
        usage = self.metrics.node_usage(str(meta.get("name")))
        if usage is None:
            return None
        return {"kind": "NodeMetrics", "apiVersion": GROUP_VERSION,
                "metadata": {"name": meta.get("name"), "creationTimestamp": now,
                             "labels": dict(meta.get("labels") or {})},
                "timestamp": _stamp(usage.timestamp), "window": go_duration(usage.window),
                "usage": {"cpu": _cpu(usage.cpu_nanocores),
                          "memory": _memory(usage.memory_bytes)}}

    def _pod(self, pod: Obj, now: str) -> Obj | None:
        meta = pod.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        usage = self.metrics.pod_usage(namespace, name, str(meta.get("uid") or "") or None)
        if usage is None:
            return None
        return {"kind": "PodMetrics", "apiVersion": GROUP_VERSION,
                "metadata": {"name": name, "namespace": namespace, "creationTimestamp": now,
                             "labels": dict(meta.get("labels") or {})},
                "timestamp": _stamp(usage.timestamp), "window": go_duration(usage.window),
                "containers": [{"name": c, "usage": {"cpu": _cpu(u.cpu_nanocores),
                                                     "memory": _memory(u.memory_bytes)}}
                               for c, u in usage.containers]}


def _list(kind: str, items: list[Obj]) -> Obj:
    return {"kind": kind, "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}
