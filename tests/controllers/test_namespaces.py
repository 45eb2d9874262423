"""Deleting a namespace: Terminating until what it holds is gone, then gone itself."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from miniorch.api.errors import ApiError
from miniorch.api.kinds import CONFIGMAPS, NAMESPACES, PODS
from miniorch.controllers.namespaces import namespace_controller
from miniorch.core.objects import Obj


def remove_finalizers(obj: Obj) -> None:
    obj["metadata"]["finalizers"] = []


async def test_namespace_waits_for_its_contents(cluster: Any, run_actors: Any) -> None:
    registry = cluster.registry
    registry.create(NAMESPACES, {"metadata": {"name": "team"}})
    registry.create(PODS, {"metadata": {"name": "web", "namespace": "team"},
                           "spec": {"nodeName": "node-1",
                                    "containers": [{"name": "c", "image": "busybox"}]}})
    registry.create(CONFIGMAPS, {"metadata": {"name": "held", "namespace": "team",
                                              "finalizers": ["example.com/keep"]}})
    registry.create(CONFIGMAPS, {"metadata": {"name": "plain", "namespace": "team"}})
    async with run_actors(namespace_controller(registry).run):
        deleting = registry.delete(NAMESPACES, "", "team")
        assert deleting["status"]["phase"] == "Terminating"
        assert deleting["metadata"]["deletionTimestamp"]
        # What could go went at once; the bound pod is in its grace period and the
        # ConfigMap waits for its finalizer.
        assert registry.try_get(CONFIGMAPS, "team", "plain") is None
        assert registry.get(PODS, "team", "web")["metadata"]["deletionTimestamp"]
        assert registry.get(CONFIGMAPS, "team", "held")["metadata"]["deletionTimestamp"]
        with pytest.raises(ApiError, match="because it is being terminated"):
            registry.create(CONFIGMAPS, {"metadata": {"name": "new", "namespace": "team"}})
        registry.delete(PODS, "team", "web", grace_period_seconds=0)  # the node is done
        await anyio.sleep(0.3)  # the controller looks, and finds the held ConfigMap
        assert registry.try_get(NAMESPACES, "", "team") is not None
        registry.mutate(CONFIGMAPS, "team", "held", remove_finalizers)
        await cluster.wait_until(lambda: registry.try_get(NAMESPACES, "", "team") is None,
                                 NAMESPACES, within=5)


def test_an_empty_namespace_goes_at_once(cluster: Any) -> None:
    registry = cluster.registry
    registry.create(NAMESPACES, {"metadata": {"name": "empty"}})
    registry.create(CONFIGMAPS, {"metadata": {"name": "c", "namespace": "empty"}})
    registry.delete(NAMESPACES, "", "empty")
    assert registry.try_get(NAMESPACES, "", "empty") is None
