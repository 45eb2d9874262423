"""Image references, parsed as Docker parses them (distribution/reference).

    kubia                     → docker.io/library/kubia:latest   (familiar: kubia:latest)
    luksa/kubia:v1            → docker.io/luksa/kubia:v1
    127.0.0.1:5000/kubia:1    → 127.0.0.1:5000/kubia:1
    kubia@sha256:<64 hex>     → docker.io/library/kubia@sha256:…  (no implied tag)

The first path component is a registry domain only if it contains `.` or `:`, or is
`localhost` (Docker's rule). A reference is immutable and hashable; `str()` gives the
fully qualified form, which is also the name the store writes into `index.json`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from miniorch.images.errors import InvalidReference

DEFAULT_DOMAIN = "docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?\Z|\[[0-9a-fA-F:.]+\](?::[0-9]+)?\Z"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}\Z")
_NAME_MAX = 255


@dataclass(frozen=True, order=True)
class Reference:
    """A parsed, normalised image reference. `tag` is None only for digest references."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """`docker.io/library/kubia` — the fully qualified name without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """`kubia`, `luksa/kubia`, `127.0.0.1:5000/kubia` — what `image ls` shows."""
        if self.domain != DEFAULT_DOMAIN:
            return self.repository
        path = self.path
        if path.startswith(OFFICIAL_PREFIX) and "/" not in path[len(OFFICIAL_PREFIX) :]:
            path = path[len(OFFICIAL_PREFIX) :]
        return path

    @property
    def familiar(self) -> str:
        """`kubia:latest` — short form for messages."""
        return self._suffixed(self.familiar_repository)

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, tag, None)

    def _suffixed(self, name: str) -> str:
        if self.tag is not None:
            name += f":{self.tag}"
        if self.digest is not None:
            name += f"@{self.digest}"
        return name

    def __str__(self) -> str:
        return self._suffixed(self.repository)


def parse_reference(ref: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise `ref`; with `default_tag`, an untagged name gets `:latest`.

    Raises InvalidReference with Docker's reasons (uppercase repository names, bad tags).
    """
    if not ref or ref != ref.strip():
        raise InvalidReference(ref)
    remainder, digest = ref, None
    if "@" in ref:
        remainder, digest = ref.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidReference(ref, "invalid digest (want sha256:<64 lowercase hex>)")
    tag = None
    colon = remainder.rfind(":")
    if colon != -1 and "/" not in remainder[colon + 1 :]:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidReference(ref, f"invalid tag {tag!r}")
    if not remainder:
        raise InvalidReference(ref)

    slash = remainder.find("/")
    first = remainder[:slash] if slash != -1 else ""
    if slash == -1 or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, path = DEFAULT_DOMAIN, remainder
    else:
        domain, path = first, remainder[slash + 1 :]
        if not _DOMAIN.match(domain):
            raise InvalidReference(ref, f"invalid registry {domain!r}")
    if domain == "index.docker.io":
        domain = DEFAULT_DOMAIN
    if path.lower() != path:
        raise InvalidReference(ref, "repository name must be lowercase")
    if not all(_COMPONENT.match(c) for c in path.split("/")):
        raise InvalidReference(ref)
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    if len(f"{domain}/{path}") > _NAME_MAX:
        raise InvalidReference(ref, "repository name must not be more than 255 characters")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)
