"""The cluster process: what `miniorch up` runs, and how `down` stops it.

    commands.up ──(--detach)──► a daemon child running commands.up in the foreground,
        │                         reporting progress and "ready" over an inherited pipe
        ▼
    Cluster.run: one anyio task group of actors, started in dependency order
        store+registry ─► ApiServer ─► ControllerManager ─► Kubelet x N ─► ServiceProxy
                                                  └─► demo (kubia RC + LoadBalancer Service)

State lives under `$MINIORCH_HOME`; `cluster.pid` names the running cluster process.
A state dir whose pid file names a dead process is a crashed cluster: the next `up`
removes its leftovers (sandbox.cleanup) and restores every object from the store.
"""
