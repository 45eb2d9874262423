"""Layer tarballs: writing them deterministically, unpacking them safely for overlayfs.

Writing. A layer is described as a list of `LayerEntry` (archive path, kind, metadata,
host source for file contents). `write_layer` sorts the entries by path, writes a PAX tar
through gzip (mtime 0, no filename in the gzip header) and hashes both streams at once:
sha256 of the compressed bytes is the blob digest, sha256 of the tar is the diff_id.
Entries keep their file mtimes but carry normalised ownership (numeric ids only, no
user or group names), so the same inputs always give the same digest.

Unpacking. `unpack_layer` extracts a layer into a fresh directory that is used as an
overlayfs lowerdir. Invariants, checked per member, whatever the archive says:
  - nothing is written outside the target: absolute names and `..` components are
    refused, a member is never written *through* a symlink, hard links must name a
    member inside the target;
  - OCI whiteouts become overlay whiteouts: `.wh.<name>` → char device 0/0 `<name>`,
    `.wh..wh..opq` → xattr `trusted.overlay.opaque=y` on the directory;
  - device nodes other than whiteouts are skipped (an image never needs them; /dev is
    provided by the sandbox).
`diff_upper` does the reverse for a RUN step: it turns an overlay upper directory into
layer entries, converting overlay whiteouts back into OCI ones.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import structlog

from miniorch.images.errors import UnsafePath

log = structlog.get_logger(__name__)

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_CHUNK = 1 << 20

EntryKind = Literal["file", "dir", "symlink", "hardlink", "whiteout"]


@dataclass(frozen=True, kw_only=True)
class LayerEntry:
    """One member of a layer. `path` is relative (`usr/bin/python3`), no leading slash."""

    path: str
    kind: EntryKind
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    source: Path | None = None
    """Host file whose bytes become the member's contents (kind == "file")..."""
    data: bytes | None = None
    """... or the contents themselves (generated files such as /etc/passwd)."""
    linkname: str = ""
    """Symlink target (any string), or for a hard link the archive path it points to."""


@dataclass(frozen=True)
class LayerBlob:
    """A written layer: where the compressed blob is and what it hashes to."""

    path: Path
    digest: str
    diff_id: str
    size: int
    """Compressed bytes (the blob's size)."""
    tar_size: int
    """Uncompressed bytes (what `image ls` adds up as SIZE)."""


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, sink: IO[bytes] | None) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self.sink is not None:
            self.sink.write(data)
        return len(data)

    def flush(self) -> None:
        if self.sink is not None:
            self.sink.flush()


def normalise_member(name: str) -> str:
    """`./usr//bin/` → `usr/bin`; refuses absolute names and `..` (never leave the root)."""
    if name.startswith("/"):
        raise UnsafePath(f"archive member {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(f"archive member {name!r} escapes the extraction directory")
    return "/".join(parts)


def with_parents(
    entries: Iterable[LayerEntry], parent: Callable[[str], LayerEntry]
) -> list[LayerEntry]:
    """Entries plus a directory entry for every missing parent, sorted, last duplicate wins.

    `parent(path)` supplies the directory entry for a parent not listed; builders pass the
    metadata of the directory as it exists in the image below (so COPY into /tmp keeps
    /tmp's 1777), which matters because overlayfs shows the topmost layer's directory.
    """
    by_path: dict[str, LayerEntry] = {}
    for e in entries:
        by_path[e.path] = e
    for p in list(by_path):
        parts = p.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in by_path:
                by_path[d] = parent(d)
    return [by_path[p] for p in sorted(by_path, key=_sort_key)]


def _sort_key(path: str) -> tuple[str, ...]:
    # Component-wise so a directory always precedes its children ("a/b" before "a-b").
    return tuple(path.split("/"))


def _tarinfo(e: LayerEntry) -> tarfile.TarInfo:
    if e.kind == "whiteout":
        ti = tarfile.TarInfo(e.path)
        ti.type, ti.mode, ti.mtime = tarfile.REGTYPE, 0, 0
        return ti
    ti = tarfile.TarInfo(e.path + ("/" if e.kind == "dir" else ""))
    ti.mode, ti.uid, ti.gid, ti.mtime = e.mode & 0o7777, e.uid, e.gid, e.mtime
    ti.uname = ti.gname = ""
    if e.kind == "dir":
        ti.type = tarfile.DIRTYPE
    elif e.kind == "symlink":
        ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, e.linkname, 0o777
    elif e.kind == "hardlink":
        ti.type, ti.linkname = tarfile.LNKTYPE, e.linkname
    else:
        ti.type = tarfile.REGTYPE
        if e.data is not None:
            ti.size = len(e.data)
        else:
            assert e.source is not None, e
            ti.size = os.lstat(e.source).st_size
    return ti


def write_layer(
    entries: Iterable[LayerEntry], tmp_dir: Path, *, compresslevel: int = 6
) -> LayerBlob:
    """Write `entries` (already complete and sorted) as a gzip tar under `tmp_dir`.

    The caller moves `LayerBlob.path` into the blob store; on error nothing is left behind.
    """
    tmp_dir.mkdir(parents=True, exist_ok=True)
    out_path = tmp_dir / f".layer-{os.getpid()}-{os.urandom(6).hex()}.tar.gz"
    try:
        with open(out_path, "wb") as raw:
            compressed = _HashingWriter(raw)
            with gzip.GzipFile(
                filename="", mode="wb", fileobj=compressed,
                mtime=0, compresslevel=compresslevel,
            ) as gz:
                plain = _HashingWriter(gz)  # type: ignore[arg-type]
                with tarfile.open(
                    fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT  # type: ignore[call-overload]
                ) as tar:
                    for e in entries:
                        ti = _tarinfo(e)
                        if e.kind == "file" and e.data is not None:
                            tar.addfile(ti, io.BytesIO(e.data))
                        elif e.kind == "file":
                            assert e.source is not None
                            with open(e.source, "rb") as f:
                                tar.addfile(ti, f)
                        else:
                            tar.addfile(ti)
        return LayerBlob(
            out_path,
            "sha256:" + compressed.hash.hexdigest(),
            "sha256:" + plain.hash.hexdigest(),
            compressed.size,
            plain.size,
        )
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- unpacking


def _check_parents(root: Path, rel: str) -> Path:
    """Return root/rel after making sure no existing parent inside root is a symlink."""
    cur = root
    parts = rel.split("/")
    for part in parts[:-1]:
        cur = cur / part
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            os.mkdir(cur, 0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath(f"archive member {rel!r} would be written through symlink {part!r}")
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafePath(f"archive member {rel!r}: parent {part!r} is not a directory")
    return cur / parts[-1]


def _clear(path: Path, *, keep_dir: bool) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if keep_dir:
            return
        shutil.rmtree(path)
    else:
        os.unlink(path)


def unpack_layer(blob: Path, target: Path) -> None:
    """Extract the (gzip or plain) tar `blob` into the new directory `target`.

    `target` must not exist; it is created here. See the module docstring for the rules.
    """
    target.mkdir(mode=0o755)
    dir_times: list[tuple[Path, int]] = []
    with tarfile.open(blob, mode="r:*") as tar:
        for m in tar:
            rel = normalise_member(m.name)
            if not rel:
                # The root entry "./": take its mode, as the layer's root directory.
                if m.isdir():
                    os.chmod(target, m.mode & 0o7777)
                continue
            base = rel.rsplit("/", 1)[-1]
            dest = _check_parents(target, rel)
            if base == OPAQUE_WHITEOUT:
                with contextlib.suppress(OSError):
                    os.setxattr(dest.parent, OVERLAY_OPAQUE_XATTR, b"y")
                continue
            if base.startswith(WHITEOUT_PREFIX):
                victim = dest.parent / base[len(WHITEOUT_PREFIX) :]
                _clear(victim, keep_dir=False)
                os.mknod(victim, stat.S_IFCHR | 0o000, os.makedev(0, 0))
                continue
            _clear(dest, keep_dir=m.isdir())
            if m.isdir():
                if not dest.exists():
                    os.mkdir(dest, 0o755)
                dir_times.append((dest, int(m.mtime)))
            elif m.issym():
                os.symlink(m.linkname, dest)
            elif m.islnk():
                src_rel = normalise_member(m.linkname)
                if not src_rel:
                    raise UnsafePath(f"hard link {rel!r} points at the root")
                src = _check_parents(target, src_rel)
                if not os.path.lexists(src):
                    raise UnsafePath(f"hard link {rel!r} points at missing {m.linkname!r}")
                os.link(src, dest, follow_symlinks=False)
                continue  # shares the inode: metadata is the target's
            elif m.isreg():
                f = tar.extractfile(m)
                assert f is not None
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out:
                    while chunk := f.read(_CHUNK):
                        out.write(chunk)
            else:
                log.debug("skipping device or fifo in layer", member=rel)
                continue
            if os.geteuid() == 0:
                # Without root the files stay the user's own, which a rootless pod's user
                # namespace maps to root (sandbox/rootless.py): the owner a layer says.
                os.lchown(dest, m.uid, m.gid)
            if not m.issym():
                os.chmod(dest, m.mode & 0o7777)
                if not m.isdir():
                    os.utime(dest, (m.mtime, m.mtime))
            else:
                os.utime(dest, (m.mtime, m.mtime), follow_symlinks=False)
    # Directory mtimes last: creating their children changed them.
    for d, mtime in reversed(dir_times):
        os.utime(d, (mtime, mtime))


# --------------------------------------------------------------------------- host trees


@dataclass
class _Inodes:
    seen: dict[tuple[int, int], str] = field(default_factory=dict)


def entry_for(
    host: Path, arc: str, *, uid: int | None = None, gid: int | None = None,
    st: os.stat_result | None = None,
) -> LayerEntry:
    """A layer entry for one host path (not followed if a symlink); ownership overridable."""
    st = st or os.lstat(host)
    u = st.st_uid if uid is None else uid
    g = st.st_gid if gid is None else gid
    common = {"path": arc, "mode": stat.S_IMODE(st.st_mode), "uid": u, "gid": g,
              "mtime": int(st.st_mtime)}
    if stat.S_ISDIR(st.st_mode):
        return LayerEntry(kind="dir", **common)  # type: ignore[arg-type]
    if stat.S_ISLNK(st.st_mode):
        return LayerEntry(kind="symlink", linkname=os.readlink(host), **common)  # type: ignore[arg-type]
    if stat.S_ISREG(st.st_mode):
        return LayerEntry(kind="file", source=host, **common)  # type: ignore[arg-type]
    raise UnsafePath(f"{host}: only files, directories and symlinks can go into a layer")


def walk_tree(root: Path) -> Iterator[tuple[Path, str, os.stat_result]]:
    """Yield (host path, relative path, lstat) for everything under root, sorted, no root."""
    stack = [(root, "")]
    while stack:
        d, rel = stack.pop()
        names = sorted(os.listdir(d), reverse=True)
        for name in names:
            p = d / name
            r = f"{rel}/{name}" if rel else name
            st = os.lstat(p)
            yield p, r, st
            if stat.S_ISDIR(st.st_mode):
                stack.append((p, r))


def diff_upper(upper: Path) -> list[LayerEntry]:
    """Layer entries for an overlay upper dir after a RUN step (ownership kept).

    overlay whiteouts (char 0/0) become `.wh.<name>`; opaque directories get
    `.wh..wh..opq`; hard links inside the upper dir stay hard links.
    """
    entries: list[LayerEntry] = []
    inodes = _Inodes()
    for host, rel, st in walk_tree(upper):
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0):
            parent, _, name = rel.rpartition("/")
            wh = f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else WHITEOUT_PREFIX + name
            entries.append(LayerEntry(path=wh, kind="whiteout"))
            continue
        if stat.S_ISDIR(st.st_mode):
            entries.append(entry_for(host, rel, st=st))
            opaque = b""
            with contextlib.suppress(OSError):
                opaque = os.getxattr(host, OVERLAY_OPAQUE_XATTR, follow_symlinks=False)
            if opaque == b"y":
                entries.append(LayerEntry(path=f"{rel}/{OPAQUE_WHITEOUT}", kind="whiteout"))
            continue
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = inodes.seen.get(key)
            if first is not None:
                entries.append(LayerEntry(path=rel, kind="hardlink", linkname=first,
                                          uid=st.st_uid, gid=st.st_gid,
                                          mode=stat.S_IMODE(st.st_mode), mtime=int(st.st_mtime)))
                continue
            inodes.seen[key] = rel
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            log.debug("skipping special file created by RUN", path=rel)
            continue
        entries.append(entry_for(host, rel, st=st))
    entries.sort(key=lambda e: _sort_key(e.path))
    return entries
