"""Where images come from: registry settings, stored credentials, and the store's puller.

Names resolve as Docker resolves them (reference.py): `nginx` is
`docker.io/library/nginx:latest`, `user/app` is `docker.io/user/app:latest`, and
`docker.io` is served by Docker Hub's registry host `registry-1.docker.io` (anonymous
pulls use its bearer-token challenge, registry.py). The built-in base images (busybox,
python) and anything built or already stored here answer first, offline.

Files under `$MINIORCH_HOME` (both optional):

    registries.json
        {"mirrors": {"docker.io": ["https://mirror.example", "http://127.0.0.1:5000"]},
         "insecure": ["127.0.0.1:5001"],
         "default": "127.0.0.1:5000",
         "offline": false}
      `mirrors`   per registry domain, endpoints tried in order before the registry
                  itself (Docker's `registry-mirrors`, containerd's hosts.toml): the
                  repository path is kept (`library/nginx`); when a mirror fails (down,
                  not found, refused content) the next one is tried, then the upstream.
      `default`   (older form) the one registry serving Docker Hub names, instead of
                  Docker Hub: no fallback to the upstream.
      `insecure`  registries spoken to over plain HTTP (each must be loopback); an
                  `http://` mirror or default is insecure too.
      `offline`   never contact a registry that is not on loopback (also
                  `MINIORCH_OFFLINE=1`): an air-gapped machine, and the test suite,
                  which must never reach the internet. Loopback mirrors still serve.
    auth.json   Docker's config.json shape, written by `image login`, mode 0600:
                {"auths": {"127.0.0.1:5000": {"auth": base64("user:password")},
                           "https://index.docker.io/v1/": {"auth": …}}}
                Keys are normalised as Docker's are: scheme and path dropped, and
                `index.docker.io`, `registry-1.docker.io`, `https://index.docker.io/v1/`
                all mean Docker Hub. A mirror uses its own entry, else its registry's.

The environment variable `MINIORCH_REGISTRY` overrides `default`; written as
`http://HOST:PORT` it also marks that registry insecure.

This module stays import-light (json, os, base64): the CLI builds a store for every
`image` command, and the HTTP client (registry.py) is imported only when a pull runs.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from miniorch.images.errors import ImageError, InsecureRegistry
from miniorch.images.reference import DEFAULT_DOMAIN, Reference

REGISTRIES_FILE = "registries.json"
AUTH_FILE = "auth.json"
ENV_REGISTRY = "MINIORCH_REGISTRY"
ENV_OFFLINE = "MINIORCH_OFFLINE"
DOCKER_HUB_HOST = "registry-1.docker.io"
"""Where Docker Hub's distribution API lives (`docker.io` itself only redirects)."""
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
"""The key Docker writes Docker Hub's credentials under in config.json."""
_HUB_ALIASES = frozenset({DEFAULT_DOMAIN, "index.docker.io", DOCKER_HUB_HOST})

if TYPE_CHECKING:
    from miniorch.images.oci import Image
    from miniorch.images.store import ImageStore, Progress


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def basic(self) -> str:
        """The value of an `Authorization: Basic` header."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def is_loopback(registry: str) -> bool:
    """`127.0.0.1:5000`, `localhost`, `[::1]:5000` → True."""
    host = registry
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_insecure(registry: str) -> None:
    """Plain HTTP is refused unless the registry is on this machine's loopback."""
    if not is_loopback(registry):
        raise InsecureRegistry(
            f"refusing plain HTTP to registry {registry}: --insecure is only allowed for "
            "loopback registries (127.0.0.0/8, localhost, ::1); use HTTPS")


def registry_key(key: str) -> str:
    """A config.json `auths` key as the registry it names: `https://index.docker.io/v1/`
    → `docker.io`, `http://127.0.0.1:5000/v2/` → `127.0.0.1:5000`."""
    host = key.strip()
    for scheme in ("https://", "http://"):
        host = host.removeprefix(scheme)
    host = host.partition("/")[0].lower()
    return DEFAULT_DOMAIN if host in _HUB_ALIASES else host


@dataclass(frozen=True)
class Endpoint:
    """One place to fetch a repository from."""

    host: str
    """`HOST[:PORT]` spoken to."""
    repo: str
    """The repository path there (`library/nginx`)."""
    insecure: bool
    mirror: bool
    domain: str
    """The registry domain the reference names (`docker.io`), for credentials."""


@dataclass(frozen=True, kw_only=True)
class RegistryConfig:
    default: str | None = None
    """Registry serving unqualified (Docker Hub) names instead of Docker Hub."""
    mirrors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Registry domain → mirror hosts, tried in order before the registry itself."""
    insecure: frozenset[str] = frozenset()
    """Registries spoken to over plain HTTP (each must be loopback)."""
    credentials: Mapping[str, Credentials] = field(default_factory=dict)
    """From auth.json, keyed by `registry_key`."""
    offline: bool = field(default_factory=lambda: env_offline(os.environ))
    """Only loopback registries are ever contacted. `MINIORCH_OFFLINE` in this process's
    environment always turns it on, whatever a caller passes (the suite's safety net)."""

    def __post_init__(self) -> None:
        if env_offline(os.environ):
            object.__setattr__(self, "offline", True)

    def upstream(self, ref: Reference) -> str:
        """The registry host `ref` belongs to (pushes go here, never to a mirror)."""
        if ref.domain == DEFAULT_DOMAIN:
            return self.default or DOCKER_HUB_HOST
        return ref.domain

    def endpoints(self, ref: Reference) -> list[Endpoint]:
        """Where to pull `ref` from, in order: mirrors, then the registry itself."""
        hosts = [(m, True) for m in self.mirrors.get(ref.domain, ())]
        hosts.append((self.upstream(ref), False))
        out = []
        for host, mirror in hosts:
            if self.offline and not is_loopback(host):
                continue
            out.append(Endpoint(host, ref.path, host in self.insecure, mirror, ref.domain))
        return out

    def locate(self, ref: Reference) -> tuple[str, str] | None:
        """(registry, repository path) to push `ref` to, or None if offline forbids it."""
        host = self.upstream(ref)
        if self.offline and not is_loopback(host):
            return None
        return host, ref.path

    def is_insecure(self, registry: str) -> bool:
        return registry in self.insecure

    def auth_for(self, registry: str, domain: str | None = None,
                 extra: Mapping[str, Credentials] | None = None) -> Credentials | None:
        """Credentials for talking to `registry` (serving `domain`): `extra` (a pod's
        imagePullSecrets) before auth.json; the host's own entry before its domain's."""
        for source in (extra or {}, self.credentials):
            for key in (registry, domain):
                if key and registry_key(key) in source:
                    return source[registry_key(key)]
        return None


def _split_scheme(value: str) -> tuple[str, bool]:
    if value.startswith("http://"):
        return value.removeprefix("http://").rstrip("/"), True
    return value.removeprefix("https://").rstrip("/"), False


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def env_offline(env: Mapping[str, str]) -> bool:
    return _truthy(env.get(ENV_OFFLINE, ""))


def load_config(home: Path, *, env: Mapping[str, str] | None = None) -> RegistryConfig:
    """Read registries.json and auth.json under `home`; `env` (default os.environ) may
    name the default registry or turn offline on. Malformed files are an error."""
    env = os.environ if env is None else env
    default: str | None = None
    insecure: set[str] = set()
    mirrors: dict[str, tuple[str, ...]] = {}
    offline = env_offline(env)
    path = home / REGISTRIES_FILE
    if path.exists():
        try:
            doc = json.loads(path.read_text())
            if doc.get("default"):
                default, http = _split_scheme(str(doc["default"]))
                if http:
                    insecure.add(default)
            insecure.update(_split_scheme(str(r))[0] for r in doc.get("insecure") or [])
            for domain, hosts in (doc.get("mirrors") or {}).items():
                if isinstance(hosts, str):
                    raise TypeError(f"mirrors for {domain!r} must be a list")
                parsed = [_split_scheme(str(h)) for h in hosts]
                insecure.update(h for h, http in parsed if http)
                mirrors[registry_key(str(domain))] = tuple(h for h, _ in parsed)
            offline = offline or _truthy(doc.get("offline", False))
        except (ValueError, AttributeError, TypeError) as exc:
            raise ImageError(f"{path}: not a valid registries file: {exc}") from None
    if env.get(ENV_REGISTRY):
        default, http = _split_scheme(env[ENV_REGISTRY])
        if http:
            insecure.add(default)
    for r in insecure:
        check_insecure(r)
    return RegistryConfig(default=default, mirrors=mirrors, insecure=frozenset(insecure),
                          credentials=load_auths(home), offline=offline)


def parse_auths(doc: object) -> dict[str, Credentials]:
    """A Docker config.json / `.dockerconfigjson` document's `auths` (or a bare
    `.dockercfg` mapping), keyed by `registry_key`; entries carry `auth` (base64
    user:password) or `username` and `password`. Raises ValueError when malformed."""
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    auths = doc.get("auths") if "auths" in doc else doc
    if not isinstance(auths, dict):
        raise ValueError("`auths` is not an object")
    out: dict[str, Credentials] = {}
    for registry, entry in auths.items():
        if not isinstance(entry, dict):
            raise ValueError(f"entry for {registry!r} is not an object")
        if entry.get("auth"):
            user, sep, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
            if not sep:
                raise ValueError(f"`auth` for {registry!r} is not base64(user:password)")
        else:
            user, password = str(entry.get("username") or ""), str(entry.get("password") or "")
        if user or password:
            out[registry_key(str(registry))] = Credentials(user, password)
    return out


def load_auths(home: Path) -> dict[str, Credentials]:
    path = home / AUTH_FILE
    if not path.exists():
        return {}
    try:
        return parse_auths(json.loads(path.read_text()))
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise ImageError(f"{path}: not a valid auth file: {exc}") from None


def save_auth(home: Path, registry: str, creds: Credentials) -> Path:
    """Add or replace `registry`'s entry in auth.json (created 0600, rewritten atomically)."""
    path = home / AUTH_FILE
    doc: dict[str, object] = {}
    if path.exists():
        with contextlib.suppress(ValueError):
            doc = json.loads(path.read_text())
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    key = DOCKER_HUB_AUTH_KEY if registry_key(registry) == DEFAULT_DOMAIN else registry
    for old in [k for k in auths if registry_key(str(k)) == registry_key(registry)]:
        del auths[old]  # `docker.io` and `https://index.docker.io/v1/` are one registry
    auths[key] = {"auth": creds.basic().removeprefix("Basic ")}
    doc["auths"] = auths
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / f".{AUTH_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
    os.chmod(tmp, 0o600)  # even if it existed with other bits
    os.replace(tmp, path)
    return path


class RegistryPuller:
    """The store's `Puller` for registries: fetches `ref` from where the config says.

    Built from a fixed `config`, or from `home`: then registries.json and auth.json are
    re-read whenever one of them changes (by mtime and size), so `image login` or a new
    mirror takes effect in a running cluster without a restart.

    Returns None (so the store answers `no registry configured`) only when no endpoint
    may be contacted (offline, and no loopback mirror); every other failure raises.
    """

    def __init__(self, config: RegistryConfig | None = None, *, home: Path | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        assert config is not None or home is not None
        self._fixed = config
        self._home = home
        self._env = env
        self._stamp: tuple[tuple[float, int] | None, ...] | None = None
        self._loaded = config or RegistryConfig()

    @property
    def config(self) -> RegistryConfig:
        if self._fixed is not None or self._home is None:
            return self._loaded
        stamp = tuple(_stamp(self._home / name) for name in (REGISTRIES_FILE, AUTH_FILE))
        if stamp != self._stamp:
            self._loaded = load_config(self._home, env=self._env)
            self._stamp = stamp
        return self._loaded

    def serves(self, ref: Reference) -> bool:
        return bool(self.config.endpoints(ref))

    def pull(self, store: ImageStore, ref: Reference, *, progress: Progress,
             auth: Mapping[str, tuple[str, str]] | None = None) -> Image | None:
        config = self.config
        if not config.endpoints(ref):
            return None
        from miniorch.images import registry  # the HTTP client: only when a pull happens
        from miniorch.images.progress import LineRenderer

        extra = {registry_key(k): Credentials(u, p) for k, (u, p) in (auth or {}).items()}
        return registry.pull(store, ref, config=config, pod_auth=extra,
                             progress=LineRenderer(progress, newline=False))


def _stamp(path: Path) -> tuple[float, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime, st.st_size


def open_store(home: Path, *, env: Mapping[str, str] | None = None,
               base_cache: Path | None = None) -> ImageStore:
    """The image store at `home/images` with the built-in base images, then the
    registries configured under `home`, as pullers (what the CLI and the cluster use)."""
    from miniorch.images.base import BaseImages
    from miniorch.images.store import ImageStore

    puller = RegistryPuller(home=home, env=env)
    puller.config  # noqa: B018 -- read now: a malformed file is an error at open
    return ImageStore(home / "images",
                      pullers=[BaseImages(cache_dir=base_cache), puller])
