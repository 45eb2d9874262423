"""The node actor (kubelet): runs the pods bound to one node as sandboxed processes.

    shared pods informer ──spec.nodeName=<node>──► Kubelet ──► PodWorker per pod UID
       ▲                                            │            │ (Mailbox: latest pod,
       │  Node + Lease (register, heartbeat)        │            │  kill is sticky)
       ├────────────────────────────────────────────┘            ▼
       │  pod status (only when changed), Events      ContainerRuntime (cri.py)
       └───────────────────────────────────────────── ├─ SandboxRuntime (runtime.py):
                                                       │    miniorch.sandbox + miniorch.images
                                                       └─ ProcessRuntime (processes.py):
                                                            plain processes, no isolation
    container stdout/stderr ──► $MINIORCH_HOME/pods/<ns>_<name>_<uid>/<container>/<n>.log
    sandbox.json (pids, netns, ip) ──► read by the API server for `logs` and `exec`

Modules: `kubelet` (Node, Lease, watch, dispatch), `podworker` (one pod's life),
`status` (phase, conditions, QoS), `probes`, `mailbox`, `ipam`, `events` (Events
recorded off the critical path), `nodeinfo` (psutil capacity, nodeInfo), `config`
(KubeletConfig knobs), `cri` (the runtime Protocol), `runtime`, `processes`,
`envvars` (env, envFrom, valueFrom), `configwatch` (the ConfigMaps/Secrets a pod uses),
`volumes` (configMap, secret, emptyDir on the host), `atomicwriter` (their files).

Performance: a burst of pods goes through the start path FCFS, `parallel_pod_starts`
at a time per node (the rest wait in arrival order), so early pods run early; Events
are queued and written once the burst is quiet.

Invariants: the kubelet never deletes a pod it did not stop first; status is written
only by the pod's own worker and only when it changed; stopping the kubelet stops
every sandbox but leaves every object in the store.
"""

from miniorch.node.config import KubeletConfig
from miniorch.node.cri import ContainerRuntime, ImageInfo, RuntimeFailure
from miniorch.node.kubelet import Kubelet

__all__ = ["ContainerRuntime", "ImageInfo", "Kubelet", "KubeletConfig", "RuntimeFailure"]
