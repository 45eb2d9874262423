"""Percentiles and summaries (nearest-rank, so p99 of 100 samples is the 99th)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, Any]:
    """p50/p90/p99/max in seconds (None when there are no samples)."""
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    return {"n": len(values), **{f"p{q}": round(percentile(values, q), 4)
                                 for q in (50, 90, 99)},
            "max": round(max(values), 4)}


def median_max(values: Sequence[float | None]) -> dict[str, float | None]:
    present = [v for v in values if v is not None]
    if not present:
        return {"median": None, "max": None, "n": 0}
    return {"median": round(statistics.median(present), 4), "max": round(max(present), 4),
            "n": len(present)}
