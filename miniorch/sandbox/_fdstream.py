"""anyio byte streams over raw file descriptors (pipes and pty masters).

anyio wraps sockets and its own subprocess pipes, but a container's stdout is a pipe whose
write end went to another process over SCM_RIGHTS, and an exec's tty is a pty master.
These streams put such an fd in non-blocking mode and await readiness with
`anyio.wait_readable/wait_writable`; the stream owns the fd and closes it in `aclose()`.
A pty master reports EIO once the terminal's last user has gone: that is end of stream.
"""

from __future__ import annotations

import contextlib
import errno
import os

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream

READ_SIZE = 65536


class FdReceiveStream(ByteReceiveStream):
    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self._closed = False

    async def receive(self, max_bytes: int = READ_SIZE) -> bytes:
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            try:
                data = os.read(self.fd, max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self.fd)
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:  # pty master whose slave side is closed
                    raise anyio.EndOfStream from None
                raise
            if not data:
                raise anyio.EndOfStream
            return data

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            anyio.notify_closing(self.fd)
            os.close(self.fd)


class FdSendStream(ByteSendStream):
    def __init__(self, fd: int, *, owned: bool = True) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self._owned = owned
        self._closed = False

    async def send(self, item: bytes) -> None:
        view = memoryview(item)
        while view:
            if self._closed:
                raise anyio.ClosedResourceError
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                await anyio.wait_writable(self.fd)
                continue
            except BrokenPipeError:
                raise anyio.BrokenResourceError from None
            view = view[written:]

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if self._owned:
                anyio.notify_closing(self.fd)
                with contextlib.suppress(OSError):
                    os.close(self.fd)
