"""The walkthrough's Docker half (D1, D7 to D13) through the real CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request

import pytest

from tests.containers.conftest import Env, free_port

pytestmark = pytest.mark.root


def curl(port: int, *, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def run_kubia(env: Env, name: str = "kubia-container") -> tuple[str, int]:
    port = free_port()
    out = env.container("run", "--name", name, "-p", f"{port}:8080", "-d", "kubia").stdout
    return out.strip(), port


def test_hello_world(env: Env) -> None:
    proc = env.container("run", "busybox", "echo", "Hello world")
    assert proc.stdout == "Hello world\n"
    assert env.container("run", "busybox", "sh", "-c", "exit 3", check=False).returncode == 3
    missing = env.container("run", "busybox", "nonexistent-cmd", check=False)
    assert missing.returncode == 127
    assert "executable file not found" in missing.stderr
    rows = env.container("ls", "-a").stdout.splitlines()
    assert rows[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                               "PORTS", "NAMES"]
    assert any('"echo Hello world"' in r and "Exited (0)" in r for r in rows[1:])
    assert len(rows) == 3  # the failed start left nothing


def test_detached_kubia_port_exec_logs_inspect(env: Env) -> None:
    cid, port = run_kubia(env)
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    # The CLI that started it is gone: the container outlived it.
    assert curl(port) == f"You've hit {cid[:12]}\n"

    rows = env.container("ls").stdout.splitlines()
    assert len(rows) == 2
    row = rows[1]
    assert row.startswith(cid[:12])
    assert '"python -u /app.py"' in row and "Up " in row
    assert f"127.0.0.1:{port}->8080/tcp" in row and row.endswith("kubia-container")

    ps = env.container("exec", "kubia-container", "ps", "aux").stdout.splitlines()
    first = ps[1].split()
    assert first[0] == "1" and "/app.py" in ps[1]
    assert env.container("exec", "kubia-container", "hostname").stdout == cid[:12] + "\n"
    assert "app.py" in env.container("exec", "kubia-container", "ls", "/").stdout.split()
    assert env.container("exec", "kubia-container", "sh", "-c", "exit 5",
                         check=False).returncode == 5

    logs = env.container("logs", "kubia-container").stdout
    assert "Kubia server starting on port 8080" in logs
    assert "Received request from" in logs

    doc = json.loads(env.container("inspect", "kubia-container").stdout)
    assert isinstance(doc, list) and len(doc) == 1
    d = doc[0]
    assert d["Id"] == cid and d["Name"] == "/kubia-container"
    assert d["State"]["Running"] is True and d["State"]["Status"] == "running"
    assert d["Path"] == "python" and d["Args"] == ["-u", "/app.py"]
    assert d["Image"].startswith("sha256:")
    assert d["Config"]["Hostname"] == cid[:12] and d["Config"]["Image"] == "kubia"
    assert d["Config"]["Entrypoint"] == ["python", "-u", "/app.py"]
    assert d["HostConfig"]["PortBindings"] == {
        "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    ip = d["NetworkSettings"]["IPAddress"]
    assert ip.startswith(env.settings.subnet.split(".0.0/")[0])
    assert d["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ip
    assert d["Mounts"] == []
    # D11: the app is a host process with another pid.
    host_pid = d["State"]["Pid"]
    assert host_pid > 1
    with open(f"/proc/{host_pid}/cmdline", "rb") as f:
        assert b"/app.py" in f.read()

    # Name conflict, image in use, rm of a running container.
    conflict = env.container("run", "--name", "kubia-container", "-d", "kubia", check=False)
    assert conflict.returncode == 125 and "is already in use" in conflict.stderr
    in_use = env.cli("image", "rm", "kubia", check=False)
    assert in_use.returncode == 1 and "being used" in in_use.stderr
    refused = env.container("rm", "kubia-container", check=False)
    assert refused.returncode == 1 and "container is running" in refused.stderr

    env.container("stop", "-t", "5", "kubia-container")
    rows = env.container("ls", "-a").stdout.splitlines()
    assert "Exited (" in rows[1]
    assert env.container("ls").stdout.count("\n") == 1
    assert env.container("rm", "kubia-container").stdout == "kubia-container\n"
    assert env.container("ls", "-a").stdout.count("\n") == 1


def test_stop_sigterm_and_sigkill(env: Env) -> None:
    polite = env.container(
        "run", "-d", "--name", "polite", "busybox", "sh", "-c",
        "trap 'exit 0' TERM; while true; do sleep 0.1; done").stdout.strip()
    stubborn = env.container("run", "-d", "--name", "stubborn", "busybox",
                             "sleep", "1000").stdout.strip()
    assert polite and stubborn
    started = time.monotonic()
    env.container("stop", "polite")
    assert time.monotonic() - started < 5
    started = time.monotonic()
    env.container("stop", "-t", "1", "stubborn")
    took = time.monotonic() - started
    assert 0.9 < took < 6
    states = {d["Name"]: d["State"] for d in json.loads(
        env.container("inspect", "polite", "stubborn").stdout)}
    assert states["/polite"]["ExitCode"] == 0 and states["/polite"]["Status"] == "exited"
    assert states["/stubborn"]["ExitCode"] == 137
    env.container("rm", "polite", "stubborn")


def test_busy_port_leaves_nothing(env: Env) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = env.container("run", "-d", "-p", f"{port}:8080", "kubia", check=False)
    assert proc.returncode == 125
    assert "port is already allocated" in proc.stderr
    assert env.container("ls", "-a").stdout.count("\n") == 1


def test_supervisor_killed_then_cleanup(env: Env) -> None:
    cid = env.container("run", "-d", "busybox", "sleep", "1000").stdout.strip()
    state = json.loads((env.home / "containers" / cid / "state.json").read_text())
    os.kill(state["supervisor_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{state['pid']}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{state['pid']}")  # the app died with its supervisor
    rows = env.container("ls", "-a").stdout.splitlines()
    assert "Exited (137)" in rows[1]
    removed = env.container("cleanup").stdout
    assert f"netns {env.settings.id_prefix}" in removed
    env.container("rm", cid)


def test_auto_remove_and_env(env: Env) -> None:
    out = env.container("run", "--rm", "-e", "GREETING=hi there", "busybox", "sh", "-c",
                        "echo $GREETING; hostname").stdout.splitlines()
    assert out[0] == "hi there" and re.fullmatch(r"[0-9a-f]{12}", out[1])
    assert env.container("ls", "-a").stdout.count("\n") == 1


def test_run_it_gives_an_interactive_shell(env: Env) -> None:
    import pty
    import select
    import sys

    from tests.containers.conftest import ROOT

    pid, fd = pty.fork()
    if pid == 0:  # the CLI on a real terminal
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "miniorch", "--state-dir",
                                  str(env.home), "container", "run", "--rm", "-it", "busybox",
                                  "sh"])

    def read_until(marker: bytes, timeout: float = 10) -> bytes:
        out, deadline = b"", time.monotonic() + timeout
        while marker not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    break
        return out

    try:
        assert b"/ # " in read_until(b"/ # ")
        os.write(fd, b"echo hi-$((1+2)); ps\r")
        out = read_until(b"{ps}")
        assert b"hi-3" in out and b"1 root     sh" in out
        os.write(fd, b"exit 4\r")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 4
    finally:
        os.close(fd)
