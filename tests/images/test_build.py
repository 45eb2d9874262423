"""Builds of small contexts on the built-in busybox base (cheap: two small layers)."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from miniorch.images import (
    BuildError,
    DockerfileError,
    ImageStore,
    PullAccessDenied,
    UnsafePath,
    build,
)

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="RUN needs root (namespaces, overlay)")


def write(ctx: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def top_layer(store: ImageStore, ref: str) -> Path:
    return store.unpacked_layers(store.get(ref))[0]


def test_config_from_instructions(store: ImageStore, context: Path, lines: list[str]) -> None:
    write(context, {
        "app.py": "print('hi')\n",
        "Dockerfile": (
            "FROM busybox\n"
            "ARG GREETING=hello\n"
            "ENV APP_HOME=/srv/app MODE=\"prod mode\"\n"
            "WORKDIR $APP_HOME\n"
            "COPY app.py ./\n"
            "COPY --chown=1000:1000 app.py /opt/owned.py\n"
            "LABEL maintainer=\"me\" greeting=${GREETING}\n"
            "EXPOSE 8080 53/udp\n"
            "USER nobody\n"
            "ENTRYPOINT [\"python\", \"app.py\"]\n"
            "CMD --port 8080\n"
        ),
    })
    img = build(store, context, tag="cfgtest:v1", progress=lines.append)
    cfg = store.config(img)
    assert cfg.entrypoint == ("python", "app.py")
    assert cfg.cmd == ("/bin/sh", "-c", "--port 8080")  # shell form
    assert cfg.workdir == "/srv/app"
    assert cfg.env_dict()["APP_HOME"] == "/srv/app"
    assert cfg.env_dict()["MODE"] == "prod mode"
    assert cfg.env_dict()["PATH"].startswith("/usr/local/sbin")
    assert cfg.exposed_ports == ("53/udp", "8080/tcp")
    assert cfg.labels == {"maintainer": "me", "greeting": "hello"}
    assert cfg.user == "nobody"
    assert cfg.process_args() == ["python", "app.py", "/bin/sh", "-c", "--port 8080"]
    assert cfg.process_args(args=["x"]) == ["python", "app.py", "x"]
    assert cfg.process_args(command=["sh"]) == ["sh"]
    # One progress line per step, numbered.
    steps = [line for line in lines if line.startswith("Step ")]
    assert steps[0] == "Step 1/11 : FROM busybox"
    assert "Step 5/11 : COPY app.py ./" in steps
    assert len(steps) == 11
    # Files landed where WORKDIR says, with the right ownership.
    layers = store.unpacked_layers(img)
    copied = [p / "srv/app/app.py" for p in layers if (p / "srv/app/app.py").exists()]
    assert copied and copied[0].read_text() == "print('hi')\n"
    owned = next(p / "opt/owned.py" for p in layers if (p / "opt/owned.py").exists())
    assert (owned.stat().st_uid, owned.stat().st_gid) == (1000, 1000)
    raw = store.raw_config(img)
    assert raw["rootfs"]["type"] == "layers"
    assert len(raw["rootfs"]["diff_ids"]) == len(img.layers)
    assert raw["architecture"] and raw["os"] == "linux"
    assert any(h.get("empty_layer") for h in raw["history"])


def test_entrypoint_resets_inherited_cmd(store: ImageStore, context: Path) -> None:
    write(context, {"Dockerfile": 'FROM busybox\nENTRYPOINT ["/bin/echo"]\n'})
    cfg = store.config(build(store, context, tag="ep"))
    assert cfg.cmd is None  # busybox's CMD ["sh"] must not become an argument of echo
    assert cfg.process_args() == ["/bin/echo"]


def test_rebuild_is_cached_and_change_makes_new_layer(
    store: ImageStore, context: Path, lines: list[str]
) -> None:
    write(context, {"app.py": "v1\n", "Dockerfile":
                    "FROM busybox\nCOPY app.py /app.py\nCMD [\"cat\", \"/app.py\"]\n"})
    first = build(store, context, tag="cachetest")
    again = build(store, context, tag="cachetest", progress=lines.append)
    assert again.id == first.id
    assert "Step 2/3 : COPY app.py /app.py CACHED" in lines
    assert "Step 3/3 : CMD [\"cat\", \"/app.py\"] CACHED" in lines

    (context / "app.py").write_text("v2\n")
    lines.clear()
    changed = build(store, context, tag="cachetest", progress=lines.append)
    assert changed.id != first.id
    assert changed.layers[:-1] == first.layers[:-1]  # base layers reused
    assert changed.layers[-1].digest != first.layers[-1].digest
    assert not any(line.endswith("CACHED") for line in lines if "COPY" in line)
    # The old image is kept as <none>, as Docker does, until removed.
    rows = store.list()
    assert [r.repository for r in rows].count("<none>") == 1
    assert store.resolve(first.id) is not None


def test_layers_are_deterministic_across_stores(
    workdir: Path, base_cache: Path, context: Path
) -> None:
    write(context, {"a/b.txt": "b\n", "a/c.txt": "c\n", "Dockerfile":
                    "FROM busybox\nCOPY a /data/\n"})
    one = build(ImageStore(workdir / "s1", base_cache=base_cache), context, tag="det")
    two = build(ImageStore(workdir / "s2", base_cache=base_cache), context, tag="det")
    assert one.layers == two.layers
    assert one.diff_ids == two.diff_ids


def test_shared_base_layers_stored_once(store: ImageStore, context: Path) -> None:
    write(context, {"x": "x\n", "y": "y\n", "Dockerfile": "FROM busybox\nCOPY x /x\n"})
    base = store.ensure("busybox")
    before = len(list(store.blobs_dir.iterdir()))
    img_x = build(store, context, tag="xx")
    (context / "Dockerfile").write_text("FROM busybox\nCOPY y /y\n")
    img_y = build(store, context, tag="yy")
    assert img_x.layers[: len(base.layers)] == img_y.layers[: len(base.layers)] == base.layers
    # Each new image adds exactly one layer, one config and one manifest blob.
    assert len(list(store.blobs_dir.iterdir())) == before + 2 * 3


def test_tag_and_remove(store: ImageStore, context: Path) -> None:
    write(context, {"x": "x\n", "Dockerfile": "FROM busybox\nCOPY x /x\n"})
    img = build(store, context, tag="kubia")
    tagged = store.tag("kubia", "luksa/kubia:v1")
    assert tagged.id == img.id
    rows = {(r.repository, r.tag): r.id for r in store.list()}
    assert rows[("kubia", "latest")] == rows[("luksa/kubia", "v1")] == img.id
    assert store.resolve(img.short_id) is not None
    assert store.resolve(img.id.removeprefix("sha256:")[:8]) is not None

    # In use: refused without force.
    from miniorch.images import ImageInUse
    with pytest.raises(ImageInUse):
        store.remove("kubia", in_use=lambda _i: True)

    assert store.remove("kubia") == ["Untagged: kubia:latest"]
    assert store.resolve("kubia") is None
    assert store.resolve("luksa/kubia:v1") is not None
    top = img.layers[-1].digest
    out = store.remove("luksa/kubia:v1")
    assert out == ["Untagged: luksa/kubia:v1", f"Deleted: {img.id}"]
    assert store.resolve(img.id) is None
    assert not store.has_blob(top) and not store.has_blob(img.id)
    assert store.has_blob(img.layers[0].digest)  # still used by busybox


def test_dockerignore(store: ImageStore, context: Path) -> None:
    write(context, {
        "app/main.py": "main\n", "app/secret.key": "k\n", "app/logs/x.log": "l\n",
        "notes.md": "n\n", "keep.md": "k\n",
        ".dockerignore": "# comment\n**/*.key\napp/logs\n*.md\n!keep.md\n",
        "Dockerfile": "FROM busybox\nCOPY . /ctx/\n",
    })
    img = build(store, context, tag="ignore")
    top = store.unpacked_layers(img)[0]
    assert (top / "ctx/app/main.py").exists()
    assert (top / "ctx/keep.md").exists()
    for hidden in ("ctx/app/secret.key", "ctx/app/logs", "ctx/notes.md"):
        assert not (top / hidden).exists(), hidden
    (context / "Dockerfile").write_text("FROM busybox\nCOPY notes.md /n\n")
    with pytest.raises(BuildError, match=r"excluded by .dockerignore"):
        build(store, context, tag="ignore2")


def _tar_with(member: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ti = tarfile.TarInfo(member)
        ti.size = 3
        tar.addfile(ti, io.BytesIO(b"bad"))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("files", "dockerfile", "match"),
    [
        pytest.param({}, "FROM busybox\nCOPY ../outside /x\n", "outside the build context",
                     id="dotdot"),
        pytest.param({"sub/f": "f"}, "FROM busybox\nCOPY sub/../../x /x\n",
                     "outside the build context", id="dotdot-nested"),
        pytest.param({}, "FROM busybox\nCOPY link /x\n", "symlink to /etc", id="symlink-out"),
        pytest.param({}, "FROM busybox\nCOPY linkdir/passwd /x\n", "symlink to",
                     id="symlink-dir-out"),
    ],
)
def test_escapes_refused(store: ImageStore, context: Path, files: dict[str, str],
                         dockerfile: str, match: str) -> None:
    write(context, {**files, "Dockerfile": dockerfile})
    (context / "link").symlink_to("/etc/hostname")
    (context / "linkdir").symlink_to("../../../../../../etc")
    with pytest.raises((UnsafePath, BuildError), match=match):
        build(store, context, tag="escape")
    assert store.resolve("escape") is None


@pytest.mark.parametrize("member", ["../../etc/x", "/etc/x", "a/../../x"])
def test_add_tar_with_escaping_member_refused(store: ImageStore, context: Path,
                                              member: str) -> None:
    (context / "evil.tar").write_bytes(_tar_with(member))
    write(context, {"Dockerfile": "FROM busybox\nADD evil.tar /dst/\n"})
    with pytest.raises(BuildError, match=r"escapes|absolute"):
        build(store, context, tag="eviltar")
    assert store.resolve("eviltar") is None
    assert not list(store.tmp_dir.iterdir())  # extraction dirs cleaned up


@pytest.mark.parametrize(("members", "match"), [
    pytest.param([("out", tarfile.SYMTYPE, "/etc"), ("out/passwd", tarfile.REGTYPE, "")],
                 "through symlink", id="write-through-symlink"),
    pytest.param([("pw", tarfile.LNKTYPE, "../../../etc/passwd")], "escapes",
                 id="hardlink-out"),
    pytest.param([("l", tarfile.SYMTYPE, "/etc"), ("pw", tarfile.LNKTYPE, "l/passwd")],
                 "non-directory", id="hardlink-via-symlink"),
])
def test_add_tar_links_confined(store: ImageStore, context: Path,
                                members: list[tuple[str, bytes, str]], match: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, link in members:
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = kind, link
            ti.size = 3 if kind == tarfile.REGTYPE else 0
            tar.addfile(ti, io.BytesIO(b"bad") if kind == tarfile.REGTYPE else None)
    (context / "evil.tar").write_bytes(buf.getvalue())
    write(context, {"Dockerfile": "FROM busybox\nADD evil.tar /dst/\n"})
    with pytest.raises(BuildError, match=match):
        build(store, context, tag="eviltar")
    assert store.resolve("eviltar") is None
    assert not list(store.tmp_dir.iterdir())


def test_add_tar_whiteout_names_are_not_applied(store: ImageStore, context: Path) -> None:
    """`.wh...` in a local archive neither deletes anything nor becomes a whiteout."""
    (context / "wh.tar").write_bytes(_tar_with(".wh..."))
    write(context, {"Dockerfile": "FROM busybox\nADD wh.tar /dst/\n"})
    before = sorted(p.name for p in store.unpacked_dir.iterdir())
    img = build(store, context, tag="whtar")
    assert set(before) <= {p.name for p in store.unpacked_dir.iterdir()}
    top = store.unpacked_layers(img)[0]
    assert not any(stat.S_ISCHR(os.lstat(p).st_mode) for p in top.rglob("*"))
    assert store.unpacked_layers(store.get("busybox"))  # the base's layers are all there


def test_add_tar_extracts_and_url_refused(store: ImageStore, context: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        ti = tarfile.TarInfo("pkg/hello.txt")
        ti.size = 5
        tar.addfile(ti, io.BytesIO(b"hello"))
    (context / "pkg.tar.gz").write_bytes(buf.getvalue())
    write(context, {"Dockerfile": "FROM busybox\nADD pkg.tar.gz /opt/\n"})
    img = build(store, context, tag="addtar")
    assert (store.unpacked_layers(img)[0] / "opt/pkg/hello.txt").read_text() == "hello"

    write(context, {"Dockerfile": "FROM busybox\nADD https://example.com/x /x\n"})
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: .*network"):
        build(store, context, tag="addurl")


def test_dockerfile_error_names_line(store: ImageStore, context: Path) -> None:
    write(context, {"Dockerfile": "FROM busybox\n# ok\nCOPPY a /a\n"})
    with pytest.raises(DockerfileError, match=r"^Dockerfile:3: unknown instruction: COPPY$"):
        build(store, context, tag="bad")


def test_from_unknown_image(store: ImageStore, context: Path) -> None:
    write(context, {"Dockerfile": "FROM nosuchimage-xyz:1\n"})
    with pytest.raises(BuildError, match="pull access denied for nosuchimage-xyz: "
                       "no registry configured"):
        build(store, context, tag="bad")
    with pytest.raises(PullAccessDenied):
        store.ensure("luksa/kubia")


def test_from_scratch_and_copy_into_tmp_keeps_mode(store: ImageStore, context: Path) -> None:
    write(context, {"f": "f\n", "Dockerfile": "FROM scratch\nCOPY f /f\n"})
    img = build(store, context, tag="scratchy")
    assert len(img.layers) == 1
    write(context, {"Dockerfile": "FROM busybox\nCOPY f /tmp/f\n"})
    img = build(store, context, tag="tmpmode")
    tmp_dir = store.unpacked_layers(img)[0] / "tmp"
    assert stat.S_IMODE(tmp_dir.stat().st_mode) == 0o1777


@root_only
def test_run_layer_and_whiteout(store: ImageStore, context: Path, lines: list[str]) -> None:
    write(context, {"Dockerfile": (
        "FROM busybox\n"
        "ARG WHO=world\n"
        "WORKDIR /work\n"
        "RUN echo \"hello $WHO\" > greeting && rm /bin/vi && hostname\n"
    )})
    img = build(store, context, tag="runner", progress=lines.append)
    top = store.unpacked_layers(img)[0]
    assert (top / "work/greeting").read_text() == "hello world\n"
    vi = os.lstat(top / "bin/vi")
    assert stat.S_ISCHR(vi.st_mode) and vi.st_rdev == 0  # overlay whiteout in the unpacked dir
    assert " | buildsandbox" in lines
    # The layer blob itself carries the OCI whiteout.
    with tarfile.open(store.blob_path(img.layers[-1].digest)) as tar:
        assert "bin/.wh.vi" in tar.getnames()
    assert not list(store.tmp_dir.iterdir())


@root_only
def test_failed_run_leaves_no_image(store: ImageStore, context: Path) -> None:
    write(context, {"Dockerfile": "FROM busybox\nRUN echo partial > /p && exit 3\n"})
    store.ensure("busybox")
    before = (store.root / "index.json").read_bytes()
    with pytest.raises(BuildError, match=r"Dockerfile:2: RUN .* non-zero code: 3"):
        build(store, context, tag="failing")
    assert (store.root / "index.json").read_bytes() == before
    assert store.resolve("failing") is None
    assert not list(store.tmp_dir.iterdir())
    assert not list(store.leases_dir.iterdir())
