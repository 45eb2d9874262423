"""Tables: miniorch prints the server's Table exactly as kubectl 1.32 prints it.

The expectation is produced by the real kubectl against a stub server answering the
same Table (a boundary fake), so column widths, padding and wide columns are checked
against the judge, not against our reading of its source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from miniorch.cli.printers import TableOptions, render_table
from tests.cli.conftest import needs_kubectl, run_cli, run_kubectl

POD_COLUMNS = [
    {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0},
    {"name": "Ready", "type": "string", "format": "", "description": "", "priority": 0},
    {"name": "Status", "type": "string", "format": "", "description": "", "priority": 0},
    {"name": "Restarts", "type": "string", "format": "", "description": "", "priority": 0},
    {"name": "Age", "type": "string", "format": "", "description": "", "priority": 0},
    {"name": "IP", "type": "string", "format": "", "description": "", "priority": 1},
    {"name": "Node", "type": "string", "format": "", "description": "", "priority": 1},
    {"name": "Nominated Node", "type": "string", "format": "", "description": "",
     "priority": 1},
    {"name": "Readiness Gates", "type": "string", "format": "", "description": "",
     "priority": 1},
]


def pod_row(name: str, ready: str, status: str, restarts: str, age: str, ip: str,
            node: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"cells": [name, ready, status, restarts, age, ip, node, "<none>", "<none>"],
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                       "metadata": {"name": name, "namespace": "default",
                                    "labels": labels or {"run": "kubia"}}}}


def pod_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": "107"}, "columnDefinitions": POD_COLUMNS,
            "rows": rows}


PODS = pod_table([
    pod_row("kubia-x7k2p", "1/1", "Running", "0", "5m", "10.244.1.5", "node-1"),
    pod_row("kubia-4jfyf", "0/1", "ContainerCreating", "2 (5m ago)", "12s", "<none>",
            "node-2", {"run": "kubia", "tier": "web"}),
    pod_row("a", "1/1", "Running", "0", "3h15m", "10.244.3.17", "node-3"),
])

RC_TABLE = {
    "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "9"},
    "columnDefinitions": [
        {"name": "Name", "type": "string", "format": "name", "priority": 0},
        {"name": "Desired", "type": "integer", "format": "", "priority": 0},
        {"name": "Current", "type": "integer", "format": "", "priority": 0},
        {"name": "Ready", "type": "integer", "format": "", "priority": 0},
        {"name": "Age", "type": "string", "format": "", "priority": 0},
        {"name": "Containers", "type": "string", "format": "", "priority": 1},
        {"name": "Images", "type": "string", "format": "", "priority": 1},
        {"name": "Selector", "type": "string", "format": "", "priority": 1},
    ],
    "rows": [{"cells": ["kubia", 3, 3, 2, "2d5h", "kubia", "kubia", "run=kubia"],
              "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": {"name": "kubia", "namespace": "default"}}}],
}


def test_render_matches_known_kubectl_layout() -> None:
    text = render_table(PODS, TableOptions())
    assert text.splitlines() == [
        "NAME          READY   STATUS              RESTARTS     AGE",
        "kubia-x7k2p   1/1     Running             0            5m",
        "kubia-4jfyf   0/1     ContainerCreating   2 (5m ago)   12s",
        "a             1/1     Running             0            3h15m",
    ]


def test_no_rows_prints_nothing() -> None:
    assert render_table(pod_table([]), TableOptions()) == ""


@needs_kubectl
@pytest.mark.parametrize("flags", [
    pytest.param([], id="plain"),
    pytest.param(["-o", "wide"], id="wide"),
    pytest.param(["--show-labels"], id="labels"),
    pytest.param(["--no-headers"], id="no-headers"),
    pytest.param(["-o", "wide", "--show-labels"], id="wide-labels"),
])
def test_get_pods_like_kubectl(api: Any, tmp_path: Path, flags: list[str]) -> None:
    api.route("GET", "/api/v1/namespaces/default/pods", PODS)
    expected = run_kubectl(api, tmp_path, "get", "pods", *flags)
    assert expected.code == 0, expected.err
    ours = run_cli("--kubeconfig", str(api.kubeconfig), "get", "pods", *flags)
    assert ours.code == 0, ours.err
    assert ours.out == expected.out


@needs_kubectl
def test_get_rc_integers_like_kubectl(api: Any, tmp_path: Path) -> None:
    api.route("GET", "/api/v1/namespaces/default/replicationcontrollers", RC_TABLE)
    for flags in ([], ["-o", "wide"]):
        expected = run_kubectl(api, tmp_path, "get", "rc", *flags)
        ours = run_cli("--kubeconfig", str(api.kubeconfig), "get", "rc", *flags)
        assert ours.out == expected.out


@needs_kubectl
def test_all_namespaces_like_kubectl(api: Any, tmp_path: Path) -> None:
    api.route("GET", "/api/v1/pods", PODS)
    expected = run_kubectl(api, tmp_path, "get", "pods", "-A")
    ours = run_cli("--kubeconfig", str(api.kubeconfig), "get", "pods", "-A")
    assert ours.out == expected.out


@needs_kubectl
def test_get_all_like_kubectl(api: Any, tmp_path: Path) -> None:
    api.route("GET", "/api/v1/namespaces/default/pods", PODS)
    api.route("GET", "/api/v1/namespaces/default/replicationcontrollers", RC_TABLE)
    api.route("GET", "/api/v1/namespaces/default/services",
              {**RC_TABLE, "rows": []})
    expected = run_kubectl(api, tmp_path, "get", "all")
    ours = run_cli("--kubeconfig", str(api.kubeconfig), "get", "all")
    assert ours.out == expected.out


@needs_kubectl
def test_empty_list_message_like_kubectl(api: Any, tmp_path: Path) -> None:
    api.route("GET", "/api/v1/namespaces/default/pods", pod_table([]))
    expected = run_kubectl(api, tmp_path, "get", "pods")
    ours = run_cli("--kubeconfig", str(api.kubeconfig), "get", "pods")
    assert (ours.out, ours.err) == (expected.out, expected.err)


@needs_kubectl
def test_not_found_like_kubectl(api: Any, tmp_path: Path) -> None:
    api.route("GET", "/api/v1/namespaces/default/pods/nope",
              {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": 'pods "nope" not found', "reason": "NotFound",
               "details": {"name": "nope", "kind": "pods"}, "code": 404}, status=404)
    expected = run_kubectl(api, tmp_path, "get", "pods", "nope")
    ours = run_cli("--kubeconfig", str(api.kubeconfig), "get", "pods", "nope")
    assert ours.err == expected.err == 'Error from server (NotFound): pods "nope" not found\n'
    assert ours.code == expected.code == 1
