"""OCI image-layout vocabulary: media types, digests, limits, descriptors, images, configs.

These are the values the store hands out. They are immutable snapshots: an `Image`
read before a `tag` or `remove` still describes the blobs it named, which stay on disk
until the store garbage-collects them (see store.py).

Digests are hostile input until `check_digest` has passed them: a digest becomes a file
name (`blobs/<alg>/<hex>`, `unpacked/<hex>`), so only `sha256:<64 hex>` and
`sha512:<128 hex>` (lowercase, as the OCI spec registers them) are ever accepted, and
content is always hashed with the digest's own algorithm before it is used. `Limits`
bounds everything a registry or a layer can make us read, write or hold in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from miniorch.images.errors import InvalidDigest
from miniorch.images.reference import Reference

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
LAYER_COMPRESSION: Mapping[str, str] = {
    MEDIA_LAYER_GZIP: "gzip", DOCKER_LAYER_GZIP: "gzip",
    MEDIA_LAYER_ZSTD: "zstd",
    MEDIA_LAYER_TAR: "none", DOCKER_LAYER_TAR: "none",
}
"""The layer media types we unpack, and how each is compressed. Anything else (foreign
Windows layers, encrypted layers, the deprecated non-distributable types) is refused."""
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_UNCOMPRESSED = "io.miniorch.layer.uncompressed-size"
"""On layer descriptors we write: the tar's size, so `image ls` can show Docker's SIZE."""

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


DIGEST_ALGORITHMS: Mapping[str, int] = {"sha256": 64, "sha512": 128}
"""Algorithm → hex length. The OCI image spec registers exactly these two."""


def check_digest(digest: object, what: str = "digest") -> tuple[str, str]:
    """`sha256:<64 hex>` → ("sha256", hex); anything else raises `InvalidDigest`.

    Called before a digest is used for anything (a path, a URL, a comparison that
    decides what to trust): `../`, uppercase hex, other algorithms, stray whitespace
    and non-strings are all refused here.
    """
    if not isinstance(digest, str):
        raise InvalidDigest(f"{what} {digest!r} is not a string")
    alg, sep, hexd = digest.partition(":")
    want = DIGEST_ALGORITHMS.get(alg)
    if not sep or want is None or len(hexd) != want or not all(
            c in "0123456789abcdef" for c in hexd):
        raise InvalidDigest(f"{what} {digest[:160]!r} is not a valid digest "
                            "(want sha256:<64 hex> or sha512:<128 hex>)")
    return alg, hexd


def hasher(digest: str) -> hashlib._Hash:
    """A fresh hash object of `digest`'s algorithm (already checked)."""
    return hashlib.new(check_digest(digest)[0])


def digest_of(data: bytes, like: str = "sha256:") -> str:
    """`data`'s digest with the algorithm of `like` (a digest, or just `sha512:`)."""
    alg = like.partition(":")[0]
    if alg not in DIGEST_ALGORITHMS:
        raise InvalidDigest(f"unsupported digest algorithm {alg!r}")
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Bounds on what a registry or a layer may make us hold or write (all in bytes
    unless said). Chosen well above real images (the largest manifest lists on Docker
    Hub are a few hundred kB; big layers a few GB) and far below harm."""

    manifest_bytes: int = 4 << 20
    """A manifest or index body (containerd refuses manifests over 4 MiB too)."""
    config_bytes: int = 8 << 20
    """An image config blob (history of a long image is a few hundred kB)."""
    layer_bytes: int = 16 << 30
    """One compressed layer blob, as its descriptor says (and as it streams)."""
    unpacked_layer_bytes: int = 32 << 30
    """One layer's decompressed tar stream (the zip-bomb bound)."""
    unpacked_total_bytes: int = 64 << 30
    """All layers of one image together, decompressed."""
    layers: int = 256
    """Layers per image (Docker's overlay2 stops at 125; OCI images rarely pass 100)."""
    members: int = 1_000_000
    """Tar members per layer."""
    path_bytes: int = 4096
    """A member's path or link target (PATH_MAX); each component at most 255 (NAME_MAX)."""
    index_depth: int = 2
    """Indexes nested in indexes before we give up."""


def canonical_json(obj: Any) -> bytes:
    """Stable bytes for a JSON document (sorted keys, no spaces): equal docs, equal digests."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Descriptor:
        return cls(d["mediaType"], d["digest"], int(d["size"]), dict(d.get("annotations") or {}))


@dataclass(frozen=True)
class Image:
    """One image in the store. `id` is the config digest (Docker's IMAGE ID)."""

    id: str
    manifest: Descriptor
    config_descriptor: Descriptor
    layers: tuple[Descriptor, ...]
    diff_ids: tuple[str, ...]
    """Uncompressed layer digests, bottom first, as in the config's rootfs."""
    names: tuple[Reference, ...]
    """Every name pointing at this manifest when the image was read (may be empty)."""

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    @property
    def size(self) -> int:
        """Uncompressed size, as `docker images` shows it (falls back to compressed)."""
        return sum(int(d.annotations.get(ANNOTATION_UNCOMPRESSED, d.size)) for d in self.layers)


@dataclass(frozen=True)
class ImageSummary:
    """One row of `image ls`: REPOSITORY TAG IMAGE ID CREATED SIZE."""

    repository: str
    """Familiar name (`kubia`, `luksa/kubia`) or `<none>` for a dangling image."""
    tag: str
    id: str
    created: str
    """RFC 3339 timestamp from the image config."""
    size: int


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an image config: what a container starts with."""

    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    """`KEY=value` strings, in image order."""
    workdir: str = ""
    exposed_ports: tuple[str, ...] = ()
    """`8080/tcp` style keys."""
    user: str = ""
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    stop_signal: str = ""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ImageConfig:
        c: Mapping[str, Any] = doc.get("config") or {}
        ep, cmd = c.get("Entrypoint"), c.get("Cmd")
        return cls(
            entrypoint=tuple(ep) if ep is not None else None,
            cmd=tuple(cmd) if cmd is not None else None,
            env=tuple(c.get("Env") or ()),
            workdir=c.get("WorkingDir") or "",
            exposed_ports=tuple(sorted(c.get("ExposedPorts") or {})),
            user=c.get("User") or "",
            labels=dict(c.get("Labels") or {}),
            stop_signal=c.get("StopSignal") or "",
        )

    def env_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for kv in self.env:
            k, _, v = kv.partition("=")
            out[k] = v
        return out

    def process_args(
        self, command: Sequence[str] | None = None, args: Sequence[str] | None = None
    ) -> list[str]:
        """argv for a container, with Kubernetes' rules for `command`/`args`.

        command set → command + args (the image's ENTRYPOINT and CMD are ignored);
        only args → ENTRYPOINT + args; neither → ENTRYPOINT + CMD.
        (`docker run IMAGE CMD...` is the `args` case.)
        """
        if command:
            return [*command, *(args or ())]
        return [*(self.entrypoint or ()), *(args if args else (self.cmd or ()))]
