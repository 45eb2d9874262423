"""`cluster-info` names the cluster services as kubectl does (CoreDNS for kube-dns):
the real kubectl and miniorch's CLI against the same stub API must print the same."""

from __future__ import annotations

from pathlib import Path

from miniorch.core.objects import Obj
from miniorch.core.settings import DnsSettings
from miniorch.dns.objects import kube_dns_service
from tests.cli.cli_support import stub_api
from tests.cli.conftest import needs_kubectl, run_cli, run_kubectl


def services() -> Obj:
    kube_dns = kube_dns_service(DnsSettings())
    cluster_service = {"kubernetes.io/cluster-service": "true"}
    https_unnamed = {"metadata": {"name": "secure", "namespace": "kube-system",
                                  "labels": cluster_service},
                     "spec": {"ports": [{"port": 443, "protocol": "TCP"}]}}
    balanced = {"metadata": {"name": "metrics", "namespace": "kube-system",
                             "labels": {**cluster_service, "kubernetes.io/name": "Metrics"}},
                "spec": {"type": "LoadBalancer",
                         "ports": [{"name": "web", "port": 80}, {"name": "alt", "port": 81}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "127.0.100.9"}]}}}
    unnamed = {"metadata": {"name": "plain", "namespace": "kube-system",
                            "labels": cluster_service},
               "spec": {"ports": [{"port": 8080, "protocol": "TCP"}]}}
    return {"kind": "ServiceList", "apiVersion": "v1", "metadata": {},
            "items": [kube_dns, https_unnamed, balanced, unnamed]}


@needs_kubectl
def test_cluster_info_like_kubectl(tmp_path: Path) -> None:
    with stub_api(tmp_path) as api:
        api.route("GET", "/api/v1/namespaces/kube-system/services", services())
        expected = run_kubectl(api, tmp_path, "cluster-info")
        assert expected.code == 0, expected.err
        ours = run_cli("--state-dir", str(tmp_path / "home"), "--kubeconfig",
                       str(api.kubeconfig), "cluster-info")
        assert ours.code == 0, ours.err
    assert ours.out == expected.out
    assert (f"CoreDNS is running at {api.url}/api/v1/namespaces/kube-system/services/"
            "kube-dns:dns/proxy") in ours.out
