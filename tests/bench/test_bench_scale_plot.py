"""The scale figures in the headline, and the startup plot (shape only, no timings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import plot, report
from bench.stats import summary


def test_scale_and_bare_rows_reach_the_headline() -> None:
    results = {
        "burst": [{"created_to_ready": summary([1.0, 2.0, 3.0]), "samples": [1.0, 2.0, 3.0],
                   "scale_to_ready": summary([1.0]), "teardown_s": 1.0}],
        "bare": {"spawn_to_ready": summary([0.5, 1.0, 1.5]), "samples": [0.5, 1.0, 1.5]},
        "scale": {"pods": 1000, "create": {"pods_per_s": 600.0, "all_ready_s": 3.0},
                  "list": {"p99": 0.2}, "watch": {"p99": 0.01},
                  "memory": {"rss_mb": 310.0},
                  "rollout": {"replicas": 100, "available_s": 1.0, "rolling_update_s": 2.0}},
    }
    rows = {r["figure"]: r for r in report.headline(results)}
    assert rows["burst p50 / bare p50 (median run)"]["value"] == 2.0
    assert rows["burst p50 / bare p50 (median run)"]["ok"] is False
    assert rows["scale: 1000 pods created (POST) per s"]["ok"] is True
    assert rows["scale: control plane RSS at 1000 pods"]["ok"] is False
    assert rows["scale: watch event → 10 watchers p99"]["value"] == 0.01


def test_startup_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = {"meta": {"pods": 3}, "burst": [{"samples": [1.0, 2.0, 3.0]}],
               "bare": {"samples": [0.5, 1.0, 1.5]}}
    path = plot.startup_plot(results, tmp_path / "run.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.startup_plot({"burst": []}, tmp_path / "none.png") is None
