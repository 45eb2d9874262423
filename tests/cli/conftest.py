from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from miniorch.cli.main import main
from tests.cli.cli_support import StubApi, stub_api

KUBECTL = shutil.which("kubectl")


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_cli(*argv: str) -> Run:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return Run(code, out.getvalue(), err.getvalue())


def run_kubectl(api: StubApi, tmp: Path, *argv: str) -> Run:
    assert KUBECTL is not None
    proc = subprocess.run([KUBECTL, "--kubeconfig", str(api.kubeconfig), "--cache-dir",
                           str(tmp / "kcache"), *argv], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[StubApi]:
    with stub_api(tmp_path) as stub:
        yield stub


needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
