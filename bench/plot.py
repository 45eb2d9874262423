"""The pod-startup distribution as a PNG a person can look at (bench/results/*.png).

    results["burst"][i]["samples"]  (created → Ready, s, per pod, one list per run)
    results["bare"]["samples"]      (spawn → ready of the same app under bare unshare)
        ──► one empirical CDF per run and the bare baseline, p50/p99 marked, the
            Kubernetes SLO (p99 ≤ 5 s) drawn as a line.
matplotlib is a dev dependency (pyproject.toml, for `make bench`); without it the plot
is skipped with a message, never the benchmark.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.stats import percentile

SLO_SECONDS = 5.0


def _cdf(samples: list[float]) -> tuple[list[float], list[float]]:
    ordered = sorted(samples)
    n = len(ordered)
    return ordered, [(i + 1) / n for i in range(n)]


def startup_plot(results: dict[str, Any], path: Path) -> Path | None:
    runs = [b.get("samples") or [] for b in results.get("burst") or []
            if isinstance(b, dict)]
    bare = (results.get("bare") or {}).get("samples") or []
    if not any(runs) and not bare:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display: files only
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot skipped: matplotlib is not installed (pip install -e '.[dev]')")
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    for i, samples in enumerate(runs):
        if samples:
            xs, ys = _cdf(samples)
            ax.step(xs, ys, where="post", label=f"miniorch pods, run {i + 1} "
                    f"(p50 {percentile(samples, 50):.2f} s, p99 {percentile(samples, 99):.2f} s)")
    if bare:
        xs, ys = _cdf(bare)
        ax.step(xs, ys, where="post", color="black", linestyle="--",
                label=f"bare unshare + same app (p50 {percentile(bare, 50):.2f} s, "
                      f"p99 {percentile(bare, 99):.2f} s)")
    ax.axvline(SLO_SECONDS, color="grey", linewidth=0.8)
    ax.text(SLO_SECONDS, 0.97, " SLO p99 ≤ 5 s", color="grey", fontsize=8, va="top")
    pods = (results.get("meta") or {}).get("pods")
    ax.set_title(f"Pod startup, {pods} pods created at once: created → Ready")
    ax.set_xlabel("seconds")
    ax.set_ylabel("fraction of pods Ready")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
