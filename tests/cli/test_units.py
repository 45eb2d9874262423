"""Unit tests: argument grammar, errors, YAML errors, apply's patch, jsonpath, tabwriter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from miniorch.cli.apply import (
    LAST_APPLIED,
    apply_strategic_patch,
    last_applied_json,
    three_way_patch,
    with_last_applied,
)
from miniorch.cli.commands import resolve_targets
from miniorch.cli.describe import human_duration
from miniorch.cli.errors import CliError, ConnectionRefused, StatusError
from miniorch.cli.jsonpath import render
from miniorch.cli.kubeconfig_fast import parse
from miniorch.cli.main import build_parser
from miniorch.cli.manifests import parse_documents
from miniorch.cli.tabwriter import TabWriter
from tests.cli.conftest import run_cli


def test_global_options_before_or_after_the_verb() -> None:
    parser = build_parser()
    a = parser.parse_args(["-n", "kube-system", "get", "pods"])
    b = parser.parse_args(["get", "pods", "-n", "kube-system"])
    assert a.namespace == b.namespace == "kube-system"
    c = parser.parse_args(["--state-dir", "/x", "get", "po", "-o", "wide", "-l", "run=kubia"])
    assert (c.state_dir, c.args, c.output, c.selector) == ("/x", ["po"], "wide", "run=kubia")


def test_exec_and_run_take_the_command_after_dashes() -> None:
    parser = build_parser()
    a = parser.parse_args(["exec", "-it", "kubia-x", "--", "sh", "-c", "echo hi"])
    assert (a.pod, a.stdin, a.tty, a.cmd) == ("kubia-x", True, True, ["sh", "-c", "echo hi"])
    r = parser.parse_args(["run", "kubia", "--image=kubia", "--port=8080", "--replicas=3"])
    assert (r.name, r.image, r.port, r.replicas) == ("kubia", "kubia", 8080, 3)


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param(["pods"], [("pods", [])], id="plural"),
    pytest.param(["po", "a", "b"], [("pods", ["a", "b"])], id="short-names"),
    pytest.param(["rc/kubia", "svc/kubia-http"],
                 [("replicationcontrollers", ["kubia"]), ("services", ["kubia-http"])],
                 id="slash"),
    pytest.param(["all"], [("pods", []), ("replicationcontrollers", []), ("services", []),
                           ("cronjobs", []), ("jobs", [])],
                 id="all"),
    pytest.param(["no,ep"], [("nodes", []), ("endpoints", [])], id="comma"),
])
def test_resolve_targets(args: list[str], expected: list[tuple[str, list[str]]]) -> None:
    assert [(r.plural, n) for r, n in resolve_targets(args)] == expected


def test_unknown_kind_error_text() -> None:
    with pytest.raises(CliError) as info:
        resolve_targets(["foo"])
    assert info.value.render() == 'error: the server doesn\'t have a resource type "foo"'


def test_status_error_rendering() -> None:
    not_found = StatusError({"kind": "Status", "reason": "NotFound",
                             "message": 'pods "nope" not found'}, code=404)
    assert not_found.render() == 'Error from server (NotFound): pods "nope" not found'
    invalid = StatusError({"kind": "Status", "reason": "Invalid", "message": "x",
                           "details": {"kind": "ReplicationController", "name": "kubia",
                                       "causes": [{"field": "spec.replicas",
                                                   "message": "Invalid value: -1: must be "
                                                              "greater than or equal to 0"}]}},
                          code=422)
    assert invalid.render() == ('The ReplicationController "kubia" is invalid: spec.replicas: '
                                "Invalid value: -1: must be greater than or equal to 0")
    exists = StatusError({"kind": "Status", "reason": "AlreadyExists",
                          "message": 'pods "a" already exists'}, code=409)
    assert exists.with_source("creating", "pod.yaml").render() == (
        'Error from server (AlreadyExists): error when creating "pod.yaml": '
        'pods "a" already exists')
    assert ConnectionRefused("127.0.0.1:6443").render().startswith(
        "The connection to the server 127.0.0.1:6443 was refused - did you specify the right "
        "host or port?\n")


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n  labels: a: b\n",
                 "yaml: line 5: mapping values are not allowed in this context", id="mapping"),
    pytest.param("apiVersion: v1\nkind: Pod\nmetadata:\n\tname: x\n",
                 "yaml: line 4: found character that cannot start any token", id="tab"),
])
def test_yaml_errors_read_like_kubectl(text: str, message: str) -> None:
    with pytest.raises(CliError) as info:
        parse_documents(text, source="x.yaml")
    assert info.value.render() == (
        f"error: error parsing x.yaml: error converting YAML to JSON: {message}")


def test_malformed_file_sends_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Pod\nmetadata:\n  name: x\n  labels: a: b\n")
    # No kubeconfig exists: reaching the network would fail differently.
    result = run_cli("--state-dir", str(tmp_path), "create", "-f", str(bad))
    assert result.code == 1
    assert result.err == (f"error: error parsing {bad}: error converting YAML to JSON: "
                          "yaml: line 4: mapping values are not allowed in this context\n")


def test_multi_document_and_lists() -> None:
    objs = parse_documents("kind: Pod\nmetadata: {name: a}\n---\n---\nkind: List\nitems:\n"
                           "- {kind: Service, metadata: {name: b}}\n", source="s")
    assert [o["metadata"]["name"] for o in objs] == ["a", "b"]


RC = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "kubia"},
      "spec": {"replicas": 3, "template": {"spec": {"containers": [
          {"name": "kubia", "image": "kubia", "ports": [{"containerPort": 8080}],
           "env": [{"name": "A", "value": "1"}]},
          {"name": "side", "image": "busybox"}]}}}}


def test_apply_patch_changes_deletes_and_keeps_server_fields() -> None:
    original = json.loads(last_applied_json(RC))
    live = with_last_applied(RC)
    live["metadata"]["uid"] = "u1"  # set by the server: must survive
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Always"
    new = json.loads(json.dumps(RC))
    new["spec"]["replicas"] = 5
    new["spec"]["template"]["spec"]["containers"] = [
        {"name": "kubia", "image": "kubia:v2", "ports": [{"containerPort": 8080}]}]
    patch = three_way_patch(original, with_last_applied(new), live, kind="ReplicationController")
    spec = patch["spec"]
    assert spec["replicas"] == 5
    containers = spec["template"]["spec"]["containers"]
    assert {"name": "side", "$patch": "delete"} in containers
    assert {"name": "kubia", "image": "kubia:v2", "env": None} in containers
    assert spec["template"]["spec"]["$setElementOrder/containers"] == [{"name": "kubia"}]
    result = apply_strategic_patch(live, patch, kind="ReplicationController")
    assert result["metadata"]["uid"] == "u1"
    (kubia,) = result["spec"]["template"]["spec"]["containers"]
    assert kubia == {"name": "kubia", "image": "kubia:v2", "ports": [{"containerPort": 8080}],
                     "imagePullPolicy": "Always"}
    assert json.loads(result["metadata"]["annotations"][LAST_APPLIED]) == json.loads(
        last_applied_json(new))


def test_apply_unchanged_is_an_empty_patch() -> None:
    live = with_last_applied(RC)
    live["status"] = {"replicas": 3}
    original = json.loads(last_applied_json(RC))
    assert three_way_patch(original, with_last_applied(RC), live,
                           kind="ReplicationController") == {}


def test_last_applied_keeps_an_empty_annotations_map() -> None:
    assert json.loads(last_applied_json(RC))["metadata"] == {"annotations": {},
                                                             "name": "kubia"}


@pytest.mark.parametrize(("template", "expected"), [
    pytest.param("{.items[*].metadata.name}", "a b", id="wildcard"),
    pytest.param('{range .items[*]}{.metadata.name}{"\\n"}{end}', "a\nb\n", id="range"),
    pytest.param('{.items[?(@.status.phase=="Running")].metadata.name}', "b", id="filter"),
    pytest.param("{.items[0].spec}", '{"x":1}', id="json"),
    pytest.param("{.items[1].metadata.nope}", "", id="missing"),
    pytest.param("{..phase}", "Pending Running", id="recursive"),
])
def test_jsonpath(template: str, expected: str) -> None:
    data = {"items": [{"metadata": {"name": "a"}, "spec": {"x": 1},
                       "status": {"phase": "Pending"}},
                      {"metadata": {"name": "b"}, "status": {"phase": "Running"}}]}
    assert render(template, data) == expected


def test_tabwriter_column_blocks_like_go() -> None:
    w = TabWriter(minwidth=0, padding=2)
    w.write("Name:\tx\nIPs:\n  IP:\t10.0.0.1\nControlled By:\tRC/k\n")
    assert w.flush() == "Name:  x\nIPs:\n  IP:           10.0.0.1\nControlled By:  RC/k\n"


def test_human_duration() -> None:
    assert [human_duration(s) for s in (59, 150, 600, 11700, 190800)] == [
        "59s", "2m30s", "10m", "3h15m", "2d5h"]


def test_fast_kubeconfig_reader_refuses_what_it_does_not_know() -> None:
    assert parse("a: [1, 2]\n") is None
    assert parse("a: |\n  x\n") is None
    assert parse("a:\n- name: x\n  b:\n    c: d\n") == {"a": [{"name": "x", "b": {"c": "d"}}]}


def test_completion_scripts_are_valid_shell(tmp_path: Path) -> None:
    import subprocess

    for shell in ("bash", "zsh"):
        result = run_cli("completion", shell)
        assert result.code == 0 and "_miniorch" in result.out
    script = tmp_path / "c.sh"
    script.write_text(run_cli("completion", "bash").out)
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_connection_refused_hint(tmp_path: Path) -> None:
    import socket

    from miniorch.api.kubeconfig import write_kubeconfig
    from miniorch.api.tls import ensure_tls

    with socket.socket() as s:  # a port that is certainly closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    material = ensure_tls(tmp_path / "tls")
    write_kubeconfig(tmp_path / "kubeconfig", server=f"https://127.0.0.1:{port}",
                     ca_pem=material.ca_pem, token="t")
    result = run_cli("--state-dir", str(tmp_path), "get", "pods")
    assert result.code == 1
    assert result.err.startswith(f"The connection to the server 127.0.0.1:{port} was refused"
                                 " - did you specify the right host or port?\n")
    assert "miniorch up" in result.err


def test_container_group_help_and_image_push_of_a_missing_image(tmp_path: Path) -> None:
    assert run_cli("container").code == 2  # a group without a verb: its help
    result = run_cli("--state-dir", str(tmp_path), "image", "push", "kubia")
    assert result.code == 1
    assert "An image does not exist locally with the tag: kubia" in result.err
