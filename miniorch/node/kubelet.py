"""The node actor: registers its Node, heartbeats, and runs the pods bound to it.

    Kubelet.run
      ├─ register Node (create or update) + Lease; events Starting, NodeReady
      │    └─ task_status.started()
      ├─ _heartbeat: every node_heartbeat_seconds renew the Lease and the Ready condition
      └─ _follow_pods: a handler on the shared pods informer (one watch for every
         node and controller), keeping pods with spec.nodeName=<me>
           └─ _dispatch(pod) ──► PodWorker[uid].mailbox  (a new worker per new UID)

Invariants:
- One worker per pod UID, in this actor's task group; a worker that finished (its pod
  deleted) is remembered until the store's DELETED event, so late MODIFIED events of a
  pod being removed cannot start it again.
- The nodeName filter is the handler's (the informer is shared and unfiltered); a pod
  that vanished during a watch outage arrives as DELETED from the informer's re-list.
  Pod objects are the informer's read-only copies, shared with the other consumers.
- Pod IPs of pods already bound here are reserved (from status.podIP) before any worker
  starts, so a restarted cluster gives every pod its old address back.
- Cancelling `run` stops every pod in parallel (each worker's own shielded teardown) but
  deletes nothing from the store.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Protocol

import anyio
import structlog
from anyio.abc import TaskGroup, TaskStatus

from miniorch.api.errors import ApiError, NotFound
from miniorch.api.kinds import LEASES, NODES, PODS
from miniorch.api.metrics_api import NodeScrape
from miniorch.api.registry import Registry
from miniorch.api.satokens import ServiceAccountTokens
from miniorch.core.clock import Clock, rfc3339, rfc3339_micro
from miniorch.core.dialer import Dialer
from miniorch.core.objects import NodeName, Obj, ObjectUid, uid_of
from miniorch.core.settings import Settings
from miniorch.machinery.informer import InformerEvent, SharedInformerFactory, Subscription
from miniorch.node import nodeinfo, stats
from miniorch.node.config import KubeletConfig
from miniorch.node.cri import ContainerRuntime
from miniorch.node.events import EventSink
from miniorch.node.ipam import IpAllocator, node_pod_cidr
from miniorch.node.mailbox import Mailbox
from miniorch.node.podworker import NodeContext, PodWorker

LEASE_NAMESPACE = "kube-node-lease"


class Worker(Protocol):
    """What the kubelet needs of a pod worker (PodWorker, hollow.HollowPodWorker)."""

    uid: ObjectUid
    mailbox: Mailbox
    log: Any

    async def run(self) -> None: ...

LEASE_DURATION_SECONDS = 40

# (type, reason when False, message when False); Ready is handled apart.
_PRESSURE_CONDITIONS = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)


def node_host_ip(index: int) -> str:
    """127.0.1.<index>: a loopback address, so NodePorts on it answer the host."""
    return f"127.0.1.{index}"


class Kubelet:
    def __init__(self, *, name: NodeName, index: int, registry: Registry, settings: Settings,
                 clock: Clock, runtime: ContainerRuntime,
                 config: KubeletConfig | None = None, dialer: Dialer | None = None,
                 informers: SharedInformerFactory | None = None) -> None:
        """`dialer`: how probes reach pod IPs (None: plain TCP; rootless mode).
        `informers`: the cluster's shared factory; None: a private one, run by `run`."""
        self.name = name
        self.index = index
        self.registry = registry
        self.settings = settings
        self.clock = clock
        self.runtime = runtime
        self.config = config or KubeletConfig()
        self.host_ip = node_host_ip(index)
        self.pod_cidr = node_pod_cidr(settings.network.pod_cidr, index)
        cluster = ipaddress.IPv4Network(settings.network.pod_cidr)
        self.events = EventSink(registry, host=name)
        self.context = NodeContext(
            name=name, host_ip=self.host_ip, registry=registry, settings=settings,
            clock=clock, runtime=runtime, config=self.config,
            ipam=IpAllocator(self.pod_cidr), events=self.events,
            start_slots=anyio.CapacityLimiter(self.config.parallel_pod_starts),
            gateway=str(cluster.network_address + 1), prefix_len=cluster.prefixlen,
            dialer=dialer, tokens=ServiceAccountTokens.load(settings.tls_dir))
        self.informers = informers or SharedInformerFactory(registry)
        self._own_informers = informers is None
        self.workers: dict[ObjectUid, Worker] = {}
        self._finished: set[ObjectUid] = set()
        self.log = structlog.get_logger(__name__).bind(node=name)
        self._machine: dict[str, Any] = {}

    # ---- actor -------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self._machine = self._machine_facts()
        node = self._register()
        self._renew_lease(node)
        self._event(node, "Normal", "Starting", "Starting kubelet.")
        for _ctype, reason, _msg in _PRESSURE_CONDITIONS:
            self._event(node, "Normal", reason.replace("Kubelet", "Node"),
                        f"Node {self.name} status is now: {reason.replace('Kubelet', 'Node')}")
        self._event(node, "Normal", "NodeReady", f"Node {self.name} status is now: NodeReady")
        self.log.info("node registered", pod_cidr=str(self.pod_cidr), host_ip=self.host_ip)
        async with anyio.create_task_group() as tg:
            if self._own_informers:
                await tg.start(self.informers.run)
            await tg.start(self.events.run)
            tg.start_soon(self._heartbeat)
            # Unregistered before the task group ends, so no worker starts after it.
            with self._follow_pods(tg):
                task_status.started()
                await anyio.sleep_forever()

    # ---- resource readings (metrics.k8s.io) ----------------------------------------

    async def scrape(self) -> NodeScrape:
        """This node's /metrics/resource: the machine's figures and each running
        container's (node/stats.py); ResourceMetrics calls it every resolution."""
        # Only real pod workers run containers to read (a hollow node's run none).
        targets: list[stats.PodTargets] = [
            (w.namespace, w.name, str(w.uid), tuple(w.running.items()))
            for w in list(self.workers.values()) if isinstance(w, PodWorker) and w.running]
        return await stats.scrape_node(self.name, self.clock.now().timestamp(), targets)

    # ---- node object ---------------------------------------------------------------

    def _machine_facts(self) -> dict[str, Any]:
        """capacity and nodeInfo, read once (a hollow node reports made-up ones)."""
        return {
            "capacity": nodeinfo.capacity(max_pods=self.settings.max_pods_per_node,
                                          storage_path=self.settings.home),
            "nodeInfo": nodeinfo.node_info(runtime_version=self.runtime.version),
        }

    def _labels(self) -> dict[str, str]:
        return {"beta.kubernetes.io/arch": nodeinfo.architecture(),
                "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": nodeinfo.architecture(),
                "kubernetes.io/hostname": self.name,
                "kubernetes.io/os": "linux"}

    def _conditions(self, previous: list[Obj]) -> list[Obj]:
        now = rfc3339(self.clock.now())
        before = {c.get("type"): c for c in previous}

        def cond(ctype: str, status: str, reason: str, message: str) -> Obj:
            old = before.get(ctype)
            since = old.get("lastTransitionTime") if old and old.get("status") == status \
                else None
            return {"type": ctype, "status": status, "lastHeartbeatTime": now,
                    "lastTransitionTime": since or now, "reason": reason, "message": message}
        conditions = [cond(ctype, "False", reason, message)
                      for ctype, reason, message in _PRESSURE_CONDITIONS]
        conditions.append(cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"))
        return conditions

    def _node_status(self, previous: Obj) -> Obj:
        capacity = self._machine["capacity"]
        return {
            **previous,
            "capacity": dict(capacity),
            "allocatable": dict(capacity),
            "conditions": self._conditions(previous.get("conditions") or []),
            "addresses": [{"type": "InternalIP", "address": self.host_ip},
                          {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.config.kubelet_port}},
            "nodeInfo": dict(self._machine["nodeInfo"]),
        }

    def _taints(self) -> list[Obj]:
        """Taints the node registers with (kubelet's --register-with-taints)."""
        return []

    def _register(self) -> Obj:
        labels = self._labels()
        cidr = str(self.pod_cidr)
        existing = self.registry.try_get(NODES, "", self.name)
        taints = self._taints()
        if existing is None:
            spec: Obj = {"podCIDR": cidr, "podCIDRs": [cidr]}
            if taints:
                spec["taints"] = taints
            return self.registry.create(NODES, {
                "metadata": {"name": self.name, "labels": labels,
                             "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
                "spec": spec,
                "status": self._node_status({}),
            })

        def update(node: Obj) -> None:
            node["metadata"].setdefault("labels", {}).update(labels)
            spec = node.setdefault("spec", {})
            spec["podCIDR"] = cidr
            spec["podCIDRs"] = [cidr]
            have = spec.setdefault("taints", [])
            have.extend(t for t in taints if t not in have)
            if not have:
                del spec["taints"]
            # Kubernetes keeps cordons across kubelet restarts: spec.unschedulable stays.
        self.registry.mutate(NODES, "", self.name, update)
        return self._post_node_status()

    def _post_node_status(self) -> Obj:
        def put(node: Obj) -> None:
            node["status"] = self._node_status(node.get("status") or {})
        return self.registry.mutate(NODES, "", self.name, put, subresource="status")

    def _renew_lease(self, node: Obj) -> None:
        now = rfc3339_micro(self.clock.now())

        def renew(lease: Obj) -> None:
            spec = lease.setdefault("spec", {})
            spec["holderIdentity"] = self.name
            spec["leaseDurationSeconds"] = LEASE_DURATION_SECONDS
            spec["renewTime"] = now
        try:
            self.registry.mutate(LEASES, LEASE_NAMESPACE, self.name, renew)
        except NotFound:
            self.registry.create(LEASES, {
                "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE,
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                                  "name": self.name,
                                                  "uid": node["metadata"]["uid"]}]},
                "spec": {"holderIdentity": self.name,
                         "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                         "acquireTime": now, "renewTime": now},
            })

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(self.settings.node_heartbeat_seconds)
            try:
                try:
                    node = self._post_node_status()
                except NotFound:
                    node = self._register()  # someone deleted our Node: register again
                self._renew_lease(node)
            except ApiError as exc:
                self.log.warning("heartbeat failed", error=str(exc))

    def _event(self, involved: Obj, type: str, reason: str, message: str) -> None:
        self.events.record(involved, type=type, reason=reason, message=message)

    # ---- pods ------------------------------------------------------------------------

    def _follow_pods(self, workers: TaskGroup) -> Subscription:
        """Reserve the IPs of pods already bound here, then hand every event of our
        pods to their workers, starting with the cache's (as ADDED): both synchronous,
        so no event falls in between and no worker starts before the reservations."""
        informer = self.informers.informer(PODS)
        for pod in informer.list():
            ip = (pod.get("status") or {}).get("podIP")
            if ip and self._is_mine(pod):
                self.context.ipam.reserve(uid_of(pod), str(ip))

        def on_pod(event: InformerEvent) -> None:
            # The field selector spec.nodeName=<me>, applied here: the watch is shared.
            if self._is_mine(event.object):
                self._dispatch(workers, event.object, removed=event.type == "DELETED")
        return informer.add_handler(on_pod)

    def _is_mine(self, pod: Obj) -> bool:
        return bool((pod.get("spec") or {}).get("nodeName") == self.name)

    def _dispatch(self, workers: TaskGroup, pod: Obj, *, removed: bool) -> None:
        uid = uid_of(pod)
        worker = self.workers.get(uid)
        if worker is not None:
            worker.mailbox.put(pod, removed=removed)
            return
        if uid in self._finished:
            if removed:
                self._finished.discard(uid)
            return
        if removed:
            return
        worker = self._new_worker(pod)
        self.workers[uid] = worker
        workers.start_soon(self._run_worker, worker, name=f"pod-worker {uid}")

    def _new_worker(self, pod: Obj) -> Worker:
        """The worker that runs one pod (a hollow node's only pretends to)."""
        return PodWorker(self.context, pod)

    async def _run_worker(self, worker: Worker) -> None:
        try:
            await worker.run()
            if not worker.mailbox.latest.removed:
                self._finished.add(worker.uid)  # until its DELETED event arrives
        except Exception:
            # A bug in one pod's handling must not take the node down; the next event
            # for this pod starts a fresh worker (level-triggered retry).
            worker.log.exception("pod worker failed")
        finally:
            self.workers.pop(worker.uid, None)
