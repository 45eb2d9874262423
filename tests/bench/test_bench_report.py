"""The bench's JSON writer and table: keys and shape only (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report
from bench.stats import median_max, paired, percentile, summary


def test_json_has_every_section_and_the_headline(tmp_path: Path) -> None:
    results = {
        "startup": {"cold": {"bare": {"cmd_s": 1.2}, "demo": {"cmd_s": 2.0,
                                                               "first_curl_s": 1.9}},
                    "warm": {"bare": [{"cmd_s": 0.9}], "demo": [{"cmd_s": 1.5,
                                                                 "first_curl_s": 1.4}]}},
        "burst": [{"created_to_ready": summary([0.1, 0.2, 0.3]),
                   "scale_to_ready": summary([0.2, 0.3]), "teardown_s": 1.0}],
        "memory": {"rss_mb": 70.0, "pss_mb": 60.0, "per_pod_pss_mb": 3.0},
        "commands": {"version_client": paired([0.05, 0.04], [0.02, 0.02]),
                     "container_run": paired([0.3, 0.5], [0.4, 0.4])},
        "cli": {**median_max([0.05]), "vs_python": paired([0.05], [0.025])},
    }
    path = report.write_json(results, directory=tmp_path)
    data = json.loads(path.read_text())
    assert set(report.TOP_KEYS) <= set(data)
    assert data["proxy"] is None and data["meta"]["utc"] in path.name
    rows = {r["figure"]: r for r in data["headline"]}
    assert rows["up --no-demo → Ready (cmd) median"]["ok"] is True
    assert rows["burst created→Ready max (worst run)"]["value"] == 0.3
    assert rows["proxy requests/s (wrk 32 conns, LB)"]["value"] is None
    assert rows["container run / podman run"]["value"] == 1.0  # median of .75 and 1.25
    assert rows["container run / podman run"]["ok"] is True
    assert rows["CLI version --client / python -c pass"]["value"] == 2.25
    assert rows["CLI get pods / python -c pass"]["value"] == 2.0
    assert rows["CLI get pods median"]["ok"] is True
    text = report.table(data["headline"])
    assert "minikube" in text and "idle control plane RSS" in text


def test_stats() -> None:
    assert percentile(list(range(1, 101)), 99) == 99
    assert summary([]) == {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    assert median_max([1.0, None, 3.0]) == {"median": 2.0, "max": 3.0, "n": 2}
    pair = paired([2.0, 3.0, 9.0], [1.0, 1.0, 3.0])
    assert (pair["ratio"], pair["ratio_min"], pair["ratio_max"], pair["n"]) == (3.0, 2.0, 3.0, 3)
    assert pair["a"]["median"] == 3.0 and pair["b"]["median"] == 1.0
    assert paired([], [])["ratio"] is None
