"""The seed's Docker half (D1-D15) in order, as a new user types it, with the real CLI.

Build kubia, list it, run busybox, run kubia detached with a published port and curl
it, list/inspect/exec/stop/remove the container, tag the image, push it to a real
registry (Debian's docker-registry on loopback), pull it into a second, empty state
dir — another machine — and run it there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from miniorch.containers import ContainerSettings
from tests.containers.conftest import ROOT, Env, free_port
from tests.containers.test_containers import curl
from tests.images.regserver import needs_registry, needs_skopeo, run_registry
from tests.leakcheck import leak_check

pytestmark = [pytest.mark.root, needs_registry, needs_skopeo]


def test_d1_to_d15_in_order(env: Env, tmp_path: Path) -> None:
    # D5/D6: build (cached by the module fixture's build: every step CACHED) and list.
    build = env.cli("image", "build", "-t", "kubia", str(ROOT / "sample_app")).stdout
    assert "CACHED" in build
    images = env.cli("image", "ls").stdout.splitlines()
    assert images[0].split()[:4] == ["REPOSITORY", "TAG", "IMAGE", "ID"]
    kubia_id = next(line.split()[2] for line in images if line.startswith("kubia "))

    # D1: hello world.
    hello = env.container("run", "--rm", "busybox", "echo", "Hello world")
    assert hello.stdout.strip() == "Hello world"

    # D7: detached, published port, answered with the container's short id.
    port = free_port()
    cid = env.container("run", "--name", "kubia-container", "-p", f"{port}:8080", "-d",
                        "kubia").stdout.strip()
    assert len(cid) == 64
    assert curl(port).strip() == f"You've hit {cid[:12]}"
    # D8/D9: listed with Docker's columns, inspected as Docker's JSON.
    ps = env.container("ls").stdout.splitlines()
    assert ps[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                             "PORTS", "NAMES"]
    assert any(line.startswith(cid[:12]) and "kubia-container" in line for line in ps)
    inspected = json.loads(env.container("inspect", "kubia-container").stdout)[0]
    assert inspected["Id"] == cid and inspected["State"]["Running"] is True
    # D10/D12: inside, the app is PID 1 and `/` is the image's.
    procs = env.container("exec", "kubia-container", "ps", "aux").stdout
    assert any(line.split()[0] == "1" and "/app.py" in line for line in procs.splitlines()[1:])
    assert "app.py" in env.container("exec", "kubia-container", "ls", "/").stdout.split()
    # D13: stop (SIGTERM: kubia exits cleanly), Exited in ls -a, then rm.
    env.container("stop", "kubia-container")
    exited = env.container("ls", "-a").stdout
    assert "Exited (0)" in exited, exited
    env.container("rm", "kubia-container")
    assert "kubia-container" not in env.container("ls", "-a").stdout

    # D14: a second name for the same image id.
    with run_registry(tmp_path / "registry") as registry:
        remote = f"{registry.host}/luksa/kubia"
        env.cli("image", "tag", "kubia", remote)
        tagged = [line.split() for line in env.cli("image", "ls").stdout.splitlines()]
        assert {row[2] for row in tagged if row[0] in ("kubia", remote)} == {kubia_id}
        # D15: push, inspect with a standard tool, pull on "another machine", run there.
        pushed = env.cli("image", "push", "--insecure", remote, timeout=120).stdout
        assert "digest: sha256:" in pushed
        skopeo = subprocess.run(["skopeo", "inspect", "--tls-verify=false",
                                 f"docker://{remote}"], capture_output=True, text=True,
                                timeout=60, check=True)
        assert json.loads(skopeo.stdout)["Name"].endswith("luksa/kubia")
        other_home = tmp_path / "other-machine"
        tag = env.settings.id_prefix.rstrip("-")[-4:]
        other_settings = ContainerSettings(bridge=f"mcu{tag}br", subnet="10.199.0.0/16",
                                           id_prefix=f"mcu{tag}-")
        other_settings.save(other_home / "containers")
        other = Env(home=other_home, settings=other_settings)
        with leak_check(prefixes=[other_settings.id_prefix, other_settings.bridge],
                        mount_roots=[other_home], timeout=5):
            other.cli("image", "pull", "--insecure", remote, timeout=120)
            pulled = [line.split() for line in other.cli("image", "ls").stdout.splitlines()]
            assert any(row[2] == kubia_id for row in pulled if row[0] == remote)
            port2 = free_port()
            cid2 = other.container("run", "-d", "-p", f"{port2}:8080", remote).stdout.strip()
            try:
                assert curl(port2).strip() == f"You've hit {cid2[:12]}"
            finally:
                other.container("rm", "-f", cid2)
                other.engine.cleanup()
        shutil.rmtree(other_home, ignore_errors=True)
