"""structlog set-up: key=value lines to the cluster's log file (or stderr).

Components log with `structlog.get_logger(__name__)` and bind context
(`node=…, pod=…, reconcile_id=…`); only the entry point calls `configure`.

The modules a short CLI command runs (`container run`: the sandbox, the image store,
the container supervisor) log through `get_logger` instead, a stand-in that imports
structlog only when it first logs a message the configuration lets through: with the
CLI's `configure(level="WARNING", lazy=True)` an info line costs nothing, where
importing structlog costs ~20 ms (and ~100 ms more where `rich` is installed, which
structlog imports for pretty tracebacks we never render: our KeyValueRenderer formats
exceptions itself, so structlog is imported with those extras hidden).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

_EXTRAS = ("rich", "better_exceptions", "colorama")
"""What structlog's dev module imports when present, for its ConsoleRenderer only."""
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "warn": logging.WARNING, "error": logging.ERROR, "exception": logging.ERROR,
           "critical": logging.CRITICAL, "fatal": logging.CRITICAL}
_pending: tuple[TextIO | None, str] | None = None
"""A lazy `configure` not yet applied (structlog not imported yet)."""
_threshold = logging.NOTSET
"""Calls below this level are dropped by the stand-ins without importing structlog."""


def _structlog() -> Any:
    """structlog, imported without its optional pretty-printing extras (unless someone
    imported them already), then configured if a lazy `configure` is pending."""
    global _pending
    if "structlog" not in sys.modules:
        hidden = [name for name in _EXTRAS if name not in sys.modules]
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]  # ImportError on import
        try:
            import structlog
        finally:
            for name in hidden:
                if sys.modules.get(name, 0) is None:
                    del sys.modules[name]
    import structlog

    if _pending is not None:
        stream, level = _pending
        _pending = None
        _apply(stream, level)
    return structlog


def configure(*, stream: TextIO | None = None, level: str = "INFO",
              lazy: bool = False) -> None:
    """Log `level` and above as key=value lines to `stream` (default stderr). `lazy`:
    apply it when something first logs at `level` or above (a short command that may
    never log does not import structlog)."""
    global _pending, _threshold
    _threshold = logging.getLevelName(level.upper())
    if lazy and "structlog" not in sys.modules:
        _pending = (stream, level)
        return
    _pending = None
    _structlog()
    _apply(stream, level)


def _apply(stream: TextIO | None, level: str) -> None:
    import structlog

    out = stream or sys.stderr
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.KeyValueRenderer(
                key_order=["timestamp", "level", "event"], drop_missing=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )


def _drop(*args: Any, **kwargs: Any) -> None:
    del args, kwargs


class LazyLogger:
    """`structlog.get_logger(name)`, fetched when a call gets past the threshold."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._logger is None:
            if _LEVELS.get(attr, logging.CRITICAL + 1) < _threshold:
                return _drop
            self._logger = _structlog().get_logger(self._name)
        return getattr(self._logger, attr)


def get_logger(name: str) -> Any:
    """A structlog logger for `name` that imports structlog on first real use."""
    return LazyLogger(name)
