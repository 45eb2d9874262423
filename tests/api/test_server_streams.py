"""Long-lived responses: watch, logs (follow), exec over WebSockets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp.test_utils import TestClient

from miniorch.api.kinds import PODS
from miniorch.api.registry import Registry
from miniorch.core import podfiles
from miniorch.core.settings import Settings
from tests.api.server_support import app_client, make_registry, pod

Client = TestClient[Any, Any]
PODS_URL = "/api/v1/namespaces/default/pods"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    yield make_registry(tmp_path)


@pytest.fixture
async def client(tmp_path: Path, registry: Registry) -> AsyncIterator[Client]:
    async with app_client(tmp_path, registry=registry) as c:
        yield c


async def read_events(response: Any, count: int) -> list[Any]:
    events = []
    with anyio.fail_after(5):
        while len(events) < count:
            line = await response.content.readline()
            assert line.endswith(b"\n"), line
            events.append(json.loads(line))
    return events


# ---- watch -----------------------------------------------------------------------------------

async def test_watch_initial_then_changes(client: Client, registry: Registry) -> None:
    registry.create(PODS, pod("a"))
    r = await client.get(PODS_URL, params={"watch": "true"})
    assert r.status == 200
    [added] = await read_events(r, 1)
    assert added["type"] == "ADDED" and added["object"]["metadata"]["name"] == "a"
    registry.create(PODS, pod("b"))
    registry.delete(PODS, "default", "a")
    events = await read_events(r, 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"), ("DELETED", "a")]
    r.close()


async def test_watch_resume_and_selectors(client: Client, registry: Registry) -> None:
    first = registry.create(PODS, pod("a", app="x"))
    rv = first["metadata"]["resourceVersion"]
    registry.create(PODS, pod("b", app="y"))
    registry.create(PODS, pod("c", app="x"))
    r = await client.get(PODS_URL, params={"watch": "True", "resourceVersion": rv,
                                           "labelSelector": "app=x"})
    [event] = await read_events(r, 1)
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "c")
    r.close()
    # A single object, the way `kubectl delete --wait` watches it.
    r = await client.get(PODS_URL, params={"watch": "1", "fieldSelector": "metadata.name=b"})
    [event] = await read_events(r, 1)
    assert event["object"]["metadata"]["name"] == "b"
    registry.delete(PODS, "default", "b")
    [event] = await read_events(r, 1)
    assert event["type"] == "DELETED"
    r.close()


async def test_watch_too_old_is_an_error_event(tmp_path: Path) -> None:
    from miniorch.api.store import Store
    registry = Registry(Store(None, history=2))
    registry.ensure_system_objects()
    for name in "abcde":
        registry.create(PODS, pod(name))
    async with app_client(tmp_path, registry=registry) as client:
        r = await client.get(PODS_URL, params={"watch": "true", "resourceVersion": "1"})
        assert r.status == 200
        [event] = await read_events(r, 1)
        assert event["type"] == "ERROR"
        assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")


async def test_watch_timeout_and_table_rows(client: Client, registry: Registry) -> None:
    registry.create(PODS, pod("a"))
    r = await client.get(PODS_URL, params={"watch": "true", "timeoutSeconds": "1"},
                         headers={"Accept": TABLE})
    with anyio.fail_after(5):
        text = await r.text()  # ends by itself after about a second
    [event] = [json.loads(line) for line in text.splitlines()]
    assert event["object"]["kind"] == "Table" and len(event["object"]["rows"]) == 1


async def test_slow_watcher_gets_gone(client: Client, registry: Registry,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import miniorch.api.store as store_module
    monkeypatch.setattr(store_module, "WATCH_MAILBOX", 2)
    r = await client.get(PODS_URL, params={"watch": "true", "resourceVersion": str(
        registry.store.resource_version)})
    await anyio.sleep(0.05)  # let the handler open its store watch
    for name in "abcdefgh":  # no await in between: the mailbox overflows
        registry.create(PODS, pod(name))
    with anyio.fail_after(5):
        events = [json.loads(line) for line in (await r.text()).splitlines()]
    assert events[-1]["type"] == "ERROR" and events[-1]["object"]["code"] == 410


# ---- logs ---------------------------------------------------------------------------------------

def write_logs(settings: Settings, obj: dict[str, Any], container: str, restart: int,
               lines: list[tuple[str, str]], *, start: datetime | None = None) -> Path:
    meta = obj["metadata"]
    directory = podfiles.pod_dir(settings.pods_dir, meta["namespace"], meta["name"],
                                 meta["uid"])
    path = podfiles.container_log(directory, container, restart)
    path.parent.mkdir(parents=True, exist_ok=True)
    moment = start or datetime.now(UTC)
    with path.open("a") as f:
        for index, (stream, text) in enumerate(lines):
            partial = text.endswith("\\")
            f.write(podfiles.format_log_line(stream, text.rstrip("\\"), partial=partial,
                                             moment=moment + timedelta(seconds=index)))
    podfiles.write_sandbox(directory, {"init_pid": 1, "containers": {
        container: {"pid": 2, "restartCount": restart}}})
    return path


def settings_of(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, api_port=0)


async def test_logs_options(client: Client, registry: Registry, tmp_path: Path) -> None:
    obj = registry.create(PODS, pod("a"))
    old = datetime.now(UTC) - timedelta(hours=1)
    write_logs(settings_of(tmp_path), obj, "kubia", 0, [("stdout", "boot")], start=old)
    write_logs(settings_of(tmp_path), obj, "kubia", 1,
               [("stdout", "one"), ("stderr", "two"), ("stdout", "thr\\"), ("stdout", "ee")],
               start=old)
    url = f"{PODS_URL}/a/log"
    r = await client.get(url)
    assert r.status == 200 and r.content_type == "text/plain"
    assert await r.text() == "one\ntwo\nthree\n"
    assert await (await client.get(url, params={"tailLines": "1"})).text() == "three\n"
    assert await (await client.get(url, params={"limitBytes": "5"})).text() == "one\nt"
    assert await (await client.get(url, params={"previous": "true"})).text() == "boot\n"
    stamped = await (await client.get(url, params={"timestamps": "true", "tailLines": "1"})).text()
    assert stamped.endswith("Z three\n") and stamped.startswith(str(old.year))
    assert await (await client.get(url, params={"sinceSeconds": "60"})).text() == ""


async def test_logs_errors(client: Client, registry: Registry, tmp_path: Path) -> None:
    two = pod("two")
    two["spec"]["containers"].append({"name": "side", "image": "kubia"})
    registry.create(PODS, two)
    r = await client.get(f"{PODS_URL}/two/log")
    assert r.status == 400
    assert json.loads(await r.text())["message"] == (
        "a container name must be specified for pod two, choose one of: [kubia side]")
    r = await client.get(f"{PODS_URL}/two/log", params={"container": "nope"})
    assert json.loads(await r.text())["message"] == "container nope is not valid for pod two"
    r = await client.get(f"{PODS_URL}/two/log", params={"container": "side"})
    assert json.loads(await r.text())["message"] == (
        'container "side" in pod "two" is waiting to start: ContainerCreating')
    obj = registry.create(PODS, pod("a"))
    write_logs(settings_of(tmp_path), obj, "kubia", 0, [("stdout", "hi")])
    r = await client.get(f"{PODS_URL}/a/log", params={"previous": "1"})
    assert r.status == 400
    assert json.loads(await r.text())["message"] == (
        'previous terminated container "kubia" in pod "a" not found')
    assert (await client.get(f"{PODS_URL}/ghost/log")).status == 404


async def test_logs_follow_streams_and_ends(client: Client, registry: Registry,
                                            tmp_path: Path) -> None:
    obj = registry.create(PODS, pod("a"))
    path = write_logs(settings_of(tmp_path), obj, "kubia", 0, [("stdout", "first")])
    r = await client.get(f"{PODS_URL}/a/log", params={"follow": "true"})
    with anyio.fail_after(5):
        assert await r.content.readline() == b"first\n"
        with path.open("a") as f:
            f.write(podfiles.format_log_line("stdout", "second"))
        assert await r.content.readline() == b"second\n"
        # The container exits: the stream ends once the pod's status says so.
        registry.update_status(PODS, "default", "a", {"phase": "Failed", "containerStatuses": [
            {"name": "kubia", "restartCount": 0, "ready": False, "image": "kubia",
             "imageID": "", "state": {"terminated": {"exitCode": 1}}}]})
        assert await r.content.read() == b""


async def test_logs_follow_ends_when_pod_deleted(client: Client, registry: Registry,
                                                 tmp_path: Path) -> None:
    obj = registry.create(PODS, pod("a"))
    write_logs(settings_of(tmp_path), obj, "kubia", 0, [("stdout", "first")])
    r = await client.get(f"{PODS_URL}/a/log", params={"follow": "true"})
    with anyio.fail_after(5):
        assert await r.content.readline() == b"first\n"
        registry.delete(PODS, "default", "a")
        assert await r.content.read() == b""


# ---- exec ----------------------------------------------------------------------------------------

async def exec_ws(client: Client, command: list[str], *, protocol: str, **flags: str
                  ) -> aiohttp.ClientWebSocketResponse:
    params = [("command", c) for c in command] + list(flags.items())
    return await client.ws_connect(f"{PODS_URL}/a/exec", params=params, protocols=(protocol,))


async def collect(ws: aiohttp.ClientWebSocketResponse) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    with anyio.fail_after(10):
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY and msg.data:
                out[msg.data[0]] = out.get(msg.data[0], b"") + msg.data[1:]
    return out


@pytest.fixture
async def running_pod(registry: Registry) -> None:
    registry.create(PODS, pod("a"))
    registry.update_status(PODS, "default", "a", {"phase": "Running"})


@pytest.mark.usefixtures("running_pod")
async def test_exec_v5_stdout_stderr_and_exit_code(client: Client) -> None:
    ws = await exec_ws(client, ["sh", "-c", "echo out; echo err >&2; exit 3"],
                       protocol="v5.channel.k8s.io", stdout="true", stderr="true")
    assert ws.protocol == "v5.channel.k8s.io"
    out = await collect(ws)
    assert out[1] == b"out\n" and out[2] == b"err\n"
    status = json.loads(out[3])
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert ws.close_code == 1000


@pytest.mark.usefixtures("running_pod")
async def test_exec_v5_stdin_and_close(client: Client) -> None:
    ws = await exec_ws(client, ["cat"], protocol="v5.channel.k8s.io", stdin="true",
                       stdout="true", stderr="true")
    await ws.send_bytes(b"\x00hello ")
    await ws.send_bytes(b"\x00world")
    await ws.send_bytes(b"\xff\x00")  # close stdin: cat sees EOF and exits 0
    out = await collect(ws)
    assert out[1] == b"hello world"
    assert json.loads(out[3]) == {"metadata": {}, "status": "Success"}


@pytest.mark.usefixtures("running_pod")
async def test_exec_v4_text_frames_like_python_client(client: Client) -> None:
    ws = await exec_ws(client, ["sh", "-c", "read x; echo got $x"],
                       protocol="v4.channel.k8s.io", stdin="true", stdout="true")
    await ws.send_str(chr(0) + "hi\n")
    out = await collect(ws)
    assert out[1] == b"got hi\n"
    assert json.loads(out[3])["status"] == "Success"


@pytest.mark.usefixtures("running_pod")
async def test_exec_tty_resize(client: Client) -> None:
    ws = await exec_ws(client, ["sh", "-c", "read x; stty size"],
                       protocol="v5.channel.k8s.io", stdin="true", stdout="true", tty="true")
    await ws.send_bytes(b"\x04" + json.dumps({"Width": 101, "Height": 42}).encode())
    await anyio.sleep(0.1)
    await ws.send_bytes(b"\x00go\r")
    out = await collect(ws)
    assert b"42 101" in out[1]
    assert 2 not in out  # a tty merges stderr into stdout


@pytest.mark.usefixtures("running_pod")
async def test_exec_base64_protocol(client: Client) -> None:
    ws = await client.ws_connect(f"{PODS_URL}/a/exec", params=[
        ("command", "echo"), ("command", "b64"), ("stdout", "true")],
        protocols=("base64.channel.k8s.io",))
    texts = []
    with anyio.fail_after(10):
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                texts.append(msg.data)
    assert "1" + "YjY0Cg==" in texts


async def test_exec_refusals(client: Client, registry: Registry) -> None:
    registry.create(PODS, pod("a"))
    registry.update_status(PODS, "default", "a", {"phase": "Succeeded"})
    r = await client.get(f"{PODS_URL}/a/exec", params={"command": "ls", "stdout": "true"})
    assert r.status == 400 and "completed pod" in json.loads(await r.text())["message"]
    r = await client.get(f"{PODS_URL}/a/exec", params={"stdout": "true"})
    assert r.status == 400
    r = await client.get(f"{PODS_URL}/a/exec", params={"command": "ls", "container": "x",
                                                       "stdout": "true"})
    assert json.loads(await r.text())["message"] == "container x is not valid for pod a"


@pytest.mark.usefixtures("running_pod")
async def test_exec_client_leaving_kills_the_command(client: Client, tmp_path: Path) -> None:
    marker = tmp_path / "still-running"
    ws = await exec_ws(client, ["sh", "-c", f"sleep 2; touch {marker}"],
                       protocol="v5.channel.k8s.io", stdout="true")
    await anyio.sleep(0.2)
    await ws.close()
    await anyio.sleep(2.5)
    assert not marker.exists()


async def test_watch_over_websocket_one_message_per_event(client: Client,
                                                          registry: Registry) -> None:
    # Browsers hold six HTTP/1.1 connections per host; the dashboard watches over
    # WebSockets, which Kubernetes serves on the same URL.
    registry.create(PODS, pod("a"))
    async with client.ws_connect(PODS_URL + "?watch=1", headers={"Accept": TABLE}) as ws:
        with anyio.fail_after(5):
            first = json.loads((await ws.receive()).data)
            assert first["type"] == "ADDED" and first["object"]["kind"] == "Table"
            assert first["object"]["rows"][0]["object"]["metadata"]["name"] == "a"
            registry.delete(PODS, "default", "a")
            gone = json.loads((await ws.receive()).data)
            assert gone["type"] == "DELETED"


async def test_watch_over_websocket_too_old_is_an_error_message(tmp_path: Path) -> None:
    from miniorch.api.store import Store
    registry = Registry(Store(None, history=2))
    registry.ensure_system_objects()
    for name in "abcde":
        registry.create(PODS, pod(name))
    async with (app_client(tmp_path, registry=registry) as client,
                client.ws_connect(PODS_URL + "?watch=1&resourceVersion=1") as ws):
        with anyio.fail_after(5):
            event = json.loads((await ws.receive()).data)
            assert (event["type"], event["object"]["code"]) == ("ERROR", 410)
            assert (await ws.receive()).type == aiohttp.WSMsgType.CLOSE
