"""Defaulting: fill what kube-apiserver fills before validation, in place.

    Registry.create / update ─► apply(resource, obj) ─► validation.validate(...)

Mirrors Kubernetes' core/v1 `SetDefaults_*` functions, plus what the REST strategies
and stock admission plugins add at create (pod `status.phase: Pending` and `qosClass`,
`priority: 0`; Service `ipFamilies`; Namespace `kubernetes.io/metadata.name`).

Invariants:
- Idempotent: applying twice changes nothing (the registry applies on every update).
- Never raises on malformed input: values of the wrong JSON type are left alone for
  validation to report, so each helper checks `isinstance` before it descends.
- Only fills what is absent; never overwrites a value the client sent.
"""

from __future__ import annotations

from typing import Any

from miniorch.api.kinds import Resource
from miniorch.core.objects import Obj
from miniorch.core.quantity import QuantityError, parse_quantity


def apply(resource: Resource, obj: Obj) -> None:
    """Fill defaults in place, as kube-apiserver's defaulters do for core/v1."""
    obj.setdefault("apiVersion", resource.api_version)
    obj.setdefault("kind", resource.kind)
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return
    handler = _BY_KIND.get(resource.kind)
    if handler is not None:
        handler(obj)


# ---- helpers ----------------------------------------------------------------------


def _dict(parent: Obj, key: str) -> Obj | None:
    """`parent[key]`, created as {} when absent; None if present but not an object."""
    value = parent.setdefault(key, {})
    if value is None:
        value = parent[key] = {}
    return value if isinstance(value, dict) else None


def _dicts(value: Any) -> list[Obj]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


# ---- Pod ----------------------------------------------------------------------------


def _pod(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    pod_spec(spec)
    # Priority admission (no default PriorityClass) and its preemption policy.
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    status = _dict(obj, "status")
    if status is None:
        return
    # The pod REST strategy's PrepareForCreate: every new pod starts Pending.
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", qos_class(spec))


def pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec and the per-container defaults (also for pod templates)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    host_network = spec.get("hostNetwork") is True
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in _dicts(spec.get(key)):
            _container(container, host_network=host_network)
    for volume in _dicts(spec.get("volumes")):
        _volume(volume)


def _container(container: Obj, *, host_network: bool) -> None:
    image = container.get("image")
    container.setdefault("imagePullPolicy", _pull_policy(image if isinstance(image, str) else ""))
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    for port in _dicts(container.get("ports")):
        port.setdefault("protocol", "TCP")
        if host_network and "containerPort" in port:
            port.setdefault("hostPort", port["containerPort"])
    resources = _dict(container, "resources")
    if resources is not None:
        # "If limits are specified but requests are not, requests default to limits."
        limits = resources.get("limits")
        if isinstance(limits, dict) and limits:
            requests = _dict(resources, "requests")
            if requests is not None:
                for name, value in limits.items():
                    requests.setdefault(name, value)
    for env in _dicts(container.get("env")):
        source = env.get("valueFrom")
        if isinstance(source, dict) and isinstance(source.get("fieldRef"), dict):
            source["fieldRef"].setdefault("apiVersion", "v1")
    for probe_key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_key)
        if isinstance(probe, dict):
            _probe(probe)
    lifecycle = container.get("lifecycle")
    if isinstance(lifecycle, dict):
        for handler in (lifecycle.get("postStart"), lifecycle.get("preStop")):
            if isinstance(handler, dict) and isinstance(handler.get("httpGet"), dict):
                _http_get(handler["httpGet"])


def _pull_policy(image: str) -> str:
    """Always for `:latest` or an untagged image, else IfNotPresent (also for a digest,
    and for a missing image, which validation reports). The tag is after the last `:`
    that follows the last `/` (a registry port is not a tag)."""
    if "@" in image or not image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "Always"
    return "Always" if last.rsplit(":", 1)[1] == "latest" else "IfNotPresent"


def _probe(probe: Obj) -> None:
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if isinstance(probe.get("httpGet"), dict):
        _http_get(probe["httpGet"])


def _http_get(action: Obj) -> None:
    action.setdefault("path", "/")
    action.setdefault("scheme", "HTTP")


def _volume(volume: Obj) -> None:
    sources = set(volume) - {"name"}
    if not sources:
        volume["emptyDir"] = {}
    for key in ("secret", "configMap"):
        source = volume.get(key)
        if isinstance(source, dict):
            source.setdefault("defaultMode", 0o644)
    host_path = volume.get("hostPath")
    if isinstance(host_path, dict):
        host_path.setdefault("type", "")


def qos_class(spec: Obj) -> str:
    """Kubernetes' GetPodQOS over the containers and init containers."""
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    containers = _dicts(spec.get("containers")) + _dicts(spec.get("initContainers"))
    for container in containers:
        resources = container.get("resources")
        resources = resources if isinstance(resources, dict) else {}
        c_requests = resources.get("requests") if isinstance(resources.get("requests"),
                                                             dict) else {}
        c_limits = resources.get("limits") if isinstance(resources.get("limits"), dict) else {}
        for name, value in (c_requests or {}).items():
            if name in ("cpu", "memory") and _nonzero(value):
                requests[name] = value
        seen = set()
        for name, value in (c_limits or {}).items():
            if name in ("cpu", "memory") and _nonzero(value):
                limits[name] = value
                seen.add(name)
        if seen != {"cpu", "memory"}:
            guaranteed = False
        for name in ("cpu", "memory"):
            requested = (c_requests or {}).get(name)
            if name in (c_limits or {}) and requested is not None \
                    and _quantity(requested) != _quantity((c_limits or {})[name]):
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    return "Guaranteed" if guaranteed and containers else "Burstable"


def _quantity(value: Any) -> object:
    try:
        return parse_quantity(value)
    except QuantityError:
        return value


def _nonzero(value: Any) -> bool:
    try:
        return parse_quantity(value) != 0
    except QuantityError:
        return True


# ---- ReplicationController ------------------------------------------------------------


def _replication_controller(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    template = spec.get("template")
    if isinstance(template, dict):
        t_meta = template.get("metadata")
        t_labels = t_meta.get("labels") if isinstance(t_meta, dict) else None
        if isinstance(t_labels, dict) and t_labels:
            if not spec.get("selector"):
                spec["selector"] = dict(t_labels)
            meta = obj["metadata"]
            if not meta.get("labels"):
                meta["labels"] = dict(t_labels)
        t_spec = template.get("spec")
        if isinstance(t_spec, dict):
            pod_spec(t_spec)
    spec.setdefault("replicas", 1)
    status = _dict(obj, "status")
    if status is not None:
        # `replicas` is not omitempty in Go: clients (the Python client) require it.
        status.setdefault("replicas", 0)


# ---- Service --------------------------------------------------------------------------


def _service(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    if spec is None:
        return
    svc_type = spec.setdefault("type", "ClusterIP")
    affinity = spec.setdefault("sessionAffinity", "None")
    if affinity == "ClientIP":
        config = _dict(spec, "sessionAffinityConfig")
        if config is not None:
            client_ip = _dict(config, "clientIP")
            if client_ip is not None:
                client_ip.setdefault("timeoutSeconds", 10800)
    for port in _dicts(spec.get("ports")):
        port.setdefault("protocol", "TCP")
        if port.get("targetPort") in (None, 0, "") and "port" in port:
            port["targetPort"] = port["port"]
    if svc_type != "ExternalName":
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if svc_type in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if svc_type == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    status = _dict(obj, "status")
    if status is not None:
        status.setdefault("loadBalancer", {})


# ---- the rest ---------------------------------------------------------------------------


def _namespace(obj: Obj) -> None:
    meta = obj["metadata"]
    name = meta.get("name")
    if isinstance(name, str) and name:
        labels = _dict(meta, "labels")
        if labels is not None:
            # Set unconditionally by the namespace strategy: it always equals the name.
            labels["kubernetes.io/metadata.name"] = name
    spec = _dict(obj, "spec")
    if spec is not None:
        spec.setdefault("finalizers", ["kubernetes"])
    status = _dict(obj, "status")
    if status is not None:
        status.setdefault("phase", "Active")


def _event(obj: Obj) -> None:
    if "series" not in obj:
        obj.setdefault("count", 1)
    obj.setdefault("involvedObject", {})


def _node(obj: Obj) -> None:
    obj.setdefault("spec", {})
    status = _dict(obj, "status")
    if status is None:
        return
    capacity = status.get("capacity")
    if isinstance(capacity, dict) and capacity and not status.get("allocatable"):
        status["allocatable"] = dict(capacity)


def _endpoints(obj: Obj) -> None:
    for subset in _dicts(obj.get("subsets")):
        for port in _dicts(subset.get("ports")):
            port.setdefault("protocol", "TCP")


def _lease(obj: Obj) -> None:
    obj.setdefault("spec", {})


_BY_KIND = {
    "Pod": _pod, "ReplicationController": _replication_controller, "Service": _service,
    "Namespace": _namespace, "Event": _event, "Node": _node, "Endpoints": _endpoints,
    "Lease": _lease,
}
