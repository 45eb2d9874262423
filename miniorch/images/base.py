"""Base images made from this machine's own files, so `FROM` works without the internet.

Images (all `docker.io/library/...`, i.e. Docker Hub's familiar names):

    busybox:latest                layers [skeleton, busybox]
        skeleton: /bin /dev /etc /home /proc /root /sys /tmp /usr /var …, a minimal /etc
                  (passwd, group, hosts, nsswitch.conf, os-release)
        busybox:  Debian busybox-static's /bin/busybox and one symlink per applet in /bin
    python:{latest,3,3.11,3.11-slim,3-slim,slim,<3.11.x>,<3.11.x>-slim}
                                  layers [skeleton, busybox (or dash as /bin/sh), python]
        python:   /usr/bin/python3.11, /usr/lib/python3.11 (without test/, idlelib,
                  tkinter, ensurepip, lib2to3, turtledemo, pydoc_data, config-*, _test*
                  modules), every shared library `ldd` names for it and its extension
                  modules (with the symlink chains that reach them: /lib → usr/lib …),
                  `/usr/bin/python3`, `/usr/bin/python`, `/usr/local/bin/python{,3}`.

The skeleton and busybox layers are the same blobs in both images (stored once).

Cost and caching. Walking the sources is cheap; compressing the python layer is not
(~30 MB of tar). So each layer's blob is cached host-wide in `cache_dir`
(`~/.cache/miniorch/base`) under a key made of the recipe version and every source
file's path, size, mode and mtime; a new store imports the cached blob by hard link
(copy across filesystems). A changed host file (a Debian update) changes the key, so
the layer is rebuilt. The image config's `created` is the newest source mtime, so the
same machine always produces the same image IDs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from miniorch.core.logging import get_logger
from miniorch.images.errors import ImageNotFound
from miniorch.images.layers import LayerEntry, entry_for, with_parents, write_layer
from miniorch.images.oci import DEFAULT_PATH, Descriptor, Image
from miniorch.images.reference import DEFAULT_DOMAIN, Reference, parse_reference

if TYPE_CHECKING:
    from miniorch.images.store import ImageStore, Progress

log = get_logger(__name__)  # structlog, imported on first use (core.logging)

RECIPE_VERSION = "miniorch-base-3"
"""Bump when the recipe changes: it is part of every cache key."""

BUSYBOX_HOST = Path("/bin/busybox")
DASH_HOST = Path("/bin/dash")
PYTHON_MINOR = "3.11"
PYTHON_HOST = Path(f"/usr/bin/python{PYTHON_MINOR}")
PYTHON_LIB_HOST = Path(f"/usr/lib/python{PYTHON_MINOR}")
PYTHON_EXCLUDE = frozenset({
    "test", "idlelib", "tkinter", "ensurepip", "lib2to3", "turtledemo", "pydoc_data",
    "site-packages", "dist-packages", "__phello__",
})
PYTHON_EXCLUDE_PREFIXES = ("config-", "_test", "xxlimited", "_xxtest", "_ctypes_test")


def default_cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "miniorch" / "base"


def _host_python_version() -> str:
    """`3.11.2`: the host interpreter's own answer."""
    out = subprocess.run(
        [str(PYTHON_HOST), "-c", "import platform;print(platform.python_version())"],
        capture_output=True, text=True, check=True, timeout=30)
    return out.stdout.strip()


def python_tags(version: str) -> list[str]:
    tags = ["latest", "3", PYTHON_MINOR, f"{PYTHON_MINOR}-slim", "3-slim", "slim"]
    if version and version not in tags:
        tags += [version, f"{version}-slim"]
    return tags


def _dir(path: str, mode: int = 0o755, mtime: int = 0) -> LayerEntry:
    return LayerEntry(path=path, kind="dir", mode=mode, mtime=mtime)


def _file(path: str, data: str, mtime: int, mode: int = 0o644) -> LayerEntry:
    return LayerEntry(path=path, kind="file", data=data.encode(), mode=mode, mtime=mtime)


def _symlink(path: str, target: str, mtime: int = 0) -> LayerEntry:
    return LayerEntry(path=path, kind="symlink", linkname=target, mode=0o777, mtime=mtime)


class _HostTree:
    """Collects host paths for a layer, reproducing the symlink chains that reach them."""

    def __init__(self) -> None:
        self.entries: dict[str, LayerEntry] = {}

    def add(self, host: str, *, depth: int = 0) -> None:
        if depth > 40:
            raise OSError(f"too many symlinks resolving {host}")
        parts = [p for p in host.split("/") if p]
        cur = ""
        for i, part in enumerate(parts):
            nxt = f"{cur}/{part}"
            st = os.lstat(nxt)
            rel = nxt[1:]
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(nxt)
                self.entries[rel] = LayerEntry(path=rel, kind="symlink", linkname=target,
                                               mode=0o777, mtime=int(st.st_mtime))
                resolved = os.path.normpath(os.path.join(cur or "/", target))
                rest = "/".join(parts[i + 1:])
                self.add(f"{resolved}/{rest}" if rest else resolved, depth=depth + 1)
                return
            if rel not in self.entries:
                self.entries[rel] = entry_for(Path(nxt), rel, uid=0, gid=0, st=st)
            cur = nxt

    def add_tree(self, root: Path, *, skip: Iterable[str] = (),
                 skip_prefixes: tuple[str, ...] = ()) -> None:
        self.add(str(root))
        skipset = set(skip)
        for dirpath, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs
                             if d not in skipset and not d.startswith(skip_prefixes))
            for name in sorted([*dirs, *files]):
                if name in skipset or name.startswith(skip_prefixes):
                    continue
                if name.endswith((".opt-1.pyc", ".opt-2.pyc")):
                    continue  # nobody runs python -O in these images; saves a third
                p = Path(dirpath) / name
                rel = str(p)[1:]
                self.entries[rel] = entry_for(p, rel, uid=0, gid=0)


RUNTIME_DLOPENED = ("/lib/x86_64-linux-gnu/libgcc_s.so.1",)
"""Libraries glibc loads by name at run time, invisible to `ldd`."""


def _ldd(paths: Iterable[Path]) -> set[str]:
    """Every shared library path `ldd` names for these ELF files (one ldd process)."""
    args = [str(p) for p in paths]
    if not args:
        return set()
    out = subprocess.run(["ldd", *args], capture_output=True, text=True, timeout=60).stdout
    libs: set[str] = set()
    for line in out.splitlines():
        m = re.search(r"=>\s*(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(0x", line)
        if m:
            libs.add(m.group(1))
    return libs


def _iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


class BaseImages:
    """The built-in `Puller`: answers `busybox` and `python` from the host's files."""

    def __init__(self, *, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir or default_cache_dir()

    # -- Puller

    def pull(self, store: ImageStore, ref: Reference, *, progress: Progress,
             auth: Mapping[str, tuple[str, str]] | None = None) -> Image | None:
        if ref.domain != DEFAULT_DOMAIN or ref.digest is not None:
            return None
        if ref.path == "library/busybox" and ref.tag == "latest":
            return self.busybox(store, progress=progress)
        if ref.path == "library/python" and ref.tag is not None:
            if ref.tag not in python_tags(self._python_version()):
                return None
            return self.python(store, progress=progress)
        return None

    def _python_version(self) -> str:
        return _host_python_version() if PYTHON_HOST.exists() else ""

    # -- layers

    def _skeleton(self) -> list[LayerEntry]:
        mtime = 0
        entries = [
            _dir("bin"), _dir("dev"), _dir("etc"), _dir("home"), _dir("proc"),
            _dir("root", 0o700), _dir("sys"), _dir("tmp", 0o1777), _dir("usr"),
            _dir("usr/bin"), _dir("usr/sbin"), _dir("usr/local"), _dir("usr/local/bin"),
            _dir("sbin"), _dir("var"), _dir("var/tmp", 0o1777), _dir("run"),
            _file("etc/passwd",
                  "root:x:0:0:root:/root:/bin/sh\n"
                  "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", mtime),
            _file("etc/group", "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n", mtime),
            _file("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n", mtime),
            _file("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n", mtime),
            _file("etc/os-release", 'NAME="miniorch base"\nID=miniorch\n', mtime),
        ]
        return with_parents(entries, _dir)

    def _busybox_layer(self) -> list[LayerEntry]:
        if not BUSYBOX_HOST.exists():
            raise ImageNotFound(
                "busybox",
                "busybox base image needs Debian's busybox-static (/bin/busybox), which is "
                "not installed: apt-get install -y busybox-static")
        real = BUSYBOX_HOST.resolve()
        st = os.stat(real)
        mtime = int(st.st_mtime)
        applets = subprocess.run([str(real), "--list"], capture_output=True, text=True,
                                 check=True, timeout=30).stdout.split()
        entries = [_dir("bin"),
                   LayerEntry(path="bin/busybox", kind="file", source=real, mode=0o755,
                              mtime=mtime)]
        entries += [_symlink(f"bin/{a}", "busybox", mtime) for a in applets
                    if a != "busybox" and "/" not in a]
        return with_parents(entries, _dir)

    def _dash_layer(self) -> list[LayerEntry]:
        tree = _HostTree()
        tree.add(str(DASH_HOST))
        for lib in _ldd([DASH_HOST]):
            tree.add(lib)
        entries = list(tree.entries.values())
        entries.append(_symlink("bin/sh", "dash"))
        return with_parents(entries, _dir)

    def _python_layer(self) -> list[LayerEntry]:
        if not PYTHON_HOST.exists():
            raise ImageNotFound(
                "python",
                f"python base image needs the host's Debian {PYTHON_HOST}: "
                f"apt-get install -y python{PYTHON_MINOR}")
        tree = _HostTree()
        tree.add(str(PYTHON_HOST))
        tree.add_tree(PYTHON_LIB_HOST, skip=PYTHON_EXCLUDE, skip_prefixes=PYTHON_EXCLUDE_PREFIXES)
        elves = [PYTHON_HOST] + [Path("/" + e.path) for e in tree.entries.values()
                                 if e.kind == "file" and e.path.endswith(".so")]
        for lib in sorted(_ldd(elves)):
            tree.add(lib)
        # glibc dlopen()s libgcc_s at run time for pthread_exit/cancellation (Python's
        # threads do that on SIGTERM); ldd cannot see it, so add it by name.
        for extra in RUNTIME_DLOPENED:
            if Path(extra).exists():
                tree.add(extra)
        entries = list(tree.entries.values())
        entries += [
            _symlink("usr/bin/python3", f"python{PYTHON_MINOR}"),
            _symlink("usr/bin/python", f"python{PYTHON_MINOR}"),
            _symlink("usr/local/bin/python", f"/usr/bin/python{PYTHON_MINOR}"),
            _symlink("usr/local/bin/python3", f"/usr/bin/python{PYTHON_MINOR}"),
        ]
        return with_parents(entries, _dir)

    def _cached_layer(self, store: ImageStore, name: str, entries: list[LayerEntry]
                      ) -> tuple[Descriptor, str]:
        """Store the layer for `entries`, from the host-wide cache when its key matches."""
        from miniorch.images.store import layer_descriptor

        key_src = hashlib.sha256(f"{RECIPE_VERSION}\0{name}\0".encode())
        for e in entries:
            key_src.update(repr((e.path, e.kind, e.mode, e.uid, e.gid, e.mtime, e.linkname,
                                 e.data)).encode())
            if e.source is not None:
                st = os.stat(e.source)
                key_src.update(f"{e.source}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        key = key_src.hexdigest()
        meta_path = self.cache_dir / f"{name}-{key[:32]}.json"
        blob_path = self.cache_dir / f"{name}-{key[:32]}.tar.gz"
        with contextlib.suppress(OSError, ValueError, KeyError):
            meta = json.loads(meta_path.read_text())
            if blob_path.stat().st_size == meta["size"]:
                store.import_blob(blob_path, meta["digest"])
                return layer_descriptor(meta["digest"], meta["size"], meta["tar_size"]), \
                    meta["diff_id"]
        # Level 1: these blobs never leave the machine, and level 6 triples the cold time.
        blob = write_layer(entries, store.tmp_dir, compresslevel=1)
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_dir / f".{blob_path.name}.{os.getpid()}"
            shutil.copyfile(blob.path, tmp)
            os.replace(tmp, blob_path)
            meta = {"digest": blob.digest, "diff_id": blob.diff_id, "size": blob.size,
                    "tar_size": blob.tar_size}
            tmpm = self.cache_dir / f".{meta_path.name}.{os.getpid()}"
            tmpm.write_text(json.dumps(meta))
            os.replace(tmpm, meta_path)
        except OSError as e:  # a read-only home must not break builds: no cache, that's all
            log.warning("cannot write base-image cache", dir=str(self.cache_dir), error=str(e))
        return store.put_layer(blob), blob.diff_id

    # -- images

    def _config(self, store: ImageStore, *, created: int, env: list[str], cmd: list[str],
                layers: list[tuple[Descriptor, str]], history: list[str]) -> dict[str, Any]:
        cfg = store.new_config()
        cfg["created"] = _iso(created)
        cfg["config"] = {"Env": env, "Cmd": cmd}
        cfg["rootfs"]["diff_ids"] = [d for _, d in layers]
        cfg["history"] = [{"created": _iso(created), "created_by": h} for h in history]
        return cfg

    def busybox(self, store: ImageStore, *, progress: Progress) -> Image:
        progress("busybox: creating the base image from the host's /bin/busybox")
        layers = [self._cached_layer(store, "skeleton", self._skeleton()),
                  self._cached_layer(store, "busybox", self._busybox_layer())]
        created = int(os.stat(BUSYBOX_HOST.resolve()).st_mtime)
        cfg = self._config(store, created=created, env=[f"PATH={DEFAULT_PATH}"], cmd=["sh"],
                           layers=layers, history=[
                               "miniorch: base filesystem skeleton and /etc",
                               f"miniorch: COPY host {BUSYBOX_HOST} (busybox-static) + applets"])
        return store.add_image(cfg, [d for d, _ in layers],
                               [parse_reference("busybox:latest")])

    def python(self, store: ImageStore, *, progress: Progress) -> Image:
        version = self._python_version()
        progress(f"python:{version}: creating the base image from the host's {PYTHON_HOST}")
        shell = (("busybox", self._busybox_layer()) if BUSYBOX_HOST.exists()
                 else ("dash", self._dash_layer()))
        layers = [self._cached_layer(store, "skeleton", self._skeleton()),
                  self._cached_layer(store, shell[0], shell[1]),
                  self._cached_layer(store, f"python{PYTHON_MINOR}", self._python_layer())]
        created = max(int(os.stat(PYTHON_HOST).st_mtime),
                      int(os.stat(BUSYBOX_HOST.resolve() if BUSYBOX_HOST.exists()
                                  else DASH_HOST).st_mtime))
        cfg = self._config(
            store, created=created,
            env=[f"PATH={DEFAULT_PATH}", "LANG=C.UTF-8", f"PYTHON_VERSION={version}"],
            cmd=["python3"], layers=layers, history=[
                "miniorch: base filesystem skeleton and /etc",
                f"miniorch: /bin/sh from the host's {shell[0]}",
                f"miniorch: COPY host {PYTHON_HOST} {PYTHON_LIB_HOST} and shared libraries"])
        refs = [parse_reference(f"python:{t}") for t in python_tags(version)]
        return store.add_image(cfg, [d for d, _ in layers], refs)


def ensure_base_images(store: ImageStore, *, progress: Progress | None = None) -> list[Image]:
    """Make sure `busybox:latest` and `python:3.11-slim` (and aliases) are in `store`."""
    out = []
    for ref in ("busybox:latest", f"python:{PYTHON_MINOR}-slim"):
        out.append(store.ensure(ref, progress=progress or (lambda _line: None)))
    return out


if __name__ == "__main__":  # pragma: no cover - manual timing aid
    import time

    from miniorch.images.store import ImageStore

    t = time.perf_counter()
    s = ImageStore(Path(sys.argv[1]))
    ensure_base_images(s, progress=print)
    print(f"{time.perf_counter() - t:.2f}s")
