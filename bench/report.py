"""The bench's output: JSON in bench/results/<UTC timestamp>.json and a table.

`headline(results)` flattens the nested results into rows of
(figure, measured, target, unit, ok); `write_json` adds the rows and run metadata.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from bench.stats import median_max

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TOP_KEYS = ("meta", "commands", "startup", "burst", "bare", "endpoints", "memory", "proxy",
            "cli", "scale", "headline")

COMPARISON = ("For comparison (not run here): minikube start ~50 s and ~2 GB, kind create "
              "cluster ~33 s, k3s ~1.6 GB; kwok documents ~20 pods/s on its fake nodes.")


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def headline(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(name: str, value: float | None, target: float | None, unit: str,
            lower_is_better: bool = True) -> None:
        ok = None
        if value is not None and target is not None:
            ok = value <= target if lower_is_better else value >= target
        rows.append({"figure": name, "value": value, "target": target, "unit": unit,
                     "ok": ok})

    warm = _get(results, "startup", "warm") or {}
    for label, key, target, field in (
            ("up --no-demo → Ready (cmd)", "bare", 1.0, "cmd_s"),
            ("up demo → first curl", "demo", 2.0, "first_curl_s"),
            ("up demo (detached cmd)", "demo", None, "cmd_s")):
        mm = median_max([r.get(field) for r in warm.get(key) or []])
        row(f"{label} median", mm["median"], target, "s")
        row(f"{label} max", mm["max"], target, "s")
    cold = _get(results, "startup", "cold") or {}
    row("cold up --no-demo → Ready", _get(cold, "bare", "cmd_s"), None, "s")
    row("cold up demo → first curl", _get(cold, "demo", "first_curl_s"), None, "s")
    bursts = results.get("burst") or []
    for q in ("p50", "p90", "p99", "max"):
        worst = [b["created_to_ready"][q] for b in bursts if b["created_to_ready"][q] is not None]
        row(f"burst created→Ready {q} (worst run)", max(worst) if worst else None, 0.5, "s")
    for q in ("p50", "max"):
        worst = [b["scale_to_ready"][q] for b in bursts if b["scale_to_ready"][q] is not None]
        row(f"burst scale→Ready {q} (worst run)", max(worst) if worst else None, None, "s")
    bare_p50 = _get(results, "bare", "spawn_to_ready", "p50")
    row("bare unshare + same app p50 (the floor)", bare_p50, None, "s")
    best = [b["created_to_ready"]["p50"] for b in bursts
            if b.get("created_to_ready", {}).get("p50") is not None]
    row("burst p50 / bare p50 (median run)",
        round(sorted(best)[len(best) // 2] / bare_p50, 2) if best and bare_p50 else None,
        1.5, "x")
    row("burst teardown 100→0 median",
        median_max([b.get("teardown_s") for b in bursts])["median"], None, "s")
    ep = median_max([r.get("ready_to_routed_s") for r in results.get("endpoints") or []])
    row("endpoint Ready→routed median", ep["median"], 0.05, "s")
    row("endpoint Ready→routed max", ep["max"], 0.05, "s")
    mem = results.get("memory") or {}
    row("idle control plane RSS", mem.get("rss_mb"), 80, "MB")
    row("idle control plane PSS", mem.get("pss_mb"), 80, "MB")
    row("per-pod overhead PSS (shim+init)", mem.get("per_pod_pss_mb"), None, "MB")
    proxy = results.get("proxy") or {}
    http = proxy.get("proxy_http") or {}
    ratios = proxy.get("ratios") or {}
    row("proxy requests/s (wrk 32 conns, LB)", http.get("requests_per_s"), None, "req/s",
        lower_is_better=False)
    row("proxy p99 latency", http.get("p99_s"), None, "s")
    row("proxy/nginx throughput", ratios.get("http_vs_nginx_throughput"), 0.8, "x",
        lower_is_better=False)
    row("proxy/HAProxy throughput", ratios.get("http_vs_haproxy_throughput"), None, "x",
        lower_is_better=False)
    row("proxy/nginx p50 latency", ratios.get("http_vs_nginx_p50"), 2.0, "x")
    row("raw TCP via Service / direct (conn/request)", ratios.get("tcp_vs_direct_throughput"),
        0.9, "x", lower_is_better=False)
    row("raw TCP stream via Service / direct (bytes)", ratios.get("tcp_stream_vs_direct"),
        0.9, "x", lower_is_better=False)
    row("CLI get pods median", _get(results, "cli", "median"), 0.06, "s")
    row("CLI get pods / python -c pass", _get(results, "cli", "vs_python", "ratio"), None,
        "x")
    commands = results.get("commands") or {}
    row("CLI version --client median", _get(commands, "version_client", "a", "median"),
        None, "s")
    row("CLI version --client / python -c pass",
        _get(commands, "version_client", "ratio"), None, "x")
    row("container run --rm busybox true median",
        _get(commands, "container_run", "a", "median"), None, "s")
    row("podman run --rm (runc) busybox true median",
        _get(commands, "container_run", "b", "median"), None, "s")
    row("container run / podman run", _get(commands, "container_run", "ratio"), 1.0, "x")
    if isinstance(results.get("scale"), dict) and "error" not in results["scale"]:
        from bench.scale import headline_rows
        for name, value, target, unit, lower in headline_rows(results["scale"]):
            row(name, value, target, unit, lower_is_better=lower)
    dash = results.get("dashboard") or {}
    row("dashboard first paint of a list (cold)", dash.get("first_paint_ms"), 300, "ms")
    row("dashboard first paint of a list (warm)", dash.get("first_paint_warm_ms"), 300, "ms")
    row("dashboard 1,000 pods painted", dash.get("rows_1000_ms"), None, "ms")
    row("dashboard new pod → row (median, churning)", _get(dash, "probe_ms", "median"),
        None, "ms")
    row("dashboard longest main-thread task", _get(dash, "longtask_ms", "max"), None, "ms")
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = [f"{'figure':44} {'measured':>10} {'target':>8} unit   ok"]
    for r in rows:
        ok = {True: "yes", False: "NO", None: ""}[r["ok"]]
        lines.append(f"{r['figure']:44} {fmt(r['value']):>10} {fmt(r['target']):>8} "
                     f"{r['unit']:6} {ok}")
    lines.append(COMPARISON)
    return "\n".join(lines)


def write_json(results: dict[str, Any], *, directory: Path = RESULTS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    results = {**results, "headline": headline(results)}
    results.setdefault("meta", {}).update(
        {"utc": stamp, "python": platform.python_version(), "machine": platform.machine(),
         "cpus": __import__("os").cpu_count()})
    for key in TOP_KEYS:
        results.setdefault(key, None)
    path = directory / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=2, sort_keys=False))
    return path
