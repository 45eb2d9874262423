"""structlog set-up: key=value lines to the cluster's log file (or stderr).

Components log with `structlog.get_logger(__name__)` and bind context
(`node=…, pod=…, reconcile_id=…`); only the entry point calls `configure`.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure(*, stream: TextIO | None = None, level: str = "INFO") -> None:
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
