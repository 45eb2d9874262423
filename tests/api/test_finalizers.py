"""metadata.finalizers: a deletion waits for them, as in Kubernetes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from miniorch.api.errors import Invalid
from miniorch.api.kinds import CONFIGMAPS, PODS
from miniorch.core.objects import Obj
from tests.api.server_support import make_registry


def remove_finalizer(name: str) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        obj["metadata"]["finalizers"] = [f for f in obj["metadata"]["finalizers"] if f != name]
    return change


def test_delete_waits_for_every_finalizer(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    registry.create(CONFIGMAPS, {"metadata": {"name": "c", "namespace": "default",
                                              "finalizers": ["a.example/x", "b.example/y"]}})
    deleting = registry.delete(CONFIGMAPS, "default", "c")
    assert deleting["metadata"]["deletionTimestamp"]
    assert registry.get(CONFIGMAPS, "default", "c")["metadata"]["finalizers"] == [
        "a.example/x", "b.example/y"]
    # A second delete changes nothing; adding a finalizer now is refused.
    again = registry.delete(CONFIGMAPS, "default", "c")
    assert again["metadata"]["resourceVersion"] == deleting["metadata"]["resourceVersion"]

    def add(obj: Obj) -> None:
        obj["metadata"]["finalizers"].append("c.example/z")
    with pytest.raises(Invalid) as info:
        registry.mutate(CONFIGMAPS, "default", "c", add)
    assert "no new finalizers can be added if the object is being deleted" in info.value.message
    registry.mutate(CONFIGMAPS, "default", "c", remove_finalizer("a.example/x"))
    assert registry.try_get(CONFIGMAPS, "default", "c") is not None
    registry.mutate(CONFIGMAPS, "default", "c", remove_finalizer("b.example/y"))
    assert registry.try_get(CONFIGMAPS, "default", "c") is None


def test_removing_finalizers_of_a_live_object_keeps_it(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    registry.create(CONFIGMAPS, {"metadata": {"name": "c", "namespace": "default",
                                              "finalizers": ["a.example/x"]}})
    registry.mutate(CONFIGMAPS, "default", "c", remove_finalizer("a.example/x"))
    assert registry.get(CONFIGMAPS, "default", "c")["metadata"].get("finalizers") == []


def test_terminating_pod_waits_for_its_grace_period_too(tmp_path: Path) -> None:
    registry = make_registry(tmp_path)
    registry.create(PODS, {"metadata": {"name": "p", "namespace": "default",
                                        "finalizers": ["a.example/x"]},
                           "spec": {"nodeName": "node-1",
                                    "containers": [{"name": "c", "image": "busybox"}]}})
    registry.delete(PODS, "default", "p")  # graceful: the node must stop it first
    registry.mutate(PODS, "default", "p", remove_finalizer("a.example/x"))
    assert registry.try_get(PODS, "default", "p") is not None  # still within its grace
    registry.delete(PODS, "default", "p", grace_period_seconds=0)  # the node is done
    assert registry.try_get(PODS, "default", "p") is None
