"""What keeps the CLI's start-up cheap, asserted by behaviour (no timing here; `make
bench` times it): one verb's grammar, discovery cached on disk, the HTTP/1.1 client,
and the modules a command does not import."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from miniorch.cli.client import Client, ClusterConfig
from miniorch.cli.discovery import Discovery, DiscoveryCache
from miniorch.cli.errors import CliError
from miniorch.cli.main import VERBS, build_parser, verb_of
from tests.cli.cli_support import StubApi
from tests.cli.conftest import run_cli
from tests.cli.test_units import _DiscoveryDocs

POD_LIST = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": "1"},
            "columnDefinitions": [{"name": "Name", "type": "string", "format": "name"}],
            "rows": []}


@pytest.mark.parametrize(("argv", "verb"), [
    pytest.param(["get", "pods"], "get", id="verb-first"),
    pytest.param(["-n", "kube-system", "--state-dir", "/x", "get", "po"], "get",
                 id="valued-globals-first"),
    pytest.param(["--state-dir=/x", "container", "run", "busybox"], "container",
                 id="equals-form"),
    pytest.param(["--help"], None, id="help"),
    pytest.param(["frobnicate"], None, id="unknown-verb"),
    pytest.param([], None, id="nothing"),
])
def test_only_the_named_verb_is_built(argv: list[str], verb: str | None) -> None:
    assert verb_of(argv) == verb
    sub = next(a for a in build_parser(verb)._actions if a.dest == "command")
    assert list(sub.choices) == ([verb] if verb else list(VERBS))  # type: ignore[attr-defined]


def test_an_unknown_verb_is_refused_with_every_choice(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    assert verb_of(["frobnicate"]) is None
    with pytest.raises(SystemExit):
        run_cli("frobnicate")
    err = capsys.readouterr().err
    assert "invalid choice: 'frobnicate'" in err and "'container'" in err


def test_version_and_get_import_only_what_they_use(api: StubApi) -> None:
    """`version --client` loads no HTTP, TLS or API code; `get pods` loads TLS but not
    `http.client` (and its `email` package), YAML, aiohttp or the API's kinds."""
    api.route("GET", "/api/v1/namespaces/default/pods", POD_LIST)
    probe = ("import sys; from miniorch.cli.main import main; code = main(sys.argv[1:]); "
             "print(sorted(m for m in ('ssl', 'http.client', 'email.parser', 'yaml', "
             "'aiohttp', 'miniorch.api.kinds', 'importlib.metadata', 'dataclasses') "
             "if m in sys.modules), file=sys.stderr); sys.exit(code)")

    def loaded(*argv: str) -> list[str]:
        r = subprocess.run([sys.executable, "-c", probe, "--kubeconfig", str(api.kubeconfig),
                            *argv], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return list(json.loads(r.stderr.strip().splitlines()[-1].replace("'", '"')))

    assert "ssl" not in loaded("version", "--client")
    assert set(loaded("get", "pods")) <= {"ssl", "dataclasses"}


def test_discovery_is_cached_beside_the_kubeconfig(api: StubApi) -> None:
    api.route("GET", "/api/v1/namespaces/default/pods", POD_LIST)

    def paths() -> list[str]:
        before = len(api.requests)
        assert run_cli("--kubeconfig", str(api.kubeconfig), "get", "pods").code == 0
        return [r.path for r in api.requests[before:]]

    assert paths() == ["/api/v1", "/api/v1/namespaces/default/pods"]
    hostport = api.url.removeprefix("https://").replace(":", "_")
    cached = api.kubeconfig.parent / "cache" / "discovery" / hostport / "v1"
    assert json.loads((cached / "serverresources.json").read_text())["groupVersion"] == "v1"
    assert paths() == ["/api/v1/namespaces/default/pods"]
    # A new `up` rewrites the kubeconfig: what was cached before it is not trusted.
    later = time.time() + 5
    os.utime(api.kubeconfig, (later, later))
    assert paths() == ["/api/v1", "/api/v1/namespaces/default/pods"]


def test_cache_entries_expire_and_map_to_kubectls_layout(tmp_path: Path) -> None:
    now = [1000.0]
    cache = DiscoveryCache(tmp_path, ttl=600, now=lambda: now[0])
    assert cache._file("/api/v1") == tmp_path / "v1" / "serverresources.json"
    assert cache._file("/apis") == tmp_path / "servergroups.json"
    assert cache._file("/apis/apps/v1") == tmp_path / "apps" / "v1" / "serverresources.json"
    cache.put("/api/v1", {"groupVersion": "v1"})
    mtime = (tmp_path / "v1" / "serverresources.json").stat().st_mtime
    now[0] = mtime + 599
    assert cache.get("/api/v1") == {"groupVersion": "v1"}
    now[0] = mtime + 601
    assert cache.get("/api/v1") is None
    (tmp_path / "servergroups.json").write_text("{not json")
    now[0] = mtime
    assert cache.get("/apis") is None  # a torn or foreign file is a miss, not an error


class _NewerDocs(_DiscoveryDocs):
    """The same server after a CRD added `widgets` to the apps group."""

    def get(self, path: str) -> dict[str, object]:
        doc = super().get(path)
        if path == "/apis/apps/v1":
            resources = doc["resources"]
            assert isinstance(resources, list)
            resources.append({"name": "widgets", "singularName": "widget", "kind": "Widget",
                              "namespaced": True, "verbs": ["get", "list"]})
        return doc


def test_a_name_the_cache_does_not_know_is_looked_up_afresh(tmp_path: Path) -> None:
    cache = DiscoveryCache(tmp_path)
    first = _DiscoveryDocs()
    Discovery(first, cache).resolve("deploy")  # type: ignore[arg-type]
    assert first.asked == ["/api/v1", "/apis", "/apis/coordination.k8s.io/v1",
                           "/apis/apps/v1"]
    newer = _NewerDocs()
    second = Discovery(newer, cache)  # type: ignore[arg-type]
    assert second.resolve("deploy").plural == "deployments"
    assert newer.asked == []  # all from the cache
    assert second.resolve("widgets").kind == "Widget"
    assert newer.asked == ["/api/v1", "/apis", "/apis/coordination.k8s.io/v1",
                           "/apis/apps/v1"]
    with pytest.raises(CliError, match='resource type "gadgets"'):
        Discovery(newer, cache).resolve("gadgets")  # type: ignore[arg-type]


# -- the HTTP/1.1 client against a scripted server ------------------------------------


@pytest.fixture
def scripted() -> Iterator[tuple[list[bytes], list[bytes], int]]:
    """A loopback server answering each request with the next scripted bytes (closing
    the connection after an answer that ends in b"<close>"); records the requests."""
    answers: list[bytes] = []
    seen: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)  # so that the thread sees `stop`
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                buf = b""
                while answers:
                    while b"\r\n\r\n" not in buf:
                        data = conn.recv(65536)
                        if not data:
                            break
                        buf += data
                    if b"\r\n\r\n" not in buf:
                        break
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    seen.append(head)
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    while len(buf) < length and (data := conn.recv(65536)):
                        buf += data
                    buf = buf[length:]  # the body: not needed here
                    answer = answers.pop(0)
                    close = answer.endswith(b"<close>")
                    for piece in answer.removesuffix(b"<close>").split(b"|"):
                        conn.sendall(piece)  # in pieces: reads must reassemble them
                        time.sleep(0.005)
                    if close:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield answers, seen, server.getsockname()[1]
    finally:
        stop.set()
        server.close()
        thread.join(timeout=5)


def test_http_client_framing_and_keep_alive(
        scripted: tuple[list[bytes], list[bytes], int]) -> None:
    answers, seen, port = scripted
    answers += [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n"
        b"{\"a\":|1234}",
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n4\r\n{\"b\"|\r\n3;ext=1\r\n:2}\r\n0\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 65\r\n"
        b"\r\n{\"kind\":\"Status\",\"reason\":\"NotFound\",\"message\":\"gone\",\"code\":404}",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
        b"line one\nline |two\nlast<close>",
    ]
    client = Client(ClusterConfig(server=f"http://127.0.0.1:{port}", token="t0k"))
    try:
        assert client.get("/one") == {"a": 1234}
        assert client.request("POST", "/two", body={"x": 1}) == {"b": 2}
        with pytest.raises(CliError, match="gone"):
            client.get("/three")
        response = client.open("GET", "/four", accept="*/*")
        assert list(response.lines()) == [b"line one\n", b"line two\n", b"last"]
    finally:
        client.close()
    assert [h.split(b"\r\n")[0] for h in seen] == [
        b"GET /one HTTP/1.1", b"POST /two HTTP/1.1", b"GET /three HTTP/1.1",
        b"GET /four HTTP/1.1"]
    assert b"Authorization: Bearer t0k" in seen[0] and b"Content-Length: 8" in seen[1]


def test_http_client_retries_a_keep_alive_the_server_closed(
        scripted: tuple[list[bytes], list[bytes], int]) -> None:
    answers, seen, port = scripted
    answers += [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                b"Content-Type: application/json\r\n\r\n{}<close>",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                b"Content-Type: application/json\r\n\r\n[]"]
    client = Client(ClusterConfig(server=f"http://127.0.0.1:{port}"))
    try:
        assert client.get("/a") == {}
        time.sleep(0.05)  # the server has closed the kept-alive connection meanwhile
        assert client.get("/b") == []
    finally:
        client.close()
    assert len(seen) == 2


# -- up --detach and down: the process that only waits imports no cluster ------------


def test_pid_liveness_reads_proc_and_counts_zombies_as_dead() -> None:
    from miniorch.cluster.commands import _alive

    assert _alive(os.getpid())
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while _alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.01)  # exited but not reaped: a zombie, which is not alive
    assert not _alive(child.pid)
    assert child.wait(timeout=10) == 0
    assert not _alive(child.pid)


def test_down_imports_no_cluster_when_none_runs(tmp_path: Path) -> None:
    probe = ("import sys; from miniorch.cli.main import main; code = main(sys.argv[1:]); "
             "print(sorted(m for m in ('miniorch.cluster.cluster', 'miniorch.sandbox', "
             "'psutil', 'pyroute2') if m in sys.modules)); sys.exit(code)")
    r = subprocess.run([sys.executable, "-c", probe, "--state-dir", str(tmp_path), "down"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"no cluster running from {tmp_path}", "[]"]


# -- logging: structlog only when a line gets through ------------------------------------


def test_lazy_logging_imports_structlog_at_the_first_line_that_passes() -> None:
    probe = """
import io, sys
from miniorch.core import logging as molog
out = io.StringIO()
molog.configure(stream=out, level="WARNING", lazy=True)
log = molog.get_logger("probe")
log.info("dropped", n=1)
log.debug("dropped too")
print("structlog" in sys.modules)
log.warning("kept", n=2)
print("structlog" in sys.modules, "rich" in sys.modules,
      any(sys.modules.get(m, 0) is None for m in ("rich", "colorama", "better_exceptions")))
log.info("filtered by structlog now")
print(out.getvalue().strip())
"""
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    first, second, line = r.stdout.strip().splitlines()
    assert first == "False"
    assert second == "True False False"  # imported without its extras, none left hidden
    assert "level='warning' event='kept' n=2" in line and "dropped" not in r.stdout


def test_container_run_imports_no_structlog(tmp_path: Path) -> None:
    """What `container run` pays for: not structlog (nothing is logged at WARNING),
    nor the API client, aiohttp or cryptography. Runs no container: a missing image
    fails before the sandbox, after the imports the command makes."""
    probe = ("import sys; from miniorch.cli.main import main; code = main(sys.argv[1:]); "
             "print(sorted(m for m in ('structlog', 'rich', 'aiohttp', 'cryptography', "
             "'http.client', 'miniorch.api.kinds') if m in sys.modules)); sys.exit(code)")
    r = subprocess.run([sys.executable, "-c", probe, "--state-dir", str(tmp_path),
                        "container", "run", "--rm", "nosuchimage-for-test", "true"],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, MINIORCH_OFFLINE="1"))
    assert r.returncode == 125, r.stderr
    assert r.stdout.splitlines()[-1] == "[]"
