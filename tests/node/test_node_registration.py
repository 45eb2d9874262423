"""Node registration, heartbeat (Lease + Ready condition) and node events."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from miniorch.api.kinds import LEASES, NODES
from miniorch.api.registry import Registry
from miniorch.core.clock import parse_rfc3339
from miniorch.core.settings import Settings
from miniorch.node.processes import ProcessRuntime
from tests.node.nodehelpers import condition, events_of, running_kubelet, wait_for


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


async def test_node_registers_with_capacity_info_and_conditions(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        obj = registry.get(NODES, "", node.name)
        labels = obj["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == node.name
        assert labels["kubernetes.io/os"] == "linux"
        assert labels["kubernetes.io/arch"] == "amd64"
        assert not any(k.startswith("node-role") for k in labels)
        cidr = f"10.244.{node.index}.0/24"
        assert obj["spec"]["podCIDR"] == cidr and obj["spec"]["podCIDRs"] == [cidr]
        status = obj["status"]
        capacity = status["capacity"]
        assert capacity["cpu"] == str(psutil.cpu_count())
        assert capacity["memory"] == f"{psutil.virtual_memory().total // 1024}Ki"
        assert capacity["pods"] == "110"
        assert capacity["ephemeral-storage"].endswith("Ki")
        assert status["allocatable"] == capacity
        info = status["nodeInfo"]
        assert set(info) == {"machineID", "systemUUID", "bootID", "kernelVersion", "osImage",
                             "containerRuntimeVersion", "kubeletVersion", "kubeProxyVersion",
                             "operatingSystem", "architecture"}
        assert all(isinstance(v, str) and v for v in info.values()), info
        assert info["bootID"] == _boot_id()
        assert info["kubeletVersion"] == info["kubeProxyVersion"] == "v1.32.0-miniorch"
        assert info["containerRuntimeVersion"].startswith("miniorch://")
        assert (info["operatingSystem"], info["architecture"]) == ("linux", "amd64")
        assert status["addresses"] == [
            {"type": "InternalIP", "address": f"127.0.1.{node.index}"},
            {"type": "Hostname", "address": node.name}]
        assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
        ready = condition(obj, "Ready")
        assert (ready["status"], ready["reason"], ready["message"]) == (
            "True", "KubeletReady", "kubelet is posting ready status")
        for ctype in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            assert condition(obj, ctype)["status"] == "False"
            assert condition(obj, ctype)["lastHeartbeatTime"]
        await wait_for(lambda: {"Starting", "NodeReady"} <= {
            reason for _t, reason, _m in events_of(registry, obj)}, what="node events")
        assert ("Normal", "Starting", "Starting kubelet.") in events_of(registry, obj)


async def test_heartbeat_renews_lease_and_ready_condition(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        lease = registry.get(LEASES, "kube-node-lease", node.name)
        spec = lease["spec"]
        assert spec["holderIdentity"] == node.name
        assert spec["leaseDurationSeconds"] == 40
        assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"
        first_renew = parse_rfc3339(spec["renewTime"])
        first_beat = condition(registry.get(NODES, "", node.name), "Ready")
        await wait_for(lambda: parse_rfc3339(registry.get(
            LEASES, "kube-node-lease", node.name)["spec"]["renewTime"]) > first_renew,
            within=2, what="lease renewal")
        # Seconds resolution on lastHeartbeatTime: wait for the next second to tick.
        await wait_for(lambda: condition(registry.get(NODES, "", node.name), "Ready")[
            "lastHeartbeatTime"] != first_beat["lastHeartbeatTime"], within=3,
            what="Ready heartbeat")
        ready = condition(registry.get(NODES, "", node.name), "Ready")
        assert ready["lastTransitionTime"] == first_beat["lastTransitionTime"]


async def test_restarted_kubelet_updates_its_node_and_keeps_cordon(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    async with running_kubelet(registry, settings, runtime) as node:
        name, index = node.name, node.index

    def cordon(obj: dict[str, object]) -> None:
        obj["spec"]["unschedulable"] = True  # type: ignore[index]
    registry.mutate(NODES, "", name, cordon)
    async with running_kubelet(registry, settings, runtime, name=name, index=index):
        obj = registry.get(NODES, "", name)
        assert obj["spec"]["unschedulable"] is True
        assert condition(obj, "Ready")["status"] == "True"


async def test_official_python_client_accepts_node_and_pod(
        registry: Registry, settings: Settings, runtime: ProcessRuntime) -> None:
    """The kubernetes client's models reject nulls in many status fields
    (kubectl-compat.md §11): deserialize what the kubelet wrote."""
    kubernetes = pytest.importorskip("kubernetes")
    from tests.node.nodehelpers import container_status, make_pod, pod_of

    api = kubernetes.client.ApiClient()
    async with running_kubelet(registry, settings, runtime) as node:
        pod = make_pod(registry, node.name, ports=[8080])
        await wait_for(lambda: container_status(registry, pod).get("ready"), what="ready")
        v1pod = api.deserialize(json.dumps(pod_of(registry, pod)), "V1Pod", "application/json")
        assert v1pod.status.container_statuses[0].ready is True
        assert v1pod.status.pod_ip
        v1node = api.deserialize(json.dumps(registry.get(NODES, "", node.name)), "V1Node",
                                  "application/json")
        assert v1node.status.node_info.kubelet_version == "v1.32.0-miniorch"
        lease = api.deserialize(json.dumps(registry.get(LEASES, "kube-node-lease", node.name)),
                                "V1Lease", "application/json")
        assert lease.spec.holder_identity == node.name
