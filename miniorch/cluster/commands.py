"""`miniorch up` and `miniorch down`: the cluster's lifecycle as the user sees it.

    up (foreground) ─► pid file, leftovers of a crashed run removed, Cluster.run;
                       Ctrl-C / SIGTERM cancel it, which stops everything cleanly.
    up --detach     ─► re-runs `up` as a session leader in the background; the child
                       reports progress and readiness over a pipe whose fd it finds in
                       $MINIORCH_READY_FD; the parent echoes it and returns at "ready".
    down            ─► SIGTERM to the pid in the pid file, wait for it to exit; a dead
                       one only gets its leftovers removed.

Return values are process exit codes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import anyio

from miniorch.core.settings import Settings

READY_FD_ENV = "MINIORCH_READY_FD"
STOP_TIMEOUT = 90.0
"""down waits this long (pods have up to 30 s of grace each, stopped in parallel)."""


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    from miniorch.cluster.cluster import pid_alive
    return pid_alive(pid)


def up(settings: Settings, *, detach: bool = False) -> int:
    from miniorch.cluster.rootless import choose_mode
    try:
        # Chosen (and printed) by the process that runs the cluster: a detached parent
        # only checks that the forced mode, if any, is possible.
        choose_mode(settings) if detach else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    settings.home.mkdir(parents=True, exist_ok=True)
    pid = _read_pid(settings.pid_file)
    if pid and pid != os.getpid() and _alive(pid):
        print(f"error: a cluster is already running from {settings.home} (pid {pid}); "
              "run `miniorch down` first", file=sys.stderr)
        return 1
    from miniorch.cluster.machine_lock import ClusterRunningElsewhere, MachineLock
    holder = MachineLock().holder()
    if holder is not None:
        print(f"error: {ClusterRunningElsewhere(holder)}", file=sys.stderr)
        return 1
    if detach:
        return _up_detached(settings)
    return _up_foreground(settings)


def _up_detached(settings: Settings) -> int:
    read_end, write_end = os.pipe()
    args = [sys.executable, "-m", "miniorch", "--state-dir", str(settings.home), "up",
            "--nodes", str(settings.nodes), "--api-port", str(settings.api_port),
            "--dashboard-port", str(settings.dashboard_port)]
    if not settings.demo:
        args.append("--no-demo")
    if settings.hollow_nodes:
        args += ["--hollow-nodes", str(settings.hollow_nodes),
                 f"--hollow-profile={settings.hollow_profile}"]
    network = settings.network
    low, high = network.node_port_range
    args += ["--sandbox-mode", settings.sandbox_mode, "--lb-cidr", network.loadbalancer_cidr,
             "--service-cidr", network.service_cidr, "--node-port-range", f"{low}-{high}"]
    if settings.dns.upstreams is not None:
        args += [f"--dns-upstream={h}:{p}" for h, p in settings.dns.upstreams] or \
                ["--dns-upstream=none"]
    env = dict(os.environ, **{READY_FD_ENV: str(write_end)})
    with open(settings.log_file, "ab") as log_out:
        child = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log_out,
                                 stderr=subprocess.STDOUT, pass_fds=(write_end,),
                                 start_new_session=True, env=env)
    os.close(write_end)
    with os.fdopen(read_end, "r") as progress:
        for line in progress:
            kind, _, text = line.rstrip("\n").partition(" ")
            if kind == "ready":
                print(text)
                return 0
            if kind == "error":
                print(f"error: {text}", file=sys.stderr)
                child.wait()
                return 1
            print(text)
    code = child.wait()
    print(f"error: the cluster process exited ({code}) before it was ready; "
          f"see {settings.log_file}", file=sys.stderr)
    return 1


def _up_foreground(settings: Settings) -> int:
    from miniorch.core.logging import configure

    ready_fd = os.environ.pop(READY_FD_ENV, None)
    channel: IO[str] | None = os.fdopen(int(ready_fd), "w", buffering=1) if ready_fd else None
    if channel is None:
        log_stream = open(settings.log_file, "a", buffering=1)  # noqa: SIM115 (lives until exit)
        configure(stream=log_stream)
    else:
        configure(stream=sys.stdout)  # the detached child's stdout is the log file

    def say(kind: str, text: str) -> None:
        if channel is not None:
            with contextlib.suppress(OSError):
                # One message per line: the parent reads the pipe line by line.
                for part in text.split("\n"):
                    channel.write(f"{kind} {part}\n")
        elif kind == "error":
            print(f"error: {text}", file=sys.stderr, flush=True)
        elif kind != "ready":
            print(text, flush=True)

    from miniorch.cluster.machine_lock import ClusterRunningElsewhere, MachineLock
    lock = MachineLock()
    try:
        lock.acquire(settings.home)
    except ClusterRunningElsewhere as exc:
        say("error", str(exc))
        return 1
    settings.pid_file.write_text(str(os.getpid()))
    try:
        return anyio.run(_serve, settings, say)
    except KeyboardInterrupt:
        return 130
    finally:
        lock.release()
        with contextlib.suppress(FileNotFoundError):
            if _read_pid(settings.pid_file) == os.getpid():
                settings.pid_file.unlink()
        if channel is not None:
            with contextlib.suppress(OSError):
                channel.close()


async def _serve(settings: Settings, report: Callable[[str, str], None]) -> int:
    from miniorch.cluster.cluster import Cluster
    from miniorch.cluster.rootless import announcement, choose_mode, settings_for_mode
    from miniorch.sandbox.cleanup import cleanup_leftovers
    from miniorch.sandbox.mode import ModeKind

    try:
        mode = choose_mode(settings)
    except ValueError as exc:
        report("error", str(exc))
        return 1
    settings = settings_for_mode(settings, mode)
    report("progress", announcement(mode, settings))
    if mode.kind is ModeKind.ROOT:
        # Whatever a crashed run left (or a run killed by -9) goes first: its bridge,
        # namespaces and processes would otherwise collide with ours. (Rootless pods
        # leave nothing: their shims die with the cluster process.)
        removed = await cleanup_leftovers(bridge=settings.network.bridge_name, prefix="mo-")
        if not removed.empty:
            report("progress", f"removed leftovers of a previous run: {removed}")
    report("progress", f"starting a {settings.nodes}-node cluster in {settings.home}")
    cluster = Cluster(settings, report=lambda line: report("progress", line), mode=mode)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_stop_on_signal, tg.cancel_scope)
        try:
            url = await tg.start(cluster.run)
        except (OSError, BaseExceptionGroup) as exc:
            # A busy port or a missing permission, possibly wrapped by the task groups
            # it crossed: the user gets its message, not a traceback.
            problem = _os_error_in(exc)
            if problem is None:
                raise
            report("error", str(problem))
            tg.cancel_scope.cancel()
            return 1
        kubeconfig = settings.kubeconfig_path
        if url:
            report("progress", f"\nTry it:\n  curl {url}\n")
        report("progress", f"Use kubectl:\n  export KUBECONFIG={kubeconfig}\n"
                           "  kubectl get pods -o wide")
        report("progress", "Open the dashboard:\n  python -m miniorch dashboard")
        report("ready", "cluster ready; stop it with `python -m miniorch down`")
    return 0


def _os_error_in(exc: BaseException) -> OSError | None:
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if found := _os_error_in(inner):
                return found
    return None


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


def down(settings: Settings) -> int:
    pid = _read_pid(settings.pid_file)
    if pid is None or not _alive(pid):
        if pid is not None:
            settings.pid_file.unlink(missing_ok=True)
            from miniorch.cluster.machine_lock import ClusterRunningElsewhere, MachineLock
            lock = MachineLock()
            try:
                lock.acquire(settings.home)
            except ClusterRunningElsewhere as exc:
                # The machine-wide leftovers may be another live cluster's: hands off.
                print(f"the cluster (pid {pid}) had died; {exc}; leaving its leftovers")
                return 0
            try:
                anyio.run(_cleanup, settings)
            finally:
                lock.release()
            print(f"the cluster (pid {pid}) had died; removed what it left")
            return 0
        print(f"no cluster running from {settings.home}")
        return 0
    os.kill(pid, signal.SIGTERM)
    print(f"stopping the cluster (pid {pid})...", flush=True)
    deadline = time.monotonic() + STOP_TIMEOUT
    import psutil
    try:
        psutil.Process(pid).wait(timeout=max(0.0, deadline - time.monotonic()))
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).wait(timeout=10)  # its lock is released when it is gone
        anyio.run(_cleanup, settings)
        print(f"the cluster did not stop within {STOP_TIMEOUT:.0f}s; killed it and removed "
              "what it left", file=sys.stderr)
        return 1
    print("cluster stopped")
    return 0


async def _cleanup(settings: Settings) -> None:
    from miniorch.sandbox.cleanup import cleanup_leftovers
    if os.geteuid() != 0:
        return  # rootless pods die with the cluster process; no links, no cgroups
    await cleanup_leftovers(bridge=settings.network.bridge_name, prefix="mo-")
