"""Pod sandboxes on a real kernel: namespaces, network, limits, stop, rootfs, exec."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.abc import ByteReceiveStream

from miniorch.sandbox.pod import (
    ContainerSpec,
    PodSandbox,
    RootfsSpec,
    SandboxError,
    exec_in_sandbox,
)

if TYPE_CHECKING:
    from tests.sandbox.conftest import MakeSandbox, TestNet

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="sandbox tests need root")]

HTTP_SERVER = """
import http.server, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hit " + socket.gethostname() + "\\n").encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


async def read_all(stream: ByteReceiveStream | None) -> str:
    assert stream is not None
    out = b""
    with anyio.fail_after(5):
        async for chunk in stream:
            out += chunk
    return out.decode()


async def run_exec(sandbox: PodSandbox, argv: list[str], *,
                   container_pid: int | None = None) -> tuple[int, str, str]:
    proc = await exec_in_sandbox(sandbox.init_pid, argv, tty=False,
                                 container_pid=container_pid)
    try:
        assert proc.stdin is not None
        await proc.stdin.aclose()
        out, err = "", ""

        async def collect_err() -> None:
            nonlocal err
            err = await read_all(proc.stderr)

        async with anyio.create_task_group() as tg:
            tg.start_soon(collect_err)
            out = await read_all(proc.stdout)
        return await proc.wait(), out, err
    finally:
        await proc.aclose()


def http_get(url: str, timeout: float = 1.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: bytes = resp.read()
        return body.decode()


async def wait_http(url: str) -> str:
    deadline = time.monotonic() + 5
    while True:
        try:
            return await anyio.to_thread.run_sync(http_get, url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await anyio.sleep(0.05)


async def test_hostname_and_ps_show_only_the_pod(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox(hostname="web-1")
    app = await sandbox.start_container(ContainerSpec(name="app", argv=["sleep", "30"]))
    code, out, _ = await run_exec(sandbox, ["hostname"])
    assert (code, out) == (0, "web-1\n")
    code, out, _ = await run_exec(sandbox, ["ps", "-e", "-o", "pid=,comm="])
    assert code == 0
    procs = [line.split() for line in out.splitlines()]
    assert ["1", "pod-init"] in procs
    assert sorted(comm for _, comm in procs) == ["pod-init", "ps", "sleep"]
    await app.stop(0)


async def test_host_and_other_pod_reach_pod_over_http(make_sandbox: MakeSandbox,
                                                      testnet: TestNet) -> None:
    server = await make_sandbox(hostname="server")
    client = await make_sandbox(hostname="client")
    app = await server.start_container(
        ContainerSpec(name="http", argv=[sys.executable, "-c", HTTP_SERVER]))
    assert await wait_http(f"http://{server.spec.ip}:8080/") == "hit server\n"
    code, out, err = await run_exec(client, [
        sys.executable, "-c",
        f"import urllib.request; print(urllib.request.urlopen("
        f"'http://{server.spec.ip}:8080/', timeout=2).read().decode(), end='')"])
    assert (code, out, err) == (0, "hit server\n", "")
    await app.stop(1)


async def test_pod_reaches_a_host_local_address(make_sandbox: MakeSandbox,
                                                testnet: TestNet) -> None:
    """A ClusterIP-style /32 on the host is reachable from a pod via the gateway."""
    # Outside the pod /16, like a ClusterIP: reached through the default route.
    vip = f"10.{240 + testnet.subnet % 10}.{secrets.randbelow(250) + 1}.7"
    await testnet.host.add_local_address(vip)
    sandbox = await make_sandbox()
    code, _, err = await run_exec(sandbox, [
        sys.executable, "-c",
        f"import socket; socket.create_connection(('{vip}', 9), timeout=2)"])
    # Nothing listens on port 9: "connection refused" proves the packet reached the host.
    assert code == 1 and "ConnectionRefusedError" in err
    await testnet.host.remove_local_address(vip)


async def test_memory_limit_oom_kills(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox(memory_bytes=64 << 20)
    hog = await sandbox.start_container(ContainerSpec(
        name="hog", argv=[sys.executable, "-c", "x = bytearray(200 << 20); x[::4096] = "
                          "b'1' * len(x[::4096]); print('survived')"]))
    with anyio.fail_after(10):
        status = await hog.wait()
    assert status.signal == signal.SIGKILL
    assert status.oom_killed
    assert "survived" not in await read_all(hog.stdout)
    await hog.stop(0)


async def test_pids_limit(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox(pids_max=10)
    forker = await sandbox.start_container(ContainerSpec(name="forker", argv=[
        sys.executable, "-c",
        "import os, time\n"
        "n = 0\n"
        "for _ in range(30):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(5); os._exit(0)\n"
        "        n += 1\n"
        "    except BlockingIOError:\n"
        "        break\n"
        "print(n, flush=True)\n"]))
    with anyio.fail_after(5):
        out = (await forker.stdout.receive()).decode()  # children keep the pipe open
    # 10 pids: the init, the forker, and at most 8 children.
    assert int(out) <= 8
    assert (await forker.wait()).exit_code == 0
    await forker.stop(0)  # reaps the sleeping children too
    assert forker.cgroup.pids() == []


async def test_kill_9_from_outside_is_reported(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    app = await sandbox.start_container(ContainerSpec(name="app", argv=["sleep", "30"]))
    os.kill(app.pid, signal.SIGKILL)
    with anyio.fail_after(5):
        status = await app.wait()
    assert (status.exit_code, status.signal, status.oom_killed) == (None, signal.SIGKILL, False)
    # The kubelet restarts it: same name, same sandbox.
    again = await sandbox.start_container(ContainerSpec(name="app", argv=["true"]))
    assert (await again.wait()).exit_code == 0


async def test_stop_escalates_to_sigkill_and_reaps_the_tree(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    stubborn = await sandbox.start_container(ContainerSpec(name="stubborn", argv=[
        "sh", "-c", "trap '' TERM; sleep 60 & echo started; while true; do sleep 1; done"]))
    assert (await stubborn.stdout.receive()).startswith(b"started")
    assert len(stubborn.cgroup.pids()) >= 2
    started = time.monotonic()
    status = await stubborn.stop(0.5)
    elapsed = time.monotonic() - started
    assert status.signal == signal.SIGKILL
    assert 0.5 <= elapsed < 3
    assert stubborn.cgroup.pids() == []


async def test_stop_graceful_exit(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    app = await sandbox.start_container(ContainerSpec(name="app", argv=[
        sys.executable, "-c",
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))\n"
        "print('up', flush=True)\n"
        "time.sleep(30)\n"]))
    assert await app.stdout.receive() == b"up\n"
    status = await app.stop(5)
    assert (status.exit_code, status.signal) == (3, None)


async def test_bad_command_fails_to_start(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    with pytest.raises(SandboxError, match="no-such-binary"):
        await sandbox.start_container(ContainerSpec(name="bad", argv=["no-such-binary"]))


async def test_rootfs_isolation(make_sandbox: MakeSandbox, busybox_rootfs: Path,
                                tmp_path: Path) -> None:
    sandbox = await make_sandbox(hostname="boxed")
    rootfs = RootfsSpec(lower_dirs=[busybox_rootfs], upper_dir=tmp_path / "upper",
                        work_dir=tmp_path / "work")
    rootfs.upper_dir.mkdir()
    rootfs.work_dir.mkdir()
    app = await sandbox.start_container(ContainerSpec(
        name="box", rootfs=rootfs, env={"GREETING": "hi"},
        argv=["sh", "-c", "ls /; cat /etc/hostname; echo $GREETING; ls /dev; "
                          "echo written > /new-file; exec sleep 30"]))
    out = ""
    with anyio.fail_after(5):
        while "new-file" not in out and "/dev/tty" not in out:
            out += (await app.stdout.receive()).decode()
            if out.count("\n") >= 6 and "urandom" in out:
                break
    lines = out.split()
    assert "IMAGE-MARKER" in lines and "proc" in lines and "dev" in lines
    assert "usr" not in lines  # the host's /usr is not visible
    assert "boxed" in lines and "hi" in lines
    assert {"null", "zero", "random", "urandom", "tty", "pts", "shm"} <= set(lines)
    # exec into the container sees its rootfs, its environment and its pid namespace.
    code, out, _ = await run_exec(
        sandbox, ["sh", "-c", "cat /IMAGE-MARKER; echo $GREETING; ps; cat /proc/self/cgroup"],
        container_pid=app.pid)
    assert code == 0
    assert out.startswith("from the image\nhi\n")
    assert "sleep 30" in out
    assert f"/miniorch/{sandbox.spec.id}/c-box" in out  # exec joins the container's cgroup
    await app.stop(0)
    # Writes went to the upper dir; the image layer is untouched.
    assert (rootfs.upper_dir / "new-file").read_text() == "written\n"
    assert not (busybox_rootfs / "new-file").exists()


async def test_exec_with_tty(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    proc = await exec_in_sandbox(sandbox.init_pid, ["sh", "-c", "tty; stty size"], tty=True)
    proc.resize(100, 40)
    try:
        out = (await read_all(proc.stdout)).replace("\r", "")
        assert await proc.wait() == 0
    finally:
        await proc.aclose()
    assert "/dev/pts/" in out
    assert "40 100" in out


async def test_exec_exit_code_and_missing_binary(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    assert (await run_exec(sandbox, ["sh", "-c", "exit 7"]))[0] == 7
    code, _, err = await run_exec(sandbox, ["no-such-binary"])
    assert code == 127 and "not found" in err


async def test_create_failure_leaves_nothing(make_sandbox: MakeSandbox) -> None:
    with pytest.raises(RuntimeError, match="bridge"):
        await make_sandbox(bridge="mot-missing")
    # the leak check of the `testnet` fixture proves netns, veth and cgroup are gone


async def test_destroy_is_idempotent_and_stops_everything(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    app = await sandbox.start_container(ContainerSpec(name="app", argv=["sleep", "30"]))
    init = sandbox.init_pid
    await sandbox.destroy(grace_seconds=1)
    await sandbox.destroy()
    assert (await app.wait()).signal == signal.SIGTERM
    for pid in (init, app.pid):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_start_is_fast(make_sandbox: MakeSandbox) -> None:
    """create() to a running container; the target is well under 100 ms on a quiet
    machine, the assertion leaves room for a loaded CI box."""
    await make_sandbox()  # warm up (thread pool, page cache)
    started = time.perf_counter()
    sandbox = await make_sandbox()
    app = await sandbox.start_container(ContainerSpec(name="app", argv=["sleep", "30"]))
    elapsed = time.perf_counter() - started
    await app.stop(0)
    print(f"sandbox create + container start: {elapsed * 1000:.1f} ms")
    assert elapsed < 0.5


async def test_init_forwards_sigterm_and_reaps_orphans(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox()
    app = await sandbox.start_container(ContainerSpec(name="app", argv=[
        sys.executable, "-c",
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))\n"
        # An orphan: its parent exits at once, so it is reparented to the pod's init.
        "subprocess.Popen(['sh', '-c', '(sleep 0.2 &)']).wait()\n"
        "print('up', flush=True)\n"
        "time.sleep(30)\n"]))
    assert await app.stdout.receive() == b"up\n"
    await anyio.sleep(0.6)
    code, out, _ = await run_exec(sandbox, ["ps", "-e", "-o", "stat=,comm="])
    assert code == 0
    assert not [line for line in out.splitlines() if line.startswith("Z")], out
    os.kill(sandbox.init_pid, signal.SIGTERM)
    with anyio.fail_after(5):
        status = await app.wait()
    assert (status.exit_code, status.signal) == (3, None)


async def test_concurrent_sandboxes(make_sandbox: MakeSandbox) -> None:
    made: list[PodSandbox] = []

    async def one() -> None:
        made.append(await make_sandbox())

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(one)
    assert len({s.init_pid for s in made}) == 4
    for sandbox in made:
        assert (await run_exec(sandbox, ["hostname"]))[1] == f"{sandbox.spec.hostname}\n"


async def test_shim_killed_takes_the_pod_down(make_sandbox: MakeSandbox) -> None:
    """If the shim dies (it is what dies with the cluster process), so does the pod."""
    sandbox = await make_sandbox()
    app = await sandbox.start_container(ContainerSpec(name="app", argv=["sleep", "30"]))
    shim = sandbox._shim
    assert shim is not None
    shim.kill()
    with anyio.fail_after(5):
        status = await app.wait()
    assert status.signal == signal.SIGKILL
    with pytest.raises(SandboxError, match="gone"):
        await sandbox.start_container(ContainerSpec(name="other", argv=["true"]))


async def test_exec_environment_survives_a_container_mid_exec() -> None:
    """/proc/PID/environ reads empty while the kernel swaps a process image (a shell's
    `exec sleep`): exec must not then run with no environment at all."""
    import time

    from miniorch.sandbox.pod import _settled_environ_of

    # A shell that re-execs itself as fast as it can, its environment always GREETING=hi.
    storm = 'n=$1; [ "$n" -lt 200000 ] && exec sh -c "$0" "$0" $((n + 1)); exec sleep 5'
    proc = await anyio.open_process(["sh", "-c", storm, storm, "0"],
                                    env={"GREETING": "hi", "PATH": "/usr/bin:/bin"})
    try:
        deadline = time.monotonic() + 0.5
        reads = 0
        while time.monotonic() < deadline:
            assert (await _settled_environ_of(proc.pid)).get("GREETING") == "hi"
            reads += 1
        assert reads > 200  # enough to meet the kernel mid-exec many times over
    finally:
        proc.kill()
        await proc.wait()
