"""The local image store: an OCI image layout on disk, plus unpacked layers for overlayfs.

Layout under `root` (`settings.images_dir`, i.e. `$MINIORCH_HOME/images`):

    oci-layout                    {"imageLayoutVersion": "1.0.0"}
    index.json                    one manifest descriptor per name; annotations
                                  `org.opencontainers.image.ref.name` and
                                  `io.containerd.image.name` hold the *fully qualified*
                                  reference (`docker.io/library/kubia:latest`), so
                                  `skopeo inspect oci:<root>:docker.io/library/kubia:latest`
                                  works; a descriptor without a name is a dangling image
                                  (`<none>` in `image ls`, as Docker keeps after a rebuild)
    blobs/sha256/<hex>            manifests, configs, layer tarballs — content-addressed,
    blobs/sha512/<hex>            so a layer shared by two images is stored once
    unpacked/<diff-id hex>/       a layer extracted once, used read-only as an overlay lowerdir
                                  (sha512 diff_ids: `unpacked/sha512-<hex>/`); mode 0700
    build-cache/<key hex>.json    the builder's step cache (see build.py)
    leases/                       blobs held by builds in progress (see below)
    tmp/                          staging; everything lands in place by rename(2)

Invariants.
  - A blob file's name is the sha256 of its bytes; blobs are written to tmp/ and renamed,
    so a reader never sees a partial blob, and a crashed writer leaves only tmp/ litter.
  - index.json is rewritten whole (write tmp + rename) under an exclusive flock on
    `.lock`, so the cluster process and CLI commands can share a store.
  - Blobs are deleted only by `gc()` (called by `remove`), under the same lock, and only
    when no index entry reaches them and no live *lease* names them: a build or pull in
    progress holds a lease (`leases/<pid>-<rand>`, one digest per line) on the blobs it
    has written but not yet referenced, so a concurrent `image rm` cannot collect them.
    Build-cache entries do not keep blobs alive; the builder re-checks that a cached
    layer's blob still exists.
  - `unpacked/<hex>` appears atomically (extract to tmp, rename); it is never modified.
    It is there only if the decompressed layer hashed to its diff_id and every member
    obeyed layers.unpack_layer's confinement rules; `unpacked/` and `tmp/` are 0700, so
    no other user of the host reaches a layer's setuid files or half-written trees.
  - Every digest read from a manifest, a config or index.json passes
    `oci.check_digest` before it names a file: nothing from an image is a path.
  - An index entry written by a pull carries `io.miniorch.image.source: registry`;
    images built here or made from the host's files (base images) do not, and
    `serves()` says no registry serves them (so `imagePullPolicy: Always` keeps them).

The store is synchronous (file I/O and hashing); async callers use
`anyio.to_thread.run_sync`. An image missing locally is asked of the `Puller`s in turn
(`ensure`): first the built-in base images (busybox, python), later a registry client.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from miniorch.core.logging import get_logger
from miniorch.images.errors import (
    ImageError,
    ImageInUse,
    ImageNotFound,
    InvalidReference,
    LimitExceeded,
    PullAccessDenied,
)
from miniorch.images.layers import LayerBlob, remove_tree, unpack_layer
from miniorch.images.oci import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    ANNOTATION_UNCOMPRESSED,
    LAYER_COMPRESSION,
    MEDIA_CONFIG,
    MEDIA_LAYER_GZIP,
    MEDIA_MANIFEST,
    Descriptor,
    Image,
    ImageConfig,
    ImageSummary,
    Limits,
    canonical_json,
    check_digest,
    sha256_digest,
)
from miniorch.images.reference import Reference, parse_reference

log = get_logger(__name__)  # structlog, imported on first use (core.logging)

ANNOTATION_SOURCE = "io.miniorch.image.source"
SOURCE_REGISTRY = "registry"

Progress = Callable[[str], None]
"""Receives one human-readable line per step (`Step 2/3 : COPY ...`, `Pulling ...`)."""


def _no_progress(_line: str) -> None:
    pass


class Puller(Protocol):
    """Supplies images the store does not have. Returns None when it does not know `ref`.

    A puller writes what it fetches into the store itself (`put_blob_*`, `add_image`) and
    returns the stored image. The built-in base images are the first puller; a registry
    client (the later issue) is the next.
    """

    def pull(self, store: ImageStore, ref: Reference, *, progress: Progress,
             auth: Mapping[str, tuple[str, str]] | None = None) -> Image | None:
        """`auth`: registry → (username, password) for this pull only (a pod's
        imagePullSecrets), keyed as a Docker config.json's `auths` are."""
        ...


@dataclass(frozen=True)
class DiskUsage:
    images: int
    blobs: int
    blob_bytes: int
    unpacked_layers: int
    unpacked_bytes: int


def _now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


class ImageStore:
    """An OCI image layout at `root`. See the module docstring for the on-disk contract."""

    def __init__(
        self,
        root: Path,
        *,
        pullers: Sequence[Puller] | None = None,
        base_cache: Path | None = None,
        limits: Limits | None = None,
    ) -> None:
        """`pullers` default to the built-in base images, whose layers are cached
        host-wide under `base_cache` (default `~/.cache/miniorch/base`)."""
        self.root = root
        self.limits = limits or Limits()
        self.blobs_dir = root / "blobs" / "sha256"
        self.unpacked_dir = root / "unpacked"
        self.cache_dir = root / "build-cache"
        self.tmp_dir = root / "tmp"
        self.leases_dir = root / "leases"
        for d in (self.blobs_dir, self.unpacked_dir, self.cache_dir, self.tmp_dir,
                  self.leases_dir):
            d.mkdir(parents=True, exist_ok=True)
        for d in (self.unpacked_dir, self.tmp_dir):
            with contextlib.suppress(OSError):  # a store we do not own: read-only use
                os.chmod(d, 0o700)
        layout = root / "oci-layout"
        if not layout.exists():
            self._write_atomic(layout, b'{"imageLayoutVersion":"1.0.0"}')
        if not (root / "index.json").exists():
            with self._locked():
                if not (root / "index.json").exists():
                    self._write_index([])
        if pullers is None:
            from miniorch.images.base import BaseImages  # base builds on the store's API

            pullers = [BaseImages(cache_dir=base_cache)]
        self.pullers: list[Puller] = list(pullers)

    # ------------------------------------------------------------------ low level

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write_atomic(self, path: Path, data: bytes) -> None:
        tmp = self.tmp_dir / f".{path.name}-{os.getpid()}-{os.urandom(4).hex()}"
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def _read_index(self) -> list[dict[str, Any]]:
        doc = json.loads((self.root / "index.json").read_bytes())
        return list(doc.get("manifests") or [])

    def _write_index(self, manifests: list[dict[str, Any]]) -> None:
        doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": manifests}
        self._write_atomic(self.root / "index.json", json.dumps(doc, indent=2).encode())

    def blob_path(self, digest: str) -> Path:
        """`blobs/<alg>/<hex>`; refuses (InvalidDigest) anything but a well-formed digest."""
        algo, hexd = check_digest(digest)
        return self.blobs_dir / hexd if algo == "sha256" else self.root / "blobs" / algo / hexd

    def _blob_dirs(self) -> list[tuple[str, Path]]:
        out = [("sha256", self.blobs_dir)]
        other = self.root / "blobs" / "sha512"
        if other.is_dir():
            out.append(("sha512", other))
        return out

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def put_blob_bytes(self, data: bytes, media_type: str) -> Descriptor:
        digest = sha256_digest(data)
        path = self.blob_path(digest)
        if not path.exists():
            self._write_atomic(path, data)
        return Descriptor(media_type, digest, len(data))

    def put_layer(self, blob: LayerBlob) -> Descriptor:
        """Move a written layer (layers.write_layer under `tmp_dir`) into the blob store."""
        path = self.blob_path(blob.digest)
        if path.exists():
            blob.path.unlink(missing_ok=True)
        else:
            os.replace(blob.path, path)
        return layer_descriptor(blob.digest, blob.size, blob.tar_size)

    def import_blob(self, src: Path, digest: str) -> None:
        """Add a blob from a host file already known to hash to `digest` (hardlink, else copy)."""
        path = self.blob_path(digest)
        if path.exists():
            return
        tmp = self.tmp_dir / f".import-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, path)

    # ------------------------------------------------------------------ images

    def _image_from_manifest(self, desc: Descriptor, names: tuple[Reference, ...]) -> Image:
        manifest = json.loads(self.read_blob(desc.digest))
        cfg_desc = Descriptor.from_json(manifest["config"])
        cfg = json.loads(self.read_blob(cfg_desc.digest))
        layers = tuple(Descriptor.from_json(d) for d in manifest.get("layers") or [])
        for d in layers:
            check_digest(d.digest, "layer digest")
        diff_ids = tuple((cfg.get("rootfs") or {}).get("diff_ids") or [])
        for diff in diff_ids:
            check_digest(diff, "diff_id")
        if len(diff_ids) != len(layers):
            raise ImageError(f"image {desc.digest}: {len(layers)} layers but "
                             f"{len(diff_ids)} diff_ids")
        return Image(cfg_desc.digest, desc, cfg_desc, layers, diff_ids, names)

    def _entries(self) -> list[tuple[Descriptor, Reference | None]]:
        out: list[tuple[Descriptor, Reference | None]] = []
        for m in self._read_index():
            d = Descriptor.from_json(m)
            name = d.annotations.get(ANNOTATION_REF_NAME)
            ref = None
            if name:
                with contextlib.suppress(InvalidReference):
                    ref = parse_reference(name)
            out.append((d, ref))
        return out

    def _names_of(self, entries: list[tuple[Descriptor, Reference | None]],
                  manifest_digest: str) -> tuple[Reference, ...]:
        return tuple(r for d, r in entries if r is not None and d.digest == manifest_digest)

    def images(self) -> list[Image]:
        """Every image (one per manifest), named or dangling."""
        entries = self._entries()
        seen: dict[str, Image] = {}
        for d, _ref in entries:
            if d.digest not in seen:
                seen[d.digest] = self._image_from_manifest(d, self._names_of(entries, d.digest))
        return list(seen.values())

    def resolve(self, ref: str) -> Image | None:
        """By name[:tag] (`kubia` means `kubia:latest`), name@digest, full or short image ID.

        Like Docker: a full ID (`sha256:<hex>` or 64 hex) first, then a name, then a unique
        ID prefix. Returns None if nothing matches; never pulls (see `ensure`).
        """
        entries = self._entries()
        hexish = ref.removeprefix("sha256:")
        is_hex = bool(hexish) and all(c in "0123456789abcdef" for c in hexish)
        if is_hex and (len(hexish) == 64 or ref.startswith("sha256:")):
            return self._by_id_prefix(entries, hexish, exact=len(hexish) == 64)
        try:
            parsed = parse_reference(ref)
        except InvalidReference:
            parsed = None
        if parsed is not None:
            for d, r in entries:
                if r is None:
                    continue
                if parsed.digest is not None:
                    if d.digest == parsed.digest and r.repository == parsed.repository:
                        return self._image_from_manifest(d, self._names_of(entries, d.digest))
                elif r == parsed:
                    return self._image_from_manifest(d, self._names_of(entries, d.digest))
            if parsed.digest is not None:
                # `name@digest` also matches an image stored under another tag of that name.
                for d, _r in entries:
                    if d.digest == parsed.digest:
                        return self._image_from_manifest(d, self._names_of(entries, d.digest))
        if is_hex and len(hexish) >= 4:
            return self._by_id_prefix(entries, hexish, exact=False)
        if parsed is None:
            raise InvalidReference(ref)
        return None

    def _by_id_prefix(self, entries: list[tuple[Descriptor, Reference | None]], hexish: str,
                      *, exact: bool) -> Image | None:
        found: dict[str, Image] = {}
        for d, _r in entries:
            img = self._image_from_manifest(d, self._names_of(entries, d.digest))
            h = img.id.removeprefix("sha256:")
            if (h == hexish) if exact else h.startswith(hexish):
                found[img.id] = img
        if len(found) > 1:
            raise ImageError(f"short ID {hexish!r} is ambiguous: matches {len(found)} images")
        return next(iter(found.values()), None)

    def get(self, ref: str) -> Image:
        img = self.resolve(ref)
        if img is None:
            raise ImageNotFound(ref)
        return img

    def ensure(self, ref: str, *, progress: Progress = _no_progress) -> Image:
        """`resolve(ref)`, else ask each puller; else `PullAccessDenied`."""
        img = self.resolve(ref)
        if img is not None:
            return img
        img = self.pull(ref, progress=progress)
        if img is None:
            raise PullAccessDenied(parse_reference(ref).familiar_repository)
        return img

    def serves(self, ref: str) -> bool:
        """Whether a *remote* puller (one with a `serves(ref)` method, e.g. a registry)
        fetches `ref`. Local pullers (built-in base images) do not count: an image they
        made is never out of date, so `imagePullPolicy: Always` need not ask them again."""
        parsed = parse_reference(ref)
        if self._local_origin(parsed):
            return False
        for puller in self.pullers:
            serves = getattr(puller, "serves", None)
            if serves is not None and serves(parsed):
                return True
        return False

    def _local_origin(self, ref: Reference) -> bool:
        """`ref` names an image built here or made by a base-image puller (no pull wrote
        its index entry), so no registry is its source."""
        for m in self._read_index():
            ann = m.get("annotations") or {}
            if ann.get(ANNOTATION_REF_NAME) == str(ref):
                return ann.get(ANNOTATION_SOURCE) != SOURCE_REGISTRY
        return False

    def pull(self, ref: str, *, progress: Progress = _no_progress,
             auth: Mapping[str, tuple[str, str]] | None = None) -> Image | None:
        """Ask each puller in turn, even if `ref` is present (`imagePullPolicy: Always`).

        None when no puller knows where `ref` comes from (no registry for it); a puller
        that knows but fails raises (`RegistryError`, `PullAccessDenied`).
        """
        parsed = parse_reference(ref)
        for puller in self.pullers:
            img = puller.pull(self, parsed, progress=progress, auth=auth)
            if img is not None:
                return img
        return None

    def raw_config(self, image: Image) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.read_blob(image.id))
        return doc

    def config(self, image: Image) -> ImageConfig:
        return ImageConfig.from_json(self.raw_config(image))

    def add_image(
        self, config: dict[str, Any], layers: Sequence[Descriptor], refs: Sequence[Reference]
    ) -> Image:
        """Write config + manifest blobs (layers must be stored already) and name the image.

        Names that pointed at another image move here; that image stays as a dangling
        entry if nothing else names it (Docker's `<none>`). Returns the stored image.
        """
        for d in layers:
            if not self.has_blob(d.digest):
                raise ImageError(f"layer blob {d.digest} is not in the store")
        cfg = self.put_blob_bytes(canonical_json(config), MEDIA_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": cfg.to_json(),
            "layers": [d.to_json() for d in layers],
        }
        mdesc = self.put_blob_bytes(canonical_json(manifest), MEDIA_MANIFEST)
        return self._name_manifest(mdesc, refs)

    def add_manifest(self, data: bytes, media_type: str, refs: Sequence[Reference], *,
                     source: str | None = None) -> Image:
        """Store a manifest exactly as fetched (its digest is the registry's) and name it.

        Its config and layer blobs must be stored already (a pull commits them first,
        under a lease). The bytes are kept verbatim so `name@digest` keeps matching.
        """
        manifest = json.loads(data)
        for d in [manifest["config"], *(manifest.get("layers") or [])]:
            if not self.has_blob(d["digest"]):
                raise ImageError(f"blob {d['digest']} is not in the store")
        mdesc = self.put_blob_bytes(data, media_type)
        return self._name_manifest(mdesc, refs, source=source)

    def _name_manifest(self, mdesc: Descriptor, refs: Sequence[Reference], *,
                       source: str | None = None) -> Image:
        """Record a stored manifest in index.json under `refs` (or unnamed, once)."""
        with self._locked():
            index = self._read_index()
            if refs:
                for r in refs:
                    index = self._point(index, r, mdesc, source=source)
            elif not any(m["digest"] == mdesc.digest for m in index):
                index.append(mdesc.to_json())
            self._write_index(index)
        return self._image_from_manifest(mdesc, tuple(refs))

    @staticmethod
    def _point(index: list[dict[str, Any]], ref: Reference, mdesc: Descriptor, *,
               source: str | None = None) -> list[dict[str, Any]]:
        name = str(ref)
        old = [m for m in index if (m.get("annotations") or {}).get(ANNOTATION_REF_NAME) == name]
        out = [m for m in index if m not in old and not (
            m["digest"] == mdesc.digest and not (m.get("annotations") or {}))]
        for m in old:
            if m["digest"] != mdesc.digest and not any(o["digest"] == m["digest"] for o in out):
                out.append({k: v for k, v in m.items() if k != "annotations"})  # now dangling
        entry = mdesc.to_json()
        entry["annotations"] = {ANNOTATION_REF_NAME: name, ANNOTATION_CONTAINERD_NAME: name}
        if source:
            entry["annotations"][ANNOTATION_SOURCE] = source
        out.append(entry)
        return out

    def tag(self, source_ref: str, new_ref: str) -> Image:
        """`image tag SOURCE TARGET`: TARGET names the same manifest (one IMAGE ID)."""
        img = self.get(source_ref)
        target = parse_reference(new_ref)
        if target.digest is not None:
            raise InvalidReference(new_ref, "cannot tag with a digest")
        with self._locked():
            self._write_index(self._point(self._read_index(), target, img.manifest))
        return self.get(str(target))

    def remove(
        self,
        ref: str,
        *,
        force: bool = False,
        in_use: Callable[[Image], bool] | None = None,
    ) -> list[str]:
        """`image rm`: returns Docker's lines (`Untagged: kubia:latest`, `Deleted: sha256:…`).

        By name: untag it; the image goes when its last name goes. By ID: refused if the
        image has several names unless `force`. `in_use(image)` (the caller's knowledge of
        containers) refuses removal, or with `force` only untags (the layers stay until the
        image is removed again when unused).
        """
        img = self.get(ref)
        lines: list[str] = []
        by_name = False
        with contextlib.suppress(InvalidReference):
            parsed = parse_reference(ref)
            repos = {n.repository for n in img.names}
            by_name = parsed in img.names or (
                parsed.digest is not None and parsed.repository in repos)
        busy = in_use is not None and in_use(img)
        if busy and not force:
            raise ImageInUse(ref, img.id)
        if not by_name and len({n.repository for n in img.names}) > 1 and not force:
            raise ImageError(
                f"conflict: unable to delete {img.short_id} (must be forced) - image is "
                "referenced in multiple repositories")
        with self._locked():
            index = self._read_index()
            if by_name and len(img.names) > 1:
                doomed = {str(parse_reference(ref))}
                if parse_reference(ref).digest is not None:
                    doomed = {str(n) for n in img.names if n.repository == parsed.repository}
            else:
                doomed = {str(n) for n in img.names}
            keep = []
            for m in index:
                name = (m.get("annotations") or {}).get(ANNOTATION_REF_NAME)
                if m["digest"] == img.manifest.digest and (name in doomed or name is None):
                    if name is not None:
                        lines.append(f"Untagged: {parse_reference(name).familiar}")
                    continue
                keep.append(m)
            still_named = any(m["digest"] == img.manifest.digest for m in keep)
            if not still_named and busy:
                keep.append(img.manifest.to_json())  # forced while in use: keep, dangling
            elif not still_named:
                lines.append(f"Deleted: {img.id}")
            self._write_index(keep)
            if not still_named and not busy:
                self._gc_locked()
        return lines

    # ------------------------------------------------------------------ layers on disk

    def unpacked_path(self, diff_id: str) -> Path:
        """`unpacked/<hex>` (sha512: `unpacked/sha512-<hex>`) for a well-formed diff_id."""
        alg, hexd = check_digest(diff_id, "diff_id")
        return self.unpacked_dir / (hexd if alg == "sha256" else f"{alg}-{hexd}")

    def unpacked_layer(self, layer: Descriptor, diff_id: str, *, blob: Path | None = None,
                       max_bytes: int | None = None) -> Path:
        """`unpacked/<diff-id hex>`, extracting the blob on first use (atomically).

        The layer is decompressed as its media type says and must hash to `diff_id`;
        it is unpacked into `unpacked/.tmp-*` and renamed into place only when every
        member passed (layers.unpack_layer), so a refused layer leaves nothing. `blob`
        unpacks from a file not (yet) in the store: a pull checks its layers before it
        commits any blob.
        """
        final = self.unpacked_path(diff_id)
        check_digest(layer.digest, "layer digest")
        if final.exists():
            return final
        compression = LAYER_COMPRESSION.get(layer.media_type)
        if compression is None:
            raise ImageError(f"layer {layer.digest}: unsupported media type "
                             f"{layer.media_type!r}")
        lock_path = self.unpacked_dir / f".{final.name}.lock"
        lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            if final.exists():
                return final
            tmp = self.unpacked_dir / f".tmp-{final.name[:12]}-{os.urandom(4).hex()}"
            try:
                unpack_layer(blob or self.blob_path(layer.digest), tmp,
                             compression=compression, diff_id=diff_id, limits=self.limits,
                             max_bytes=max_bytes)
                os.rename(tmp, final)
            except BaseException:
                remove_tree(tmp)
                raise
            log.debug("unpacked layer", diff_id=diff_id)
            return final
        finally:
            os.close(lock_fd)
            with contextlib.suppress(OSError):
                os.unlink(lock_path)

    def unpacked_layers(self, image: Image) -> list[Path]:
        """The image's layers as directories, **topmost first** (overlay lowerdir order)."""
        if len(image.layers) > self.limits.layers:
            raise LimitExceeded(f"image {image.short_id} has {len(image.layers)} layers "
                                f"(at most {self.limits.layers})")
        dirs = [self.unpacked_layer(d, diff) for d, diff in zip(image.layers, image.diff_ids,
                                                                strict=True)]
        return dirs[::-1]

    # ------------------------------------------------------------------ housekeeping

    @contextlib.contextmanager
    def lease(self) -> Iterator[Lease]:
        """Hold blobs against `gc` while a build or pull is writing them."""
        path = self.leases_dir / f"{os.getpid()}-{os.urandom(4).hex()}"
        lease = Lease(path)
        path.write_text("")
        try:
            yield lease
        finally:
            path.unlink(missing_ok=True)

    def _leased(self) -> set[str]:
        out: set[str] = set()
        for p in self.leases_dir.iterdir():
            pid = p.name.partition("-")[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                p.unlink(missing_ok=True)  # its build died: the lease is void
                continue
            with contextlib.suppress(OSError):
                out.update(p.read_text().split())
        return out

    def gc(self) -> list[str]:
        """Delete blobs and unpacked layers no index entry reaches. Returns deleted digests."""
        with self._locked():
            return self._gc_locked()

    def _gc_locked(self) -> list[str]:
        live: set[str] = set()
        live_diffs: set[str] = set()
        for m in self._read_index():
            live.add(m["digest"])
            with contextlib.suppress(OSError, ValueError, KeyError):
                manifest = json.loads(self.read_blob(m["digest"]))
                live.add(manifest["config"]["digest"])
                live.update(layer["digest"] for layer in manifest.get("layers") or [])
                cfg = json.loads(self.read_blob(manifest["config"]["digest"]))
                live_diffs.update(cfg.get("rootfs", {}).get("diff_ids") or [])
        leased = self._leased()
        live |= leased
        live_diffs |= leased
        deleted = []
        for alg, d in self._blob_dirs():
            for p in d.iterdir():
                if f"{alg}:{p.name}" not in live:
                    p.unlink(missing_ok=True)
                    deleted.append(f"{alg}:{p.name}")
        for p in self.unpacked_dir.iterdir():
            if p.name.startswith("."):
                if p.name.startswith(".tmp-") and not _tmp_live(p):
                    remove_tree(p)  # an unpack killed mid-way (kill -9 of the cluster)
                continue
            alg, _, hexd = p.name.rpartition("-")
            if f"{alg or 'sha256'}:{hexd}" not in live_diffs:
                remove_tree(p)
        return deleted

    def disk_usage(self) -> DiskUsage:
        blobs = [p for _alg, d in self._blob_dirs() for p in d.iterdir()]
        unpacked = [p for p in self.unpacked_dir.iterdir() if not p.name.startswith(".")]
        return DiskUsage(
            images=len({m["digest"] for m in self._read_index()}),
            blobs=len(blobs),
            blob_bytes=sum(p.stat().st_size for p in blobs),
            unpacked_layers=len(unpacked),
            unpacked_bytes=sum(_tree_bytes(p) for p in unpacked),
        )

    def new_config(self) -> dict[str, Any]:
        """A fresh config document for `FROM scratch` (architecture/os of this host)."""
        return {
            "created": _now_rfc3339(),
            "architecture": _host_arch(),
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        }

    # `list` last: defined earlier it would shadow the builtin in later annotations.
    def list(self) -> list[ImageSummary]:
        """`image ls` rows, newest first, one per name (dangling images once, as `<none>`)."""
        rows: list[ImageSummary] = []
        for img in self.images():
            created = str(self.raw_config(img).get("created") or "")
            if not img.names:
                rows.append(ImageSummary("<none>", "<none>", img.id, created, img.size))
            for n in img.names:
                rows.append(ImageSummary(n.familiar_repository, n.tag or "<none>", img.id,
                                         created, img.size))
        rows.sort(key=lambda r: (r.created, r.repository, r.tag), reverse=True)
        return rows


class Lease:
    """Digests a build holds; appended to its lease file as they are written."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, digest: str) -> None:
        with open(self.path, "a") as f:
            f.write(digest + "\n")


def _tmp_live(path: Path) -> bool:
    """An `.tmp-*` unpack directory is live while its unpacker holds the layer's lock;
    without a way to ask, treat directories younger than an hour as live."""
    import time

    try:
        return time.time() - os.lstat(path).st_mtime < 3600
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def layer_descriptor(digest: str, size: int, tar_size: int) -> Descriptor:
    return Descriptor(MEDIA_LAYER_GZIP, digest, size, {ANNOTATION_UNCOMPRESSED: str(tar_size)})


def _host_arch() -> str:
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(m, m)


def now_rfc3339() -> str:
    return _now_rfc3339()
