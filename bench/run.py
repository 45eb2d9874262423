"""`python -m bench.run`: run every measurement, print the table, write the JSON.

    commands (no cluster: version --client vs python, container run vs podman)
    startup  (its own clusters: cold, then warm x repeat, bare and demo)
    one demo cluster: memory (idle 5 s) → CLI get pods x10 → proxy (wrk)
                      → endpoint propagation x repeat → pod burst x repeat
Each cluster runs in a temporary state dir on a free API port, and `down` runs even
when a measurement fails. `--only` picks sections (e.g. `--only burst`).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import bare, burst, dashboard, memory, network, plot, report, scale, startup
from bench.api import Api
from bench.cluster import ROOT, BenchCluster, running

SECTIONS = ("commands", "startup", "memory", "cli", "proxy", "endpoints", "burst", "dashboard",
            "scale")


def cli_get_pods(cluster: BenchCluster, *, times: int = 10) -> dict[str, Any]:
    """`get pods` against `python -c pass` in turn: the median, and the ratio to the
    interpreter's own start measured in the same run."""
    result = startup.pair(cluster.command("get", "pods"), startup.python_floor(), runs=times)
    return {**result["a"], "vs_python": result}


def _guarded(step: Callable[[], Any]) -> Any:
    """A failed measurement is reported in the results, not fatal to the others."""
    try:
        return step()
    except Exception as exc:
        print(f"  failed: {exc!r}", flush=True)
        return {"error": repr(exc)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    p.add_argument("--repeat", type=int, default=3, help="runs per figure (default 3)")
    p.add_argument("--pods", type=int, default=100, help="pods in the burst (default 100)")
    p.add_argument("--only", action="append", choices=SECTIONS, help="sections to run")
    p.add_argument("--short", action="store_true",
                   help="CI mode: one run per figure, 1,000 pods at scale instead of 10,000")
    p.add_argument("--scale-pods", type=int, default=None,
                   help="pods on the hollow nodes (default 10,000; 1,000 with --short)")
    args = p.parse_args(argv)
    if args.short:
        args.repeat = 1
    scale_pods = args.scale_pods or (1000 if args.short else 10_000)
    # SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so every cluster gets its `down`.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    sections = set(args.only or SECTIONS)
    results: dict[str, Any] = {"meta": {"repeat": args.repeat, "pods": args.pods,
                                        "sections": sorted(sections)}}
    # Start-up figures are of an installed CLI: its bytecode compiled, as pip leaves it
    # (an environment with PYTHONDONTWRITEBYTECODE would otherwise recompile every run).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "miniorch")],
                   capture_output=True, check=False)
    with tempfile.TemporaryDirectory(prefix="mo-bench-") as tmp:
        work = Path(tmp)
        if "commands" in sections:
            print("commands: version --client vs python, container run vs podman...",
                  flush=True)
            results["commands"] = _guarded(
                lambda: startup.commands(work / "commands", runs=max(5, args.repeat * 3)))
        if "startup" in sections:
            print("startup: cold and warm `up` (bare and demo)...", flush=True)
            results["startup"] = startup.measure(work / "startup", repeat=args.repeat)
        if sections - {"startup", "commands", "scale"}:
            with running(work / "main", demo=True) as cluster:
                api = Api(cluster.kubeconfig)
                steps: list[tuple[str, str, Callable[[], Any]]] = [
                    ("memory", "memory: idle 5 s", lambda: memory.measure(cluster.pid)),
                    ("cli", "CLI: get pods x10", lambda: cli_get_pods(cluster)),
                    ("proxy", "proxy: wrk 5 s, 32 connections vs nginx, HAProxy, pods",
                     lambda: network.compare(api)),
                    ("endpoints", "endpoints: scale kubia 3→4 while polling the LB",
                     lambda: network.endpoint_propagation(api, repeat=args.repeat)),
                    ("burst", f"burst: {args.pods} pods at once",
                     lambda: burst.measure(api, pods=args.pods, repeat=args.repeat)),
                    ("dashboard", "dashboard: first paint, 1,000 pods live (Chromium)",
                     lambda: dashboard.measure(cluster, api)),
                ]
                for name, what, step in steps:
                    if name in sections:
                        print(f"{what}...", flush=True)
                        results[name] = _guarded(step)
        if "burst" in sections and bare.available():
            # The floor, in the same run: the same app under bare unshare.
            print(f"bare: {args.pods} apps under unshare at once...", flush=True)
            results["bare"] = _guarded(lambda: bare.measure(pods=args.pods))
        if "scale" in sections:
            # Its own cluster: 100 hollow nodes (node/hollow.py), no processes.
            print(f"scale: {scale_pods} pods on 100 hollow nodes...", flush=True)
            results["scale"] = _guarded(lambda: scale.measure(
                work / "scale", pods=scale_pods, replicas=max(100, scale_pods // 10)))
    path = report.write_json(results)
    png = plot.startup_plot(results, path.with_suffix(".png"))
    print()
    print(report.table(report.headline(results)))
    print(f"\nresults: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    if png is not None:
        print(f"pod startup plot: {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
