"""Transfer progress for push and pull: events from the client, rendered two ways.

    registry.push/pull ──Transfer(id, status, current, total)──► renderer
        LineRenderer   one line per status change (`a3ed95caeb02: Pushed`) — logs, pipes,
                       the store's line-based `Progress`
        BarRenderer    Docker's TTY display: one line per layer, redrawn in place
                       (`a3ed95caeb02: Pushing [=====>      ]  3.2MB/10MB`)

Byte-count updates arrive often (every chunk read); the line renderer drops them, the bar
renderer redraws at most every `interval` seconds, and always on a status change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

BAR_WIDTH = 50


@dataclass(frozen=True)
class Transfer:
    id: str
    """Docker's short form of the blob digest (12 hex), or a tag/digest for messages."""
    status: str
    """`Preparing`, `Pushing`, `Pushed`, `Layer already exists`, `Mounted from R`,
    `Pulling fs layer`, `Downloading`, `Verifying Checksum`, `Download complete`,
    `Already exists`, `Pull complete`."""
    current: int = 0
    total: int = 0


TransferProgress = Callable[[Transfer], None]


def no_progress(_t: Transfer) -> None:
    pass


def human_bytes(n: float) -> str:
    """Docker's progress units: decimal, 3 significant digits (`3.2MB`, `512B`)."""
    units = ["B", "kB", "MB", "GB", "TB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.3g}{units[i]}"


def bar(current: int, total: int) -> str:
    """`[=====>      ]  3.2MB/10MB` (Docker's jsonmessage progress bar)."""
    if total <= 0:
        return human_bytes(current)
    filled = min(BAR_WIDTH, int(BAR_WIDTH * current / total))
    arrow = "=" * max(0, filled - 1) + (">" if filled < BAR_WIDTH else "=")
    if filled == 0:
        arrow = ">"
    return f"[{arrow.ljust(BAR_WIDTH)}]  {human_bytes(current)}/{human_bytes(total)}"


class LineRenderer:
    """Status changes as plain lines to `write` (with `newline`, each ends in `\\n`)."""

    def __init__(self, write: Callable[[str], object], *, newline: bool = True) -> None:
        self.write = write
        self.newline = newline
        self._last: dict[str, str] = {}

    def __call__(self, t: Transfer) -> None:
        if self._last.get(t.id) == t.status:
            return
        self._last[t.id] = t.status
        self.write(f"{t.id}: {t.status}" + ("\n" if self.newline else ""))


class BarRenderer:
    """Docker's multi-line display on a terminal: a line per id, rewritten in place."""

    def __init__(self, stream: IO[str], *, interval: float = 0.1) -> None:
        self.stream = stream
        self.interval = interval
        self._order: list[str] = []
        self._lines: dict[str, str] = {}
        self._drawn = 0
        self._last_draw = 0.0

    def __call__(self, t: Transfer) -> None:
        previous = self._lines.get(t.id)
        if t.id not in self._lines:
            self._order.append(t.id)
        line = f"{t.id}: {t.status}"
        if t.status in ("Pushing", "Downloading") and t.total:
            line += " " + bar(t.current, t.total)
        self._lines[t.id] = line
        status_changed = previous is None or not previous.startswith(f"{t.id}: {t.status}")
        now = time.monotonic()
        if status_changed or now - self._last_draw >= self.interval:
            self._draw()
            self._last_draw = now

    def _draw(self) -> None:
        out = []
        if self._drawn:
            out.append(f"\x1b[{self._drawn}A")  # back to the first line we own
        for id_ in self._order:
            out.append("\r\x1b[2K" + self._lines[id_] + "\n")
        self._drawn = len(self._order)
        self.stream.write("".join(out))
        self.stream.flush()
