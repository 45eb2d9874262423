"""The bench's JSON writer and table: keys and shape only (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report
from bench.stats import median_max, percentile, summary


def test_json_has_every_section_and_the_headline(tmp_path: Path) -> None:
    results = {
        "startup": {"cold": {"bare": {"cmd_s": 1.2}, "demo": {"cmd_s": 2.0,
                                                               "first_curl_s": 1.9}},
                    "warm": {"bare": [{"cmd_s": 0.9}], "demo": [{"cmd_s": 1.5,
                                                                 "first_curl_s": 1.4}]}},
        "burst": [{"created_to_ready": summary([0.1, 0.2, 0.3]),
                   "scale_to_ready": summary([0.2, 0.3]), "teardown_s": 1.0}],
        "memory": {"rss_mb": 70.0, "pss_mb": 60.0, "per_pod_pss_mb": 3.0},
    }
    path = report.write_json(results, directory=tmp_path)
    data = json.loads(path.read_text())
    assert set(report.TOP_KEYS) <= set(data)
    assert data["proxy"] is None and data["meta"]["utc"] in path.name
    rows = {r["figure"]: r for r in data["headline"]}
    assert rows["up --no-demo → Ready (cmd) median"]["ok"] is True
    assert rows["burst created→Ready max (worst run)"]["value"] == 0.3
    assert rows["proxy requests/s (wrk 32 conns, LB)"]["value"] is None
    text = report.table(data["headline"])
    assert "minikube" in text and "idle control plane RSS" in text


def test_stats() -> None:
    assert percentile(list(range(1, 101)), 99) == 99
    assert summary([]) == {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    assert median_max([1.0, None, 3.0]) == {"median": 2.0, "max": 3.0, "n": 2}
