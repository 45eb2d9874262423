"""Defaulting shared by kinds: the pod spec (pods and every pod template), in place.

    Registry.create / update ─► Kind.apply_defaults ─► kinds/<kind>.py `_default`
                                                         └─► pod_spec(...) here

Mirrors Kubernetes' core/v1 `SetDefaults_PodSpec` / `SetDefaults_Container` and
friends; each kind's own defaults (pod `status.phase: Pending` and `qosClass`, Service
`ipFamilies`, …) live in its module under `api/kinds/`.

Invariants:
- Idempotent: applying twice changes nothing (the registry applies on every update).
- Never raises on malformed input: values of the wrong JSON type are left alone for
  validation to report, so each helper checks `isinstance` before it descends.
- Only fills what is absent; never overwrites a value the client sent.
"""

from __future__ import annotations

from typing import Any

from miniorch.core.objects import Obj, dicts_in, ensure_dict
from miniorch.core.quantity import QuantityError, parse_quantity

# ---- Pod ----------------------------------------------------------------------------


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
        for container in dicts_in(spec.get(key)):
            _container(container, host_network=host_network)
    for volume in dicts_in(spec.get("volumes")):
        _volume(volume)


def _container(container: Obj, *, host_network: bool) -> None:
    image = container.get("image")
    container.setdefault("imagePullPolicy", _pull_policy(image if isinstance(image, str) else ""))
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    for port in dicts_in(container.get("ports")):
        port.setdefault("protocol", "TCP")
        if host_network and "containerPort" in port:
            port.setdefault("hostPort", port["containerPort"])
    resources = ensure_dict(container, "resources")
    if resources is not None:
        # "If limits are specified but requests are not, requests default to limits."
        limits = resources.get("limits")
        if isinstance(limits, dict) and limits:
            requests = ensure_dict(resources, "requests")
            if requests is not None:
                for name, value in limits.items():
                    requests.setdefault(name, value)
    for env in dicts_in(container.get("env")):
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
    containers = dicts_in(spec.get("containers")) + dicts_in(spec.get("initContainers"))
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
