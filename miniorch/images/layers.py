"""Layer tarballs: writing them deterministically, unpacking them safely for overlayfs.

Writing. A layer is described as a list of `LayerEntry` (archive path, kind, metadata,
host source for file contents). `write_layer` sorts the entries by path, writes a PAX tar
through gzip (mtime 0, no filename in the gzip header) and hashes both streams at once:
sha256 of the compressed bytes is the blob digest, sha256 of the tar is the diff_id.
Entries keep their file mtimes but carry normalised ownership (numeric ids only, no
user or group names), so the same inputs always give the same digest.

Unpacking. `unpack_layer` extracts a layer (a registry's: hostile until proven
otherwise) into a fresh directory that is used as an overlayfs lowerdir. It streams:
decompress (gzip, zstd or none, by media type) → count and hash → tar members, so the
diff_id is verified against the very bytes that were unpacked. Invariants, checked per
member, whatever the archive says:
  - nothing is written outside the target: absolute names and `..` components are
    refused, a member is never written *through* a symlink (or a file) in the layer,
    hard links must name an existing non-directory member of this layer, files are
    opened O_EXCL|O_NOFOLLOW, and metadata calls never follow links;
  - OCI whiteouts become overlay whiteouts confined to the layer: `.wh.<name>` → char
    device 0/0 `<name>` where `<name>` is one real component (not ``, `.`, `..`),
    `.wh..wh..opq` → xattr `trusted.overlay.opaque=y` on its directory, other
    `.wh..wh.*` (AUFS bookkeeping) ignored;
  - character and block devices are NOT created. containerd, unpacking as root, does
    mknod them and relies on the device cgroup to stop a container opening them; here
    the unpacked tree also sits on the host's filesystem, where a device node with the
    host disk's numbers (block 8:0, mode 0666) is root-equivalent for whoever reaches
    it, and the sandbox mounts its own /dev anyway. FIFOs are harmless and created;
  - modes keep setuid/setgid/sticky (images need `su`, `ping`; no_new_privs in the
    sandbox neuters them in pods) — which is why `unpacked/` is 0700: no other host user
    can reach a layer's setuid-root file. Directory modes are applied last, so a 0555 or
    0000 directory does not stop its own extraction; owners outside 0..2^32-2 are
    refused; absurd mtimes are clamped;
  - bounded: member count, path and link-target length (PATH_MAX, NAME_MAX per
    component), decompressed bytes and written bytes (sparse members too).
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
from typing import IO, Literal, cast
from zlib import error as zlib_error

from miniorch.core.logging import get_logger
from miniorch.images.errors import DigestMismatch, ImageError, LimitExceeded, UnsafePath
from miniorch.images.oci import Limits, check_digest

log = get_logger(__name__)  # structlog, imported on first use (core.logging)

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


class _Metered:
    """A read-only stream that hashes and counts the bytes passing through it and
    refuses to pass more than `limit` (the decompressed-size / zip-bomb bound)."""

    def __init__(self, raw: IO[bytes], limit: int, hash_name: str | None, what: str) -> None:
        self.raw = raw
        self.limit = limit
        self.hash = hashlib.new(hash_name) if hash_name else None
        self.size = 0
        self.what = what

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = _CHUNK
        try:
            data = self.raw.read(n)
        except Exception as exc:  # gzip/zstd/bz2/lzma each raise their own kinds
            raise UnsafePath(f"{self.what}: corrupt compressed stream: {exc}") from None
        self.size += len(data)
        if self.size > self.limit:
            raise LimitExceeded(f"{self.what}: more than {self.limit} bytes uncompressed")
        if self.hash is not None:
            self.hash.update(data)
        return data

    def drain(self) -> None:
        """Read to the end (tar padding after the end-of-archive blocks is hashed too)."""
        while self.read(_CHUNK):
            pass


_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2",
          b"\xfd7zXZ\x00": "xz"}


def _detect(raw: IO[bytes]) -> str:
    head = raw.read(6)
    raw.seek(0)
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return "none"


def _decompressed(raw: IO[bytes], compression: str) -> IO[bytes]:
    """The tar stream inside `raw`, decompressed as its media type says ("auto" sniffs
    the magic number, for ADD's local archives and layers written before media types
    were recorded)."""
    if compression == "auto":
        compression = _detect(raw)
    if compression == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    if compression == "zstd":
        import zstandard  # only zstd layers need it

        reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(
            raw, read_across_frames=True)
        return reader
    if compression == "bzip2":
        import bz2

        return bz2.BZ2File(raw)
    if compression == "xz":
        import lzma

        return lzma.LZMAFile(raw)
    if compression == "none":
        return raw
    raise ImageError(f"unsupported layer compression {compression!r}")


_MAX_ID = (1 << 32) - 2
"""uid/gid 2^32-1 is (uid_t)-1, "leave unchanged" to chown: never a real owner."""
_MAX_MTIME = 1 << 34  # year 2514: past it, utime overflows on some filesystems


def _check_name(rel: str, what: str, limits: Limits) -> None:
    if "\x00" in rel:
        raise UnsafePath(f"{what} {rel[:100]!r} contains a NUL byte")
    raw = rel.encode(errors="surrogateescape")
    if len(raw) > limits.path_bytes:
        raise LimitExceeded(f"{what} {rel[:100]!r}…: longer than {limits.path_bytes} bytes")
    if any(len(c.encode(errors="surrogateescape")) > 255 for c in rel.split("/")):
        raise LimitExceeded(f"{what} {rel[:100]!r}: a path component is longer than 255 bytes")


def _lookup(root: Path, rel: str) -> Path:
    """root/rel for an existing member, refusing any symlink or non-directory parent
    (the read-only twin of `_check_parents`, for hard-link sources)."""
    cur = root
    parts = rel.split("/")
    for part in parts[:-1]:
        cur = cur / part
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            raise UnsafePath(f"hard link source {rel!r} does not exist in the layer") from None
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafePath(f"hard link source {rel!r} goes through non-directory {part!r}")
    return cur / parts[-1]


def _check_parents(root: Path, rel: str) -> Path:
    """Return root/rel after making sure no existing parent inside root is a symlink.

    Missing parents are created (0755, as containerd does); a parent that is a symlink
    or a file refuses the member: within one layer nothing is ever written through a
    link, so no member can land outside `root` whatever links the layer holds.
    """
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
        remove_tree(path)
    else:
        os.unlink(path)


def remove_tree(path: Path) -> None:
    """rmtree that also removes directories a layer made read-only (0555, 0000): without
    root their mode would stop us deleting their children."""

    def fix(_func: Callable[..., object], failed: str, _exc: BaseException) -> None:
        parent = os.path.dirname(failed)
        with contextlib.suppress(OSError):
            os.chmod(parent, 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
                shutil.rmtree(failed, ignore_errors=True)
            else:
                os.unlink(failed)

    if os.path.lexists(path):
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
        shutil.rmtree(path, onerror=lambda f, p, e: fix(f, p, e[1]))


@dataclass(frozen=True)
class Unpacked:
    size: int
    """Bytes of the decompressed tar stream (what the diff_id hashes)."""
    members: int
    skipped_devices: tuple[str, ...] = ()


def unpack_layer(blob: Path, target: Path, *, compression: str = "auto",
                 diff_id: str | None = None, limits: Limits | None = None,
                 max_bytes: int | None = None, whiteouts: bool = True) -> Unpacked:
    """Extract the layer tarball `blob` into the new directory `target`.

    `target` must not exist; it is created here and, if anything is refused, left
    half-written for the caller to remove (the store unpacks into a temp dir and renames
    it into place only on success). `diff_id`, if given, must match the sha256/sha512 of
    the decompressed stream or `DigestMismatch` is raised. `whiteouts=False` (ADD of a
    local archive) skips whiteout entries instead of applying them. See the module
    docstring for the confinement rules; `Limits` bounds members, names and bytes.
    """
    limits = limits or Limits()
    max_bytes = limits.unpacked_layer_bytes if max_bytes is None else max_bytes
    hash_name = check_digest(diff_id, "diff_id")[0] if diff_id is not None else None
    what = f"layer {diff_id or blob.name}"
    target.mkdir(mode=0o700)
    dirs: list[tuple[Path, int, int]] = []
    skipped: list[str] = []
    members = 0
    written = 0
    as_root = os.geteuid() == 0
    try:
        with open(blob, "rb") as raw:
            metered = _Metered(_decompressed(raw, compression), max_bytes, hash_name, what)
            with tarfile.open(fileobj=metered, mode="r|",  # type: ignore[call-overload]
                              errors="surrogateescape") as tar:
                for m in tar:
                    members += 1
                    if members > limits.members:
                        raise LimitExceeded(f"{what}: more than {limits.members} members")
                    rel = normalise_member(m.name)
                    _check_name(rel, "archive member", limits)
                    mode = m.mode & 0o7777
                    if not (0 <= m.uid <= _MAX_ID and 0 <= m.gid <= _MAX_ID):
                        raise UnsafePath(f"archive member {rel!r}: owner {m.uid}:{m.gid} "
                                         "is out of range")
                    mtime = min(max(int(m.mtime), 0), _MAX_MTIME)
                    if not rel:
                        # The root entry "./": its mode becomes the layer root's mode.
                        if m.isdir():
                            dirs.append((target, mode, mtime))
                        continue
                    base = rel.rsplit("/", 1)[-1]
                    if base.startswith(WHITEOUT_PREFIX):
                        if not whiteouts:
                            continue
                        _whiteout(target, rel, base)
                        continue
                    dest = _check_parents(target, rel)
                    _clear(dest, keep_dir=m.isdir())
                    if m.isdir():
                        if not os.path.lexists(dest):
                            os.mkdir(dest, 0o700)
                        dirs.append((dest, mode, mtime))
                    elif m.issym():
                        _check_name(m.linkname, f"symlink {rel!r} target", limits)
                        if not m.linkname:
                            raise UnsafePath(f"symlink {rel!r} has an empty target")
                        os.symlink(m.linkname, dest)
                    elif m.islnk():
                        src_rel = normalise_member(m.linkname)
                        if not src_rel:
                            raise UnsafePath(f"hard link {rel!r} points at the layer root")
                        _check_name(src_rel, "hard link source", limits)
                        src = _lookup(target, src_rel)
                        try:
                            st = os.lstat(src)
                        except FileNotFoundError:
                            raise UnsafePath(f"hard link {rel!r} points at {m.linkname!r}, "
                                             "which is not in this layer") from None
                        if stat.S_ISDIR(st.st_mode):
                            raise UnsafePath(f"hard link {rel!r} points at a directory")
                        os.link(src, dest, follow_symlinks=False)
                        continue  # shares the inode: metadata is the source's
                    elif m.isreg():
                        if m.size > max_bytes - written:
                            raise LimitExceeded(f"{what}: member {rel!r} is larger than "
                                                "the layer's size limit")
                        f = tar.extractfile(m)
                        assert f is not None
                        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                                     | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                        with os.fdopen(fd, "wb") as out:
                            while chunk := f.read(_CHUNK):
                                written += len(chunk)
                                if written > max_bytes:
                                    raise LimitExceeded(f"{what}: more than {max_bytes} "
                                                        "bytes of file contents")
                                out.write(chunk)
                    elif m.isfifo():
                        os.mkfifo(dest, 0o600)
                    else:
                        # Character and block devices: not created (see the docstring).
                        skipped.append(rel)
                        continue
                    if as_root:
                        # Without root the files stay the user's own, which a rootless
                        # pod's user namespace maps to root (sandbox/rootless.py).
                        os.lchown(dest, m.uid, m.gid)
                    if m.issym():
                        os.utime(dest, (mtime, mtime), follow_symlinks=False)
                    elif not m.isdir():
                        # After chown: chown clears setuid/setgid bits, chmod restores them.
                        os.chmod(dest, mode, follow_symlinks=False)
                        os.utime(dest, (mtime, mtime), follow_symlinks=False)
            metered.drain()
    except (tarfile.TarError, EOFError, zlib_error, ValueError, OverflowError) as exc:
        raise UnsafePath(f"{what}: not a valid tar stream: {exc}") from None
    except FileExistsError as exc:
        raise UnsafePath(f"{what}: duplicate or conflicting member: {exc}") from None
    except OSError as exc:
        raise UnsafePath(f"{what}: cannot unpack: {exc}") from None
    if skipped:
        log.info("device nodes in layer not created", layer=what, count=len(skipped),
                 first=skipped[0])
    # Directory modes and mtimes last: their children needed them writable (a 0555
    # directory without root) and creating children changed their mtimes.
    for d, mode, mtime in reversed(dirs):
        os.chmod(d, mode)
        os.utime(d, (mtime, mtime))
    if diff_id is not None:
        assert metered.hash is not None
        actual = f"{hash_name}:{metered.hash.hexdigest()}"
        if actual != diff_id:
            raise DigestMismatch(f"{what} (uncompressed)", diff_id, actual)
    return Unpacked(metered.size, members, tuple(skipped))


def _whiteout(target: Path, rel: str, base: str) -> None:
    """Apply one OCI whiteout as overlayfs knows it, confined to this layer's directory.

    `.wh..wh..opq` marks its directory opaque; other `.wh..wh.*` names are AUFS
    bookkeeping and are ignored (as containerd does); `.wh.<name>` becomes a 0/0 char
    device `<name>` — where `<name>` must be one ordinary path component, never ``,
    `.` or `..` (a `.wh...` would otherwise name the layer directory's parent).
    """
    parent_rel = rel.rpartition("/")[0]
    if base == OPAQUE_WHITEOUT:
        parent = _check_parents(target, f"{parent_rel}/x" if parent_rel else "x").parent
        try:
            os.setxattr(parent, OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)
        except OSError as exc:
            # Without CAP_SYS_ADMIN trusted.* xattrs cannot be set; the lower layers'
            # files then show through this directory. Say so rather than hide it.
            log.warning("cannot mark directory opaque", path=parent_rel or "/", error=str(exc))
        return
    if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
        return
    name = base[len(WHITEOUT_PREFIX):]
    if name in ("", ".", ".."):
        raise UnsafePath(f"whiteout {rel!r} names {name!r}, not a file")
    victim = _check_parents(target, f"{parent_rel}/{name}" if parent_rel else name)
    _clear(victim, keep_dir=False)
    os.mknod(victim, stat.S_IFCHR | 0o000, os.makedev(0, 0))


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
