"""OCI image-layout vocabulary: media types, descriptors, images and their configs.

These are the values the store hands out. They are immutable snapshots: an `Image`
read before a `tag` or `remove` still describes the blobs it named, which stay on disk
until the store garbage-collects them (see store.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from miniorch.images.reference import Reference

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_UNCOMPRESSED = "io.miniorch.layer.uncompressed-size"
"""On layer descriptors we write: the tar's size, so `image ls` can show Docker's SIZE."""

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


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
