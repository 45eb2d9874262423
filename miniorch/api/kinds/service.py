"""Service (core/v1): a stable address in front of a set of pods.

    create/update ─► _default (type ClusterIP, protocol TCP, targetPort = port, …)
                  ─► _prepare: ClusterIP from the service CIDR, NodePorts from their
                     range (kube-apiserver's allocators; kept across updates, released
                     with the object) ─► _validate
    Table ─► service_cells (EXTERNAL-IP `<pending>` until the proxy sets an ingress)
The proxy (`miniorch/proxy`) serves it; the endpoints controller fills its Endpoints.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

from miniorch.api.errors import ApiError, Cause, Invalid
from miniorch.api.kinds.base import Kind, WriteContext
from miniorch.api.resource import Resource
from miniorch.api.schema import CORE
from miniorch.api.tables import AGE_COLUMN, NAME_COLUMN, Row, column, format_labels, since
from miniorch.api.validation import (
    DUPLICATE,
    PROTOCOLS,
    duplicate,
    forbidden,
    invalid,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_valid_port_num,
    not_supported,
    required,
    validate_labels,
    validate_port_num_or_name,
)
from miniorch.core.objects import Obj, as_dict, as_list, dicts_in, ensure_dict

SERVICES = Resource(group="", version="v1", plural="services", singular="service",
                    kind="Service", namespaced=True, short_names=("svc",), categories=("all",))


DEFINITIONS: dict[str, dict[str, str]] = {
    CORE + "Service": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "spec": "ServiceSpec", "status": "ServiceStatus",
    },
    CORE + "ServiceSpec": {
        "ports": "[]ServicePort@port", "selector": "{}string", "clusterIP": "string",
        "clusterIPs": "[]string", "type": "string", "externalIPs": "[]string",
        "sessionAffinity": "string", "loadBalancerIP": "string",
        "loadBalancerSourceRanges": "[]string", "externalName": "string",
        "externalTrafficPolicy": "string", "healthCheckNodePort": "int32",
        "publishNotReadyAddresses": "boolean",
        "sessionAffinityConfig": "SessionAffinityConfig", "ipFamilies": "[]string",
        "ipFamilyPolicy": "string", "allocateLoadBalancerNodePorts": "boolean",
        "loadBalancerClass": "string", "internalTrafficPolicy": "string",
        "trafficDistribution": "string",
    },
    CORE + "ServicePort": {
        "name": "string", "protocol": "string", "appProtocol": "string", "port": "int32!",
        "targetPort": "int-or-string", "nodePort": "int32",
    },
    CORE + "SessionAffinityConfig": {"clientIP": "ClientIPConfig"},
    CORE + "ClientIPConfig": {"timeoutSeconds": "int32"},
    CORE + "ServiceStatus": {
        "loadBalancer": "LoadBalancerStatus", "conditions": "[]Condition@type",
    },
    CORE + "LoadBalancerStatus": {"ingress": "[]LoadBalancerIngress"},
    CORE + "LoadBalancerIngress": {
        "ip": "string", "hostname": "string", "ipMode": "string", "ports": "[]PortStatus",
    },
    CORE + "PortStatus": {"port": "int32!", "protocol": "string!", "error": "string"},
}


def _default(obj: Obj) -> None:
    spec = ensure_dict(obj, "spec")
    if spec is None:
        return
    svc_type = spec.setdefault("type", "ClusterIP")
    affinity = spec.setdefault("sessionAffinity", "None")
    if affinity == "ClientIP":
        config = ensure_dict(spec, "sessionAffinityConfig")
        if config is not None:
            client_ip = ensure_dict(config, "clientIP")
            if client_ip is not None:
                client_ip.setdefault("timeoutSeconds", 10800)
    for port in dicts_in(spec.get("ports")):
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
    status = ensure_dict(obj, "status")
    if status is not None:
        status.setdefault("loadBalancer", {})


_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def _go_service_port(port: Obj) -> str:
    """%#v of the core.ServicePort{Protocol, Port} key in a duplicate-port error."""
    return (f'core.ServicePort{{Name:"", Protocol:"{port.get("protocol", "")}", '
            f"AppProtocol:(*string)(nil), Port:{port.get('port', 0)}, "
            f'TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, NodePort:0}}')


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    spec = as_dict(obj.get("spec"))
    svc_type = spec.get("type") or ""
    ports = as_list(spec.get("ports"))
    headless = spec.get("clusterIP") == "None"
    if not ports and not headless and svc_type != "ExternalName":
        causes.append(required("spec.ports"))
    if svc_type == "ExternalName":
        external = spec.get("externalName") or ""
        if not external:
            causes.append(required("spec.externalName"))
        else:
            causes.extend(invalid("spec.externalName", external, m)
                          for m in is_dns1123_subdomain(external.rstrip(".")))
    names: set[str] = set()
    for i, port in enumerate(ports):
        port = as_dict(port)
        ppath = f"spec.ports[{i}]"
        pname = port.get("name") or ""
        if len(ports) > 1 and not pname:
            causes.append(required(f"{ppath}.name"))
        elif pname:
            causes.extend(invalid(f"{ppath}.name", pname, m) for m in is_dns1123_label(pname))
            if pname in names:
                causes.append(duplicate(f"{ppath}.name", pname))
            names.add(pname)
        causes.extend(invalid(f"{ppath}.port", port.get("port", 0), m)
                      for m in is_valid_port_num(port.get("port", 0)))
        protocol = port.get("protocol") or ""
        if not protocol:
            causes.append(required(f"{ppath}.protocol"))
        elif protocol not in PROTOCOLS:
            causes.append(not_supported(f"{ppath}.protocol", protocol, PROTOCOLS))
        causes.extend(validate_port_num_or_name(port.get("targetPort"), f"{ppath}.targetPort"))
        node_port = port.get("nodePort")
        if node_port:
            causes.extend(invalid(f"{ppath}.nodePort", node_port, m)
                          for m in is_valid_port_num(node_port))
    if spec.get("selector") is not None:
        causes.extend(validate_labels(spec.get("selector"), "spec.selector"))
    affinity = spec.get("sessionAffinity") or ""
    if not affinity:
        causes.append(required("spec.sessionAffinity"))
    elif affinity not in ("ClientIP", "None"):
        causes.append(not_supported("spec.sessionAffinity", affinity, ("ClientIP", "None")))
    cluster_ip = spec.get("clusterIP") or ""
    if cluster_ip and cluster_ip != "None":
        try:
            ipaddress.ip_address(cluster_ip)
        except ValueError:
            causes.append(invalid("spec.clusterIPs[0]", cluster_ip,
                                  "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    for i, ip in enumerate(as_list(spec.get("externalIPs"))):
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            causes.append(invalid(f"spec.externalIPs[{i}]", ip,
                                  "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    if not svc_type:
        causes.append(required("spec.type"))
    elif svc_type not in _SERVICE_TYPES:
        causes.append(not_supported("spec.type", svc_type, _SERVICE_TYPES))
    if svc_type == "ClusterIP":
        for i, port in enumerate(ports):
            if as_dict(port).get("nodePort"):
                causes.append(forbidden(f"spec.ports[{i}].nodePort",
                                        "may not be used when `type` is 'ClusterIP'"))
    seen_node_ports: set[tuple[Any, Any]] = set()
    seen_ports: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        port = as_dict(port)
        if port.get("nodePort"):
            key = (port.get("protocol"), port["nodePort"])
            if key in seen_node_ports:
                causes.append(duplicate(f"spec.ports[{i}].nodePort", port["nodePort"]))
            seen_node_ports.add(key)
        key = (port.get("protocol"), port.get("port"))
        if key in seen_ports:
            causes.append(Cause(f"spec.ports[{i}]",
                                f"Duplicate value: {_go_service_port(port)}", DUPLICATE))
        seen_ports.add(key)
    for policy_key in ("externalTrafficPolicy", "internalTrafficPolicy"):
        policy = spec.get(policy_key)
        if policy and policy not in ("Cluster", "Local"):
            causes.append(not_supported(f"spec.{policy_key}", policy, ("Cluster", "Local")))
    if old is not None:
        old_ips = as_list(as_dict(old.get("spec")).get("clusterIPs"))
        new_ips = as_list(spec.get("clusterIPs"))
        if old_ips and new_ips and old_ips[0] != new_ips[0] and svc_type != "ExternalName" \
                and as_dict(old.get("spec")).get("type") != "ExternalName":
            causes.append(invalid("spec.clusterIPs[0]", new_ips, "may not change once set"))
    return causes


def _service_external_ip(svc: Obj) -> str:
    spec = as_dict(svc.get("spec"))
    external_ips = [str(ip) for ip in as_list(spec.get("externalIPs"))]
    svc_type = spec.get("type")
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else "<none>"
    if svc_type == "LoadBalancer":
        ingress: set[str] = set()
        for item in as_list(as_dict(as_dict(svc.get("status")).get("loadBalancer")).get("ingress")):
            item = as_dict(item)
            if item.get("ip"):
                ingress.add(str(item["ip"]))
            elif item.get("hostname"):
                ingress.add(str(item["hostname"]))
        lb_ips = sorted(ingress)  # sets.String.List() is sorted
        if external_ips:
            return ",".join(lb_ips + external_ips)
        return ",".join(lb_ips) if lb_ips else "<pending>"
    if svc_type == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


def service_port_string(ports: Any) -> str:
    """makePortString: `8080/TCP`, or `8080:31234/TCP` with a node port."""
    pieces = []
    for port in as_list(ports):
        port = as_dict(port)
        protocol = port.get("protocol", "")
        if port.get("nodePort"):
            pieces.append(f"{port.get('port')}:{port['nodePort']}/{protocol}")
        else:
            pieces.append(f"{port.get('port')}/{protocol}")
    return ",".join(pieces)


def service_cells(svc: Obj, now: datetime) -> Row:
    meta = as_dict(svc.get("metadata"))
    spec = as_dict(svc.get("spec"))
    cluster_ips = as_list(spec.get("clusterIPs"))
    internal = str(cluster_ips[0]) if cluster_ips else "<none>"
    return [
        str(meta.get("name", "")), str(spec.get("type", "")), internal,
        _service_external_ip(svc), service_port_string(spec.get("ports")) or "<none>",
        since(meta.get("creationTimestamp"), now), format_labels(spec.get("selector")),
    ], []


COLUMNS = (
    NAME_COLUMN,
    column("Type", "type determines how the Service is exposed."),
    column("Cluster-IP", "clusterIP is the IP address of the service."),
    column("External-IP", "externalIPs is a list of IP addresses for which nodes in the "
                        "cluster will also accept traffic for this service."),
    column("Port(s)", "The list of ports that are exposed by this service."),
    AGE_COLUMN,
    column("Selector", "Route service traffic to pods with label keys and values matching "
                     "this selector.", priority=1),
)


def _prepare(ctx: WriteContext, svc: Obj, old: Obj | None) -> None:
    """ClusterIP from the service CIDR and NodePorts from their range, at create
    (kube-apiserver's allocators); kept across updates, released with the object."""
    spec = svc.setdefault("spec", {})
    old_spec = (old or {}).get("spec", {})
    if old_spec.get("clusterIP") and not spec.get("clusterIP"):
        spec["clusterIP"] = old_spec["clusterIP"]
    if spec.get("clusterIP") is None or spec.get("clusterIP") == "":
        spec["clusterIP"] = _free_cluster_ip(ctx)
    elif spec["clusterIP"] != "None" and old is None:
        try:
            wanted = ipaddress.ip_address(spec["clusterIP"])
        except ValueError:
            raise Invalid.of("Service", svc["metadata"].get("name", ""), [Cause(
                "spec.clusterIPs[0]", f"Invalid value: \"{spec['clusterIP']}\": must be a "
                "valid IP address")]) from None
        if wanted not in ipaddress.ip_network(ctx.network.service_cidr):
            raise Invalid.of("Service", svc["metadata"].get("name", ""), [Cause(
                "spec.clusterIPs[0]", f"Invalid value: \"{wanted}\": provided IP is not in "
                f"the valid range. The range of valid IPs is {ctx.network.service_cidr}")])
        if str(wanted) in _used_cluster_ips(ctx):
            raise Invalid.of("Service", svc["metadata"].get("name", ""), [Cause(
                "spec.clusterIPs", f"Invalid value: []string{{\"{wanted}\"}}: failed to "
                f"allocate IP {wanted}: provided IP is already allocated")])
    if spec["clusterIP"] != "None":
        spec["clusterIPs"] = [spec["clusterIP"]]
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in old_spec.get("ports") or []}
        used = _used_node_ports(ctx, exclude=svc)
        for port in spec.get("ports") or []:
            if not port.get("nodePort"):
                previous = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
                port["nodePort"] = previous or _free_node_port(ctx, used)
                used.add(port["nodePort"])
            elif old is None and port["nodePort"] in used:
                raise Invalid.of("Service", svc["metadata"].get("name", ""), [Cause(
                    "spec.ports[0].nodePort", f"Invalid value: {port['nodePort']}: "
                    "provided port is already allocated")])
    else:
        for port in spec.get("ports") or []:
            port.pop("nodePort", None)


def _used_cluster_ips(ctx: WriteContext) -> set[str]:
    items, _ = ctx.store.list(SERVICES)
    return {s.get("spec", {}).get("clusterIP", "") for s in items}


def _free_cluster_ip(ctx: WriteContext) -> str:
    used = _used_cluster_ips(ctx)
    network = ipaddress.ip_network(ctx.network.service_cidr)
    # .1 is the `kubernetes` service's by convention; .10 is DNS's.
    for host in network.hosts():
        if str(host).endswith(".0.1") or str(host) in used:
            continue
        if str(host) == str(network.network_address + 10):
            continue
        return str(host)
    raise ApiError("no ClusterIP left in " + ctx.network.service_cidr)


def _used_node_ports(ctx: WriteContext, *, exclude: Obj) -> set[int]:
    items, _ = ctx.store.list(SERVICES)
    me = (exclude["metadata"].get("namespace"), exclude["metadata"].get("name"))
    return {int(p["nodePort"]) for s in items
            if (s["metadata"].get("namespace"), s["metadata"]["name"]) != me
            for p in s.get("spec", {}).get("ports") or [] if p.get("nodePort")}


def _free_node_port(ctx: WriteContext, used: set[int]) -> int:
    low, high = ctx.network.node_port_range
    for port in range(low, high + 1):
        if port not in used:
            return port
    raise ApiError("no NodePort left")


SERVICE = Kind(
    resource=SERVICES, definitions=DEFINITIONS, default=_default, validate=_validate,
    name_rule=is_dns1035_label, prepare=_prepare, columns=COLUMNS, cells=service_cells,
    status_subresource=True, returns_deleted=True,
)
