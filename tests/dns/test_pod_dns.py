"""A pod's /etc/resolv.conf as the kubelet forms it, and `dnsPolicy`/`dnsConfig`
validation, as Kubernetes does both (pkg/kubelet/network/dns, validatePodDNSConfig)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from miniorch.api.errors import Invalid
from miniorch.api.kinds import PODS, kind_of
from miniorch.core.objects import Obj
from miniorch.core.resolvconf import ResolvConf
from miniorch.node.dnsconfig import host_for_pods, pod_dns

HOST = ResolvConf(("192.0.2.53",), ("corp.example",), ("timeout:2",))


def pod(namespace: str = "shop", **spec: Any) -> Obj:
    return {"metadata": {"name": "web", "namespace": namespace},
            "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec}}


def resolv(p: Obj, host: ResolvConf = HOST) -> str:
    return pod_dns(p, cluster_domain="cluster.local", cluster_dns="10.96.0.10",
                   host=host).conf.render()


def test_cluster_first_is_the_default() -> None:
    expected = ("search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
                "nameserver 10.96.0.10\n"
                "options ndots:5\n")
    assert resolv(pod()) == expected
    assert resolv(pod(dnsPolicy="ClusterFirst")) == expected
    assert resolv(pod(dnsPolicy="ClusterFirstWithHostNet")) == expected
    # Only hostNetwork pods tell the two apart: ClusterFirst gives them the host's.
    assert resolv(pod(dnsPolicy="ClusterFirstWithHostNet", hostNetwork=True)) == expected
    assert resolv(pod(hostNetwork=True)) == resolv(pod(dnsPolicy="Default"))
    # Without host search domains, exactly Kubernetes' three.
    assert resolv(pod("default"), ResolvConf(("192.0.2.53",))) == (
        "search default.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\noptions ndots:5\n")


def test_default_is_the_hosts_and_none_is_dns_config_alone() -> None:
    assert resolv(pod(dnsPolicy="Default")) == (
        "search corp.example\nnameserver 192.0.2.53\noptions timeout:2\n")
    config = {"nameservers": ["192.0.2.1"], "searches": ["ns1.svc.cluster-domain.example"],
              "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}
    assert resolv(pod(dnsPolicy="None", dnsConfig=config)) == (
        "search ns1.svc.cluster-domain.example\nnameserver 192.0.2.1\n"
        "options ndots:2 edns0\n")


def test_dns_config_is_merged_into_the_policy() -> None:
    config = {"nameservers": ["10.96.0.10", "192.0.2.1"],
              "searches": ["svc.cluster.local", "extra.example"],
              "options": [{"name": "ndots", "value": "2"}, {"name": "single-request"}]}
    assert resolv(pod(dnsConfig=config)) == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example "
        "extra.example\n"
        "nameserver 10.96.0.10\nnameserver 192.0.2.1\n"
        "options ndots:2 single-request\n")


def test_resolver_limits_trim_with_a_warning() -> None:
    config = {"nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
              "searches": [f"d{i}.example" for i in range(40)]}
    formed = pod_dns(pod(dnsConfig=config), cluster_domain="cluster.local",
                     cluster_dns="10.96.0.10", host=HOST)
    assert formed.conf.nameservers == ("10.96.0.10", "192.0.2.1", "192.0.2.2")
    assert len(formed.conf.searches) == 32
    reasons = [reason for reason, _ in formed.warnings]
    assert reasons == ["DNSConfigForming", "DNSConfigForming"]
    assert formed.warnings[0][1] == (
        "Nameserver limits were exceeded, some nameservers have been omitted, the applied "
        "nameserver line is: 10.96.0.10 192.0.2.1 192.0.2.2")


def test_cluster_first_without_cluster_dns_falls_back_to_default() -> None:
    formed = pod_dns(pod(), cluster_domain="cluster.local", cluster_dns=None, host=HOST)
    assert formed.conf == HOST
    assert formed.warnings[0][0] == "MissingClusterDNS"


def test_a_loopback_host_resolver_is_not_given_to_pods(tmp_path: Path) -> None:
    resolved = tmp_path / "resolved.conf"
    stub = ResolvConf(("127.0.0.53",), ("lan",), ("edns0", "trust-ad"))
    # systemd-resolved: its real upstreams are taken where it lists them...
    resolved.write_text("nameserver 192.0.2.9\nnameserver 192.0.2.10\nsearch lan\n")
    assert host_for_pods(stub, "10.96.0.10", resolved) == ResolvConf(
        ("192.0.2.9", "192.0.2.10"), ("lan",), ("edns0", "trust-ad"))
    # ...else the cluster DNS, which runs in the host's namespace, forwards to it.
    assert host_for_pods(stub, "10.96.0.10", tmp_path / "missing") == ResolvConf(
        ("10.96.0.10",), ("lan",), ("edns0", "trust-ad"))
    mixed = ResolvConf(("127.0.0.1", "192.0.2.1"))
    assert host_for_pods(mixed, "10.96.0.10", tmp_path / "missing").nameservers == (
        "192.0.2.1", "10.96.0.10")
    plain = ResolvConf(("192.0.2.1",))
    assert host_for_pods(plain, "10.96.0.10", resolved) == plain


def test_resolv_conf_parsing_follows_glibc() -> None:
    text = ("# comment\nnameserver 192.0.2.1 ; trailing\ndomain old.example\n"
            "search a.example b.example\nnameserver 192.0.2.2\noptions ndots:2\n"
            "options rotate\nsortlist 10.0.0.0\n")
    assert ResolvConf.parse(text) == ResolvConf(("192.0.2.1", "192.0.2.2"),
                                                ("a.example", "b.example"),
                                                ("ndots:2", "rotate"))
    assert ResolvConf.parse("search x\ndomain y\n").searches == ("y",)


# ---- validation -----------------------------------------------------------------------


def causes(spec: dict[str, Any]) -> list[tuple[str, str]]:
    obj = copy.deepcopy(pod("default", **spec))
    kind = kind_of(PODS)
    kind.apply_defaults(obj)
    with pytest.raises(Invalid) as info:
        kind.check(obj, None)
    return [(c.field, c.message) for c in info.value.causes]


def valid(spec: dict[str, Any]) -> None:
    obj = copy.deepcopy(pod("default", **spec))
    kind_of(PODS).apply_defaults(obj)
    kind_of(PODS).check(obj, None)


def test_dns_policy_defaults_and_choices() -> None:
    obj = pod()
    kind_of(PODS).apply_defaults(obj)
    assert obj["spec"]["dnsPolicy"] == "ClusterFirst"
    assert causes({"dnsPolicy": "Cluster"}) == [(
        "spec.dnsPolicy", 'Unsupported value: "Cluster": supported values: "ClusterFirst", '
        '"ClusterFirstWithHostNet", "Default", "None"')]


def test_none_needs_a_nameserver() -> None:
    assert causes({"dnsPolicy": "None"}) == [(
        "spec.dnsConfig", "Required value: must provide `dnsConfig` when `dnsPolicy` is None")]
    assert causes({"dnsPolicy": "None", "dnsConfig": {"searches": ["a.example"]}}) == [(
        "spec.dnsConfig.nameservers", "Required value: must provide at least one DNS "
        "nameserver when `dnsPolicy` is None")]
    valid({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["192.0.2.1"]}})


def test_dns_config_fields() -> None:
    found = causes({"dnsConfig": {
        "nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3", "bad"],
        "searches": ["ok.example.", "Bad_Domain"],
        "options": [{"name": "ndots", "value": "2"}, {"value": "1"}]}})
    assert found == [
        ("spec.dnsConfig.nameservers", 'Invalid value: []string{"192.0.2.1", "192.0.2.2", '
         '"192.0.2.3", "bad"}: must not have more than 3 nameservers'),
        ("spec.dnsConfig.nameservers[3]", 'Invalid value: "bad": must be a valid IP address, '
         "(e.g. 10.9.8.7 or 2001:db8::ffff)"),
        ("spec.dnsConfig.searches[1]", 'Invalid value: "Bad_Domain": a lowercase RFC 1123 '
         "subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
         "must start and end with an alphanumeric character (e.g. 'example.com', regex "
         "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*"
         "[a-z0-9])?)*')"),
        ("spec.dnsConfig.options[1]", "Required value: must not be empty")]
    many = [f"d{i}.example" for i in range(33)]
    assert causes({"dnsConfig": {"searches": many}})[0][1].endswith(
        "must not have more than 32 search paths")
    valid({"dnsPolicy": "Default", "dnsConfig": {"options": [{"name": "edns0"}]}})


def test_subdomain_is_a_label() -> None:
    assert causes({"hostname": "web-0", "subdomain": "a.b"})[0][0] == "spec.subdomain"
    valid({"hostname": "web-0", "subdomain": "web"})
