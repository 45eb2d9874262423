"""Docker Hub by default, as Docker resolves names — with a local registry standing in.

The stand-in (ociserver.OciServer with `token_auth`) demands Docker Hub's bearer flow:
401 + `WWW-Authenticate: Bearer realm=…,service=…,scope=…`, anonymous tokens for public
repositories, Basic credentials at the realm for private ones. `docker.io` is pointed
at it through a loopback mirror in registries.json; the suite runs offline
(tests/conftest.py), so the real registry-1.docker.io is never contacted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread
import pytest

from miniorch.images import ImageStore, build
from miniorch.images.errors import PullAccessDenied, RegistryAuthError, RegistryError
from miniorch.images.reference import parse_reference
from miniorch.images.regconfig import (
    DOCKER_HUB_HOST,
    Credentials,
    RegistryConfig,
    load_config,
    open_store,
    parse_auths,
    save_auth,
)
from miniorch.images.registry import platform_rank
from tests.images.ociserver import (
    DOCKER_LIST,
    OCI_INDEX,
    OciServer,
    image_config,
    member,
    tar_layer,
)

OFFLINE = {"MINIORCH_OFFLINE": "1"}


@pytest.fixture
async def hub() -> AsyncIterator[tuple[OciServer, str]]:
    s = OciServer(token_auth=True)
    async with s.running() as host:
        yield s, host


def _mirror_home(home: Path, *mirrors: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "registries.json").write_text(json.dumps({"mirrors": {"docker.io": list(mirrors)}}))
    return home


def _multiplatform(s: OciServer, repo: str, tag: str, *, docker: bool = False) -> None:
    """An index like nginx's: amd64, arm64/v8, arm/v7, and an attestation manifest."""
    index = []
    for arch, variant in (("arm64", "v8"), ("amd64", ""), ("arm", "v7")):
        layer = tar_layer([member("etc/", type=b"5"),
                           member("etc/arch", f"{arch}{variant}\n".encode())])
        desc = s.add_image(repo, None, [layer], image_config([layer[1]], Cmd=["nginx"]),
                           docker=docker)
        platform = {"os": "linux", "architecture": arch, **({"variant": variant}
                                                             if variant else {})}
        index.append({**desc, "platform": platform})
    att = s.add_image(repo, None, [])
    index.append({**att, "platform": {"os": "unknown", "architecture": "unknown"},
                  "annotations": {"vnd.docker.reference.type": "attestation-manifest"}})
    s.add_manifest(repo, tag, {"schemaVersion": 2,
                               "mediaType": DOCKER_LIST if docker else OCI_INDEX,
                               "manifests": index}, DOCKER_LIST if docker else OCI_INDEX)


@pytest.mark.parametrize("docker", [False, True], ids=["oci", "docker-schema2"])
async def test_unqualified_name_pulls_from_docker_hub_mirror_with_token_flow(
        hub: tuple[OciServer, str], workdir: Path, base_cache: Path, docker: bool) -> None:
    s, host = hub
    _multiplatform(s, "library/nginx", "latest", docker=docker)
    store = open_store(_mirror_home(workdir / "home", f"http://{host}"), env=OFFLINE,
                       base_cache=base_cache)
    img = await anyio.to_thread.run_sync(lambda: store.ensure("nginx"))
    # `nginx` is docker.io/library/nginx:latest, asked of the mirror by its Hub path.
    assert "GET /v2/library/nginx/manifests/latest" in s.requests
    assert [str(n) for n in img.names] == ["docker.io/library/nginx:latest"]
    # Anonymous token for exactly that repository, from the challenge's realm/service.
    assert s.token_requests and s.token_requests[0]["scope"] == "repository:library/nginx:pull"
    assert s.token_requests[0]["service"] == "registry.test"
    assert s.token_requests[0]["authorization"] == ""
    # The host's platform (linux/amd64 here) was chosen, not arm64 listed first.
    assert (store.unpacked_layers(img)[0] / "etc/arch").read_text() == "amd64\n"
    assert store.config(img).cmd == ("nginx",)
    # A pulled image is one a registry serves (so `imagePullPolicy: Always` re-pulls it).
    assert store.serves("nginx")


async def test_user_repository_private_basic_credentials_and_denied_message(
        hub: tuple[OciServer, str], workdir: Path, base_cache: Path) -> None:
    s, host = hub
    layer = tar_layer([member("app.txt", b"private\n")])
    s.add_image("luksa/app", "v1", [layer])
    s.private["luksa/app"] = ("luksa", "s3cret")
    home = _mirror_home(workdir / "home", f"http://{host}")
    store = open_store(home, env=OFFLINE, base_cache=base_cache)
    # Anonymous: Docker's (and kubelet's) wording, with the registry's own message.
    with pytest.raises(RegistryAuthError, match=r"pull access denied for luksa/app, repository "
                       r"does not exist or may require 'docker login'.*authentication required"):
        await anyio.to_thread.run_sync(lambda: store.ensure("luksa/app:v1"))
    assert store.resolve("luksa/app:v1") is None
    # Per-pull credentials (a pod's imagePullSecrets), keyed as Docker keys Docker Hub.
    auth = {"https://index.docker.io/v1/": ("luksa", "s3cret")}
    img = await anyio.to_thread.run_sync(lambda: store.pull("luksa/app:v1", auth=auth))
    assert img is not None and [str(n) for n in img.names] == ["docker.io/luksa/app:v1"]
    assert s.token_requests[-1]["authorization"].startswith("Basic ")
    # Stored credentials (image login docker.io) work the same way, from auth.json.
    save_auth(home, "docker.io", Credentials("luksa", "s3cret"))
    assert json.loads((home / "auth.json").read_text())["auths"].keys() == {
        "https://index.docker.io/v1/"}
    again = open_store(home, env=OFFLINE, base_cache=base_cache)
    again.remove("luksa/app:v1")
    img2 = await anyio.to_thread.run_sync(lambda: again.ensure("luksa/app:v1"))
    assert img2.id == img.id
    # Wrong credentials are refused by the token service, with its message.
    with pytest.raises(RegistryAuthError, match="incorrect username or password"):
        await anyio.to_thread.run_sync(
            lambda: again.pull("luksa/app:v1", auth={"docker.io": ("luksa", "nope")}))


async def test_mirrors_fall_back_in_order_and_offline_skips_the_internet(
        hub: tuple[OciServer, str], workdir: Path, base_cache: Path) -> None:
    s, host = hub
    layer = tar_layer([member("hello", b"hi\n")])
    s.add_image("library/redis", "7", [layer])
    # A mirror that is down (nothing listens on port 9 of loopback) is skipped.
    store = open_store(_mirror_home(workdir / "home", "http://127.0.0.1:9", f"http://{host}"),
                       env=OFFLINE, base_cache=base_cache)
    img = await anyio.to_thread.run_sync(lambda: store.ensure("redis:7"))
    assert (store.unpacked_layers(img)[0] / "hello").read_text() == "hi\n"
    # Offline with no mirror: Docker Hub is not even tried.
    bare = open_store(workdir / "bare", env=OFFLINE, base_cache=base_cache)
    assert not bare.serves("redis:7")
    with pytest.raises(PullAccessDenied, match="pull access denied for redis"):
        await anyio.to_thread.run_sync(lambda: bare.ensure("redis:7"))
    # A missing tag on the only endpoint: the registry's message.
    with pytest.raises(RegistryError, match="manifest unknown"):
        await anyio.to_thread.run_sync(lambda: store.ensure("redis:nope"))


def test_names_resolve_as_docker_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where each name would be fetched from, online (no request is made here)."""
    monkeypatch.delenv("MINIORCH_OFFLINE")
    cfg = RegistryConfig(mirrors={"docker.io": ("127.0.0.1:5000",)},
                         insecure=frozenset({"127.0.0.1:5000"}))
    ep = cfg.endpoints(parse_reference("nginx"))
    assert [(e.host, e.repo, e.mirror) for e in ep] == [
        ("127.0.0.1:5000", "library/nginx", True), (DOCKER_HUB_HOST, "library/nginx", False)]
    assert ep[0].insecure and not ep[1].insecure
    assert [(e.host, e.repo) for e in cfg.endpoints(parse_reference("user/app"))][-1] == (
        "registry-1.docker.io", "user/app")
    assert [e.host for e in cfg.endpoints(parse_reference("ghcr.io/o/app:1"))] == ["ghcr.io"]
    assert cfg.locate(parse_reference("nginx")) == (DOCKER_HUB_HOST, "library/nginx")
    # Offline keeps only loopback endpoints.
    off = RegistryConfig(mirrors=cfg.mirrors, insecure=cfg.insecure, offline=True)
    assert [e.host for e in off.endpoints(parse_reference("nginx"))] == ["127.0.0.1:5000"]
    assert off.endpoints(parse_reference("ghcr.io/o/app")) == []


def test_offline_env_always_wins(workdir: Path) -> None:
    # The suite's safety net: MINIORCH_OFFLINE in the process environment applies even
    # when a caller passes its own env, or builds a RegistryConfig by hand.
    assert load_config(workdir, env={}).offline
    assert RegistryConfig().offline


def test_platform_variant_rules() -> None:
    amd64 = ("linux", "amd64", "")
    arm64 = ("linux", "arm64", "v8")
    armv7 = ("linux", "arm", "v7")
    armv6 = ("linux", "arm", "v6")
    assert platform_rank({"os": "linux", "architecture": "amd64"}, amd64) == 0
    assert platform_rank({"os": "linux", "architecture": "amd64", "variant": "v1"}, amd64) == 0
    assert platform_rank({"os": "linux", "architecture": "386"}, amd64) == 10
    assert platform_rank({"os": "linux", "architecture": "arm64"}, amd64) is None
    assert platform_rank({"os": "windows", "architecture": "amd64"}, amd64) is None
    assert platform_rank({"os": "unknown", "architecture": "unknown"}, amd64) is None
    assert platform_rank({"os": "linux", "architecture": "arm64"}, arm64) == 0
    assert platform_rank({"os": "linux", "architecture": "arm64", "variant": "v8"}, arm64) == 0
    assert platform_rank({"os": "linux", "architecture": "arm", "variant": "v7"}, arm64) == 11
    assert platform_rank({"os": "linux", "architecture": "arm"}, armv7) == 0  # arm = arm/v7
    assert platform_rank({"os": "linux", "architecture": "arm", "variant": "v6"}, armv7) == 1
    assert platform_rank({"os": "linux", "architecture": "arm", "variant": "v7"}, armv6) is None
    assert platform_rank({"os": "linux", "architecture": "arm64"}, armv7) is None


def test_dockerconfigjson_parsing() -> None:
    doc = {"auths": {"https://index.docker.io/v1/": {"auth": "dTpwOnc="},
                     "http://127.0.0.1:5000/v2/": {"username": "a", "password": "b"},
                     "quay.io": {"auth": ""}}}
    assert parse_auths(doc) == {"docker.io": Credentials("u", "p:w"),
                                "127.0.0.1:5000": Credentials("a", "b")}
    with pytest.raises(ValueError):
        parse_auths({"auths": {"x": {"auth": "bm9jb2xvbg=="}}})  # "nocolon"


def test_locally_built_image_is_not_repulled(store: ImageStore, context: Path,
                                             workdir: Path, base_cache: Path) -> None:
    """`kubia` built here keeps working with Docker Hub as the default: no registry
    serves it, so `imagePullPolicy: Always` (the default for :latest) uses it as is."""
    (context / "Dockerfile").write_text("FROM busybox\nCMD [\"true\"]\n")
    home = _mirror_home(workdir / "home", "http://127.0.0.1:9")
    local = open_store(home, env=OFFLINE, base_cache=base_cache)
    build(local, context, tag="kubia")
    assert local.resolve("kubia") is not None
    assert not local.serves("kubia") and not local.serves("busybox")
    assert local.serves("nginx")  # not here: the docker.io mirror serves it


async def test_image_login_with_token_auth_stores_0600(
        hub: tuple[OciServer, str], workdir: Path) -> None:
    s, host = hub
    s.private["luksa/app"] = ("luksa", "s3cret")
    home = workdir / "home"

    def login(*argv: str, password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "miniorch", "--state-dir", str(home), "image", "login",
             *argv, "-u", "luksa", "--password-stdin"],
            input=password + "\n", capture_output=True, text=True, timeout=60)

    bad = await anyio.to_thread.run_sync(lambda: login("--insecure", host, password="no"))
    assert bad.returncode != 0 and "incorrect username or password" in bad.stderr
    assert not (home / "auth.json").exists()
    ok = await anyio.to_thread.run_sync(lambda: login("--insecure", host, password="s3cret"))
    assert ok.returncode == 0, ok.stderr
    assert "Login Succeeded" in ok.stdout
    assert oct((home / "auth.json").stat().st_mode & 0o777) == "0o600"
    assert load_config(home).auth_for(host) == Credentials("luksa", "s3cret")
    # No REGISTRY means Docker Hub, which offline mode does not contact.
    hub_login = await anyio.to_thread.run_sync(lambda: login(password="s3cret"))
    assert hub_login.returncode != 0 and "offline" in hub_login.stderr
    assert "registry-1.docker.io" in hub_login.stderr
