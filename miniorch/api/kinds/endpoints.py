"""Endpoints (core/v1): the ready and not-ready addresses behind a Service.

Written by the endpoints controller (`controllers/endpoints.py`), read by the proxy.
A PUT of a missing Endpoints creates it, as kube-apiserver allows.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime

from miniorch.api.errors import Cause
from miniorch.api.kinds.base import Kind
from miniorch.api.resource import Resource
from miniorch.api.schema import CORE
from miniorch.api.tables import AGE_COLUMN, NAME_COLUMN, Row, column, since
from miniorch.api.validation import PROTOCOLS, invalid, is_valid_port_num, not_supported
from miniorch.core.objects import Obj, as_dict, as_list, dicts_in

ENDPOINTS = Resource(group="", version="v1", plural="endpoints", singular="endpoints",
                     kind="Endpoints", namespaced=True, short_names=("ep",))


DEFINITIONS: dict[str, dict[str, str]] = {
    CORE + "Endpoints": {
        "apiVersion": "string", "kind": "string", "metadata": "ObjectMeta",
        "subsets": "[]EndpointSubset",
    },
    CORE + "EndpointSubset": {
        "addresses": "[]EndpointAddress", "notReadyAddresses": "[]EndpointAddress",
        "ports": "[]EndpointPort",
    },
    CORE + "EndpointAddress": {
        "ip": "string!", "hostname": "string", "nodeName": "string",
        "targetRef": "ObjectReference",
    },
    CORE + "EndpointPort": {
        "name": "string", "port": "int32!", "protocol": "string", "appProtocol": "string",
    },
}


def _default(obj: Obj) -> None:
    for subset in dicts_in(obj.get("subsets")):
        for port in dicts_in(subset.get("ports")):
            port.setdefault("protocol", "TCP")


def _validate(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, subset in enumerate(as_list(obj.get("subsets"))):
        subset = as_dict(subset)
        for key in ("addresses", "notReadyAddresses"):
            for j, address in enumerate(as_list(subset.get(key))):
                ip = as_dict(address).get("ip") or ""
                try:
                    ipaddress.ip_address(ip)
                except ValueError:
                    causes.append(invalid(f"subsets[{i}].{key}[{j}].ip", ip,
                                          "must be a valid IP address, (e.g. 10.9.8.7 or "
                                          "2001:db8::ffff)"))
        for j, port in enumerate(as_list(subset.get("ports"))):
            port = as_dict(port)
            causes.extend(invalid(f"subsets[{i}].ports[{j}].port", port.get("port", 0), m)
                          for m in is_valid_port_num(port.get("port", 0)))
            protocol = port.get("protocol") or ""
            if protocol not in PROTOCOLS:
                causes.append(not_supported(f"subsets[{i}].ports[{j}].protocol", protocol,
                                            PROTOCOLS))
    return causes


def format_endpoints(endpoints: Obj) -> str:
    """formatEndpoints: up to three `ip:port`, then ` + N more...`."""
    subsets = as_list(endpoints.get("subsets"))
    if not subsets:
        return "<none>"
    shown: list[str] = []
    limit = 3
    more = False
    count = 0
    for subset in subsets:
        subset = as_dict(subset)
        addresses = as_list(subset.get("addresses"))
        ports = as_list(subset.get("ports"))
        if not ports:
            count += len(addresses)
            for address in addresses:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(str(as_dict(address).get("ip", "")))
            continue
        for port in ports:
            count += len(addresses)
            for address in addresses:
                if len(shown) == limit:
                    more = True
                    break
                ip = str(as_dict(address).get("ip", ""))
                host = f"[{ip}]" if ":" in ip else ip  # net.JoinHostPort
                shown.append(f"{host}:{as_dict(port).get('port')}")
    text = ",".join(shown)
    if more:
        return f"{text} + {count - limit} more..."
    return text or "<none>"


def endpoints_cells(endpoints: Obj, now: datetime) -> Row:
    meta = as_dict(endpoints.get("metadata"))
    return [str(meta.get("name", "")), format_endpoints(endpoints),
            since(meta.get("creationTimestamp"), now)], []


COLUMNS = (
    NAME_COLUMN,
    column("Endpoints", "The set of all endpoints is the union of all subsets."),
    AGE_COLUMN,
)


ENDPOINTS_KIND = Kind(
    resource=ENDPOINTS, definitions=DEFINITIONS, default=_default, validate=_validate,
    columns=COLUMNS, cells=endpoints_cells, create_on_update=True,
)
