"""The kubelet's event recorder: Events leave the pod's critical path.

    PodWorker / Kubelet ──record() (sync, never blocks)──► bounded mailbox
                                           EventSink.run ──► registry.record_event (batched)

Recording an Event folds repeats (a lookup over the namespace's Events), which in a
burst of pod starts costs more than the pod's status writes. So workers only enqueue;
the sink records once the queue has been quiet for `quiet` seconds (a burst's status
writes and process starts go first), or at the latest `max_delay` after the oldest
queued event. Like client-go's recorder, it drops events rather than block a pod when the
mailbox is full (and logs that it did).
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import structlog
from anyio.abc import TaskStatus

from miniorch.api.errors import ApiError
from miniorch.api.registry import Registry
from miniorch.core.objects import Obj

COMPONENT = "kubelet"


@dataclass(frozen=True)
class _Event:
    involved: Obj
    type: str
    reason: str
    message: str


class EventSink:
    def __init__(self, registry: Registry, *, host: str, quiet: float = 0.05,
                 max_delay: float = 2.0, capacity: int = 10_000) -> None:
        self.registry = registry
        self.host = host
        self.quiet = quiet
        self.max_delay = max_delay
        self._send, self._receive = anyio.create_memory_object_stream[_Event](capacity)
        self.log = structlog.get_logger(__name__).bind(node=host)

    def record(self, involved: Obj, *, type: str, reason: str, message: str) -> None:
        try:
            self._send.send_nowait(_Event(involved, type, reason, message))
        except anyio.WouldBlock:
            self.log.warning("event dropped: recorder backlog full", reason=reason)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the kubelet is stopping

    def flush(self) -> None:
        """Record everything queued now (the kubelet calls this when it stops)."""
        while True:
            try:
                event = self._receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                return
            self._write(event)

    def _write(self, event: _Event) -> None:
        try:
            self.registry.record_event(event.involved, type=event.type, reason=event.reason,
                                       message=event.message, component=COMPONENT,
                                       host=self.host)
        except ApiError as exc:  # e.g. the namespace is being deleted
            self.log.debug("event not recorded", reason=event.reason, error=str(exc))

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            async for event in self._receive:
                batch = [event]
                deadline = anyio.current_time() + self.max_delay
                # Let the rest of a burst (status writes, process starts) go first.
                while anyio.current_time() < deadline:
                    with anyio.move_on_after(self.quiet):
                        batch.append(await self._receive.receive())
                        continue
                    break
                for queued in batch:
                    self._write(queued)
                self.flush()
        finally:
            self.flush()
            self._send.close()
            self._receive.close()
