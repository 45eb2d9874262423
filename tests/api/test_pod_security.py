"""Pod Security Admission: the checks' messages (unit) and what the real kubectl 1.32
shows against a real ApiServer: refusals (403), warnings, namespace-label dry runs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from miniorch.api import warning
from miniorch.api.errors import Forbidden, Invalid
from miniorch.api.kinds import DEPLOYMENTS, NAMESPACES, PODS
from miniorch.api.podsecurity import (
    LATEST,
    LevelVersion,
    Version,
    checks_for,
    evaluate,
    policy_of,
)
from miniorch.api.registry import Registry
from miniorch.core.objects import Obj
from tests.api.server_support import Cluster, make_registry, running_cluster


def pod(name: str = "x", namespace: str = "default", *, spec: Obj | None = None,
        container: Obj | None = None) -> Obj:
    c: Obj = {"name": "x", "image": "busybox", **(container or {})}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [c], **(spec or {})}}


def detail(level: str, p: Obj, version: Version = LATEST) -> str:
    return evaluate(LevelVersion(level, version), p["metadata"], p["spec"]).detail


# ---- the checks, message for message --------------------------------------------------

@pytest.mark.parametrize(("p", "expected"), [
    pytest.param(pod(container={"securityContext": {"privileged": True}}),
                 'privileged (container "x" must not set securityContext.privileged=true)',
                 id="privileged"),
    pytest.param(pod(spec={"hostNetwork": True, "hostPID": True}),
                 "host namespaces (hostNetwork=true, hostPID=true)", id="host-namespaces"),
    pytest.param(pod(container={"ports": [{"containerPort": 80, "hostPort": 8080},
                                          {"containerPort": 443, "hostPort": 443}]}),
                 'hostPort (container "x" uses hostPorts 443, 8080)', id="host-ports"),
    pytest.param(pod(spec={"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}),
                 'hostPath volumes (volume "h")', id="host-path"),
    pytest.param(pod(container={"securityContext": {"capabilities": {
        "add": ["SYS_ADMIN", "NET_ADMIN", "CHOWN"]}}}),
        'non-default capabilities (container "x" must not include "NET_ADMIN", "SYS_ADMIN" '
        "in securityContext.capabilities.add)", id="capabilities"),
    pytest.param(pod(spec={"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
                 'seccompProfile (pod must not set securityContext.seccompProfile.type to '
                 '"Unconfined")', id="seccomp"),
    pytest.param(pod(spec={"securityContext": {"sysctls": [{"name": "kernel.msgmax",
                                                             "value": "1"}]}}),
                 "forbidden sysctls (kernel.msgmax)", id="sysctls"),
    pytest.param(pod(container={"securityContext": {"procMount": "Unmasked"}}),
                 'procMount (container "x" must not set securityContext.procMount to '
                 '"Unmasked")', id="proc-mount"),
    pytest.param(pod(), "", id="ordinary-pod-passes"),
])
def test_baseline_messages(p: Obj, expected: str) -> None:
    assert detail("baseline", p) == expected


def test_baseline_reports_every_violation_in_kubes_order() -> None:
    p = pod(spec={"hostNetwork": True},
            container={"securityContext": {"privileged": True}})
    assert detail("baseline", p) == (
        'host namespaces (hostNetwork=true), privileged (container "x" must not set '
        "securityContext.privileged=true)")


def test_restricted_messages_and_overrides() -> None:
    p = pod(spec={"volumes": [{"name": "h", "hostPath": {"path": "/"}}]},
            container={"securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}})
    # restrictedVolumes replaces hostPathVolumes, capabilities_restricted replaces
    # capabilities_baseline; the restricted ids follow the baseline ones.
    assert detail("restricted", p) == (
        'allowPrivilegeEscalation != false (container "x" must set '
        "securityContext.allowPrivilegeEscalation=false), unrestricted capabilities "
        '(container "x" must set securityContext.capabilities.drop=["ALL"]; container "x" '
        'must not include "SYS_ADMIN" in securityContext.capabilities.add), restricted '
        'volume types (volume "h" uses restricted volume type "hostPath"), runAsNonRoot != '
        'true (pod or container "x" must set securityContext.runAsNonRoot=true), '
        'seccompProfile (pod or container "x" must set securityContext.seccompProfile.type '
        'to "RuntimeDefault" or "Localhost")')
    good = pod(spec={"securityContext": {"runAsNonRoot": True,
                                         "seccompProfile": {"type": "RuntimeDefault"}}},
               container={"securityContext": {"allowPrivilegeEscalation": False,
                                              "capabilities": {"drop": ["ALL"]}}})
    assert detail("restricted", good) == ""


def test_versions_pin_the_checks() -> None:
    # runAsUser arrived in v1.23; v1.37's extra sysctls are beyond this server (v1.32).
    assert len(checks_for(LevelVersion("restricted", Version(1, 22)))) + 1 == len(
        checks_for(LevelVersion("restricted", Version(1, 23))))
    assert checks_for(LevelVersion("privileged")) == []
    rmem = pod(spec={"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_rmem",
                                                       "value": "1"}]}})
    assert detail("baseline", rmem, Version(1, 31)) == "forbidden sysctls (net.ipv4.tcp_rmem)"
    assert detail("baseline", rmem) == ""


def test_policy_from_labels() -> None:
    defaults = policy_of({}, policy_of({}, _defaults())[0])[0]
    policy, causes = policy_of({"pod-security.kubernetes.io/enforce": "restricted",
                                "pod-security.kubernetes.io/enforce-version": "v1.25"},
                               defaults)
    assert not causes
    assert str(policy.enforce) == "restricted:v1.25"
    assert str(policy.warn) == "restricted:v1.25"  # warn follows a stricter enforce
    policy, causes = policy_of({"pod-security.kubernetes.io/enforce": "nope"}, defaults)
    assert policy.enforce.level == "restricted"
    assert [c.message for c in causes] == [
        'Invalid value: "nope": must be one of privileged, baseline, restricted']


def _defaults() -> Any:
    from miniorch.api.podsecurity import PodSecurityConfig
    return PodSecurityConfig().defaults


# ---- through the registry -------------------------------------------------------------

@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    r = make_registry(tmp_path)
    yield r
    r.store.close()


def label(registry: Registry, ns: str, **labels: str) -> list[str]:
    obj = registry.get(NAMESPACES, "", ns)
    obj["metadata"].setdefault("labels", {}).update(
        {f"pod-security.kubernetes.io/{k.replace('_', '-')}": v for k, v in labels.items()})
    with warning.collecting() as warnings:
        registry.update(NAMESPACES, obj)
    return warnings


def test_registry_enforces_baseline_by_default(registry: Registry) -> None:
    with pytest.raises(Forbidden) as refused:
        registry.create(PODS, pod(spec={"hostPID": True}), dry_run=True)
    assert refused.value.message == ('pods "x" is forbidden: violates PodSecurity '
                                     '"baseline:latest": host namespaces (hostPID=true)')
    assert refused.value.to_status()["code"] == 403
    # kube-system is exempt; an opted-in namespace gets what it asks for.
    registry.create(PODS, pod(namespace="kube-system", spec={"hostPID": True}))
    registry.create(NAMESPACES, {"metadata": {"name": "ops", "labels": {
        "pod-security.kubernetes.io/enforce": "privileged"}}})
    registry.create(PODS, pod(namespace="ops", spec={"hostPID": True}))


def test_pod_updates_are_checked_only_when_an_image_changes(registry: Registry) -> None:
    registry.create(NAMESPACES, {"metadata": {"name": "ops", "labels": {
        "pod-security.kubernetes.io/enforce": "privileged"}}})
    created = registry.create(PODS, pod(namespace="ops", spec={"hostIPC": True}))
    label(registry, "ops", enforce="baseline")
    created["metadata"]["labels"] = {"touched": "yes"}
    created = registry.update(PODS, created)  # metadata only: allowed
    created["spec"]["containers"][0]["image"] = "busybox:2"
    with pytest.raises(Forbidden, match=r"host namespaces \(hostIPC=true\)"):
        registry.update(PODS, created)


def test_workloads_warn_and_audit_but_are_not_refused(registry: Registry) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "web", "namespace": "default"},
                  "spec": {"selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": pod(spec={"hostNetwork": True})["spec"]}}}
    with warning.collecting() as warnings, capture_logs() as logs:
        registry.create(DEPLOYMENTS, deployment)
    assert warnings == ['would violate PodSecurity "baseline:latest": host namespaces '
                        "(hostNetwork=true)"]
    audit = [e for e in logs if e["event"] == "pod-security audit"]
    assert audit and audit[0]["audit-violations"] == warnings[0]
    assert audit[0]["resource"] == "deployments" and audit[0]["name"] == "web"


def test_namespace_labels_validated_and_dry_run(registry: Registry) -> None:
    with pytest.raises(Invalid) as bad:
        registry.create(NAMESPACES, {"metadata": {"name": "bad", "labels": {
            "pod-security.kubernetes.io/warn-version": "1.25"}}})
    assert bad.value.message == (
        'Namespace "bad" is invalid: metadata.labels[pod-security.kubernetes.io/warn-version]: '
        'Invalid value: "1.25": must be "latest" or "v1.x"')
    registry.create(NAMESPACES, {"metadata": {"name": "ops", "labels": {
        "pod-security.kubernetes.io/enforce": "privileged"}}})
    for name in ("b", "a", "c"):
        registry.create(PODS, pod(name, "ops", spec={"hostNetwork": True}))
    registry.create(PODS, pod("p", "ops", container={"securityContext": {"privileged": True}}))
    registry.create(PODS, pod("fine", "ops"))
    assert label(registry, "ops", enforce="baseline") == [
        'existing pods in namespace "ops" violate the new PodSecurity enforce level '
        '"baseline:latest"',
        "a (and 2 other pods): host namespaces",
        "p: privileged"]
    # Relaxing (or keeping) the level dry-runs nothing.
    assert label(registry, "ops", enforce="privileged") == []
    assert label(registry, "kube-system", enforce="restricted") == [
        'namespace "kube-system" is exempt from Pod Security, and the policy '
        "(enforce=restricted:latest) will be ignored"]


# ---- the real kubectl ------------------------------------------------------------------

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(tmp_path) as c:
        yield c


@needs_kubectl
def test_kubectl_sees_refusals_and_warnings(cluster: Cluster) -> None:
    privileged = json.dumps(pod("priv", container={"securityContext": {"privileged": True}},
                                spec={"hostNetwork": True}))
    code, _, err = cluster.kubectl("apply", "-f", "-", stdin=privileged.encode())
    assert code == 1
    assert err.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": pods "priv" is '
        'forbidden: violates PodSecurity "baseline:latest": host namespaces '
        '(hostNetwork=true), privileged (container "x" must not set '
        "securityContext.privileged=true)")
    code, out, err = cluster.kubectl("run", "ok", "--image=busybox")
    assert code == 0 and err == "", err

    code, out, err = cluster.kubectl("create", "namespace", "ops")
    code, out, err = cluster.kubectl("label", "ns", "ops",
                                     "pod-security.kubernetes.io/enforce=privileged",
                                     "pod-security.kubernetes.io/warn=baseline")
    assert code == 0, err
    in_ops = privileged.replace('"namespace": "default"', '"namespace": "ops"')
    code, out, err = cluster.kubectl("apply", "-f", "-", stdin=in_ops.encode())
    assert code == 0, err
    assert "Warning: would violate PodSecurity \"baseline:latest\": host namespaces" in err

    code, out, err = cluster.kubectl("label", "--overwrite", "ns", "ops",
                                     "pod-security.kubernetes.io/enforce=restricted")
    assert code == 0, err
    assert err.splitlines() == [
        'Warning: existing pods in namespace "ops" violate the new PodSecurity enforce level '
        '"restricted:latest"',
        "Warning: priv: host namespaces, privileged, allowPrivilegeEscalation != false, "
        "unrestricted capabilities, runAsNonRoot != true, seccompProfile"], err
    assert out.strip() == "namespace/ops labeled"

    code, _, err = cluster.kubectl("label", "--overwrite", "ns", "ops",
                                   "pod-security.kubernetes.io/audit=sometimes")
    assert code == 1
    assert ('The Namespace "ops" is invalid: metadata.labels[pod-security.kubernetes.io/audit]'
            ': Invalid value: "sometimes": must be one of privileged, baseline, restricted'
            in err), err
