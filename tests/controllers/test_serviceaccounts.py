"""Every namespace gets a `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap,
and keeps them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from miniorch.api.kinds import CONFIGMAPS, NAMESPACES, SERVICE_ACCOUNTS
from miniorch.controllers.serviceaccounts import service_accounts_controller


async def test_default_service_account_in_every_namespace(cluster: Any,
                                                          run_actors: Any) -> None:
    registry = cluster.registry
    async with run_actors(service_accounts_controller(registry).run):
        for ns in ("default", "kube-system"):
            await cluster.wait_until(
                lambda ns=ns: registry.try_get(SERVICE_ACCOUNTS, ns, "default"),
                SERVICE_ACCOUNTS)
        registry.create(NAMESPACES, {"metadata": {"name": "team-a"}})
        await cluster.wait_until(
            lambda: registry.try_get(SERVICE_ACCOUNTS, "team-a", "default"), SERVICE_ACCOUNTS)
        # Deleted, it comes back (level-triggered); other accounts are left alone.
        registry.create(SERVICE_ACCOUNTS, {"metadata": {"name": "robot", "namespace": "team-a"}})
        uid = registry.get(SERVICE_ACCOUNTS, "team-a", "default")["metadata"]["uid"]
        registry.delete(SERVICE_ACCOUNTS, "team-a", "default")
        back = await cluster.wait_until(
            lambda: (sa := registry.try_get(SERVICE_ACCOUNTS, "team-a", "default"))
            and sa["metadata"]["uid"] != uid and sa, SERVICE_ACCOUNTS)
        assert back["metadata"]["name"] == "default"
        assert registry.try_get(SERVICE_ACCOUNTS, "team-a", "robot") is not None


async def test_every_namespace_gets_the_cluster_ca_as_kube_root_ca(cluster: Any,
                                                                   run_actors: Any,
                                                                   tmp_path: Path) -> None:
    registry = cluster.registry
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")

    def bundle(ns: str) -> Any:
        cm = registry.try_get(CONFIGMAPS, ns, "kube-root-ca.crt")
        return cm is not None and cm.get("data") == {"ca.crt": ca.read_text()} and cm

    async with run_actors(service_accounts_controller(registry, ca_path=ca).run):
        cm = await cluster.wait_until(lambda: bundle("default"), CONFIGMAPS)
        assert "kube-apiserver" in cm["metadata"]["annotations"]["kubernetes.io/description"]
        registry.create(NAMESPACES, {"metadata": {"name": "team-b"}})
        await cluster.wait_until(lambda: bundle("team-b"), CONFIGMAPS)
        # Edited or deleted, it is put back.
        registry.mutate(CONFIGMAPS, "team-b", "kube-root-ca.crt",
                        lambda obj: {**obj, "data": {"ca.crt": "forged"}})
        await cluster.wait_until(lambda: bundle("team-b"), CONFIGMAPS)
        registry.delete(CONFIGMAPS, "team-b", "kube-root-ca.crt")
        await cluster.wait_until(lambda: bundle("team-b"), CONFIGMAPS)
