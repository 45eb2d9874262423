"""Store internals: blobs, index, unpacking rules (whiteouts, unsafe members), GC."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from miniorch.images import ImageStore, UnsafePath
from miniorch.images.layers import LayerEntry, unpack_layer, with_parents, write_layer


def _tar(members: list[tuple[str, str | None, bytes]]) -> bytes:
    """(name, kind, data): kind None = file, "dir", "sym:<target>", "link:<target>"."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, kind, data in members:
            ti = tarfile.TarInfo(name)
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            elif kind and kind.startswith("sym:"):
                ti.type, ti.linkname = tarfile.SYMTYPE, kind[4:]
                tar.addfile(ti)
            elif kind and kind.startswith("link:"):
                ti.type, ti.linkname = tarfile.LNKTYPE, kind[5:]
                tar.addfile(ti)
            else:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_layout_files(store: ImageStore) -> None:
    assert json.loads((store.root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((store.root / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["manifests"] == []


@pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts are device nodes: root only")
def test_unpack_converts_whiteouts(workdir: Path) -> None:
    blob = workdir / "l.tar.gz"
    blob.write_bytes(_tar([("etc", "dir", b""), ("etc/.wh.gone", None, b""),
                           ("opt/.wh..wh..opq", None, b""), ("opt/new", None, b"n")]))
    unpack_layer(blob, workdir / "out")
    gone = os.lstat(workdir / "out/etc/gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert not (workdir / "out/etc/.wh.gone").exists()
    assert os.getxattr(workdir / "out/opt", "trusted.overlay.opaque") == b"y"


@pytest.mark.parametrize(
    "members",
    [
        pytest.param([("../../etc/x", None, b"x")], id="dotdot"),
        pytest.param([("/etc/x", None, b"x")], id="absolute"),
        pytest.param([("lnk", "sym:/etc", b""), ("lnk/x", None, b"x")], id="through-symlink"),
        pytest.param([("h", "link:../../etc/passwd", b"")], id="hardlink-out"),
    ],
)
def test_unpack_refuses_escapes(workdir: Path, members: list[tuple[str, str | None, bytes]]
                                ) -> None:
    blob = workdir / "evil.tar.gz"
    blob.write_bytes(_tar(members))
    with pytest.raises(UnsafePath):
        unpack_layer(blob, workdir / "out")
    assert not (workdir / "etc").exists()


def test_write_layer_is_deterministic(workdir: Path) -> None:
    src = workdir / "f"
    src.write_text("data")
    entries = with_parents(
        [LayerEntry(path="a/b/f", kind="file", source=src, mode=0o644, mtime=5),
         LayerEntry(path="a/l", kind="symlink", linkname="b/f")],
        lambda p: LayerEntry(path=p, kind="dir", mode=0o755))
    one = write_layer(entries, workdir / "t1")
    two = write_layer(entries, workdir / "t2")
    assert (one.digest, one.diff_id) == (two.digest, two.diff_id)
    with tarfile.open(one.path) as tar:
        assert tar.getnames() == ["a", "a/b", "a/b/f", "a/l"]
        assert {m.uname for m in tar.getmembers()} == {""}


def test_resolve_forms_and_gc(store: ImageStore, workdir: Path) -> None:
    from miniorch.images import parse_reference

    src = workdir / "f"
    src.write_text("x")
    blob = write_layer([LayerEntry(path="f", kind="file", source=src)], store.tmp_dir)
    layer = store.put_layer(blob)
    cfg = store.new_config()
    cfg["rootfs"]["diff_ids"] = [blob.diff_id]
    img = store.add_image(cfg, [layer], [parse_reference("demo:1")])
    assert store.resolve("demo:1") == store.resolve(img.id) == store.resolve(img.short_id)
    assert store.resolve(f"demo@{img.manifest.digest}") is not None
    assert store.resolve("demo") is None  # :latest was never tagged
    assert store.list()[0].size == blob.tar_size
    store.tag("demo:1", "127.0.0.1:5000/demo:1")
    names = json.loads((store.root / "index.json").read_text())["manifests"]
    assert {m["annotations"]["org.opencontainers.image.ref.name"] for m in names} == {
        "docker.io/library/demo:1", "127.0.0.1:5000/demo:1"}
    usage = store.disk_usage()
    assert usage.images == 1 and usage.blobs == 3
    store.remove(img.id, force=True)
    assert store.disk_usage().blobs == 0
    assert store.images() == []
