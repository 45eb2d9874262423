"""Hostile images, served by a test registry, are refused — and the store stays intact.

Each case crafts a layer tar or a manifest/config that tries to write or delete outside
its layer directory, lie about a digest, use a digest as a path, or exhaust memory or
disk. Every refused pull must leave the store exactly as it was: the victim image
pulled before still resolves and its unpacked layers are untouched, and no blob, no
unpacked layer and no staging directory of the hostile pull remains.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread
import pytest

from miniorch.images import ImageStore, registry
from miniorch.images.errors import (
    DigestMismatch,
    ImageError,
    InvalidDigest,
    LimitExceeded,
    UnsafePath,
)
from miniorch.images.oci import Limits
from tests.images.ociserver import (
    OCI_INDEX,
    OCI_TAR,
    OCI_ZSTD,
    OciServer,
    image_config,
    member,
    tar_layer,
)

D = tarfile.DIRTYPE
SYM = tarfile.SYMTYPE
LNK = tarfile.LNKTYPE


@pytest.fixture
async def server() -> AsyncIterator[tuple[OciServer, str]]:
    s = OciServer()
    async with s.running() as host:
        yield s, host


@pytest.fixture
def victim_store(workdir: Path) -> ImageStore:
    return ImageStore(workdir / "images", pullers=[],
                      limits=Limits(unpacked_layer_bytes=4 << 20, members=500,
                                    manifest_bytes=64 << 10, path_bytes=1024))


def _lexists(path: Path) -> bool:
    return os.path.lexists(path)


def _snapshot(store: ImageStore) -> dict[str, object]:
    """Everything a refused pull must not change (names, blobs, unpacked trees)."""
    trees = {}
    for p in sorted(store.unpacked_dir.iterdir()):
        trees[p.name] = sorted(str(q.relative_to(p)) for q in p.rglob("*"))
    return {"index": (store.root / "index.json").read_bytes(),
            "blobs": sorted(p.name for p in store.blobs_dir.iterdir()),
            "unpacked": trees}


async def _pull(store: ImageStore, ref: str) -> object:
    return await anyio.to_thread.run_sync(lambda: registry.pull(store, ref, insecure=True))


async def _with_victim(s: OciServer, host: str, store: ImageStore) -> dict[str, object]:
    good = tar_layer([member("etc/", type=D, mode=0o755),
                      member("etc/victim.txt", b"precious\n")])
    s.add_image("good", "v1", [good])
    img = await _pull(store, f"{host}/good:v1")
    assert store.unpacked_layers(img)[0].joinpath("etc/victim.txt").read_bytes() == b"precious\n"
    return _snapshot(store)


async def _refused(s: OciServer, host: str, store: ImageStore, before: dict[str, object],
                   exc: type[Exception], match: str, tag: str = "bad") -> None:
    with pytest.raises(exc, match=match):
        await _pull(store, f"{host}/evil:{tag}")
    assert _snapshot(store) == before
    assert list(store.tmp_dir.iterdir()) == [] and list(store.leases_dir.iterdir()) == []
    assert store.resolve(f"{host}/evil:{tag}") is None
    img = store.get(f"{host}/good:v1")
    assert store.unpacked_layers(img)[0].joinpath("etc/victim.txt").read_bytes() == b"precious\n"


HOSTILE_MEMBERS = {
    # The reported bug: `.wh...` → name `..`: clearing it removed unpacked/ itself.
    "whiteout-dotdot": ([member(".wh...")], UnsafePath, "whiteout"),
    "whiteout-dot-in-dir": ([member("etc/", type=D), member("etc/.wh..")], UnsafePath,
                            "whiteout"),
    "whiteout-empty": ([member("etc/", type=D), member("etc/.wh.")], UnsafePath, "whiteout"),
    "dotdot-member": ([member("../escape.txt", b"x")], UnsafePath, "escapes"),
    "nested-dotdot": ([member("a/../../escape.txt", b"x")], UnsafePath, "escapes"),
    "absolute-member": ([member("/etc/escape.txt", b"x")], UnsafePath, "absolute"),
    "through-symlink": ([member("out", type=SYM, linkname="/"),
                         member("out/tmp/pwned", b"x")], UnsafePath, "through symlink"),
    "through-relative-symlink": ([member("out", type=SYM, linkname="../../../.."),
                                  member("out/pwned", b"x")], UnsafePath, "through symlink"),
    "symlink-then-replace-parent": ([member("d", type=SYM, linkname="/etc"),
                                     member("d/passwd", b"root::0:0::/:/bin/sh\n")],
                                    UnsafePath, "through symlink"),
    "hardlink-outside": ([member("pw", type=LNK, linkname="../../../../etc/passwd")],
                         UnsafePath, "escapes"),
    "hardlink-absolute": ([member("pw", type=LNK, linkname="/etc/passwd")], UnsafePath,
                          "absolute"),
    "hardlink-via-symlink": ([member("l", type=SYM, linkname="/etc"),
                              member("pw", type=LNK, linkname="l/passwd")], UnsafePath,
                             "non-directory"),
    "hardlink-missing": ([member("pw", type=LNK, linkname="nothere")], UnsafePath,
                         "not in this layer"),
    "hardlink-to-dir": ([member("d/", type=D), member("pw", type=LNK, linkname="d")],
                        UnsafePath, "directory"),
    "owner-out-of-range": ([member("f", b"x", uid=(1 << 32) - 1)], UnsafePath,
                           "out of range"),
    "long-path": ([member("a" * 200 + "/" + "b" * 200 + "/" + "c" * 200 + "/" + "d" * 200
                          + "/" + "e" * 250, b"x")], LimitExceeded, "longer than"),
    "long-component": ([member("x" * 300, b"x")], LimitExceeded, "longer than 255"),
    "too-many-members": ([member(f"f{i}", b"") for i in range(600)], LimitExceeded,
                         "more than 500 members"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_MEMBERS))
async def test_hostile_layer_members_are_refused_and_store_intact(
        case: str, server: tuple[OciServer, str], victim_store: ImageStore,
        workdir: Path) -> None:
    s, host = server
    before = await _with_victim(s, host, victim_store)
    sentinel = workdir / "outside"
    sentinel.mkdir()
    members, exc, match = HOSTILE_MEMBERS[case]
    s.add_image("evil", "bad", [tar_layer(members)])
    await _refused(s, host, victim_store, before, exc, match)
    assert list(sentinel.iterdir()) == []
    assert (workdir / "images").is_dir()


async def test_lying_digests_and_digests_as_paths(server: tuple[OciServer, str],
                                                  victim_store: ImageStore) -> None:
    s, host = server
    store = victim_store
    before = await _with_victim(s, host, store)
    layer = tar_layer([member("hello.txt", b"hi\n")])

    # The reported bug: a config diff_id with ../ was used as a path (a host directory
    # became a container's root filesystem).
    for bad in ("sha256:../../../../etc", "sha256:" + "A" * 64, "md5:" + "0" * 32,
                "sha256:" + "0" * 63 + "/", " sha256:" + "0" * 64, None, 42):
        s.add_image("evil", "bad", [layer], image_config([bad]))  # type: ignore[list-item]
        await _refused(s, host, store, before, InvalidDigest, "diff_id")
    # A well-formed diff_id that is not the tar's hash.
    s.add_image("evil", "bad", [layer], image_config(["sha256:" + "0" * 64]))
    await _refused(s, host, store, before, DigestMismatch, "uncompressed")
    # Layer and config digests that are paths, in the manifest.
    s.add_image("evil", "bad", [layer], layer_digests=["sha256:../../blobs"])
    await _refused(s, host, store, before, InvalidDigest, "layer 0")
    cfg_doc = image_config([layer[1]])
    good_cfg = s.add_blob(cfg_doc)
    s.add_manifest("evil", "bad", {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:../../../index.json", "size": good_cfg["size"]},
        "layers": []})
    await _refused(s, host, store, before, InvalidDigest, "config")
    # A negative size, and a config larger than any config should be.
    s.add_manifest("evil", "bad", {
        "schemaVersion": 2, "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                       **good_cfg, "size": -1}, "layers": []})
    await _refused(s, host, store, before, ImageError, "non-negative")
    # Docker-Content-Digest that does not match the body.
    s.add_image("evil", "bad", [layer])
    s.lie_digest_header["evil:bad"] = "sha256:" + "1" * 64
    await _refused(s, host, store, before, DigestMismatch, "manifest bad")
    s.lie_digest_header["evil:bad"] = "sha256:../x"
    await _refused(s, host, store, before, InvalidDigest, "manifest digest")
    s.lie_digest_header.clear()
    # An index entry whose digest is a path, and one whose size lies.
    real = s.add_image("evil", None, [layer])
    plat = {"os": "linux", "architecture": registry.host_platform()[1]}
    s.add_manifest("evil", "bad", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**real, "digest": "sha256:../../x", "platform": plat}]}, OCI_INDEX)
    await _refused(s, host, store, before, InvalidDigest, "index entry")
    s.add_manifest("evil", "bad", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**real, "size": real["size"] + 1, "platform": plat}]}, OCI_INDEX)
    await _refused(s, host, store, before, DigestMismatch, "size")
    # ... and the honest version of the same image pulls.
    s.add_manifest("evil", "ok", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**real, "platform": plat}]}, OCI_INDEX)
    img = await _pull(store, f"{host}/evil:ok")
    assert store.unpacked_layers(img)[0].joinpath("hello.txt").read_bytes() == b"hi\n"


async def test_sizes_are_bounded(server: tuple[OciServer, str],
                                 victim_store: ImageStore) -> None:
    s, host = server
    store = victim_store
    before = await _with_victim(s, host, store)
    # A gzip bomb: 5 MiB of zeros compress to a few kB; the layer limit is 4 MiB.
    bomb = tar_layer([member("zeros", b"\0" * (5 << 20))])
    assert len(bomb[0]) < 64 << 10
    s.add_image("evil", "bad", [bomb])
    await _refused(s, host, store, before, LimitExceeded, "size limit|more than")
    # A manifest body over the limit (64 kB here) is not even read whole.
    s.add_manifest("evil", "bad", b'{"schemaVersion": 2, "pad": "' + b"x" * (70 << 10) + b'"}')
    await _refused(s, host, store, before, LimitExceeded, "larger than")
    # Too many layers.
    small = ImageStore(store.root, pullers=[], limits=Limits(layers=3))
    layer = tar_layer([member("f", b"x")])
    s.add_image("evil", "bad", [layer] * 4)
    await _refused(s, host, small, before, LimitExceeded, "layers")


async def test_devices_setuid_modes_zstd_sha512(server: tuple[OciServer, str],
                                                victim_store: ImageStore) -> None:
    """What a real image may legitimately carry, handled deliberately."""
    s, host = server
    store = victim_store
    plain = tar_layer([
        member("./", type=D, mode=0o755),
        member("dev/", type=D, mode=0o755),
        # The host disk's numbers: never created on the host (see layers.py).
        member("dev/sda", type=tarfile.BLKTYPE, mode=0o666, devmajor=8, devminor=0),
        member("dev/mem", type=tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=1),
        member("dev/fifo", type=tarfile.FIFOTYPE, mode=0o600),
        member("bin/", type=D, mode=0o755),
        member("bin/su", b"#!/bin/sh\n", mode=0o4755),
        member("locked/", type=D, mode=0o000),
        member("locked/inner.txt", b"inner\n", mode=0o444),
        member("etc/", type=D),
        member("etc/.wh..wh..opq"),
        member("etc/.wh..wh.plnk"),
        member("etc/.wh.gone"),
        member("etc/hard", type=LNK, linkname="bin/su"),
    ], compression="none")
    zstd = tar_layer([member("z.txt", b"zstd layer\n")], compression="zstd")
    sha512 = tar_layer([member("s.txt", b"sha512 diff_id\n")], alg="sha512")
    s.add_image("legit", "v1", [(*plain, OCI_TAR), (*zstd, OCI_ZSTD), sha512])
    img = await _pull(store, f"{host}/legit:v1")
    top, mid, bottom = store.unpacked_layers(img)
    assert (mid / "z.txt").read_text() == "zstd layer\n"
    assert (top / "s.txt").read_text() == "sha512 diff_id\n"
    assert top.name.startswith("sha512-")
    assert not _lexists(bottom / "dev/sda") and not _lexists(bottom / "dev/mem")
    assert stat.S_ISFIFO(os.lstat(bottom / "dev/fifo").st_mode)
    st = os.lstat(bottom / "bin/su")
    if os.geteuid() == 0:
        assert stat.S_IMODE(st.st_mode) == 0o4755  # kept, as containerd keeps it ...
    assert stat.S_IMODE(os.stat(store.unpacked_dir).st_mode) == 0o700  # ... out of reach
    assert stat.S_IMODE(os.lstat(bottom / "locked").st_mode) == 0o000
    assert os.lstat(bottom / "etc/hard").st_ino == st.st_ino
    wh = os.lstat(bottom / "etc/gone")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert not _lexists(bottom / "etc/plnk")
    if os.geteuid() == 0:
        assert os.getxattr(bottom / "etc", "trusted.overlay.opaque") == b"y"
    # Removing it removes even the 0000 directory (no root needed for that either).
    store.remove(f"{host}/legit:v1")
    assert list(store.unpacked_dir.iterdir()) == []
