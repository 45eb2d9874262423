"""A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) on loopback.

`run_registry(workdir)` writes a config (127.0.0.1:<free port>, filesystem storage in
`workdir`, optional htpasswd auth), starts the binary, waits until `/v2/` answers and
stops it by PID on exit. Tests skip with a clear reason when the binary is missing.
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REGISTRY_BIN = "/usr/bin/docker-registry"

needs_registry = pytest.mark.skipif(
    shutil.which(REGISTRY_BIN) is None,
    reason="docker-registry is not installed (apt-get install -y docker-registry)")
needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None,
                                  reason="skopeo is not installed (apt-get install -y skopeo)")


@dataclass(frozen=True)
class RunningRegistry:
    host: str
    """`127.0.0.1:PORT` — the registry part of an image reference."""
    process: subprocess.Popen[bytes]
    log: Path

    def access_log(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def htpasswd_file(path: Path, user: str, password: str) -> Path:
    """bcrypt entry via apache2-utils' htpasswd (distribution only accepts bcrypt)."""
    tool = shutil.which("htpasswd")
    if tool is None:
        pytest.skip("htpasswd is not installed (apt-get install -y apache2-utils)")
    out = subprocess.run([tool, "-nbB", user, password], check=True, capture_output=True)
    path.write_bytes(out.stdout)
    return path


@contextlib.contextmanager
def run_registry(workdir: Path, *, htpasswd: Path | None = None) -> Iterator[RunningRegistry]:
    if shutil.which(REGISTRY_BIN) is None:
        pytest.skip("docker-registry is not installed (apt-get install -y docker-registry)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    lines = [
        "version: 0.1",
        "log:",
        "  level: info",
        "  formatter: text",
        "storage:",
        f"  filesystem: {{rootdirectory: {storage}}}",
        "  delete: {enabled: true}",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "  secret: miniorch-test-secret",
    ]
    if htpasswd is not None:
        lines += ["auth:", "  htpasswd:", "    realm: miniorch-test", f"    path: {htpasswd}"]
    config = workdir / "config.yml"
    config.write_text("\n".join(lines) + "\n")
    log = workdir / "registry.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=logf,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited {proc.returncode}:\n"
                                   f"{log.read_text(errors='replace')[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/v2/")
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield RunningRegistry(f"127.0.0.1:{port}", proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
