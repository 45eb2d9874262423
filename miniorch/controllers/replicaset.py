"""The ReplicaSet controller: `replication.py`'s ReplicaManager over apps/v1 ReplicaSets.

    ReplicaSet events ─┐
    pod events ────────┴─► ReplicaManager(REPLICA_SET_KIND).reconcile(key)
                           (expectations, claiming/adoption, slow start, status)

The only differences from ReplicationControllers are data: the resource, the events'
component (`replicaset-controller`, as kube-controller-manager names it) and the
selector, a metav1.LabelSelector (matchLabels + matchExpressions) instead of a map.
"""

from __future__ import annotations

from miniorch.api.kinds import REPLICA_SETS
from miniorch.api.kinds.apps import selector_of
from miniorch.api.registry import Registry
from miniorch.controllers.replication import ReplicaKind, replica_controller
from miniorch.core.clock import Clock
from miniorch.machinery.controller import Controller, ObjectKey
from miniorch.machinery.informer import SharedInformerFactory

REPLICA_SET_KIND = ReplicaKind(REPLICA_SETS, "replicaset-controller", selector_of)


def replica_set_controller(registry: Registry, *, clock: Clock | None = None,
                           workers: int = 5, informers: SharedInformerFactory | None = None
                           ) -> Controller[ObjectKey]:
    """The controller actor: `await tg.start(replica_set_controller(reg).run)`."""
    return replica_controller(registry, REPLICA_SET_KIND, clock=clock, workers=workers,
                              informers=informers)
