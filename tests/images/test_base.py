"""The built-in base images, made from the host's busybox-static and Debian python3.11."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from miniorch.images import ImageStore, build, ensure_base_images
from miniorch.images.base import BUSYBOX_HOST, PYTHON_HOST

needs_busybox = pytest.mark.skipif(not BUSYBOX_HOST.exists(),
                                   reason="busybox-static is not installed (/bin/busybox)")
needs_python = pytest.mark.skipif(not PYTHON_HOST.exists(), reason=f"no {PYTHON_HOST}")
root_only = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("chroot"),
                               reason="chroot and mounts need root")
CHROOT = shutil.which("chroot") or "chroot"
UNSHARE = shutil.which("unshare") or "unshare"


@needs_busybox
def test_busybox_rootfs(store: ImageStore) -> None:
    img = store.ensure("busybox")
    assert store.resolve("busybox:latest") == img
    top = store.unpacked_layers(img)[0]
    assert os.readlink(top / "bin/sh") == "busybox"
    assert (top / "bin/busybox").stat().st_size > 100_000
    assert store.config(img).cmd == ("sh",)


@needs_busybox
@root_only
def test_busybox_runs_in_chroot(store: ImageStore) -> None:
    top = store.unpacked_layers(store.ensure("busybox"))[0]
    out = subprocess.run([CHROOT, str(top), "/bin/sh", "-c", "echo Hello world"],
                         capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout == "Hello world\n"


@needs_python
@needs_busybox
def test_python_names_one_image(store: ImageStore) -> None:
    img = store.ensure("python:3.11-slim")
    for name in ("python", "python:3", "python:3.11", "docker.io/library/python:3.11-slim"):
        found = store.resolve(name)
        assert found is not None and found.id == img.id, name
    busybox = store.ensure("busybox")
    assert img.layers[:2] == busybox.layers  # shared, stored once
    cfg = store.config(img)
    assert cfg.env_dict()["PATH"] == (
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")


@needs_python
@root_only
def test_python_layer_runs_in_chroot(store: ImageStore) -> None:
    img = store.ensure("python:3.11-slim")
    python_layer = store.unpacked_layers(img)[0]
    assert not (python_layer / "usr/lib/python3.11/test").exists()
    assert not (python_layer / "usr/lib/python3.11/idlelib").exists()
    out = subprocess.run(
        [CHROOT, str(python_layer), "/usr/local/bin/python", "-c",
         "import json, ssl, sqlite3, http.server; print(1)"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout == "1\n"


@needs_python
@needs_busybox
@root_only
def test_kubia_like_image_runs_on_overlay(store: ImageStore, context: Path) -> None:
    """The sample app's Dockerfile shape: merged layers give `python` on PATH and /bin/sh."""
    (context / "app.py").write_text("import os, sys; print('hi from', sys.version_info[:2])\n")
    (context / "Dockerfile").write_text(
        'FROM python:3.11-slim\nCOPY app.py /app.py\nENTRYPOINT ["python", "/app.py"]\n')
    img = build(store, context, tag="kubia-test")
    cfg = store.config(img)
    lowers = ":".join(str(p) for p in store.unpacked_layers(img))
    scratch = store.tmp_dir / f"ovl-{os.getpid()}"
    for d in ("upper", "work", "merged"):
        (scratch / d).mkdir(parents=True)
    try:
        script = (
            f"mount -t overlay overlay -o lowerdir={lowers},upperdir={scratch}/upper,"
            f'workdir={scratch}/work {scratch}/merged && exec chroot {scratch}/merged "$@"'
        )
        # A private mount namespace: the overlay disappears with the process.
        out = subprocess.run(
            [UNSHARE, "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh",
             "/bin/sh", "-c", " ".join(cfg.process_args())],
            capture_output=True, text=True, timeout=60, env={"PATH": cfg.env_dict()["PATH"]})
        assert out.returncode == 0, out.stderr
        assert out.stdout == "hi from (3, 11)\n"
    finally:
        shutil.rmtree(scratch)


@needs_python
@needs_busybox
def test_warm_base_creation_uses_host_cache(workdir: Path, base_cache: Path) -> None:
    ensure_base_images(ImageStore(workdir / "first", base_cache=base_cache))
    t = time.perf_counter()
    second = ImageStore(workdir / "second", base_cache=base_cache)
    bb, py = ensure_base_images(second)
    elapsed = time.perf_counter() - t
    assert elapsed < 2.0, f"warm base creation took {elapsed:.2f}s"
    # Imported by hard link from the cache, and the same IDs in every store on this host.
    blob = second.blob_path(py.layers[-1].digest)
    assert blob.stat().st_nlink >= 2
    first = ImageStore(workdir / "first", base_cache=base_cache)
    assert first.get("python:3.11-slim").id == py.id
    assert first.get("busybox").id == bb.id


@needs_busybox
@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_layout_readable_by_skopeo(store: ImageStore, context: Path) -> None:
    (context / "f").write_text("f\n")
    (context / "Dockerfile").write_text("FROM busybox\nCOPY f /f\nCMD [\"cat\", \"/f\"]\n")
    img = build(store, context, tag="skopeo-check:v1")
    out = subprocess.run(
        ["skopeo", "inspect", "--config", f"oci:{store.root}:docker.io/library/skopeo-check:v1"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    import json

    cfg = json.loads(out.stdout)
    assert cfg["config"]["Cmd"] == ["cat", "/f"]
    assert cfg["rootfs"]["diff_ids"] == list(img.diff_ids)
