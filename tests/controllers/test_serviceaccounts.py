"""Every namespace gets a `default` ServiceAccount, and keeps it."""

from __future__ import annotations

from typing import Any

from miniorch.api.kinds import NAMESPACES, SERVICE_ACCOUNTS
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
