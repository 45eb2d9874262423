"""`exec [-it] POD [-c C] -- CMD...`: a WebSocket session on pods/exec.

Data flow (kubectl-compat.md §9):

    stdin (raw tty or pipe) ──► channel 0 ─┐
    SIGWINCH → terminal size ─► channel 4 ─┼──► WebSocket (v5.channel.k8s.io, else v4)
    EOF on stdin (v5 only)   ─► channel 255┘
    channel 1 ─► stdout, channel 2 ─► stderr, channel 3 ─► exit status (our exit code)

The session runs under anyio's asyncio backend (aiohttp is asyncio-only). The terminal
is put in raw mode only for `-t` on a real terminal and is always restored, even when
the connection fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from miniorch.cli.context import Context
from miniorch.cli.errors import CliError, ExitCode, StatusError

CHANNEL_STDIN, CHANNEL_STDOUT, CHANNEL_STDERR, CHANNEL_ERROR, CHANNEL_RESIZE = 0, 1, 2, 3, 4
CHANNEL_CLOSE = 255
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")


def exit_code_of(status: dict[str, Any]) -> int:
    """The remote command's exit code from the channel-3 Status (0 for Success)."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message", "1"))
                except ValueError:
                    return 1
        return 1
    raise StatusError({"kind": "Status", **status}, code=int(status.get("code") or 500))


def terminal_size(fd: int) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(fd)
        return size.columns, size.lines
    except OSError:
        return 80, 24


def cmd_exec(ctx: Context, args: argparse.Namespace) -> int:
    from miniorch.cli.commands import _pod_name, lookup_resource, path_for, pick_container

    if not args.cmd:
        raise CliError("you must specify at least one command for the container")
    name = _pod_name(ctx, args.pod)
    pod_path = path_for(ctx, lookup_resource(ctx, "pods"), name)
    pod = ctx.client.get(pod_path)
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise CliError(f"cannot exec into a container in a completed pod; current phase is "
                       f"{phase}")
    container = pick_container(ctx, pod, args.container)
    stdin_fd = sys.stdin.fileno() if args.stdin and sys.stdin is not None else -1
    tty = bool(args.tty)
    if tty and not (stdin_fd >= 0 and os.isatty(stdin_fd)):
        if not args.quiet:
            ctx.err("Unable to use a TTY - input is not a terminal or the right kind of file\n")
        tty = False
    query: list[tuple[str, str]] = [("command", c) for c in args.cmd]
    query += [("container", container), ("stdin", "true" if stdin_fd >= 0 else "false"),
              ("stdout", "true"), ("stderr", "false" if tty else "true"),
              ("tty", "true" if tty else "false")]
    from urllib.parse import urlencode

    url = ctx.config.server + pod_path + "/exec?" + urlencode(query)
    import anyio

    code: int = anyio.run(_session, ctx, url, stdin_fd, tty, backend="asyncio")
    if code:
        ctx.err(f"command terminated with exit code {code}\n")
        raise ExitCode(code)
    return 0


async def _session(ctx: Context, url: str, stdin_fd: int, tty: bool) -> int:
    import aiohttp

    client = ctx.client
    saved_tty: Any = None
    if tty:
        import termios
        import tty as ttymod

        saved_tty = termios.tcgetattr(stdin_fd)
        ttymod.setraw(stdin_fd)
    try:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                ws = await session.ws_connect(url, protocols=PROTOCOLS,
                                              ssl=client.ssl_context(), headers=client.headers(),
                                              heartbeat=5.0, max_msg_size=0)
            except aiohttp.WSServerHandshakeError as exc:
                raise CliError(f"unable to upgrade connection: {exc.message or exc.status}"
                               ) from None
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, ConnectionRefusedError):
                    from miniorch.cli.errors import ConnectionRefused
                    raise ConnectionRefused(ctx.config.hostport) from None
                raise CliError(str(exc)) from None
            async with ws:
                return await _pump(ws, stdin_fd, tty, v5=ws.protocol == PROTOCOLS[0])
    finally:
        if saved_tty is not None:
            import termios

            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved_tty)


async def _pump(ws: Any, stdin_fd: int, tty: bool, *, v5: bool) -> int:
    import asyncio
    import signal

    import aiohttp
    import anyio

    loop = asyncio.get_running_loop()
    status: dict[str, Any] | None = None
    out = sys.stdout.buffer
    err = sys.stderr.buffer

    async def send_resize() -> None:
        cols, rows = terminal_size(stdin_fd)
        await ws.send_bytes(bytes([CHANNEL_RESIZE]) +
                            json.dumps({"Width": cols, "Height": rows}).encode())

    async def forward_stdin() -> None:
        send, receive = anyio.create_memory_object_stream[bytes](16)

        def readable() -> None:
            try:
                data = os.read(stdin_fd, 65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            # A full mailbox (slow socket) drops nothing: we stop reading until it drains.
            try:
                send.send_nowait(data)
            except anyio.WouldBlock:
                loop.remove_reader(stdin_fd)
                tg.start_soon(_resume, data)
                return
            if not data:
                loop.remove_reader(stdin_fd)

        async def _resume(data: bytes) -> None:
            await send.send(data)
            if data:
                loop.add_reader(stdin_fd, readable)

        loop.add_reader(stdin_fd, readable)
        try:
            async with receive:
                async for data in receive:
                    if not data:
                        if v5:
                            await ws.send_bytes(bytes([CHANNEL_CLOSE, CHANNEL_STDIN]))
                        return
                    await ws.send_bytes(bytes([CHANNEL_STDIN]) + data)
        finally:
            loop.remove_reader(stdin_fd)

    async with anyio.create_task_group() as tg:
        if stdin_fd >= 0:
            tg.start_soon(forward_stdin)
        if tty:
            await send_resize()
            loop.add_signal_handler(signal.SIGWINCH,
                                    lambda: tg.start_soon(send_resize))
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                    continue
                channel, payload = msg.data[0], msg.data[1:]
                if channel == CHANNEL_STDOUT:
                    out.write(payload)
                    out.flush()
                elif channel == CHANNEL_STDERR:
                    err.write(payload)
                    err.flush()
                elif channel == CHANNEL_ERROR and payload:
                    status = json.loads(payload)
        finally:
            if tty:
                loop.remove_signal_handler(signal.SIGWINCH)
            tg.cancel_scope.cancel()
    if status is None:
        return 0
    return exit_code_of(status)
