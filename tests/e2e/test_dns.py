"""Cluster DNS on the real cluster, with the real kubectl and real pods.

What the issue checks: `kubia-http` and `kubia-http.default.svc.cluster.local` resolve
to the ClusterIP inside a pod, a headless Service gives its pods' IPs, busybox's
nslookup answers, and `cluster-info` shows CoreDNS. Pods reach the server through
kube-dns' ClusterIP 10.96.0.10, which the service proxy relays (UDP and TCP) to the
server on the gateway 10.244.0.1:53; `test_the_server_answers_on_the_gateway` checks the
server without the proxy.

Network: the suite's cluster runs with `--dns-upstream none` (conftest.py), so a name
outside the cluster is SERVFAIL at once and nothing is ever sent off the machine; the
names asked here are the cluster's, and nslookup gets absolute names (a trailing dot)
because busybox walks the whole search list for every name and type.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.e2e.conftest import RunningCluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]

NS = f"dns-{os.urandom(3).hex()}"
RESOLVER = f"resolver-{os.urandom(3).hex()}"
GATEWAY = "10.244.0.1"
KUBE_DNS = "10.96.0.10"
RESOLVE = ("import socket, sys\n"
           "for name in sys.argv[1:]:\n"
           "    try:\n"
           "        ips = sorted({a[4][0] for a in socket.getaddrinfo(name, 80, "
           "type=socket.SOCK_STREAM)})\n"
           "    except OSError as exc:\n"
           "        ips = ['error:' + type(exc).__name__]\n"
           "    print(name, ' '.join(ips))\n")


def apply(cluster: RunningCluster, *objects: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def pod(name: str, namespace: str, image: str, command: list[str], **spec: Any
        ) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app": name.split("-")[0]}},
            "spec": {"terminationGracePeriodSeconds": 1, **spec,
                     "containers": [{"name": "main", "image": image, "command": command}]}}


def running(cluster: RunningCluster, namespace: str, name: str) -> dict[str, Any] | None:
    obj = json.loads(cluster.kubectl("get", "pod", "-n", namespace, name, "-o", "json",
                                     check=False).stdout or "{}")
    ready = [c for c in (obj.get("status") or {}).get("conditions") or []
             if c.get("type") == "Ready" and c.get("status") == "True"]
    return obj if ready else None


@pytest.fixture(scope="module")
def pods(cluster: RunningCluster) -> Iterator[dict[str, str]]:
    """Pod IPs: the resolver (python, in `default` beside kubia-http) and two peers of
    a headless Service (busybox, hostname + subdomain) in this suite's namespace."""
    cluster.kubectl("create", "namespace", NS)
    try:
        apply(cluster,
              {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "peers", "namespace": NS},
               "spec": {"clusterIP": "None", "selector": {"app": "peer"},
                        "ports": [{"name": "gossip", "port": 7946}]}},
              pod(RESOLVER, "default", "python",
                  ["python3", "-c", "import time; time.sleep(3600)"]),
              *(pod(f"peer-{i}", NS, "busybox", ["sleep", "3600"], hostname=f"peer-{i}",
                    subdomain="peers") for i in range(2)))
        ips = {}
        for namespace, name in (("default", RESOLVER), (NS, "peer-0"), (NS, "peer-1")):
            obj = wait_for(lambda n=namespace, p=name: running(cluster, n, p), timeout=90,
                           what=f"pod {namespace}/{name} Ready")
            ips[name] = obj["status"]["podIP"]
        yield ips
    finally:
        cluster.kubectl("delete", "pod", "-n", "default", RESOLVER, "--wait=false",
                        check=False)
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def cluster_ip(cluster: RunningCluster, namespace: str, name: str) -> str:
    svc = json.loads(cluster.kubectl("get", "svc", "-n", namespace, name, "-o", "json").stdout)
    return str(svc["spec"]["clusterIP"])


def exec_in(cluster: RunningCluster, namespace: str, name: str, *command: str,
            check: bool = True) -> str:
    return cluster.kubectl("exec", "-n", namespace, name, "--", *command, check=check,
                           timeout=60).stdout


def test_kube_dns_service_endpoints_and_cluster_info(cluster: RunningCluster) -> None:
    svc = json.loads(cluster.kubectl("get", "svc", "-n", "kube-system", "kube-dns",
                                     "-o", "json").stdout)
    assert svc["spec"]["clusterIP"] == KUBE_DNS
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]
    assert svc["metadata"]["labels"]["kubernetes.io/name"] == "CoreDNS"
    endpoints = cluster.kubectl("get", "endpoints", "-n", "kube-system", "kube-dns").stdout
    assert endpoints.splitlines()[1].split()[:2] == ["kube-dns", f"{GATEWAY}:53,{GATEWAY}:53"]
    line = (f"CoreDNS is running at https://127.0.0.1:{cluster.api_port}/api/v1/namespaces/"
            "kube-system/services/kube-dns:dns/proxy")
    assert line in cluster.kubectl("cluster-info").stdout
    assert line in cluster.cli("cluster-info").stdout


def test_pods_get_kubernetes_resolv_conf(cluster: RunningCluster,
                                         pods: dict[str, str]) -> None:
    assert exec_in(cluster, NS, "peer-0", "cat", "/etc/resolv.conf") == (
        f"search {NS}.svc.cluster.local svc.cluster.local cluster.local\n"
        f"nameserver {KUBE_DNS}\noptions ndots:5\n")


def test_the_server_answers_on_the_gateway(cluster: RunningCluster,
                                           pods: dict[str, str]) -> None:
    """The DNS server itself, at its endpoint (no service proxy in the way)."""
    kubia = cluster_ip(cluster, "default", "kubia-http")
    query = dns.message.make_query("kubia-http.default.svc.cluster.local", "A")
    for reply in (dns.query.udp(query, GATEWAY, timeout=5),
                  dns.query.tcp(query, GATEWAY, timeout=5)):
        assert [rr.to_text() for rrset in reply.answer for rr in rrset] == [kubia]
    outside = dns.query.udp(dns.message.make_query("example.com", "A"), GATEWAY, timeout=5)
    assert outside.rcode() == dns.rcode.SERVFAIL  # --dns-upstream none: never forwarded
    # From inside a pod, naming the server (busybox nslookup NAME SERVER).
    out = exec_in(cluster, NS, "peer-0", "nslookup",
                  f"peers.{NS}.svc.cluster.local.", GATEWAY)
    assert f"Address: {pods['peer-0']}" in out and f"Address: {pods['peer-1']}" in out


def test_names_resolve_in_pods_through_kube_dns(cluster: RunningCluster,
                                                pods: dict[str, str]) -> None:
    """Through 10.96.0.10: needs the service proxy's UDP relay and TCP passthrough."""
    kubia = cluster_ip(cluster, "default", "kubia-http")
    out = exec_in(cluster, "default", RESOLVER, "python3", "-c", RESOLVE, "kubia-http",
                  "kubia-http.default.svc.cluster.local", f"peers.{NS}",
                  f"peer-1.peers.{NS}.svc.cluster.local",
                  f"{pods['peer-0'].replace('.', '-')}.{NS}.pod.cluster.local")
    assert out.splitlines() == [
        f"kubia-http {kubia}",
        f"kubia-http.default.svc.cluster.local {kubia}",
        f"peers.{NS} {' '.join(sorted([pods['peer-0'], pods['peer-1']]))}",
        f"peer-1.peers.{NS}.svc.cluster.local {pods['peer-1']}",
        f"{pods['peer-0'].replace('.', '-')}.{NS}.pod.cluster.local {pods['peer-0']}"]
    nslookup = exec_in(cluster, NS, "peer-0", "nslookup",
                       "kubia-http.default.svc.cluster.local.")
    assert f"Server:\t\t{KUBE_DNS}" in nslookup and f"Address: {kubia}" in nslookup
    # TCP through the ClusterIP too (what a client does after a truncated answer).
    reply = dns.query.tcp(dns.message.make_query("kubia-http.default.svc.cluster.local",
                                                 "A"), KUBE_DNS, timeout=5)
    assert [rr.to_text() for rrset in reply.answer for rr in rrset] == [kubia]
