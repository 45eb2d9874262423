"""Kubelet knobs that are not cluster-wide settings (Kubernetes' KubeletConfiguration).

Defaults are Kubernetes'; tests shrink the back-off base and probe intervals instead of
monkeypatching anything.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class KubeletConfig:
    crash_backoff_base: float = 10.0
    """First delay of CrashLoopBackOff (after the immediate first restart); doubles."""
    crash_backoff_cap: float = 300.0
    """Longest CrashLoopBackOff delay (5 min)."""
    crash_backoff_reset: float = 600.0
    """A container that ran this long before exiting restarts at once again (10 min)."""
    image_backoff_base: float = 10.0
    """ImagePullBackOff: first retry delay; doubles up to `image_backoff_cap`."""
    image_backoff_cap: float = 300.0
    sandbox_backoff_base: float = 1.0
    """FailedCreatePodSandBox: first retry delay; doubles up to `sandbox_backoff_cap`."""
    sandbox_backoff_cap: float = 60.0
    config_backoff_base: float = 1.0
    """CreateContainerConfigError (a missing ConfigMap/Secret): first retry delay,
    doubling up to `config_backoff_cap`; a change of a referenced object retries at
    once (kubelet retries on its pod syncs, every 10 s or so)."""
    config_backoff_cap: float = 10.0
    fast_probe_interval: float = 0.05
    """Until a container's readiness probe first succeeds it is retried this often, so a
    fresh pod turns Ready within a fraction of a second (then every periodSeconds)."""
    parallel_pod_starts: int = 4
    """Pods of one node in their start path (sandbox, first container start) at once;
    the rest queue in arrival order (2 cores: more only interleaves them)."""
    start_slot_ready_wait: float = 1.0
    """A pod keeps its start slot until its containers are Ready, at most this long
    after their first start (the app's boot is most of a pod's start on few cores)."""
    default_pids_max: int = 1024
    shutdown_grace_cap: float = 10.0
    """On kubelet stop (`miniorch down`), pods get min(their grace, this) to exit."""
    force_delete_grace: float = 1.0
    """Grace for a pod that vanished from the store without graceful deletion."""
    kubelet_port: int = 10250
    """Advertised in status.daemonEndpoints (nothing listens there)."""
