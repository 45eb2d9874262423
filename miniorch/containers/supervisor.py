"""One container's keeper (Docker's containerd-shim/conmon): sandbox, logs, ports, state.

    run -d ─► python -m miniorch.containers.supervisor <dir>   (own session: outlives the CLI)
    run    ─► Supervisor.run() in the CLI process itself      (attached: stdio, Ctrl-C)

    Supervisor.run
      ├─ bind 127.0.0.1:<host port> for each -p         (busy port → StartError, nothing made)
      ├─ flock: bridge up, pick an IP, PodSandbox.create(init=False), state "created"
      ├─ start the app (overlay of the image's layers + rw/upper): it is PID 1
      ├─ state "running", report ready (the -d CLI prints the id and returns)
      ├─ task group: stdout/stderr ─► container.log (json-file) [+ the terminal when
      │              attached], TCP forwarders host port ─► <ip>:<port>, SIGTERM/SIGINT ─► stop
      └─ app exits ─► destroy the sandbox, flock: drop the bridge if unused,
                      state "exited" (last write), --rm removes the dir

Invariants: the supervisor creates the sandbox from its event-loop thread (the shim's
PR_SET_PDEATHSIG is per thread) and keeps the PodSandbox referenced until the app exits;
if the supervisor is killed, the shim and then the app die with it, and `cleanup`
removes the netns, veth and cgroup left behind. Only the supervisor writes state.json.
Anyone may stop the app by signals (`engine.stop`): the supervisor just sees it exit.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import anyio
import anyio.abc
import anyio.to_thread
from anyio.abc import ByteReceiveStream, ByteSendStream, Listener, SocketStream

from miniorch.containers.network import gateway_of, host_network, pick_ip, remove_bridge_if_unused
from miniorch.containers.state import (
    STATUS_CREATED,
    STATUS_EXITED,
    STATUS_RUNNING,
    ContainerConfig,
    ContainerDirs,
    ContainerState,
    now_rfc3339,
    write_json_atomic,
)
from miniorch.core.logging import get_logger
from miniorch.core.tcprelay import relay_to
from miniorch.sandbox.pod import (
    ContainerProcess,
    ContainerSpec,
    PodSandbox,
    PodSandboxSpec,
    RootfsSpec,
    SandboxError,
)

log = get_logger(__name__)  # structlog, imported on first use (core.logging)

DEFAULT_STOP_GRACE = 10.0
CONTAINER_NAME = "app"
"""The sandbox's one container (its cgroup leaf is c-app)."""


class StartError(Exception):
    """The container could not start; `exit_code` as Docker's CLI (125, 126, 127)."""

    def __init__(self, message: str, *, exit_code: int = 125) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(kw_only=True)
class Attach:
    """The terminal of an attached `run`: where output goes, where input comes from."""

    write_stdout: Callable[[bytes], None]
    write_stderr: Callable[[bytes], None]
    stdin: ByteReceiveStream | None = None
    """Relayed to the container's pty (with -it)."""
    window_size: Callable[[], tuple[int, int]] | None = None
    """(cols, rows) of the terminal, read at start and on SIGWINCH."""


class JsonLog:
    """Docker's json-file log driver: one JSON object per line of output."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - closed in close()

    def write(self, stream: str, data: bytes) -> None:
        text = data.decode(errors="replace")
        when = now_rfc3339()
        lines = text.splitlines(keepends=True)
        out = b"".join(
            json.dumps({"log": line, "stream": stream, "time": when}).encode() + b"\n"
            for line in lines)
        self._file.write(out)

    def close(self) -> None:
        self._file.close()


class Supervisor:
    def __init__(self, dirs: ContainerDirs, config: ContainerConfig, *,
                 attach: Attach | None = None,
                 ready: Callable[[], None] | None = None) -> None:
        self.dirs = dirs
        self.config = config
        self.dir = dirs.root / config.id
        self.attach = attach
        self._ready = ready
        self.state = ContainerState(supervisor_pid=os.getpid())
        self._sandbox: PodSandbox | None = None
        self._listeners: list[tuple[Listener[SocketStream], int]] = []
        self._stop_requested = False

    def _save(self, **changes: object) -> None:
        self.state = replace(self.state, **changes)  # type: ignore[arg-type]
        write_json_atomic(self.dir / "state.json", asdict(self.state))

    async def run(self) -> int:
        """Start, supervise until the app exits, tear down; the app's exit code.
        Raises StartError (having removed everything it made) if it cannot start."""
        try:
            proc = await self._start()
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await self._teardown()
                self._save(status=STATUS_EXITED, finished_at=now_rfc3339(),
                           exit_code=getattr(exc, "exit_code", 125), error=str(exc))
            raise
        if self._ready is not None:
            self._ready()
        code = 0
        try:
            code = await self._supervise(proc)
        finally:
            with anyio.CancelScope(shield=True):
                await self._teardown()
                self._save(status=STATUS_EXITED, finished_at=now_rfc3339(), pid=0,
                           exit_code=code)
                if self.config.auto_remove:
                    shutil.rmtree(self.dir, ignore_errors=True)
        return code

    async def _start(self) -> ContainerProcess:
        cfg = self.config
        for binding in cfg.ports:
            try:
                listener = await anyio.create_tcp_listener(
                    local_host=binding.host_ip, local_port=binding.host_port, reuse_port=False)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise StartError(
                        f"driver failed programming external connectivity on endpoint "
                        f"{cfg.name} ({cfg.id}): Bind for {binding.host_ip}:"
                        f"{binding.host_port} failed: port is already allocated") from None
                raise StartError(f"cannot publish {binding}: {exc}") from None
            self._listeners.append((listener, binding.container_port))
        settings = cfg.settings
        gateway, prefix_len = gateway_of(settings)
        with self.dirs.locked():
            await host_network(settings).setup()
            ip = pick_ip(settings, self.dirs.running_ips(exclude=[cfg.id]))
            spec = PodSandboxSpec(id=cfg.sandbox_id, hostname=cfg.short_id, ip=ip,
                                  prefix_len=prefix_len, gateway=gateway,
                                  bridge=settings.bridge, state_dir=self.dir / "sandbox",
                                  init=False)
            try:
                self._sandbox = await PodSandbox.create(spec)
            except (SandboxError, OSError, TimeoutError) as exc:
                raise StartError(f"creating the sandbox: {exc}") from exc
            self._save(status=STATUS_CREATED, ip=ip, gateway=gateway)
        rw = self.dir / "rw"
        (rw / "upper").mkdir(parents=True, exist_ok=True)
        (rw / "work").mkdir(parents=True, exist_ok=True)
        env = dict(item.partition("=")[::2] for item in cfg.env)
        env.setdefault("HOSTNAME", cfg.short_id)
        if cfg.tty:
            env.setdefault("TERM", "xterm")
        cspec = ContainerSpec(
            name=CONTAINER_NAME, argv=cfg.argv, env=env, workdir=cfg.workdir or "/", tty=cfg.tty,
            rootfs=RootfsSpec(lower_dirs=[Path(p) for p in cfg.lower_dirs],
                              upper_dir=rw / "upper", work_dir=rw / "work",
                              merged_dir=self.dir / "rootfs"))
        try:
            proc = await self._sandbox.start_container(cspec)
        except SandboxError as exc:
            text = str(exc)
            if "FileNotFoundError" in text:
                raise StartError(
                    f'failed to create task for container: exec: "{cfg.path}": executable '
                    "file not found in $PATH", exit_code=127) from None
            if "PermissionError" in text:
                raise StartError(f'exec: "{cfg.path}": permission denied', exit_code=126
                                 ) from None
            raise StartError(text) from None
        self._save(status=STATUS_RUNNING, pid=proc.pid, started_at=now_rfc3339())
        log.info("container started", id=cfg.short_id, pid=proc.pid, ip=ip)
        return proc

    async def _supervise(self, proc: ContainerProcess) -> int:
        logfile = JsonLog(self.dir / "container.log")
        try:
            async with anyio.create_task_group() as tg:
                pumps = anyio.create_task_group()
                async with pumps:
                    pumps.start_soon(self._pump, proc.stdout, "stdout", logfile)
                    pumps.start_soon(self._pump, proc.stderr, "stderr", logfile)
                    tg.start_soon(self._signals, proc)
                    for listener, port in self._listeners:
                        tg.start_soon(self._serve, listener, port)
                    if self.attach is not None and self.attach.stdin is not None \
                            and proc.stdin is not None:
                        tg.start_soon(self._feed, self.attach.stdin, proc.stdin)
                    if self.attach is not None and self.attach.window_size is not None:
                        proc.resize(*self.attach.window_size())
                        tg.start_soon(self._winch, proc)
                    status = await proc.wait()
                    # Kill what the app left (its children keep the pipes open), so the
                    # pumps drain to EOF; the sandbox itself goes in _teardown.
                    await anyio.to_thread.run_sync(proc.cgroup.kill_all)
                tg.cancel_scope.cancel()
        finally:
            logfile.close()
        self._save(oom_killed=status.oom_killed)
        log.info("container exited", id=self.config.short_id, code=status.code)
        return status.code

    async def _pump(self, stream: ByteReceiveStream, name: str, logfile: JsonLog) -> None:
        attach = self.attach
        with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError,
                                 anyio.BrokenResourceError):
            async for chunk in stream:
                logfile.write(name, chunk)
                if attach is not None:
                    (attach.write_stdout if name == "stdout" else attach.write_stderr)(chunk)

    async def _feed(self, source: ByteReceiveStream, sink: ByteSendStream) -> None:
        with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError,
                                 anyio.BrokenResourceError, OSError):
            async for chunk in source:
                await sink.send(chunk)

    async def _winch(self, proc: ContainerProcess) -> None:
        assert self.attach is not None and self.attach.window_size is not None
        with anyio.open_signal_receiver(signal.SIGWINCH) as signals:
            async for _ in signals:
                proc.resize(*self.attach.window_size())

    async def _signals(self, proc: ContainerProcess) -> None:
        """SIGTERM (or Ctrl-C when attached): stop the container like `container stop`;
        a second one kills it at once."""
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
            stopping: anyio.abc.TaskGroup | None = None
            async with anyio.create_task_group() as tg:
                async for _ in sigs:
                    if stopping is None:
                        stopping = tg
                        tg.start_soon(proc.stop, DEFAULT_STOP_GRACE)
                    else:
                        await proc.stop(0)

    async def _serve(self, listener: Listener[SocketStream], port: int) -> None:
        ip = self.state.ip
        async with listener:
            await listener.serve(lambda client: relay_to(client, ip, port))

    async def _teardown(self) -> None:
        for listener, _ in self._listeners:
            await listener.aclose()
        self._listeners.clear()
        if self._sandbox is not None:
            await self._sandbox.destroy(0)
            self._sandbox = None
            with self.dirs.locked():
                await remove_bridge_if_unused(self.config.settings)


def main(argv: list[str] | None = None) -> int:
    """`python -m miniorch.containers.supervisor <container dir>`: a detached container.

    stdout is a pipe to the `run -d` CLI: one line, `ok` or `error <code> <message>`;
    afterwards stdout is /dev/null and the supervisor's log goes to supervisor.log."""
    from miniorch.core import logging as molog

    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0])
    dirs = ContainerDirs(directory.parent)
    config = ContainerConfig.from_json(json.loads((directory / "config.json").read_text()))
    logf = open(directory / "supervisor.log", "a")  # noqa: SIM115 - lives as long as we do
    os.dup2(logf.fileno(), 2)
    molog.configure(stream=logf)
    report = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)

    def ready() -> None:
        report.write("ok\n")
        report.close()

    supervisor = Supervisor(dirs, config, ready=ready)
    try:
        return anyio.run(supervisor.run)
    except StartError as exc:
        report.write(f"error {exc.exit_code} {exc}\n")
        report.close()
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
