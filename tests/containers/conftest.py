"""Fixtures for container tests: a private state dir whose containers use a random bridge,
subnet and sandbox prefix (ContainerSettings in `containers/settings.json`), the real CLI
as a subprocess, and a leak check on those names around every test."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from miniorch.containers import ContainerEngine, ContainerSettings
from tests.leakcheck import leak_check

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Env:
    home: Path
    settings: ContainerSettings

    def cli(self, *args: str, timeout: float = 60, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "miniorch", "--state-dir", str(self.home), *args],
            capture_output=True, text=True, timeout=timeout, cwd=ROOT, input=input,
            stdin=None if input is not None else subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stdout}\n"
                                 f"{proc.stderr}")
        return proc

    def container(self, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        return self.cli("container", *args, **kw)  # type: ignore[arg-type]

    @property
    def engine(self) -> ContainerEngine:
        return ContainerEngine(self.home)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    if os.geteuid() != 0:
        pytest.skip("container tests need root")
    tag = secrets.token_hex(2)
    settings = ContainerSettings(bridge=f"mct{tag}br", subnet=f"10.{200 + secrets.randbelow(50)}"
                                 ".0.0/16", id_prefix=f"mct{tag}-")
    path = tmp_path_factory.mktemp("containers")
    settings.save(path / "containers")
    env = Env(home=path, settings=settings)
    env.cli("image", "build", "-t", "kubia", str(ROOT / "sample_app"))
    yield env
    engine = env.engine
    for c in engine.list(all=True):
        engine.remove(c.id, force=True)
    engine.cleanup()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def env(home: Env) -> Iterator[Env]:
    prefixes = [home.settings.id_prefix, home.settings.bridge]
    with leak_check(prefixes=prefixes, mount_roots=[home.home], timeout=5):
        try:
            yield home
        finally:
            engine = home.engine
            for c in engine.list(all=True):
                engine.remove(c.id, force=True)
            engine.cleanup()
