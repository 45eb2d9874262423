"""`GET …/pods/<name>/log`: container logs from the node's CRI-format files.

    node ──writes──► pods/<ns>_<name>_<uid>/<container>/<restartCount>.log
    API  ──reads───► text/plain (chunked and flushed per batch when following)

Which file: the container's current restartCount (from `sandbox.json`, else the pod's
containerStatuses, else the newest file on disk); `previous=true` reads the one
before it. The filesystem is the only contract with the node (core/podfiles.py).

Following (`follow=true`) polls the file for appended lines and ends when the
container's log is complete: the pod is gone (or replaced by one with another uid),
a newer log file exists (the container restarted), or the pod's status says this
container terminated — after draining what is left in the file. File reads run in a
worker thread so a large log never stalls the event loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import anyio.to_thread
from aiohttp import web

from miniorch.api.errors import BadRequest
from miniorch.api.kinds import PODS
from miniorch.api.server_common import ApiContext, query_bool, query_int
from miniorch.core import podfiles
from miniorch.core.clock import parse_rfc3339
from miniorch.core.objects import Obj

FOLLOW_POLL_SECONDS = 0.2


@dataclass(frozen=True, kw_only=True)
class LogOptions:
    container: str
    follow: bool
    previous: bool
    timestamps: bool
    tail_lines: int | None
    since: datetime | None
    limit_bytes: int | None


def container_names(pod: Obj) -> list[str]:
    return [str(c.get("name", "")) for c in pod.get("spec", {}).get("containers") or []]


def init_container_names(pod: Obj) -> list[str]:
    return [str(c.get("name", "")) for c in pod.get("spec", {}).get("initContainers") or []]


def pick_container(pod: Obj, requested: str | None) -> str:
    """kube-apiserver's rules and wording for the `container` parameter."""
    name = pod["metadata"]["name"]
    names, inits = container_names(pod), init_container_names(pod)
    if requested:
        if requested not in names and requested not in inits:
            raise BadRequest(f"container {requested} is not valid for pod {name}")
        return requested
    if len(names) == 1:
        return names[0]
    choices = f"choose one of: [{' '.join(names)}]"
    if inits:
        choices += f" or one of the init containers: [{' '.join(inits)}]"
    raise BadRequest(f"a container name must be specified for pod {name}, {choices}")


def _container_status(pod: Obj, container: str) -> Obj:
    status = pod.get("status", {})
    for cs in (status.get("containerStatuses") or []) + (
            status.get("initContainerStatuses") or []):
        if cs.get("name") == container:
            return dict(cs)
    return {}


def _current_restart_count(pod_directory: Path, pod: Obj, container: str) -> int | None:
    sandbox = podfiles.read_sandbox(pod_directory) or {}
    entry = (sandbox.get("containers") or {}).get(container)
    if isinstance(entry, dict) and entry.get("restartCount") is not None:
        return int(entry["restartCount"])
    status = _container_status(pod, container)
    if status.get("restartCount") is not None and \
            podfiles.container_log(pod_directory, container, int(status["restartCount"])).exists():
        return int(status["restartCount"])
    numbers = [int(p.stem) for p in (pod_directory / container).glob("*.log") if p.stem.isdigit()]
    return max(numbers) if numbers else None


def parse_options(request: web.Request, ctx: ApiContext, pod: Obj) -> LogOptions:
    q = request.query
    since: datetime | None = None
    since_seconds = query_int(request, "sinceSeconds")
    if since_seconds is not None:
        if since_seconds < 1:
            raise BadRequest("sinceSeconds: Invalid value: must be greater than 0")
        since = ctx.clock.now() - timedelta(seconds=since_seconds)
    elif q.get("sinceTime"):
        try:
            since = parse_rfc3339(q["sinceTime"])
        except ValueError:
            raise BadRequest(f"invalid sinceTime: {q['sinceTime']!r}") from None
    tail = query_int(request, "tailLines")
    limit = query_int(request, "limitBytes")
    if tail is not None and tail < 0:
        raise BadRequest("tailLines: Invalid value: must be greater than or equal to 0")
    if limit is not None and limit < 1:
        raise BadRequest("limitBytes: Invalid value: must be greater than 0")
    return LogOptions(container=pick_container(pod, q.get("container")),
                      follow=query_bool(q.get("follow")), previous=query_bool(q.get("previous")),
                      timestamps=query_bool(q.get("timestamps")), tail_lines=tail, since=since,
                      limit_bytes=limit)


class _LineFormatter:
    """CRI lines → output bytes: joins partial (`P`) fragments, filters by time."""

    def __init__(self, opts: LogOptions) -> None:
        self.opts = opts
        self.pending: list[str] = []
        self.pending_stamp = ""

    def feed(self, line: podfiles.LogLine) -> bytes | None:
        if not self.pending:
            self.pending_stamp = line.timestamp
        self.pending.append(line.text)
        if line.partial:
            return None
        text, stamp = "".join(self.pending), self.pending_stamp
        self.pending = []
        if self.opts.since is not None and _stamp(stamp) < self.opts.since:
            return None
        out = f"{stamp} {text}\n" if self.opts.timestamps else f"{text}\n"
        return out.encode()


def _stamp(text: str) -> datetime:
    # RFC3339Nano: Python parses at most microseconds.
    head, _, frac = text.rstrip("Z").partition(".")
    try:
        return parse_rfc3339(f"{head}.{(frac + '000000')[:6]}Z" if frac else f"{head}Z")
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _read_from(path: Path, offset: int) -> tuple[list[podfiles.LogLine], int]:
    """Complete lines from `offset` on, and the offset after the last complete one."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    lines = []
    for raw in data[: end + 1].decode("utf-8", errors="replace").splitlines():
        parsed = podfiles.parse_log_line(raw)
        if parsed:
            lines.append(parsed)
    return lines, offset + end + 1


async def serve_logs(request: web.Request, ctx: ApiContext, namespace: str,
                     name: str) -> web.StreamResponse:
    pod = ctx.registry.get(PODS, namespace, name)
    opts = parse_options(request, ctx, pod)
    meta = pod["metadata"]
    directory = podfiles.pod_dir(ctx.settings.pods_dir, meta.get("namespace", namespace),
                                 name, meta.get("uid", ""))
    current = await anyio.to_thread.run_sync(_current_restart_count, directory, pod,
                                             opts.container)
    if opts.previous:
        previous = None if current is None else current - 1
        if previous is None or previous < 0 or not await anyio.to_thread.run_sync(
                podfiles.container_log(directory, opts.container, previous).exists):
            raise BadRequest(f'previous terminated container "{opts.container}" in pod '
                             f'"{name}" not found')
        number = previous
    else:
        if current is None or not await anyio.to_thread.run_sync(
                podfiles.container_log(directory, opts.container, current).exists):
            state = _container_status(pod, opts.container).get("state", {})
            reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
            raise BadRequest(f'container "{opts.container}" in pod "{name}" is waiting to '
                             f"start: {reason}")
        number = current
    path = podfiles.container_log(directory, opts.container, number)

    response = web.StreamResponse(status=200,
                                  headers={"Content-Type": "text/plain; charset=utf-8"})
    if opts.follow:
        response.enable_chunked_encoding()
    await response.prepare(request)
    sender = _Sender(response, opts.limit_bytes)
    formatter = _LineFormatter(opts)
    try:
        lines, offset = await anyio.to_thread.run_sync(_read_from, path, 0)
        if opts.tail_lines is not None:
            lines = _tail(lines, opts.tail_lines)
        if not await sender.send_lines(formatter, lines):
            return response
        if opts.follow and not opts.previous:
            with ctx.stream_scope():
                await _follow(ctx, sender, formatter, pod, directory, path, offset, number,
                              opts.container)
    except ConnectionError:
        return response
    return response


def _tail(lines: list[podfiles.LogLine], count: int) -> list[podfiles.LogLine]:
    """The last `count` full lines (a partial run counts with the line it ends in)."""
    if count == 0:
        return []
    seen, start = 0, len(lines)
    for index in range(len(lines) - 1, -1, -1):
        if not lines[index].partial:
            seen += 1
            if seen > count:
                break
        start = index
    return lines[start:]


class _Sender:
    def __init__(self, response: web.StreamResponse, limit: int | None) -> None:
        self.response = response
        self.remaining = math.inf if limit is None else limit

    async def send_lines(self, formatter: _LineFormatter,
                         lines: list[podfiles.LogLine]) -> bool:
        """Write the formatted lines in one chunk; False once `limitBytes` is reached."""
        chunk = b"".join(out for out in map(formatter.feed, lines) if out)
        if not chunk:
            return self.remaining > 0
        if len(chunk) >= self.remaining:
            await self.response.write(chunk[: int(self.remaining)])
            self.remaining = 0
            return False
        self.remaining -= len(chunk)
        await self.response.write(chunk)
        return True


async def _follow(ctx: ApiContext, sender: _Sender, formatter: _LineFormatter, pod: Obj,
                  directory: Path, path: Path, offset: int, number: int,
                  container: str) -> None:
    uid = pod["metadata"].get("uid")
    namespace, name = pod["metadata"].get("namespace", ""), pod["metadata"]["name"]
    newer = podfiles.container_log(directory, container, number + 1)
    while True:
        lines, offset = await anyio.to_thread.run_sync(_read_from, path, offset)
        if lines:
            if not await sender.send_lines(formatter, lines):
                return
            continue
        if _log_complete(ctx, namespace, name, uid, container, number) or \
                await anyio.to_thread.run_sync(newer.exists):
            # Drain what was written between the last read and the end signal.
            lines, offset = await anyio.to_thread.run_sync(_read_from, path, offset)
            await sender.send_lines(formatter, lines)
            return
        await anyio.sleep(FOLLOW_POLL_SECONDS)


def _log_complete(ctx: ApiContext, namespace: str, name: str, uid: str | None,
                  container: str, number: int) -> bool:
    current = ctx.registry.try_get(PODS, namespace, name)
    if current is None or current["metadata"].get("uid") != uid:
        return True
    status = _container_status(current, container)
    if int(status.get("restartCount") or 0) > number:
        return True
    return bool((status.get("state") or {}).get("terminated"))
