"""Where images come from: registry settings, stored credentials, and the store's puller.

Files under `$MINIORCH_HOME` (both optional):

    registries.json   {"default": "127.0.0.1:5000", "insecure": ["127.0.0.1:5000"]}
                      `default` serves unqualified names (`kubia`, `luksa/kubia` — Docker
                      Hub's namespace) the way a registry mirror does: the repository path
                      is kept (`library/kubia`, `luksa/kubia`); `insecure` lists registries
                      spoken to over plain HTTP (only loopback ones are accepted).
    auth.json         Docker's config.json shape, written by `image login`, mode 0600:
                      {"auths": {"127.0.0.1:5000": {"auth": base64("user:password")}}}

The environment variable `MINIORCH_REGISTRY` (read once, by whoever builds the config)
overrides `default`; written as `http://HOST:PORT` it also marks that registry insecure.
With no default, an unqualified name that is not a built-in base image fails with
`pull access denied for X: no registry configured`, as before.

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


@dataclass(frozen=True, kw_only=True)
class RegistryConfig:
    default: str | None = None
    """Registry serving unqualified (Docker Hub) names, `HOST[:PORT]`."""
    insecure: frozenset[str] = frozenset()
    """Registries spoken to over plain HTTP (each must be loopback)."""
    credentials: Mapping[str, Credentials] = field(default_factory=dict)
    """From auth.json, keyed by registry `HOST[:PORT]`."""

    def locate(self, ref: Reference) -> tuple[str, str] | None:
        """(registry, repository path) to fetch `ref` from, or None if nothing serves it."""
        if ref.domain == DEFAULT_DOMAIN:
            return (self.default, ref.path) if self.default else None
        return ref.domain, ref.path

    def is_insecure(self, registry: str) -> bool:
        return registry in self.insecure

    def auth_for(self, registry: str) -> Credentials | None:
        return self.credentials.get(registry)


def _split_scheme(value: str) -> tuple[str, bool]:
    if value.startswith("http://"):
        return value.removeprefix("http://").rstrip("/"), True
    return value.removeprefix("https://").rstrip("/"), False


def load_config(home: Path, *, env: Mapping[str, str] | None = None) -> RegistryConfig:
    """Read registries.json and auth.json under `home`; `env` (default os.environ) may
    name the default registry. Malformed files are an error, not silently ignored."""
    env = os.environ if env is None else env
    default: str | None = None
    insecure: set[str] = set()
    path = home / REGISTRIES_FILE
    if path.exists():
        try:
            doc = json.loads(path.read_text())
            if doc.get("default"):
                default, http = _split_scheme(str(doc["default"]))
                if http:
                    insecure.add(default)
            insecure.update(_split_scheme(str(r))[0] for r in doc.get("insecure") or [])
        except (ValueError, AttributeError, TypeError) as exc:
            raise ImageError(f"{path}: not a valid registries file: {exc}") from None
    if env.get(ENV_REGISTRY):
        default, http = _split_scheme(env[ENV_REGISTRY])
        if http:
            insecure.add(default)
    for r in insecure:
        check_insecure(r)
    return RegistryConfig(default=default, insecure=frozenset(insecure),
                          credentials=load_auths(home))


def load_auths(home: Path) -> dict[str, Credentials]:
    path = home / AUTH_FILE
    if not path.exists():
        return {}
    try:
        auths = json.loads(path.read_text()).get("auths") or {}
        out: dict[str, Credentials] = {}
        for registry, entry in auths.items():
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            out[registry] = Credentials(user, password)
        return out
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
    auths[registry] = {"auth": creds.basic().removeprefix("Basic ")}
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
    """The store's `Puller` for registries: fetches `ref` from where `config` says.

    Returns None (so the store answers `no registry configured`) for Docker Hub names
    when no default registry is set; every other failure raises.
    """

    def __init__(self, config: RegistryConfig) -> None:
        self.config = config

    def serves(self, ref: Reference) -> bool:
        return self.config.locate(ref) is not None

    def pull(self, store: ImageStore, ref: Reference, *, progress: Progress) -> Image | None:
        where = self.config.locate(ref)
        if where is None:
            return None
        from miniorch.images import registry  # the HTTP client: only when a pull happens
        from miniorch.images.progress import LineRenderer

        return registry.pull(store, ref, config=self.config,
                             progress=LineRenderer(progress, newline=False))


def open_store(home: Path, *, env: Mapping[str, str] | None = None,
               base_cache: Path | None = None) -> ImageStore:
    """The image store at `home/images` with the built-in base images, then the
    registries configured under `home`, as pullers (what the CLI and the cluster use)."""
    from miniorch.images.base import BaseImages
    from miniorch.images.store import ImageStore

    config = load_config(home, env=env)
    return ImageStore(home / "images",
                      pullers=[BaseImages(cache_dir=base_cache), RegistryPuller(config)])
