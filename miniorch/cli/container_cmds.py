"""`container run|ls|inspect|exec|logs|stop|rm|cleanup`: Docker's grammar and output over
`miniorch.containers` (no API server involved: containers live beside the cluster).

Errors print as Docker's CLI does (`Error response from daemon: ...`, or for run
`miniorch: Error response from daemon: ...` with exit 125/126/127). `run` without -d
runs the container in this process (output streamed, Ctrl-C stops it; with -it the
terminal is raw and relayed to the container's pty); `run -d` leaves it to a supervisor
process and prints the full id.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from miniorch.cli.context import Context
from miniorch.cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from miniorch.containers import Container, ContainerEngine


class DaemonError(CliError):
    """Docker's `Error response from daemon: ...`."""

    def __init__(self, message: str, *, exit_code: int = 1, prefix: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.prefix = prefix

    def render(self) -> str:
        return f"{self.prefix}Error response from daemon: {self}"


def _engine(ctx: Context) -> ContainerEngine:
    from miniorch.containers import ContainerEngine
    from miniorch.core import logging as molog

    # The library logs at info/debug for supervisors' files; a CLI user sees warnings
    # only, so structlog is imported only if one comes (lazy).
    molog.configure(stream=sys.stderr, level="WARNING", lazy=True)
    return ContainerEngine(ctx.home)


def _terminal_size() -> tuple[int, int]:
    try:
        size = os.get_terminal_size(sys.stdin.fileno())
        return size.columns, size.lines
    except OSError:
        return 80, 24


def _writer(fd: int) -> Any:
    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    return write


def cmd_run(ctx: Context, args: argparse.Namespace) -> int:
    from miniorch.containers import ContainerError, RunOptions, StartError
    from miniorch.images import ImageError

    engine = _engine(ctx)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    opts = RunOptions(image=args.image, command=command, name=args.name,
                      ports=args.publish or [], env=args.env or [], tty=args.tty,
                      interactive=args.interactive, auto_remove=args.rm)
    if args.name is not None and not _valid_name(args.name):
        raise DaemonError(f'Invalid container name ({args.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-]'
                          " are allowed", exit_code=125, prefix="miniorch: ")
    try:
        config = engine.create(opts)
    except (ImageError, ContainerError) as exc:
        raise DaemonError(str(exc), exit_code=125, prefix="miniorch: ") from None
    try:
        if args.detach:
            engine.start_detached(config)
            ctx.out(config.id + "\n")
            return 0
        return _run_attached(engine, config, tty=args.tty, interactive=args.interactive)
    except StartError as exc:
        raise DaemonError(str(exc), exit_code=exc.exit_code, prefix="miniorch: ") from None


def _valid_name(name: str) -> bool:
    import re

    return re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name) is not None


def _run_attached(engine: ContainerEngine, config: Any, *, tty: bool, interactive: bool) -> int:
    from miniorch.containers import Attach

    sys.stdout.flush()
    stdin_fd = sys.stdin.fileno() if sys.stdin is not None else -1
    on_terminal = tty and stdin_fd >= 0 and os.isatty(stdin_fd)
    saved: Any = None
    attach = Attach(write_stdout=_writer(sys.stdout.fileno()),
                    write_stderr=_writer(sys.stderr.fileno()))
    was_blocking = True
    if on_terminal:
        import termios
        import tty as ttymod

        from miniorch.sandbox._fdstream import FdReceiveStream

        saved = termios.tcgetattr(stdin_fd)
        ttymod.setraw(stdin_fd)
        was_blocking = os.get_blocking(stdin_fd)
        attach.stdin = FdReceiveStream(os.dup(stdin_fd))
        attach.window_size = _terminal_size
    try:
        return engine.run_attached(config, attach)
    finally:
        if saved is not None:
            import termios

            os.set_blocking(stdin_fd, was_blocking)
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)


def _ago(text: str) -> str:
    from miniorch.cli.image_cmds import human_duration
    from miniorch.containers.state import parse_time

    when = parse_time(text)
    if when is None:
        return ""
    return human_duration((datetime.now(UTC) - when).total_seconds())


def status_text(c: Container) -> str:
    """Docker's STATUS column: `Up 5 seconds`, `Exited (0) 3 seconds ago`, `Created`."""
    st = c.state
    if st.status == "running":
        return f"Up {_ago(st.started_at)}"
    if st.status == "exited":
        if st.started_at.startswith("0001"):
            return "Created"
        if st.finished_at.startswith("0001"):  # its supervisor died (kill -9)
            return f"Exited ({st.exit_code})"
        return f"Exited ({st.exit_code}) {_ago(st.finished_at)} ago"
    return "Created"


def command_text(c: Container) -> str:
    """Docker's COMMAND column: the argv joined, cut to 20 characters with …, quoted."""
    text = " ".join(c.config.argv)
    if len(text) > 20:
        text = text[:19] + "…"
    return json.dumps(text, ensure_ascii=False)


def cmd_ls(ctx: Context, args: argparse.Namespace) -> int:
    from miniorch.cli.tabwriter import TabWriter

    containers = _engine(ctx).list(all=args.all)
    if args.quiet:
        ctx.out("".join(c.id[:12] + "\n" for c in containers))
        return 0
    writer = TabWriter(minwidth=10, padding=3)
    writer.write("CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES\n")
    for c in containers:
        ports = ", ".join(str(p) for p in c.config.ports) if c.running else ""
        writer.write(f"{c.id[:12]}\t{c.config.image_ref}\t{command_text(c)}\t"
                     f"{_ago(c.config.created)} ago\t{status_text(c)}\t{ports}\t{c.name}\n")
    ctx.out(writer.flush())
    return 0


def cmd_inspect(ctx: Context, args: argparse.Namespace) -> int:
    from miniorch.containers import NoSuchContainer

    engine = _engine(ctx)
    docs: list[Any] = []
    failed = False
    for ref in args.containers:
        try:
            docs.append(engine.inspect(ref))
        except NoSuchContainer as exc:
            ctx.err(f"Error: {exc}\n")
            failed = True
    ctx.out(json.dumps(docs, indent=4) + "\n")
    return 1 if failed else 0


def cmd_logs(ctx: Context, args: argparse.Namespace) -> int:
    from miniorch.containers import NoSuchContainer

    try:
        lines = _engine(ctx).log_lines(args.container, follow=args.follow)
        for stream, text in lines:
            target = ctx.stdout if stream == "stdout" else ctx.stderr
            target.write(text)
            if args.follow:
                target.flush()
    except NoSuchContainer as exc:
        raise DaemonError(str(exc)) from None
    return 0


def _each(ctx: Context, refs: list[str], action: Any) -> int:
    from miniorch.containers import ContainerError

    failed = False
    for ref in refs:
        try:
            action(ref)
            ctx.out(ref + "\n")
        except ContainerError as exc:
            ctx.err(f"Error response from daemon: {exc}\n")
            failed = True
    return 1 if failed else 0


def cmd_stop(ctx: Context, args: argparse.Namespace) -> int:
    engine = _engine(ctx)
    return _each(ctx, args.containers, lambda ref: engine.stop(ref, timeout=args.time))


def cmd_rm(ctx: Context, args: argparse.Namespace) -> int:
    engine = _engine(ctx)
    return _each(ctx, args.containers, lambda ref: engine.remove(ref, force=args.force))


def cmd_cleanup(ctx: Context, args: argparse.Namespace) -> int:
    for line in _engine(ctx).cleanup():
        ctx.out(f"removed {line}\n")
    return 0


def cmd_exec(ctx: Context, args: argparse.Namespace) -> int:
    import anyio

    from miniorch.containers import ContainerError

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CliError("exec requires at least one command")
    engine = _engine(ctx)
    try:
        container, pid = engine.exec_target(args.container)
    except ContainerError as exc:
        raise DaemonError(str(exc)) from None
    stdin_fd = sys.stdin.fileno() if sys.stdin is not None else -1
    tty = bool(args.tty) and stdin_fd >= 0 and os.isatty(stdin_fd)
    env = None
    if args.env:
        from miniorch.sandbox.pod import _environ_of

        env = _environ_of(pid)
        for item in args.env:
            key, _, value = item.partition("=")
            env[key] = value
    saved: Any = None
    was_blocking = True
    if tty:
        import termios
        import tty as ttymod

        saved = termios.tcgetattr(stdin_fd)
        was_blocking = os.get_blocking(stdin_fd)
        ttymod.setraw(stdin_fd)
    ctx.stdout.flush()
    try:
        code: int = anyio.run(_exec_session, pid, command, tty, bool(args.interactive),
                              env, container.config.workdir or None, stdin_fd)
    finally:
        if saved is not None:
            import termios

            os.set_blocking(stdin_fd, was_blocking)
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
    raise ExitCode(code)


async def _exec_session(pid: int, argv: list[str], tty: bool, interactive: bool,
                        env: dict[str, str] | None, cwd: str | None, stdin_fd: int) -> int:
    import contextlib
    import signal

    import anyio

    from miniorch.sandbox._fdstream import FdReceiveStream
    from miniorch.sandbox.pod import SandboxError, exec_in_sandbox

    try:
        proc = await exec_in_sandbox(pid, argv, tty=tty, env=env, container_pid=pid, cwd=cwd)
    except SandboxError as exc:
        raise DaemonError(str(exc)) from None
    if tty:
        proc.resize(*_terminal_size())

    async def copy_out(stream: Any, fd: int) -> None:
        if stream is None:
            return
        write = _writer(fd)
        with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError,
                                 anyio.BrokenResourceError):
            async for chunk in stream:
                write(chunk)

    async def copy_in() -> None:
        assert proc.stdin is not None
        source = FdReceiveStream(os.dup(stdin_fd))
        with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError,
                                 anyio.BrokenResourceError, OSError):
            async with source:
                async for chunk in source:
                    await proc.stdin.send(chunk)
        if not tty:
            with contextlib.suppress(Exception):
                await proc.stdin.aclose()

    async def winch() -> None:
        with anyio.open_signal_receiver(signal.SIGWINCH) as signals:
            async for _ in signals:
                proc.resize(*_terminal_size())

    was_blocking = os.get_blocking(stdin_fd) if stdin_fd >= 0 else True
    try:
        async with anyio.create_task_group() as tg:
            if (tty or interactive) and stdin_fd >= 0:
                tg.start_soon(copy_in)
            elif proc.stdin is not None and not tty:
                await proc.stdin.aclose()
            if tty:
                tg.start_soon(winch)
            async with anyio.create_task_group() as outputs:
                outputs.start_soon(copy_out, proc.stdout, sys.stdout.fileno())
                outputs.start_soon(copy_out, proc.stderr, sys.stderr.fileno())
            code = await proc.wait()
            tg.cancel_scope.cancel()
    finally:
        await proc.aclose()
        if stdin_fd >= 0:
            os.set_blocking(stdin_fd, was_blocking)
    return code
