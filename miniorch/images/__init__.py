"""Images: the local OCI image store, the Dockerfile builder and the built-in base images.

Public surface (everything else is private to this package):

    ImageStore(root, *, pullers=None, base_cache=None)   the store (store.py)
    build(store, context_dir, *, tag, dockerfile, build_args, progress) -> Image
    ensure_base_images(store) -> [busybox, python]
    parse_reference(ref) -> Reference
    Image, ImageConfig, ImageSummary, Descriptor, DiskUsage, Puller, Progress
    errors: ImageError and subclasses (errors.py draws the tree)

Registries (imported on use, to keep the CLI's start quick):
    registry.push(store, ref, *, insecure, auth, progress, config, chunk_size) -> PushResult
    registry.pull(store, ref, *, insecure, auth, progress, config) -> Image
    regconfig.open_store(home) -> ImageStore with pullers [base images, registries]
    regconfig.load_config(home) / save_auth(home, registry, Credentials)
    progress.Transfer events; LineRenderer / BarRenderer

Layering: images sits beside sandbox above core; it imports neither the API nor nodes.
The node layer asks `store.ensure(ref)` then `store.unpacked_layers(image)` (overlay
lowerdirs, topmost first) and `store.config(image)` (entrypoint, cmd, env, ...).
"""

from miniorch.images.base import BaseImages, ensure_base_images
from miniorch.images.build import build
from miniorch.images.errors import (
    BuildError,
    DockerfileError,
    ImageError,
    ImageInUse,
    ImageNotFound,
    InvalidReference,
    PullAccessDenied,
    UnsafePath,
)
from miniorch.images.oci import Descriptor, Image, ImageConfig, ImageSummary
from miniorch.images.reference import Reference, parse_reference
from miniorch.images.store import DiskUsage, ImageStore, Progress, Puller

__all__ = [
    "BaseImages",
    "BuildError",
    "Descriptor",
    "DiskUsage",
    "DockerfileError",
    "Image",
    "ImageConfig",
    "ImageError",
    "ImageInUse",
    "ImageNotFound",
    "ImageStore",
    "ImageSummary",
    "InvalidReference",
    "Progress",
    "PullAccessDenied",
    "Puller",
    "Reference",
    "UnsafePath",
    "build",
    "ensure_base_images",
    "parse_reference",
]
