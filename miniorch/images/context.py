"""The build context: which files COPY/ADD may read, and how sources are resolved.

Rules (Docker's, with one stricter choice):
  - `.dockerignore` patterns (Go `filepath.Match` plus `**`, `!` exceptions, last match
    wins; a path is excluded if it or any parent directory matches) hide files from
    COPY/ADD as if they did not exist.
  - A source is relative to the context root (a leading `/` too, as in Docker); after
    cleaning it must stay inside: `COPY ../x` → "forbidden path outside the build context".
  - Symlinks met while resolving a source (`COPY link/file`, or a source that is itself a
    symlink) are followed only while they stay in the context; one that points outside is
    refused (Docker would silently re-root it; we refuse, which is easier to reason about).
    Symlinks *inside* a copied directory are copied as symlinks, never followed.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from miniorch.images.errors import UnsafePath


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):  # `**/` matches zero or more directories
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("^"):
                    body = "!" + body[1:]
                out.append(fnmatch.translate(f"[{body}]")[4:-3])
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    exclude: bool


class DockerIgnore:
    """Compiled `.dockerignore` rules."""

    def __init__(self, text: str = "") -> None:
        rules = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclude = not line.startswith("!")
            if not exclude:
                line = line[1:].strip()
            line = posixpath.normpath(line.lstrip("/")) if line.strip("/") else ""
            if not line or line == ".":
                continue
            rules.append(_Rule(_pattern_regex(line), exclude))
        self.rules = tuple(rules)

    @classmethod
    def load(cls, context: Path) -> DockerIgnore:
        path = context / ".dockerignore"
        return cls(path.read_text() if path.is_file() else "")

    def excluded(self, rel: str) -> bool:
        """Is the context-relative path `rel` (`a/b.txt`) hidden?"""
        if not self.rules or not rel or rel == ".":
            return False
        parts = rel.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        result = False
        for rule in self.rules:
            if any(rule.regex.match(c) for c in candidates):
                result = rule.exclude
        return result


def clean_source(src: str) -> str:
    """Context-relative, cleaned: `/a/./b` → `a/b`, `.` → ``; refuses `..` escapes."""
    cleaned = posixpath.normpath(src).lstrip("/")
    if cleaned == ".":
        return ""
    if cleaned == ".." or cleaned.startswith("../"):
        raise UnsafePath(f"forbidden path outside the build context: {src}")
    return cleaned


def resolve_in_context(context: Path, rel: str) -> Path:
    """Host path of context-relative `rel`, following symlinks only inside the context."""
    root = context.resolve()
    parts = [p for p in rel.split("/") if p]
    cur: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if not cur:
                raise UnsafePath(f"forbidden path outside the build context: {rel}")
            cur.pop()
            continue
        host = root.joinpath(*cur, part)
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            cur.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > 40:
                raise UnsafePath(f"too many levels of symbolic links: {rel}")
            target = os.readlink(host)
            if target.startswith("/"):
                t = Path(os.path.normpath(target))
                if t != root and root not in t.parents:
                    raise UnsafePath(f"forbidden path outside the build context: {rel} "
                                     f"(symlink to {target})")
                cur = list(t.relative_to(root).parts)
            else:
                joined = posixpath.normpath(posixpath.join(*cur, target) if cur else target)
                if joined == ".." or joined.startswith("../"):
                    raise UnsafePath(f"forbidden path outside the build context: {rel} "
                                     f"(symlink to {target})")
                cur = [] if joined == "." else joined.split("/")
            continue
        cur.append(part)
    return root.joinpath(*cur)
