"""A container's environment, from its pod spec, as kubelet's makeEnvironmentVariables.

    image env + service env (service_env: the namespace's Services and `kubernetes`)
      + HOSTNAME ─┐
    envFrom (in order: configMapRef / secretRef, prefix, optional) ─┤
    env (in order: value with $(VAR) expansion, or valueFrom:     ├─► container_env()
         configMapKeyRef / secretKeyRef / fieldRef / resourceFieldRef)┘      │
                                        ConfigError (a required object or key is missing)
                                        or the env, with the names envFrom skipped

Objects are read through `Sources` (the registry, in the kubelet), once per call, so
one container start sees one version of each ConfigMap/Secret. Later entries override
earlier ones, env overrides envFrom, as in Kubernetes. Messages are kubelet's, word for
word: `configmap "x" not found` (its ConfigMap manager names the resource in the
singular), `couldn't find key k in ConfigMap default/x`.

Invariants: pure but for the `Sources` reads; never raises for an optional reference
(a missing optional ConfigMap, Secret or key contributes nothing); Secret values are
base64 in the API and go into the environment decoded (bytes that are not UTF-8 pass
through unchanged as surrogate escapes, which exec turns back into the same bytes).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from miniorch.core.objects import Obj, namespace_of
from miniorch.core.quantity import QuantityError, parse_quantity

_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
# Kubernetes' IsEnvVarName before RelaxedEnvironmentVariableValidation: what envFrom
# keeps (a key such as `1st` or `a:b` is skipped, with an event).
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_FIELD_INDEX = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


class ConfigError(Exception):
    """A container cannot be configured yet (→ waiting `CreateContainerConfigError`)."""


class Sources(Protocol):
    def config_map(self, namespace: str, name: str) -> Obj | None: ...

    def secret(self, namespace: str, name: str) -> Obj | None: ...


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in command/args (`$$` escapes; unknown stays)."""
    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))
    return _VAR_REF.sub(sub, text)


def decode_secret_value(value: object) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return str(value).encode()


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


@dataclass(frozen=True, kw_only=True)
class PodFacts:
    """What fieldRef and resourceFieldRef read besides the spec."""

    pod_ip: str
    host_ip: str
    node_allocatable: Callable[[], Mapping[str, str]] = dict
    """cpu and memory of the node: limits.* of a container without a limit."""


@dataclass
class EnvResult:
    env: dict[str, str]
    skipped: list[tuple[str, str, list[str]]] = field(default_factory=list)
    """(kind "configMap"/"secret", name, invalid names) per envFrom source that had any."""


class _Cache:
    """One read of each object per call; the singular-resource NotFound of kubelet."""

    def __init__(self, sources: Sources, namespace: str) -> None:
        self.sources = sources
        self.namespace = namespace
        self.config_maps: dict[str, Obj | None] = {}
        self.secrets: dict[str, Obj | None] = {}

    def config_map(self, name: str) -> Obj | None:
        if name not in self.config_maps:
            self.config_maps[name] = self.sources.config_map(self.namespace, name)
        return self.config_maps[name]

    def secret(self, name: str) -> Obj | None:
        if name not in self.secrets:
            self.secrets[name] = self.sources.secret(self.namespace, name)
        return self.secrets[name]


def field_value(pod: Obj, path: str, facts: PodFacts) -> str:
    """kubelet's podFieldSelectorRuntimeValue (the fieldPaths the API accepts for env)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    indexed = _FIELD_INDEX.match(path)
    if indexed:
        return str((meta.get(indexed.group(1)) or {}).get(indexed.group(2), ""))
    simple: dict[str, Callable[[], object]] = {
        "metadata.name": lambda: meta.get("name"),
        "metadata.namespace": lambda: meta.get("namespace"),
        "metadata.uid": lambda: meta.get("uid"),
        "spec.nodeName": lambda: spec.get("nodeName"),
        "spec.serviceAccountName": lambda: spec.get("serviceAccountName"),
        "status.podIP": lambda: facts.pod_ip,
        "status.podIPs": lambda: facts.pod_ip,
        "status.hostIP": lambda: facts.host_ip,
        "status.hostIPs": lambda: facts.host_ip,
    }
    getter = simple.get(path)
    if getter is None:
        raise ConfigError(f'unsupported fieldPath: "{path}"')
    return str(getter() or "")


def resource_value(pod: Obj, container: Obj, ref: Obj, facts: PodFacts) -> str:
    """kubelet's ExtractContainerResourceValue: ceil(quantity / divisor), with limits
    defaulting to the node's allocatable cpu and memory."""
    wanted = str(ref.get("containerName") or "")
    if wanted:
        found = [c for c in (pod.get("spec") or {}).get("containers") or []
                 if c.get("name") == wanted]
        if not found:
            raise ConfigError(f"container {wanted} not found")
        container = found[0]
    resource = str(ref.get("resource") or "")
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory",
                                                           "ephemeral-storage"):
        raise ConfigError(f"unsupported container resource : {resource}")
    declared = ((container.get("resources") or {}).get(kind) or {}).get(name)
    try:
        divisor = parse_quantity(ref.get("divisor") or "1")
        if declared is not None:
            amount = parse_quantity(declared)
        elif kind == "limits" and name in ("cpu", "memory"):
            amount = parse_quantity(facts.node_allocatable().get(name, "0"))
        else:
            amount = Decimal(0)
    except QuantityError as exc:
        raise ConfigError(str(exc)) from exc
    if divisor <= 0:
        raise ConfigError(f"invalid divisor {ref.get('divisor')}")
    if name == "cpu":
        # Kubernetes works in millicores: 250m / 1 → 1 (rounded up), 250m / 1m → 250.
        return str(math.ceil(math.ceil(amount * 1000) / math.ceil(divisor * 1000)))
    return str(math.ceil(math.ceil(amount) / math.ceil(divisor)))


def _from_sources(container: Obj, cache: _Cache, result: EnvResult) -> None:
    namespace = cache.namespace
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for kind, ref in (("configMap", source.get("configMapRef")),
                          ("secret", source.get("secretRef"))):
            if not ref:
                continue
            name = str(ref.get("name") or "")
            obj = cache.config_map(name) if kind == "configMap" else cache.secret(name)
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind.lower()} "{name}" not found')
            invalid: list[str] = []
            for key, value in (obj.get("data") or {}).items():
                env_name = prefix + key
                if not _ENV_NAME.fullmatch(env_name):
                    invalid.append(env_name)
                    continue
                result.env[env_name] = (str(value) if kind == "configMap"
                                        else _text(decode_secret_value(value)))
            if invalid:
                result.skipped.append((kind, f"{namespace}/{name}", sorted(invalid)))


def _value_from(pod: Obj, container: Obj, source: Obj, cache: _Cache,
                facts: PodFacts) -> str | None:
    """The value of one `valueFrom`; None: an optional reference that is absent."""
    namespace = cache.namespace
    if source.get("fieldRef"):
        return field_value(pod, str(source["fieldRef"].get("fieldPath") or ""), facts)
    if source.get("resourceFieldRef"):
        return resource_value(pod, container, source["resourceFieldRef"], facts)
    for kind, title, ref in (("configmap", "ConfigMap", source.get("configMapKeyRef")),
                             ("secret", "Secret", source.get("secretKeyRef"))):
        if not ref:
            continue
        name = str(ref.get("name") or "")
        key = str(ref.get("key") or "")
        optional = bool(ref.get("optional"))
        obj = cache.config_map(name) if kind == "configmap" else cache.secret(name)
        if obj is None:
            if optional:
                return None
            raise ConfigError(f'{kind} "{name}" not found')
        data = obj.get("data") or {}
        if key not in data:
            if optional:
                return None
            raise ConfigError(f"couldn't find key {key} in {title} {namespace}/{name}")
        return str(data[key]) if kind == "configmap" else _text(decode_secret_value(data[key]))
    return ""


def container_env(container: Obj, pod: Obj, *, base: Mapping[str, str],
                  sources: Sources, facts: PodFacts) -> EnvResult:
    """The container's environment over `base` (image env, PATH, HOSTNAME); raises
    ConfigError when a required ConfigMap/Secret (or key) is missing."""
    cache = _Cache(sources, namespace_of(pod))
    result = EnvResult(env=dict(base))
    _from_sources(container, cache, result)
    for item in container.get("env") or []:
        name = str(item.get("name"))
        source = item.get("valueFrom")
        if source and "value" not in item:
            value = _value_from(pod, container, source, cache, facts)
            if value is not None:
                result.env[name] = value
        else:
            result.env[name] = expand(str(item.get("value") or ""), result.env)
    return result


def skipped_message(kind: str, where: str, names: list[str]) -> str:
    """kubelet's InvalidEnvironmentVariableNames event message."""
    label = "configMap" if kind == "configMap" else "secret"
    return (f"Keys [{', '.join(names)}] from the EnvFrom {label} {where} were skipped "
            "since they are considered invalid environment variable names.")


def referenced_names(pod: Obj) -> tuple[set[str], set[str]]:
    """(ConfigMap names, Secret names) the pod's env, envFrom and volumes name."""
    config_maps: set[str] = set()
    secrets: set[str] = set()
    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for source in container.get("envFrom") or []:
            if source.get("configMapRef"):
                config_maps.add(str(source["configMapRef"].get("name") or ""))
            if source.get("secretRef"):
                secrets.add(str(source["secretRef"].get("name") or ""))
        for item in container.get("env") or []:
            value_from = item.get("valueFrom") or {}
            if value_from.get("configMapKeyRef"):
                config_maps.add(str(value_from["configMapKeyRef"].get("name") or ""))
            if value_from.get("secretKeyRef"):
                secrets.add(str(value_from["secretKeyRef"].get("name") or ""))
    for volume in spec.get("volumes") or []:
        if volume.get("configMap"):
            config_maps.add(str(volume["configMap"].get("name") or ""))
        if volume.get("secret"):
            secrets.add(str(volume["secret"].get("secretName") or ""))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if (source or {}).get("configMap"):
                config_maps.add(str(source["configMap"].get("name") or ""))
            if (source or {}).get("secret"):
                secrets.add(str(source["secret"].get("name") or ""))
    return config_maps, secrets


MASTER_SERVICES = ("kubernetes",)
"""Services of the `default` namespace every pod gets variables for (kubelet's
masterServices), even with `enableServiceLinks: false`."""


def _env_name(service: str) -> str:
    return service.upper().replace("-", "_")


def service_env(pod: Obj, services: list[Obj]) -> dict[str, str]:
    """kubelet's getServiceEnvVarMap + envvars.FromServices: `<SVC>_SERVICE_HOST`,
    `_SERVICE_PORT[_<NAME>]` and the Docker-link `<SVC>_PORT*` variables, for the
    Services of the pod's namespace (with `enableServiceLinks`, the default) and the
    `kubernetes` Service of `default`. Services without a ClusterIP (headless,
    ExternalName) have none. `services`: those of the pod's namespace and `default`."""
    namespace = namespace_of(pod)
    links = (pod.get("spec") or {}).get("enableServiceLinks") is not False
    chosen: dict[str, Obj] = {}
    for service in services:
        meta = service.get("metadata") or {}
        ip = str((service.get("spec") or {}).get("clusterIP") or "")
        if not ip or ip == "None":
            continue
        name = str(meta.get("name") or "")
        if (meta.get("namespace") or "default") == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, service)
        elif meta.get("namespace") == namespace and links:
            chosen[name] = service
    env: dict[str, str] = {}
    for name in sorted(chosen):
        spec = chosen[name].get("spec") or {}
        ip = str(spec["clusterIP"])
        prefix = _env_name(name)
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
        env[f"{prefix}_SERVICE_HOST"] = ip
        for i, port in enumerate(ports):
            number = str(port.get("port"))
            if i == 0:
                env[f"{prefix}_SERVICE_PORT"] = number
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_env_name(str(port['name']))}"] = number
        for i, port in enumerate(ports):
            protocol = str(port.get("protocol") or "TCP")
            number = str(port.get("port"))
            url = f"{protocol.lower()}://{ip}:{number}"
            if i == 0:
                env[f"{prefix}_PORT"] = url
            link = f"{prefix}_PORT_{number}_{protocol.upper()}"
            env[link] = url
            env[f"{link}_PROTO"] = protocol.lower()
            env[f"{link}_PORT"] = number
            env[f"{link}_ADDR"] = ip
    return env


__all__ = ["ConfigError", "EnvResult", "PodFacts", "Sources", "container_env",
           "decode_secret_value", "expand", "field_value", "referenced_names",
           "resource_value", "service_env", "skipped_message"]
