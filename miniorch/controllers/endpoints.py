"""The Endpoints controller: one Endpoints object per Service with a selector.

Data flow:

    Service events ───────────► key of the Service
    Endpoints events ─────────► key of the Service of the same name (repair edits)
    pod events ──► every Service whose selector matches the pod now *or* matched it
                   before (the informer's old copy), so a relabelled pod leaves
                         │
                         ▼
    reconcile(key): read the Service and its pods; build subsets
        addresses          Ready pods: ip, nodeName, targetRef
        notReadyAddresses  running pods with an IP that are not Ready
        ports              per Service port: targetPort resolved against the pod
                           (a number, or a named container port), name and protocol
    and write the Endpoints only if they differ.

Invariants:
- Services without a selector (the `kubernetes` Service, or a user's hand-made
  Endpoints) are never touched: their Endpoints belong to someone else.
- Pods without an IP, terminating pods and finished pods are not endpoints: a deleted
  pod leaves `addresses` at once (its deletionTimestamp), and the kubelet holds its
  SIGTERM until it has (node/podworker.py `_leave_endpoints`), so no proxy sends a new
  connection to an app that is shutting down. A running pod that is not Ready (an app
  restarting after a crash, a failing readiness probe) is in `notReadyAddresses`, which
  tells the Service proxy an endpoint is expected back (it makes clients wait).
  `publishNotReadyAddresses` lists every pod with an IP under `addresses`.
- Pods are grouped into subsets by their resolved port set (k8s' RepackSubsets), and
  addresses are sorted, so the same state always yields the same object and an idle
  cluster writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog

from miniorch.api.errors import AlreadyExists, NotFound
from miniorch.api.kinds import ENDPOINTS, PODS, SERVICES
from miniorch.api.registry import Registry
from miniorch.api.selectors import LabelSelector
from miniorch.controllers.pods import TERMINAL_PHASES, is_ready, phase_of
from miniorch.core.objects import Obj, is_terminating, labels_of
from miniorch.machinery.controller import Controller, ObjectKey, Result, Source
from miniorch.machinery.informer import InformerEvent, SharedInformerFactory

log = structlog.get_logger(__name__)

PortTuple = tuple[tuple[str, int, str], ...]
"""A pod's resolved ports: (name, port, protocol) per Service port, in Service order."""


def resolve_port(service_port: Obj, pod: Obj) -> int | None:
    """The pod's port for a Service port: `targetPort` as a number, or the named
    container port, defaulting to `port` (kube-proxy's FindPort)."""
    target: Any = service_port.get("targetPort")
    if target is None or target == "" or target == 0:
        target = service_port.get("port")
    if isinstance(target, int):
        return target
    text = str(target)
    if text.isdigit():
        return int(text)
    protocol = service_port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == text and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def build_subsets(service: Obj, pods: Iterable[Obj]) -> list[Obj]:
    spec = service.get("spec") or {}
    service_ports: list[Obj] = spec.get("ports") or []
    # Kubernetes' publishNotReadyAddresses (StatefulSet peer discovery): every pod with
    # an IP is an address, Ready or not; terminating ones too, as k8s keeps them.
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[PortTuple, dict[str, list[Obj]]] = {}
    for pod in pods:
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if not ip or phase_of(pod) in TERMINAL_PHASES or (
                is_terminating(pod) and not publish_not_ready):
            continue
        ports: list[tuple[str, int, str]] = []
        for sp in service_ports:
            number = resolve_port(sp, pod)
            if number is None:
                continue  # a named port this pod does not have: not an endpoint for it
            ports.append((str(sp.get("name") or ""), number, str(sp.get("protocol") or "TCP")))
        if service_ports and not ports:
            continue
        meta = pod["metadata"]
        address: Obj = {"ip": ip}
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            address["nodeName"] = node
        address["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace", ""),
                                "name": meta["name"], "uid": meta.get("uid", "")}
        group = groups.setdefault(tuple(ports), {"addresses": [], "notReadyAddresses": []})
        ready = is_ready(pod) or publish_not_ready
        group["addresses" if ready else "notReadyAddresses"].append(address)
    subsets: list[Obj] = []
    for ports_key in sorted(groups):
        group = groups[ports_key]
        subset: Obj = {}
        for field in ("addresses", "notReadyAddresses"):
            if group[field]:
                subset[field] = sorted(group[field], key=lambda a: (a["ip"],
                                                                     a["targetRef"]["name"]))
        if ports_key:
            subset["ports"] = [{"name": name, "port": port, "protocol": protocol}
                               if name else {"port": port, "protocol": protocol}
                               for name, port, protocol in ports_key]
        subsets.append(subset)
    return subsets


class EndpointsReconciler:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def sources(self) -> list[Source[ObjectKey]]:
        return [Source(SERVICES, self.map_service), Source(ENDPOINTS, self.map_service),
                Source(PODS, self.map_pod)]

    @staticmethod
    def map_service(event: InformerEvent) -> list[ObjectKey]:
        return [ObjectKey.of(event.object)]

    def map_pod(self, event: InformerEvent) -> list[ObjectKey]:
        pod = event.object
        namespace = pod["metadata"].get("namespace", "")
        services, _ = self.registry.list(SERVICES, namespace)
        keys = []
        for svc in services:
            selector = (svc.get("spec") or {}).get("selector") or {}
            if not selector:
                continue
            match = LabelSelector.from_match_labels(selector)
            if match.matches_object(pod) or (event.old is not None and
                                             match.matches(labels_of(event.old))):
                keys.append(ObjectKey.of(svc))
        return keys

    async def reconcile(self, key: ObjectKey) -> Result:
        service = self.registry.try_get(SERVICES, key.namespace, key.name)
        if service is None:
            try:
                self.registry.delete(ENDPOINTS, key.namespace, key.name)
                log.info("deleted endpoints of a deleted service", service=str(key))
            except NotFound:
                pass
            return Result()
        selector = (service.get("spec") or {}).get("selector") or {}
        if not selector:
            return Result()
        pods, _ = self.registry.list(PODS, key.namespace, shared=True,  # read-only
                                     label_selector=LabelSelector.from_match_labels(selector))
        subsets = build_subsets(service, pods)
        labels = dict(labels_of(service))
        current = self.registry.try_get(ENDPOINTS, key.namespace, key.name)
        if current is None:
            body: Obj = {"metadata": {"name": key.name, "namespace": key.namespace}}
            if subsets:  # omitempty, as kube-apiserver serialises it
                body["subsets"] = subsets
            if labels:
                body["metadata"]["labels"] = labels
            try:
                self.registry.create(ENDPOINTS, body)
            except AlreadyExists:
                return Result(requeue=True)
            return Result()
        if (current.get("subsets") or []) == subsets and labels_of(current) == labels:
            return Result()

        def put(ep: Obj) -> None:
            if subsets:
                ep["subsets"] = subsets
            else:
                ep.pop("subsets", None)
            if labels:
                ep["metadata"]["labels"] = labels
            else:
                ep["metadata"].pop("labels", None)
        self.registry.mutate(ENDPOINTS, key.namespace, key.name, put)
        return Result()


def endpoints_controller(registry: Registry, *, workers: int = 2,
                         informers: SharedInformerFactory | None = None
                         ) -> Controller[ObjectKey]:
    """The controller actor: `await tg.start(endpoints_controller(registry).run)`."""
    reconciler = EndpointsReconciler(registry)
    return Controller(name="endpoints-controller", registry=registry, reconciler=reconciler,
                      sources=reconciler.sources(), workers=workers, informers=informers)
