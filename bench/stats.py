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


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Two commands timed in turn (a b a b ...): each one's median, and the median and
    range of the pair-by-pair ratio a/b, which holds when the machine's speed drifts
    between pairs (it is shared: absolute times are not comparable across runs)."""
    ratios = [x / y for x, y in zip(a, b, strict=True) if y > 0]
    return {"a": median_max(a), "b": median_max(b), "n": len(ratios),
            "ratio": round(statistics.median(ratios), 3) if ratios else None,
            "ratio_min": round(min(ratios), 3) if ratios else None,
            "ratio_max": round(max(ratios), 3) if ratios else None}
