"""A pod's /etc/resolv.conf, as the kubelet forms it (pkg/kubelet/network/dns).

    pod.spec.dnsPolicy ──┬─ ClusterFirst (default), ClusterFirstWithHostNet:
                         │    nameserver <kube-dns ClusterIP>, search <ns>.svc.<domain>
                         │    svc.<domain> <domain> + the host's searches, options ndots:5
                         ├─ Default: the host's resolv.conf (see `host_for_pods`)
                         └─ None: nothing; dnsConfig alone
    + pod.spec.dnsConfig: nameservers and searches appended (duplicates dropped),
      options merged by name (the pod's value wins)
    → trimmed to resolver limits: 3 nameservers, 32 search domains / 2048 characters
      (each trim is a warning the pod worker turns into a DNSConfigForming event)

A hostNetwork pod with ClusterFirst gets Default (the host's resolvers); only
ClusterFirstWithHostNet gives it the cluster DNS. Without cluster DNS (rootless mode: no bridge, no
server) `cluster_dns` is None and ClusterFirst falls back to Default, as the kubelet
does without --cluster-dns (event MissingClusterDNS).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from miniorch.core.objects import Obj
from miniorch.core.resolvconf import ResolvConf, is_loopback

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
DEFAULT_OPTIONS = ("ndots:5",)
SYSTEMD_RESOLVED_UPSTREAMS = Path("/run/systemd/resolve/resolv.conf")


@dataclass(frozen=True)
class PodDns:
    conf: ResolvConf
    warnings: list[tuple[str, str]] = field(default_factory=list)
    """(reason, message) events for the pod: a limit trimmed the file, or ClusterFirst
    had no cluster DNS."""


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


def _merge_options(base: Iterable[str], extra: Iterable[Obj]) -> list[str]:
    """Options by name, in first-seen order; a pod's `{name, value}` overrides the base."""
    merged: dict[str, str | None] = {}
    for text in base:
        name, sep, setting = text.partition(":")
        merged[name] = setting if sep else None
    for option in extra:
        name = str(option.get("name") or "")
        if name:
            value = option.get("value")
            merged[name] = None if value is None else str(value)
    return [name if value is None or value == "" else f"{name}:{value}"
            for name, value in merged.items()]


def host_for_pods(host: ResolvConf, cluster_dns: str | None,
                  resolved_upstreams: Path = SYSTEMD_RESOLVED_UPSTREAMS) -> ResolvConf:
    """The host's resolver settings as a pod can use them (`dnsPolicy: Default`).

    A loopback nameserver (systemd-resolved's 127.0.0.53, a local dnsmasq) answers in
    the host's network namespace only; in a pod's it is the pod's own loopback. Like
    kubeadm pointing the kubelet at systemd-resolved's real upstreams, take those when
    the host lists only loopback; a loopback nameserver still left is replaced by the
    cluster DNS, which runs in the host's namespace and forwards to it.
    """
    if host.nameservers and all(is_loopback(ns) for ns in host.nameservers):
        real = ResolvConf.read(resolved_upstreams)
        if real.nameservers and not any(is_loopback(ns) for ns in real.nameservers):
            host = ResolvConf(real.nameservers, host.searches or real.searches,
                              host.options)
    nameservers = [ns for ns in host.nameservers if not is_loopback(ns)]
    if len(nameservers) < len(host.nameservers) and cluster_dns is not None:
        nameservers.append(cluster_dns)
    return ResolvConf(tuple(_unique(nameservers)), host.searches, host.options)


def pod_dns(pod: Obj, *, cluster_domain: str, cluster_dns: str | None,
            host: ResolvConf) -> PodDns:
    """The resolv.conf of `pod`; `host` is `host_for_pods(...)` of the node."""
    spec = pod.get("spec") or {}
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirst" and spec.get("hostNetwork") is True:
        policy = "Default"  # the kubelet's rule: only ClusterFirstWithHostNet gets kube-dns
    warnings: list[tuple[str, str]] = []
    nameservers: list[str]
    searches: list[str]
    options: list[str]
    if policy == "None":
        nameservers, searches, options = [], [], []
    elif policy in ("ClusterFirst", "ClusterFirstWithHostNet") and cluster_dns:
        nameservers = [cluster_dns]
        searches = _unique([f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}",
                            cluster_domain, *host.searches])
        options = list(DEFAULT_OPTIONS)
    else:
        if policy != "Default":
            warnings.append(("MissingClusterDNS",
                             f"pod: \"{pod.get('metadata', {}).get('name', '')}_{namespace}\". "
                             "kubelet does not have ClusterDNS IP configured and cannot "
                             f"create Pod using \"{policy}\" policy. Falling back to "
                             "\"Default\" policy."))
        nameservers, searches = list(host.nameservers), list(host.searches)
        options = list(host.options)
    config = spec.get("dnsConfig") or {}
    nameservers = _unique([*nameservers, *(str(n) for n in config.get("nameservers") or [])])
    searches = _unique([*searches, *(str(s) for s in config.get("searches") or [])])
    options = _merge_options(options, config.get("options") or [])
    if len(nameservers) > MAX_NAMESERVERS:
        nameservers = nameservers[:MAX_NAMESERVERS]
        warnings.append(("DNSConfigForming",
                         "Nameserver limits were exceeded, some nameservers have been "
                         f"omitted, the applied nameserver line is: {' '.join(nameservers)}"))
    trimmed = _fit_searches(searches)
    if trimmed != searches:
        searches = trimmed
        warnings.append(("DNSConfigForming",
                         "Search Line limits were exceeded, some search paths have been "
                         f"omitted, the applied search line is: {' '.join(searches)}"))
    return PodDns(ResolvConf(tuple(nameservers), tuple(searches), tuple(options)), warnings)


def _fit_searches(searches: list[str]) -> list[str]:
    """At most 32 domains in at most 2048 characters (spaces included), dropping from
    the end, as the kubelet's formDNSSearchFitsLimits does."""
    fitted = searches[:MAX_SEARCHES]
    while fitted and len(" ".join(fitted)) > MAX_SEARCH_CHARS:
        fitted.pop()
    return fitted
