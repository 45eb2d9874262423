"""Control loops of the cluster process, all level-triggered over the registry.

The loops are `replication`, `endpoints`, `garbage_collector`, `node_lifecycle` and
the `scheduler`, built on `miniorch.machinery` (shared informers → each controller's
key work queue → workers); `manager.ControllerManager` runs them all in one task group.
"""
