"""Warnings for the client: what a write let through but wants the user to know.

    server middleware ──collecting()──► registry / admission ──add(msg)──► the list
                                                                              │
    server._respond ◄── current() ◄───────────────────────────────────────────┘
        └─► `Warning: 299 - "msg"` headers (kubectl prints `Warning: msg`)

This is k8s.io/apiserver's `warning.AddWarning(ctx, …)`: the sink travels with the
request instead of through every signature, so the admission code deep in the
registry (api/podsecurity.py) can warn without the registry's API changing.

Invariants: the sink is set by the server in the request's own task, so a request
never sees another's warnings; outside a request (controllers, kubelets) there is no
sink and `add` drops the message, as client-go's in-cluster callers never print them.
A message is kept once per request, in the order added.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_SINK: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "miniorch_warnings", default=None)


@contextmanager
def collecting() -> Iterator[list[str]]:
    """Collect the warnings added while the block runs (in this task)."""
    sink: list[str] = []
    token = _SINK.set(sink)
    try:
        yield sink
    finally:
        _SINK.reset(token)


def add(message: str) -> None:
    """Warn the current request's client (dropped outside a request)."""
    sink = _SINK.get()
    if sink is not None and message and message not in sink:
        sink.append(message)


def current() -> list[str]:
    """The warnings added so far in this request (a copy)."""
    return list(_SINK.get() or ())


__all__ = ["add", "collecting", "current"]
