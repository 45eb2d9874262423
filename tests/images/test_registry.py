"""Push and pull against a real registry (Debian's docker-registry on 127.0.0.1).

The round trip of the walkthrough (D14-D15): build kubia → tag → push → `skopeo inspect`
reads it → pull into a second, empty store (another machine) → same image ID, same
config, and the unpacked root filesystem holds the app.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from miniorch.cli.main import main as cli_main
from miniorch.images import ImageStore, PullAccessDenied, build, registry
from miniorch.images.errors import InsecureRegistry, RegistryAuthError, RegistryError
from miniorch.images.progress import BarRenderer, LineRenderer, Transfer, bar
from miniorch.images.regconfig import (
    Credentials,
    RegistryConfig,
    load_config,
    open_store,
    save_auth,
)
from tests.images.regserver import (
    RunningRegistry,
    htpasswd_file,
    needs_registry,
    run_registry,
)

OFFLINE = {"MINIORCH_OFFLINE": "1"}
"""Only loopback registries (never Docker Hub): the suite must not reach the internet."""

SAMPLE_APP = Path(__file__).resolve().parents[2] / "sample_app"

pytestmark = needs_registry


@pytest.fixture
def reg(workdir: Path) -> Iterator[RunningRegistry]:
    with run_registry(workdir / "registry") as r:
        yield r


@pytest.fixture
def kubia_ctx(workdir: Path) -> Path:
    d = workdir / "kubia"
    shutil.copytree(SAMPLE_APP, d)
    return d


def tiny_ctx(workdir: Path, name: str, text: str) -> Path:
    """A busybox-based app: two small base layers plus one of its own."""
    d = workdir / name
    d.mkdir()
    (d / "app.txt").write_text(text)
    (d / "Dockerfile").write_text('FROM busybox\nCOPY app.txt /app.txt\nCMD ["cat", "/app.txt"]\n')
    return d


def other_machine(workdir: Path, name: str = "machine-b") -> ImageStore:
    """An empty store with no built-in base images: everything must come from the registry."""
    return ImageStore(workdir / name / "images", pullers=[])


def test_round_trip_kubia_through_a_real_registry(
        store: ImageStore, kubia_ctx: Path, reg: RunningRegistry, workdir: Path) -> None:
    built = build(store, kubia_ctx, tag="kubia")
    ref = f"{reg.host}/luksa/kubia"
    store.tag("kubia", ref)
    events: list[Transfer] = []
    began = time.monotonic()
    result = registry.push(store, ref, insecure=True, progress=events.append)
    pushed_in = time.monotonic() - began
    assert result.digest == built.manifest.digest  # the OCI manifest went up unchanged
    assert set(result.uploaded) == {d.digest for d in built.layers} | {built.id}
    assert {e.status for e in events} >= {"Preparing", "Pushing", "Pushed"}

    # A standard tool reads what we pushed.
    skopeo = shutil.which("skopeo")
    if skopeo:
        out = subprocess.run([skopeo, "inspect", "--tls-verify=false", f"docker://{ref}"],
                             capture_output=True, text=True, timeout=60, check=True)
        doc = json.loads(out.stdout)
        assert doc["Digest"] == result.digest
        assert doc["Layers"] == [d.digest for d in built.layers]
        assert doc["Architecture"] == "amd64" and doc["Os"] == "linux"

    other = other_machine(workdir)
    began = time.monotonic()
    pulled = registry.pull(other, ref, insecure=True)
    pulled_in = time.monotonic() - began
    assert pulled.id == built.id
    assert pulled.manifest.digest == built.manifest.digest
    assert other.raw_config(pulled) == store.raw_config(built)
    assert other.read_blob(pulled.id) == store.read_blob(built.id)
    assert other.config(pulled).entrypoint == ("python", "-u", "/app.py")
    assert [str(n) for n in other.get(ref).names] == [f"{ref}:latest"]
    rootfs = other.unpacked_layers(pulled)
    assert (rootfs[0] / "app.py").read_text() == (SAMPLE_APP / "app.py").read_text()
    assert any((layer / "usr" / "bin").is_dir() for layer in rootfs)
    print(f"\nkubia: {sum(d.size for d in built.layers)} bytes compressed, "
          f"push {pushed_in:.3f}s ({result.requests} requests), pull {pulled_in:.3f}s")


def test_second_push_uploads_only_missing_blobs(
        store: ImageStore, workdir: Path, reg: RunningRegistry) -> None:
    v1 = build(store, tiny_ctx(workdir, "v1", "one\n"), tag=f"{reg.host}/app:v1")
    first = registry.push(store, f"{reg.host}/app:v1", insecure=True)
    assert len(first.uploaded) == len(v1.layers) + 1 and not first.existing

    lines: list[str] = []
    again = registry.push(store, f"{reg.host}/app:v1", insecure=True,
                          progress=LineRenderer(lines.append, newline=False))
    assert again.uploaded == () and len(again.existing) == len(v1.layers) + 1
    assert all(line.endswith("Layer already exists") for line in lines
               if not line.endswith("Preparing"))
    # Only the existence checks (a HEAD per blob) and the manifest PUT were sent.
    assert again.requests == len(v1.layers) + 1 + 1
    # v2 shares busybox's layers: only its own layer and config go up.
    v2 = build(store, tiny_ctx(workdir, "v2", "two\n"), tag=f"{reg.host}/app:v2")
    second = registry.push(store, f"{reg.host}/app:v2", insecure=True)
    assert set(second.uploaded) == {v2.layers[-1].digest, v2.id}
    assert set(second.existing) == {d.digest for d in v2.layers[:-1]}

    # Pulling v2 where v1 already is: shared layers are not downloaded again.
    other = other_machine(workdir)
    registry.pull(other, f"{reg.host}/app:v1", insecure=True)
    events: list[Transfer] = []
    registry.pull(other, f"{reg.host}/app:v2", insecure=True, progress=events.append)
    already = {e.id for e in events if e.status == "Already exists"}
    downloaded = {e.id for e in events if e.status == "Download complete"}
    assert already == {d.digest[7:19] for d in v2.layers[:-1]}
    assert downloaded == {v2.layers[-1].digest[7:19]}


def test_chunked_upload_cross_repo_mount_and_pull_by_digest(
        store: ImageStore, workdir: Path, reg: RunningRegistry) -> None:
    img = build(store, tiny_ctx(workdir, "c", "chunks\n"), tag=f"{reg.host}/chunky:1")
    result = registry.push(store, f"{reg.host}/chunky:1", insecure=True, chunk_size=4096)
    big = [d for d in img.layers if d.size > 4096]
    assert big, "busybox's layer is larger than one chunk"
    assert result.requests > 3 + 2 * len(img.layers)  # PATCHes on top of HEAD/POST/PUT

    # Same registry, another repository: blobs are mounted, not uploaded again.
    store.tag(f"{reg.host}/chunky:1", f"{reg.host}/copy/chunky:1")
    mounted = registry.push(store, f"{reg.host}/copy/chunky:1", insecure=True)
    assert mounted.uploaded == ()
    assert set(mounted.mounted) == {d.digest for d in img.layers} | {img.id}

    other = other_machine(workdir)
    by_digest = f"{reg.host}/copy/chunky@{result.digest}"
    pulled = registry.pull(other, by_digest, insecure=True)
    assert pulled.id == img.id
    assert other.resolve(by_digest) is not None


def test_pull_errors_leave_the_store_unchanged(workdir: Path, reg: RunningRegistry) -> None:
    other = other_machine(workdir)
    with pytest.raises(RegistryError, match="not found: manifest unknown"):
        registry.pull(other, f"{reg.host}/nothing:here", insecure=True)
    assert other.images() == [] and list(other.blobs_dir.iterdir()) == []
    assert list(other.tmp_dir.iterdir()) == []
    # HTTPS to a plain-HTTP registry says what to do.
    with pytest.raises(RegistryError, match="--insecure"):
        registry.pull(other, f"{reg.host}/nothing:here")


def test_plain_http_is_refused_off_loopback() -> None:
    with pytest.raises(InsecureRegistry, match="only allowed for loopback"):
        registry.RegistryClient("registry.example.com:5000", insecure=True)
    with pytest.raises(InsecureRegistry):
        load_config(Path("/nonexistent"), env={"MINIORCH_REGISTRY": "http://10.1.2.3:5000"})
    for host in ("127.0.0.1:5000", "localhost:5000", "[::1]:5000", "127.3.2.1"):
        registry.RegistryClient(host, insecure=True).close()


def test_basic_auth_with_htpasswd_and_login(
        store: ImageStore, workdir: Path) -> None:
    users = htpasswd_file(workdir / "htpasswd", "luksa", "s3cret")
    with run_registry(workdir / "authreg", htpasswd=users) as reg:
        build(store, tiny_ctx(workdir, "a", "auth\n"), tag=f"{reg.host}/luksa/kubia")
        ref = f"{reg.host}/luksa/kubia"
        with pytest.raises(RegistryAuthError, match="authentication required"):
            registry.push(store, ref, insecure=True)
        with pytest.raises(RegistryAuthError):
            registry.push(store, ref, insecure=True, auth=Credentials("luksa", "wrong"))
        registry.push(store, ref, insecure=True, auth=Credentials("luksa", "s3cret"))

        # `image login` checks the password against the registry, then stores it 0600.
        home = workdir / "home"
        out, err = io.StringIO(), io.StringIO()
        bad = _cli(["--state-dir", str(home), "image", "login", "--insecure", "-u", "luksa",
                    "-p", "nope", reg.host], out, err)
        assert bad != 0 and "unauthorized" in err.getvalue()
        assert not (home / "auth.json").exists()
        code = _cli(["--state-dir", str(home), "image", "login", "--insecure", "-u", "luksa",
                     "-p", "s3cret", reg.host], out, err)
        assert code == 0, err.getvalue()
        assert "Login Succeeded" in out.getvalue()
        auth = home / "auth.json"
        assert stat.S_IMODE(auth.stat().st_mode) == 0o600
        assert json.loads(auth.read_text())["auths"][reg.host]["auth"]

        # --password-stdin, as scripts log in (a real process: the CLI reads its stdin).
        home2 = workdir / "home2"
        proc = subprocess.run(
            [sys.executable, "-m", "miniorch", "--state-dir", str(home2), "image", "login",
             "--insecure", "--username", "luksa", "--password-stdin", reg.host],
            input="s3cret\n", capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert load_config(home2, env=OFFLINE).auth_for(reg.host) == Credentials("luksa", "s3cret")

        # The stored credentials serve the CLI's pull and the store's puller.
        out = io.StringIO()
        code = _cli(["--state-dir", str(home), "image", "pull", "--insecure", ref], out, err)
        assert code == 0, err.getvalue()
        assert f"Status: Downloaded newer image for {ref}:latest" in out.getvalue()
        assert "Pull complete" in out.getvalue()


def _cli(argv: list[str], out: io.StringIO, err: io.StringIO) -> int:
    return cli_main(argv, stdout=out, stderr=err)


def test_cli_push_and_store_puller_with_default_registry(
        workdir: Path, base_cache: Path, reg: RunningRegistry) -> None:
    home_a, home_b = workdir / "a", workdir / "b"
    a = open_store(home_a, env=OFFLINE, base_cache=base_cache)
    build(a, tiny_ctx(workdir, "d", "default\n"), tag=f"{reg.host}/luksa/tiny:v1")
    out, err = io.StringIO(), io.StringIO()
    code = _cli(["--state-dir", str(home_a), "image", "push", "--insecure",
                 f"{reg.host}/luksa/tiny:v1"], out, err)
    assert code == 0, err.getvalue()
    text = out.getvalue()
    assert f"The push refers to repository [{reg.host}/luksa/tiny]" in text
    assert ": Pushed" in text and "v1: digest: sha256:" in text

    # Machine B names its registry once; `luksa/tiny:v1` then resolves there, for
    # `ensure` (FROM, pods) as for `image pull`.
    home_b.mkdir()
    (home_b / "registries.json").write_text(json.dumps({"default": f"http://{reg.host}"}))
    b = open_store(home_b, env=OFFLINE, base_cache=base_cache)
    lines: list[str] = []
    img = b.ensure("luksa/tiny:v1", progress=lines.append)
    assert img.id == a.get(f"{reg.host}/luksa/tiny:v1").id
    assert any("Pull complete" in line for line in lines)
    assert b.resolve("luksa/tiny:v1") is not None
    # FROM in a build pulls through the same puller.
    ctx = workdir / "from"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM luksa/tiny:v1\nCMD [\"cat\", \"/app.txt\"]\n")
    derived = build(b, ctx, tag="derived")
    assert derived.layers == img.layers

    # Without a default registry, unqualified names fail as before.
    c = open_store(workdir / "c", env=OFFLINE, base_cache=base_cache)
    with pytest.raises(PullAccessDenied, match="no registry configured"):
        c.ensure("luksa/tiny:v1")
    # ... and $MINIORCH_REGISTRY supplies one.
    d = open_store(workdir / "d", env={"MINIORCH_REGISTRY": f"http://{reg.host}"},
                   base_cache=base_cache)
    assert d.ensure("luksa/tiny:v1").id == img.id


def test_push_without_registry_and_unknown_image(store: ImageStore, workdir: Path) -> None:
    build(store, tiny_ctx(workdir, "n", "x\n"), tag="luksa/kubia")
    with pytest.raises(RegistryError, match="no registry configured"):
        registry.push(store, "luksa/kubia")
    with pytest.raises(Exception, match="does not exist locally"):
        registry.push(store, "127.0.0.1:1/missing", config=RegistryConfig())


def test_auth_file_shape(workdir: Path) -> None:
    save_auth(workdir, "127.0.0.1:5000", Credentials("u", "p:w"))
    save_auth(workdir, "localhost:5001", Credentials("v", "q"))
    doc = json.loads((workdir / "auth.json").read_text())
    assert doc == {"auths": {"127.0.0.1:5000": {"auth": "dTpwOnc="},
                             "localhost:5001": {"auth": "djpx"}}}
    cfg = load_config(workdir, env=OFFLINE)
    assert cfg.auth_for("127.0.0.1:5000") == Credentials("u", "p:w")
    assert oct(os.stat(workdir / "auth.json").st_mode & 0o777) == "0o600"


def test_progress_rendering() -> None:
    assert bar(0, 100).startswith("[>") and bar(100, 100).startswith("[" + "=" * 50 + "]")
    assert bar(3_200_000, 10_000_000).endswith("3.2MB/10MB")
    out = io.StringIO()
    r = BarRenderer(out, interval=0)
    r(Transfer("aaa", "Preparing"))
    r(Transfer("bbb", "Preparing"))
    r(Transfer("aaa", "Pushing", 5, 10))
    r(Transfer("aaa", "Pushed", 10, 10))
    text = out.getvalue()
    assert "aaa: Pushing [" + "=" * 24 + ">" in text and "\x1b[2A" in text
    assert text.rstrip().endswith("bbb: Preparing")
