"""Control loops of the cluster process, all level-triggered over the registry.

`reconciler` is the machinery (informers → key work queue → workers); the loops are
`replication`, `endpoints`, `garbage_collector`, `node_lifecycle` and the
`scheduler`; `manager.ControllerManager` runs them all in one task group.
"""
