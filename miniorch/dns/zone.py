"""The cluster's DNS zone, answered from the shared informers' caches.

    question (name, type) ──► ClusterZone.resolve ──► Resolution(rcode, answer, additional,
                                                                 negative SOA?, chase?)
        <svc>.<ns>.svc.<zone>              A/AAAA: the ClusterIP; headless
                                           (clusterIP None): the ready endpoint IPs;
                                           ExternalName: CNAME to spec.externalName
        _<port>._<proto>.<svc>.<ns>.svc.<zone>   SRV per named port (headless: one per
                                           endpoint, target <host>.<svc>.<ns>.svc.<zone>)
        <host>.<svc>.<ns>.svc.<zone>       A of one endpoint of a headless Service: <host>
                                           is its pod's spec.hostname when the pod's
                                           spec.subdomain names the Service, else the
                                           dashed IP (10-244-1-5)
        <a-b-c-d>.<ns>.pod.<zone>          A of a pod of <ns> with that IP ("pods
                                           verified": no pod, no record)
        <zone>                             SOA, NS (ns.dns.<zone>, itself A <kube-dns IP>)
        d.c.b.a.in-addr.arpa (service and pod CIDRs)   PTR of ClusterIPs and of
                                           headless endpoints; authoritative, so private
                                           addresses never leak to the host's resolvers

The DNS spec for Kubernetes (kubernetes/dns, docs/specification.md) is the reference.

Invariants:
- Every lookup reads the informers' caches at that moment: a Service, Endpoints or pod
  change answers differently at once (TTL 5 s, as CoreDNS' kubernetes plugin).
- A name under the zone that no record or record-bearing descendant names is NXDOMAIN;
  a name that exists without records of the asked type (an AAAA for an IPv4
  Service, `svc.<zone>` itself, a headless Service without ready endpoints) is NODATA.
  Both carry the zone's SOA in the authority section (RFC 2308) so resolvers cache
  the negative answer for the SOA's TTL.
- An ExternalName CNAME is chased: in the zone here (depth-limited), outside it by the
  server through the upstream resolvers (`Resolution.chase`), as a recursive
  resolver must: stub resolvers (glibc, musl) do not chase a CNAME-only answer.
- Labels compare case-insensitively (dnspython names do; ours are lower-cased).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset

from miniorch.core.objects import Obj

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
A, AAAA, CNAME, SRV, PTR, SOA, NS, ANY = (
    dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.CNAME, dns.rdatatype.SRV,
    dns.rdatatype.PTR, dns.rdatatype.SOA, dns.rdatatype.NS, dns.rdatatype.ANY)
MAX_CHAIN = 8
"""CNAMEs followed inside the zone before giving up (a loop of ExternalNames)."""


class Cache(Protocol):
    """An informer's read-only cache (machinery.informer.SharedInformer)."""

    def get(self, namespace: str, name: str) -> Obj | None: ...

    def list(self, namespace: str | None = None) -> list[Obj]: ...


@dataclass
class Resolution:
    rcode: dns.rcode.Rcode = dns.rcode.NOERROR
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    chase: dns.name.Name | None = None
    """A CNAME target outside the zone: resolve (name, type) upstream and append."""


# Records at one name: type → rdata texts; `None` from _records means "no such name".
Records = dict[dns.rdatatype.RdataType, list[str]]


def _ip_label(ip: str) -> str:
    """10.244.1.5 → 10-244-1-5 (IPv6: colons become dashes), CoreDNS' endpoint/pod form."""
    return ip.replace(".", "-").replace(":", "-")


def _reverse_origin(network: IPNetwork) -> dns.name.Name:
    """The reverse zone enclosing `network` on a label boundary (10.96.0.0/16 →
    96.10.in-addr.arpa; 10.244.0.0/12 → 10.in-addr.arpa)."""
    address = network.network_address
    labels = dns.name.from_text(address.reverse_pointer).labels
    step = 8 if network.version == 4 else 4
    keep = network.prefixlen // step
    total = 4 if network.version == 4 else 32
    return dns.name.Name(labels[total - keep:])


class ClusterZone:
    def __init__(self, *, domain: str, services: Cache, endpoints: Cache, pods: Cache,
                 namespaces: Cache, dns_ip: str, ttl: int = 5,
                 reverse_networks: Sequence[str] = ()) -> None:
        self.origin = dns.name.from_text(domain)
        self.services = services
        self.endpoints = endpoints
        self.pods = pods
        self.namespaces = namespaces
        self.dns_ip = dns_ip
        self.ttl = ttl
        self.networks: list[IPNetwork] = [ipaddress.ip_network(n) for n in reverse_networks]
        self.reverse_origins = [_reverse_origin(n) for n in self.networks]
        # Like CoreDNS: a serial from the start time (secondaries do not exist here;
        # it only has to be a valid, increasing-across-restarts number).
        self.serial = int(time.time()) & 0xFFFFFFFF

    # ---- which questions are ours ------------------------------------------------------

    def origin_of(self, qname: dns.name.Name) -> dns.name.Name | None:
        """The zone (cluster domain or a reverse zone) `qname` falls in, else None."""
        if qname.is_subdomain(self.origin):
            return self.origin
        for origin in self.reverse_origins:
            if qname.is_subdomain(origin):
                return origin
        return None

    def soa(self, origin: dns.name.Name) -> dns.rrset.RRset:
        mname = dns.name.from_text("ns.dns", self.origin)
        rname = dns.name.from_text("hostmaster", self.origin)
        return dns.rrset.from_text(origin, self.ttl, "IN", "SOA",
                                   f"{mname} {rname} {self.serial} 7200 1800 86400 "
                                   f"{self.ttl}")

    # ---- answering -----------------------------------------------------------------------

    def resolve(self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> Resolution:
        """The authoritative answer for a name `origin_of` claimed."""
        origin = self.origin_of(qname)
        assert origin is not None, "resolve() is for names of the zone"
        result = Resolution()
        name = qname
        for _ in range(MAX_CHAIN):
            records = self._records(name, origin)
            if records is None:
                if not result.answer:  # a CNAME into nowhere keeps the CNAME, NXDOMAIN
                    result.authority.append(self.soa(origin))
                result.rcode = dns.rcode.NXDOMAIN
                return result
            wanted = list(records) if rdtype == ANY else [rdtype]
            found = [t for t in wanted if records.get(t)]
            if found:
                for t in found:
                    rrset = self._rrset(name, t, records[t])
                    result.answer.append(rrset)
                    result.additional.extend(self._glue(t, records[t]))
                return result
            cname = records.get(CNAME)
            if not cname:
                result.authority.append(self.soa(origin))
                return result  # NODATA
            result.answer.append(self._rrset(name, CNAME, cname))
            target = dns.name.from_text(cname[0])
            next_origin = self.origin_of(target)
            if next_origin is None:
                result.chase = target
                return result
            name, origin = target, next_origin
        result.rcode = dns.rcode.SERVFAIL  # a CNAME loop inside the zone
        return result

    def _rrset(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType,
               texts: list[str]) -> dns.rrset.RRset:
        return dns.rrset.from_text_list(name, self.ttl, dns.rdataclass.IN, rdtype,
                                        sorted(set(texts)))

    def _glue(self, rdtype: dns.rdatatype.RdataType, texts: list[str]
              ) -> Iterator[dns.rrset.RRset]:
        """Addresses of SRV/NS targets inside the zone, so a client needs no second
        query (CoreDNS sends the same additional section)."""
        if rdtype not in (SRV, NS):
            return
        for text in sorted(set(texts)):
            target = dns.name.from_text(text.split()[-1])
            origin = self.origin_of(target)
            records = self._records(target, origin) if origin is not None else None
            for t in (A, AAAA):
                if records and records.get(t):
                    yield self._rrset(target, t, records[t])

    def _records(self, name: dns.name.Name, origin: dns.name.Name) -> Records | None:
        parts = [label.decode("ascii", "replace").lower()
                 for label in reversed(name.relativize(origin).labels)]
        if origin != self.origin:
            return self._reverse(name, origin)
        if not parts:
            return {SOA: [self.soa(origin)[0].to_text()],
                    NS: [f"ns.dns.{self.origin}"]}
        kind, rest = parts[0], parts[1:]
        if kind == "dns":
            if not rest:
                return {}
            return {A: [self.dns_ip]} if rest == ["ns"] else None
        if kind == "svc":
            return self._service_tree(rest)
        if kind == "pod":
            return self._pod_tree(rest)
        return None

    def _namespace_exists(self, namespace: str) -> bool:
        return self.namespaces.get("", namespace) is not None

    # ---- <...>.svc.<zone> ---------------------------------------------------------------

    def _service_tree(self, parts: list[str]) -> Records | None:
        if not parts:
            return {}
        namespace = parts[0]
        if len(parts) == 1:
            return {} if self._namespace_exists(namespace) else None
        svc = self.services.get(namespace, parts[1])
        if svc is None:
            return None
        rest = parts[2:]
        if not rest:
            return self._service_records(svc)
        if rest[0].startswith("_"):
            return self._srv_tree(svc, rest)
        if len(rest) == 1 and _is_headless(svc):
            ips = [ip for ip, host, _ in self._endpoint_addresses(svc) if host == rest[0]]
            if ips:
                return _address_records(ips)
        return None

    def _service_records(self, svc: Obj) -> Records:
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            target = str(spec.get("externalName") or "").rstrip(".")
            return {CNAME: [target + "."]} if target else {}
        if _is_headless(svc):
            return _address_records([ip for ip, _, _ in self._endpoint_addresses(svc)])
        ips = [str(ip) for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]
               if ip and ip != "None"]
        return _address_records(ips)

    def _srv_tree(self, svc: Obj, rest: list[str]) -> Records | None:
        """_<port>._<proto>.<svc>: the names exist for each named port (and `_<proto>`
        as an empty non-terminal above them)."""
        ports = [(str(p.get("name") or ""), str(p.get("protocol") or "TCP").lower())
                 for p in (svc.get("spec") or {}).get("ports") or []]
        named = [(name, proto) for name, proto in ports if name]
        if len(rest) == 1:
            return {} if any("_" + proto == rest[0] for _, proto in named) else None
        if len(rest) != 2 or not rest[1].startswith("_"):
            return None
        proto, port_name = rest[0][1:], rest[1][1:]
        if (port_name, proto) not in named:
            return None
        meta = svc.get("metadata") or {}
        service_name = f"{meta.get('name')}.{meta.get('namespace')}.svc.{self.origin}"
        if not _is_headless(svc):
            numbers = [int(p.get("port") or 0)
                       for p in (svc.get("spec") or {}).get("ports") or []
                       if p.get("name") == port_name
                       and str(p.get("protocol") or "TCP").lower() == proto]
            return {SRV: [f"0 100 {n} {service_name}" for n in numbers]}
        targets = [(host, port) for _, host, ports_of in self._endpoint_addresses(svc)
                   for name, port, protocol in ports_of
                   if name == port_name and protocol.lower() == proto]
        # CoreDNS' weights: the endpoints share 100 evenly.
        weight = 100 // len(targets) if targets else 100
        return {SRV: [f"0 {weight} {port} {host}.{service_name}" for host, port in targets]}

    def _endpoint_addresses(self, svc: Obj) -> list[tuple[str, str, list[tuple[str, int, str]]]]:
        """(ip, host label, ports) of the Service's endpoints: ready ones, and not-ready
        ones too when the Service publishes them (`publishNotReadyAddresses`)."""
        meta = svc.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        endpoints = self.endpoints.get(namespace, name)
        if endpoints is None:
            return []
        fields = ["addresses"]
        if (svc.get("spec") or {}).get("publishNotReadyAddresses"):
            fields.append("notReadyAddresses")
        found = []
        for subset in endpoints.get("subsets") or []:
            ports = [(str(p.get("name") or ""), int(p.get("port") or 0),
                      str(p.get("protocol") or "TCP")) for p in subset.get("ports") or []]
            for field_name in fields:
                for address in subset.get(field_name) or []:
                    ip = str(address.get("ip") or "")
                    if ip:
                        host = (address.get("hostname") or self._pod_hostname(address, name)
                                or _ip_label(ip))
                        found.append((ip, str(host).lower(), ports))
        return found

    def _pod_hostname(self, address: Obj, service: str) -> str | None:
        """The hostname Kubernetes' endpoints controller would have put on the address:
        its pod's spec.hostname, if the pod's spec.subdomain is this Service."""
        ref = address.get("targetRef") or {}
        if ref.get("kind") != "Pod":
            return None
        pod = self.pods.get(str(ref.get("namespace") or ""), str(ref.get("name") or ""))
        if pod is None or (ref.get("uid") and (pod.get("metadata") or {}).get("uid")
                           != ref.get("uid")):
            return None
        spec = pod.get("spec") or {}
        if spec.get("subdomain") == service and spec.get("hostname"):
            return str(spec["hostname"])
        return None

    # ---- <ip>.<ns>.pod.<zone> -----------------------------------------------------------

    def _pod_tree(self, parts: list[str]) -> Records | None:
        if not parts:
            return {}
        namespace = parts[0]
        if len(parts) == 1:
            return {} if self._namespace_exists(namespace) else None
        if len(parts) != 2:
            return None
        label = parts[1]
        ips = [str(ip) for pod in self.pods.list(namespace)
               for ip in _pod_ips(pod) if _ip_label(str(ip)) == label]
        return _address_records(ips) if ips else None

    # ---- reverse ---------------------------------------------------------------------------

    def _reverse(self, name: dns.name.Name, origin: dns.name.Name) -> Records | None:
        try:
            address = dns.reversename.to_address(name)
            ip = ipaddress.ip_address(address)
        except (dns.exception.SyntaxError, ValueError):
            # A partial name (0.96.10.in-addr.arpa) is an empty non-terminal when some
            # address of our networks lies below it.
            return {} if self._reverse_prefix_exists(name, origin) else None
        if not any(ip in network for network in self.networks):
            return None
        names = [f"{n}.svc.{self.origin}" for n in self._ptr_names(str(ip))]
        return {PTR: names} if names else None

    @staticmethod
    def _reverse_prefix_exists(name: dns.name.Name, origin: dns.name.Name) -> bool:
        # Octets between the reverse origin and a full address: the networks span
        # every value of them (the origin is their enclosing octet boundary).
        labels = name.relativize(origin).labels
        return all(label.isdigit() and int(label) < 256 for label in labels)

    def _ptr_names(self, ip: str) -> list[str]:
        """<svc>.<ns> for a ClusterIP; <host>.<svc>.<ns> for a headless endpoint."""
        names = []
        for svc in self.services.list():
            meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
            base = f"{meta.get('name')}.{meta.get('namespace')}"
            if ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]):
                names.append(base)
            elif _is_headless(svc):
                names.extend(f"{host}.{base}" for addr, host, _ in self._endpoint_addresses(svc)
                             if addr == ip)
        return names


def _is_headless(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("clusterIP") == "None" and spec.get("type") != "ExternalName"


def _pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [str(p.get("ip")) for p in status.get("podIPs") or [] if p.get("ip")]
    return ips or ([str(status["podIP"])] if status.get("podIP") else [])


def _address_records(ips: list[str]) -> Records:
    records: Records = {}
    for ip in ips:
        try:
            version = ipaddress.ip_address(ip).version
        except ValueError:
            continue
        records.setdefault(A if version == 4 else AAAA, []).append(ip)
    return records
