"""kubelet's AtomicWriter: a volume's files replaced all at once, never half-written.

    <volume dir>/
        ..2025_01_31_12_00_00.1234abcd/    this version's files (a fresh dir per write)
            key1, sub/key2
        ..data -> ..2025_01_31_12_00_00.1234abcd    swapped with one rename(2)
        key1 -> ..data/key1                         one symlink per top-level name
        sub  -> ..data/sub

A reader that follows `key1` sees either the old version or the new one, whole: the new
files are written in their own directory first, then `..data` is pointed at it by
renaming a fresh symlink over it (atomic), then the user-visible links are adjusted and
the old directory removed. This is what Kubernetes' `pkg/volume/util/atomic_writer.go`
does for ConfigMap, Secret and downward-API volumes (containers mount the whole volume
dir, so they see the swap; a `subPath` mount pins one file of one version).

Invariants: names starting with `..` belong to the writer (payload paths may not use
them); a write whose payload equals what is there changes nothing (no new directory,
the files keep their inodes); paths are relative, without `..` components.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_NAME = "..data"
_DATA_TMP = "..data_tmp"


class PayloadError(ValueError):
    """A payload path is not allowed (absolute, `..`, or a name the writer owns)."""


@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int


def validate_path(path: str) -> None:
    """kubelet's validatePath: relative, no `..` component, not starting with `..`."""
    if not path:
        raise PayloadError("invalid path: must not be empty")
    if path.startswith("/"):
        raise PayloadError(f"invalid path: must be relative path: {path}")
    if len(path) > 4096:
        raise PayloadError(f"invalid path: must be less than or equal to 4096 characters: {path}")
    parts = path.split("/")
    if any(len(part) > 255 for part in parts):
        raise PayloadError(f"invalid path: must not contain a segment longer than 255 "
                           f"characters: {path}")
    if ".." in parts:
        raise PayloadError(f"invalid path: must not contain '..': {path}")
    if path.startswith(".."):
        raise PayloadError(f"invalid path: must not start with '..': {path}")


def _current(target: Path, version: str) -> dict[str, FileProjection]:
    """The files (and modes) of an existing version directory."""
    files: dict[str, FileProjection] = {}
    base = target / version
    for directory, _dirs, names in os.walk(base):
        for name in names:
            path = Path(directory) / name
            rel = str(path.relative_to(base))
            files[rel] = FileProjection(path.read_bytes(), path.stat().st_mode & 0o7777)
    return files


def write(target: Path, payload: Mapping[str, FileProjection]) -> bool:
    """Make `target` hold exactly `payload`; True if anything changed."""
    for rel in payload:
        validate_path(rel)
    target.mkdir(parents=True, exist_ok=True)
    data_link = target / DATA_DIR_NAME
    old_version = os.readlink(data_link) if data_link.is_symlink() else None
    if old_version is not None and _current(target, old_version) == dict(payload):
        return False
    # Go's "..2006_01_02_15_04_05." plus MkdirTemp's random suffix, in UTC.
    version_dir = Path(tempfile.mkdtemp(prefix=time.strftime("..%Y_%m_%d_%H_%M_%S.",
                                                              time.gmtime()), dir=target))
    version_dir.chmod(0o755)
    for rel, projection in payload.items():
        path = version_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(projection.data)
        os.chmod(path, projection.mode)  # after the write: a 0400 file is still written
    tmp_link = target / _DATA_TMP
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(version_dir.name)
    os.rename(tmp_link, data_link)  # the atomic swap
    visible = {rel.split("/", 1)[0] for rel in payload}
    for name in visible:
        link = target / name
        if not link.is_symlink():
            link.symlink_to(f"{DATA_DIR_NAME}/{name}")
    for entry in os.listdir(target):
        if not entry.startswith("..") and entry not in visible:
            (target / entry).unlink()
    if old_version is not None:
        shutil.rmtree(target / old_version, ignore_errors=True)
    return True
