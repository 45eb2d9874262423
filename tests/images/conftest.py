"""Fixtures for image tests: throw-away stores sharing one base-image layer cache.

The base-image cache lives in a temp dir for the whole session (created once, removed at
the end), so the python base is compressed once per run and the tests never write to
the user's ~/.cache.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from miniorch.images import ImageStore


@pytest.fixture(scope="session")
def base_cache() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="miniorch-test-basecache-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="miniorch-test-images-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def store(workdir: Path, base_cache: Path) -> ImageStore:
    return ImageStore(workdir / "images", base_cache=base_cache)


@pytest.fixture
def context(workdir: Path) -> Path:
    d = workdir / "ctx"
    d.mkdir()
    return d


@pytest.fixture
def lines() -> list[str]:
    """Progress lines: pass `progress=lines.append`."""
    return []
