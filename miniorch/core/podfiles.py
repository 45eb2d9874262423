"""Where a pod's files live on the host, and the container log format.

The node (kubelet) writes these; the API server reads them (`logs`, `exec`). The
filesystem is their only contract, so neither layer imports the other.

    $MINIORCH_HOME/pods/<namespace>_<name>_<uid>/
        sandbox.json                   {"init_pid": 1234, "netns": "mo-…", "ip": "10.244.1.5",
                                        "cgroup": {...}, "node": "node-1"}
        <container>/<restartCount>.log CRI log format, one line per line of output:
                                       `<RFC3339Nano> <stdout|stderr> <F|P> <text>`

`F` marks a full line, `P` a partial one (a line longer than the pipe read, or the
last bytes before the stream closed without a newline).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def pod_dir(pods_dir: Path, namespace: str, name: str, uid: str) -> Path:
    return pods_dir / f"{namespace}_{name}_{uid}"


def sandbox_file(pod_directory: Path) -> Path:
    return pod_directory / "sandbox.json"


def read_sandbox(pod_directory: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(sandbox_file(pod_directory).read_text())
    except (OSError, ValueError):
        return None
    return data


def write_sandbox(pod_directory: Path, data: dict[str, Any]) -> None:
    pod_directory.mkdir(parents=True, exist_ok=True)
    tmp = sandbox_file(pod_directory).with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(sandbox_file(pod_directory))


def container_log(pod_directory: Path, container: str, restart_count: int) -> Path:
    return pod_directory / container / f"{restart_count}.log"


def format_log_line(stream: str, text: str, *, partial: bool = False,
                    moment: datetime | None = None) -> str:
    """One CRI log line (text without its newline)."""
    stamp = (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    return f"{stamp} {stream} {'P' if partial else 'F'} {text}\n"


@dataclass(frozen=True)
class LogLine:
    timestamp: str
    stream: str
    partial: bool
    text: str


def parse_log_line(line: str) -> LogLine | None:
    parts = line.rstrip("\n").split(" ", 3)
    if len(parts) < 3:
        return None
    text = parts[3] if len(parts) == 4 else ""
    return LogLine(parts[0], parts[1], parts[2] == "P", text)


def read_log_lines(path: Path) -> Iterator[LogLine]:
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            for raw in f:
                parsed = parse_log_line(raw)
                if parsed:
                    yield parsed
    except FileNotFoundError:
        return
