"""The control plane's own figures, in Prometheus form: one `ControlPlaneMetrics` per
cluster, exposed by the API server at `/metrics`.

    ApiServer middleware ──observe──► apiserver_request_duration_seconds / _total
    server_watch         ──observe──► apiserver_watch_events_total,
                                      miniorch_apiserver_watch_delivery_seconds
    WorkQueue            ──observe──► workqueue_adds_total, _queue_duration_seconds,
                                      _work_duration_seconds, _retries_total
                         ◄──collect── workqueue_depth (read from the live queues)
    Controller           ──observe──► controller_runtime_reconcile_time_seconds, _total
    scheduler, PodWorker ──observe──► miniorch_pod_start_phase_duration_seconds,
                                      kubelet_pod_start_duration_seconds
                                             │
    GET /metrics ◄── generate_latest(self.registry) (text format 0.0.4)

Names, labels and buckets are Kubernetes' own where Kubernetes has the figure
(kube-apiserver's request metrics, client-go's work-queue metrics, controller-runtime's
reconcile metrics, the kubelet's pod start duration); figures only miniorch has are
prefixed `miniorch_`.

Invariants:
- No module-level state: each `ControlPlaneMetrics` owns its `CollectorRegistry`
  (never prometheus_client's global one), so two clusters in one test process — or
  two tests — never see each other's counts. The process' one instance hangs off the
  `Registry` every actor already receives (`registry.metrics`).
- The hot paths pay one `observe()` on a pre-bound child (a dict lookup and a lock):
  queue depth is not updated per add but read from the queues when scraped.
- prometheus_client is imported when an instance is made, not with this module, so
  CLI commands that never build one do not pay for it.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sized
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

# kube-apiserver's buckets for apiserver_request_duration_seconds (k8s.io/apiserver
# pkg/endpoints/metrics).
REQUEST_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0,
                   4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0)
# client-go's workqueue buckets: ExponentialBuckets(10e-9, 10, 10).
QUEUE_BUCKETS = tuple(1e-8 * 10 ** i for i in range(10))
# controller-runtime's reconcile_time_seconds buckets (0.005 s .. 60 s).
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45,
                     0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0,
                     4.5, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0,
                     60.0)
# The kubelet's pod start buckets (pkg/kubelet/metrics), with finer steps below 0.5 s
# for the phases, which are much shorter than a whole start here.
POD_START_BUCKETS = (0.5, 1, 2, 3, 4, 5, 6, 8, 10, 20, 30, 45, 60, 120, 180, 240, 300, 360,
                     480, 600, 900, 1200, 1800, 2700, 3600)
PHASE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 6,
                 8, 10, 20, 30, 60, 120)
WATCH_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 0.5, 1.0, 2.5, 5.0)

POD_START_PHASES = ("scheduled", "sandbox", "running", "ready")
"""created → scheduled (the scheduler's bind), → sandbox (namespaces, network and cgroup
made), → running (every container started), → ready (the Ready condition True). Each is
the duration of that step alone, so the four add up to one pod's start."""

EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ControlPlaneMetrics:
    """Every family the control plane records, registered in a private registry."""

    def __init__(self) -> None:
        # The official client: exposition format, histogram arithmetic and thread
        # safety are its job (pyproject.toml says why it is a dependency).
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry: CollectorRegistry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        request_labels = ("verb", "dry_run", "group", "version", "resource", "subresource",
                          "scope", "component")
        self.request_duration = Histogram(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds for each verb, dry run value, group, "
            "version, resource, subresource, scope and component.",
            request_labels, buckets=REQUEST_BUCKETS, registry=reg)
        self.request_total = Counter(
            "apiserver_request",
            "Counter of apiserver requests broken out for each verb, dry run value, group, "
            "version, resource, scope, component, and HTTP response code.",
            (*request_labels, "code"), registry=reg)
        self.watch_events = Counter(
            "apiserver_watch_events", "Number of events sent in watch clients",
            ("group", "version", "kind"), registry=reg)
        self.watch_delivery = Histogram(
            "miniorch_apiserver_watch_delivery_seconds",
            "Seconds from an object's write in the store to its watch event written to an "
            "HTTP watcher (the watch fan-out delay).",
            ("resource",), buckets=WATCH_BUCKETS, registry=reg)
        self.queue_adds = Counter("workqueue_adds", "Total number of adds handled by workqueue",
                                  ("name",), registry=reg)
        self.queue_duration = Histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested.",
            ("name",), buckets=QUEUE_BUCKETS, registry=reg)
        self.work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
            ("name",), buckets=QUEUE_BUCKETS, registry=reg)
        self.queue_retries = Counter("workqueue_retries",
                                     "Total number of retries handled by workqueue",
                                     ("name",), registry=reg)
        self.reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            ("controller",), buckets=RECONCILE_BUCKETS, registry=reg)
        self.reconcile_total = Counter(
            "controller_runtime_reconcile", "Total number of reconciliations per controller",
            ("controller", "result"), registry=reg)
        self.pod_phase = Histogram(
            "miniorch_pod_start_phase_duration_seconds",
            "Seconds each step of a pod's start took: scheduled (created to bound), sandbox "
            "(bound to sandbox ready), running (to every container started), ready (to the "
            "Ready condition).", ("phase",), buckets=PHASE_BUCKETS, registry=reg)
        self.pod_start = Histogram(
            "kubelet_pod_start_duration_seconds",
            "Duration in seconds from kubelet seeing a pod for the first time to the pod "
            "starting to run", buckets=POD_START_BUCKETS, registry=reg)
        self._request_children: dict[tuple[str, ...], tuple[Any, Any]] = {}
        self._queues: weakref.WeakKeyDictionary[Sized, str] = weakref.WeakKeyDictionary()
        reg.register(_DepthCollector(self))

    def observe_request(self, labels: tuple[str, str, str, str, str, str, str], code: int,
                        seconds: float) -> None:
        """One API request: `labels` are (verb, dry_run, group, version, resource,
        subresource, scope), as kube-apiserver's RequestInfo resolves them."""
        key = (*labels, str(code))
        children = self._request_children.get(key)
        if children is None:
            # Bound once per label set: prometheus_client's labels() validates and
            # locks on every call, which the hot path need not repeat.
            children = (self.request_duration.labels(*labels, "apiserver"),
                        self.request_total.labels(*labels, "apiserver", str(code)))
            self._request_children[key] = children
        children[0].observe(seconds)
        children[1].inc()

    def track_queue(self, name: str, queue: Sized) -> None:
        """Report `len(queue)` as workqueue_depth{name} at every scrape (the queue is
        held weakly: a stopped controller's queue leaves the figures with it)."""
        self._queues[queue] = name

    def queue_depths(self) -> Iterator[tuple[str, int]]:
        for queue, name in list(self._queues.items()):
            yield name, len(queue)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes (what GET /metrics answers)."""
        from prometheus_client import generate_latest
        return generate_latest(self.registry)


class _DepthCollector:
    """workqueue_depth, read from the queues when scraped (no cost per add)."""

    def __init__(self, metrics: ControlPlaneMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Any]:
        return []  # unchecked: its one family's samples change as queues come and go

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily
        family = GaugeMetricFamily("workqueue_depth", "Current depth of workqueue",
                                   labels=["name"])
        depths: dict[str, int] = {}
        for name, depth in self._metrics.queue_depths():
            depths[name] = depths.get(name, 0) + depth
        for name, depth in sorted(depths.items()):
            family.add_metric([name], depth)
        yield family
