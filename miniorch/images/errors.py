"""Image errors. Every message is written for the user who typed the command.

    ImageError                      anything the image layer refuses or cannot do
    ├── InvalidReference            `kubia:` / `UPPER/case` — not a Docker reference
    ├── ImageNotFound               no such image in the local store
    │   └── PullAccessDenied        missing locally and no registry to pull it from
    ├── ImageInUse                  `remove` refused: a container uses it (caller's check)
    ├── UnsafePath                  a path or archive member would leave its root
    ├── InvalidDigest               a digest that is not sha256:<64 hex> / sha512:<128 hex>
    ├── LimitExceeded               a manifest, config, layer or member count over Limits
    ├── RegistryError               a registry refused or failed a push/pull (registry.py)
    │   ├── RegistryAuthError       401/403: no or wrong credentials for the registry
    │   ├── InsecureRegistry        plain HTTP asked for a registry that is not on loopback
    │   └── DigestMismatch          fetched bytes do not hash to their descriptor's digest
    └── BuildError                  a build step failed (RUN exited non-zero, COPY source missing …)
        └── DockerfileError         the Dockerfile itself is wrong; names `Dockerfile:<line>`
"""

from __future__ import annotations


class ImageError(Exception):
    """Base of every error the image layer raises."""


class InvalidReference(ImageError):
    def __init__(self, ref: str, why: str = "invalid reference format") -> None:
        super().__init__(f"invalid reference {ref!r}: {why}")
        self.ref = ref


class ImageNotFound(ImageError):
    def __init__(self, ref: str, message: str | None = None) -> None:
        super().__init__(message or f"No such image: {ref}")
        self.ref = ref


class PullAccessDenied(ImageNotFound):
    """Docker's wording, so a user recognises it: the image is not local and cannot be fetched."""

    def __init__(self, ref: str, why: str = "no registry configured") -> None:
        super().__init__(ref, f"pull access denied for {ref}: {why}")


class ImageInUse(ImageError):
    def __init__(self, ref: str, image_id: str) -> None:
        super().__init__(
            f"conflict: unable to remove image {ref} ({image_id[7:19]}): "
            "image is being used by a container (use force to remove it anyway)"
        )
        self.ref = ref
        self.image_id = image_id


class UnsafePath(ImageError):
    """A COPY source, a symlink or a tar member that would reach outside its root."""


class InvalidDigest(ImageError):
    """A digest from a manifest, config, index or registry that is not well formed."""


class LimitExceeded(ImageError):
    """Something from a registry or a layer is larger than `oci.Limits` allows."""


class RegistryError(ImageError):
    """A push or pull failed at the registry (HTTP error, protocol error, unreachable)."""


class RegistryAuthError(RegistryError):
    pass


class InsecureRegistry(RegistryError):
    pass


class DigestMismatch(RegistryError):
    """Content did not verify; nothing from the transfer was stored."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(f"digest mismatch for {what}: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class BuildError(ImageError):
    pass


class DockerfileError(BuildError):
    """A syntax or semantic error in the Dockerfile; the message starts with `name:line:`."""

    def __init__(self, filename: str, line: int, message: str) -> None:
        super().__init__(f"{filename}:{line}: {message}")
        self.filename = filename
        self.line = line
        self.detail = message
