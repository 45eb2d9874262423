"""Dockerfile parsing: text → a list of `Instruction`s, each knowing its line number.

What this module does (Docker's frontend rules, in order):
  1. parser directives: leading `# escape=` / `# syntax=` comment lines (until the first
     other line); `escape` changes the line-continuation character (`\\` or `` ` ``);
  2. comments: a line whose first non-blank character is `#` is dropped, also in the
     middle of a continued instruction; blank lines inside a continuation are dropped;
  3. continuation: a line ending in the escape character joins the next one;
  4. each logical line is `KEYWORD [--flag=value ...] rest`; the keyword is
     case-insensitive; for RUN/CMD/ENTRYPOINT/COPY/ADD/SHELL/VOLUME a `rest` that is a
     JSON array of strings is the exec form, anything else the shell form.
Variable expansion (`$VAR`, `${VAR:-default}`) and word splitting for ENV/LABEL/ARG
happen in the builder, which knows the variables; helpers for both live here.
Every error is a DockerfileError naming the file and line: `Dockerfile:3: unknown
instruction: COPPY`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from miniorch.images.errors import DockerfileError

INSTRUCTIONS = frozenset({
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
    "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
    "HEALTHCHECK", "SHELL",
})
JSON_FORM = frozenset({"RUN", "CMD", "ENTRYPOINT", "COPY", "ADD", "SHELL", "VOLUME"})
FLAGGED = frozenset({"FROM", "RUN", "COPY", "ADD", "HEALTHCHECK"})
"""Only these take `--flag`s; elsewhere `--x` is an ordinary argument (`CMD --port 80`)."""
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_FLAG = re.compile(r"--([a-zA-Z][a-zA-Z0-9-]*)(?:=(\S*))?")


@dataclass(frozen=True)
class Instruction:
    line: int
    """1-based line where the instruction starts."""
    keyword: str
    """Upper-case: `COPY`."""
    rest: str
    """Everything after the flags, continuation lines joined (exactly as written)."""
    flags: Mapping[str, str] = field(default_factory=dict, hash=False)
    """`--chown=1000:1000` → {"chown": "1000:1000"}."""
    exec_form: tuple[str, ...] | None = None
    """The JSON array when the exec form was used, else None."""

    @property
    def original(self) -> str:
        """For progress lines and history: `COPY --chown=1:1 app.py /app.py`."""
        flags = "".join(f"--{k}={v} " for k, v in self.flags.items())
        return f"{self.keyword} {flags}{self.rest}".rstrip()


@dataclass(frozen=True)
class Dockerfile:
    filename: str
    instructions: tuple[Instruction, ...]
    escape: str = "\\"

    def error(self, instr: Instruction | int, message: str) -> DockerfileError:
        line = instr if isinstance(instr, int) else instr.line
        return DockerfileError(self.filename, line, message)


def parse_dockerfile(text: str, *, filename: str = "Dockerfile") -> Dockerfile:
    lines = text.splitlines()
    escape = "\\"
    i = 0
    # Parser directives: only at the very top, each at most once.
    seen: set[str] = set()
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i].strip())
        if not m:
            break
        name, value = m.group(1).lower(), m.group(2)
        if name in seen:
            raise DockerfileError(filename, i + 1, f"only one {name} parser directive can be used")
        seen.add(name)
        if name == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(filename, i + 1, f"invalid escape token {value!r}: "
                                      "must be ` or \\")
            escape = value
        i += 1

    instructions: list[Instruction] = []
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i + 1
        parts: list[str] = []
        cur = raw.rstrip()
        while True:
            if cur.endswith(escape) and not cur.endswith(escape * 2):
                parts.append(cur[: -len(escape)])
                i += 1
                # Skip comments and blank lines inside the continuation.
                while i < len(lines) and (not lines[i].strip() or
                                          lines[i].strip().startswith("#")):
                    i += 1
                if i >= len(lines):
                    break
                cur = lines[i].rstrip()
                continue
            parts.append(cur)
            i += 1
            break
        logical = "".join(parts).strip()
        instructions.append(_parse_line(filename, start, logical))
    if not instructions:
        raise DockerfileError(filename, 1, "file with no instructions")
    return Dockerfile(filename, tuple(instructions), escape)


def _parse_line(filename: str, line: int, logical: str) -> Instruction:
    word, _, rest = logical.partition(" ")
    if "\t" in word:
        word, _, more = word.partition("\t")
        rest = f"{more} {rest}"
    keyword = word.upper()
    if keyword not in INSTRUCTIONS:
        raise DockerfileError(filename, line, f"unknown instruction: {word}")
    rest = rest.strip()
    flags: dict[str, str] = {}
    while keyword in FLAGGED and rest.startswith("--"):
        token, _, after = rest.partition(" ")
        m = _FLAG.fullmatch(token)
        if not m:
            raise DockerfileError(filename, line, f"{keyword}: invalid flag {token!r}")
        flags[m.group(1)] = m.group(2) if m.group(2) is not None else "true"
        rest = after.strip()
    exec_form: tuple[str, ...] | None = None
    if keyword in JSON_FORM and rest.startswith("["):
        try:
            parsed = json.loads(rest)
        except ValueError:
            parsed = None  # Docker: not valid JSON → shell form
        if isinstance(parsed, list) and all(isinstance(a, str) for a in parsed):
            exec_form = tuple(parsed)
    if not rest and keyword not in ("RUN", "CMD", "ENTRYPOINT"):
        raise DockerfileError(filename, line, f"{keyword} requires at least one argument")
    return Instruction(line, keyword, rest, flags, exec_form)


# --------------------------------------------------------------------------- words


def expand(text: str, lookup: Callable[[str], str | None], *, escape: str = "\\") -> str:
    """Docker's variable substitution on one string (quotes are kept, see `split_words`)."""
    return _Expander(text, lookup, escape).run(keep_quotes=True)[0]


def split_words(text: str, lookup: Callable[[str], str | None], *, escape: str = "\\"
                ) -> list[str]:
    """Shell-like words with quotes removed and variables expanded (for ENV/LABEL/ARG...)."""
    return _Expander(text, lookup, escape).run(keep_quotes=False)


class _Expander:
    def __init__(self, text: str, lookup: Callable[[str], str | None], escape: str) -> None:
        self.s, self.lookup, self.esc, self.i = text, lookup, escape, 0

    def run(self, *, keep_quotes: bool) -> list[str]:
        words: list[str] = []
        cur: list[str] = []
        in_word = False
        quote = ""
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if quote == "'":
                if c == "'":
                    quote = ""
                    if keep_quotes:
                        cur.append(c)
                else:
                    cur.append(c)
                self.i += 1
                continue
            if c == self.esc and self.i + 1 < len(s):
                nxt = s[self.i + 1]
                if keep_quotes and nxt != "$":
                    cur.append(c)
                if quote == '"' and nxt not in ('"', "$", self.esc) and not keep_quotes:
                    cur.append(c)
                cur.append(nxt)
                self.i += 2
                in_word = True
                continue
            if c == "$":
                cur.append(self._variable())
                in_word = True
                continue
            if quote == '"':
                if c == '"':
                    quote = ""
                    if keep_quotes:
                        cur.append(c)
                else:
                    cur.append(c)
                self.i += 1
                continue
            if c in "'\"":
                quote = c
                in_word = True
                if keep_quotes:
                    cur.append(c)
                self.i += 1
                continue
            if c in " \t" and not keep_quotes:
                if in_word:
                    words.append("".join(cur))
                    cur, in_word = [], False
                self.i += 1
                continue
            cur.append(c)
            in_word = True
            self.i += 1
        if quote:
            raise ValueError(f"unterminated quote in {s!r}")
        if in_word or keep_quotes:
            words.append("".join(cur))
        return words

    def _variable(self) -> str:
        s = self.s
        self.i += 1  # the $
        if self.i < len(s) and s[self.i] == "{":
            end = s.find("}", self.i)
            if end == -1:
                raise ValueError(f"missing '}}' in {s!r}")
            body = s[self.i + 1 : end]
            self.i = end + 1
            m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?::([-+])(.*))?", body, re.S)
            if not m:
                raise ValueError(f"bad substitution ${{{body}}}")
            name, op, word = m.group(1), m.group(2), m.group(3) or ""
            value = self.lookup(name)
            if op == "-":
                return value if value else word
            if op == "+":
                return word if value else ""
            return value or ""
        m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", s[self.i :])
        if not m:
            return "$"
        self.i += m.end()
        return self.lookup(m.group(0)) or ""


def parse_key_values(text: str, lookup: Callable[[str], str | None], *, keyword: str,
                     escape: str = "\\") -> list[tuple[str, str]]:
    """`ENV a=1 b="x y"` / legacy `ENV a x y`; `LABEL k=v ...`. Raises ValueError."""
    words = split_words(text, lookup, escape=escape)
    if not words:
        raise ValueError(f"{keyword} requires at least one argument")
    if "=" not in words[0]:
        if keyword == "LABEL":
            raise ValueError("LABEL requires key=value pairs")
        # Legacy `ENV key value with spaces`: the value is the raw rest, expanded.
        key, _, value = text.strip().partition(" ")
        if not value.strip():
            raise ValueError(f"{keyword} names a variable without a value: {key}")
        joined = " ".join(split_words(value, lookup, escape=escape))
        return [(key, joined)]
    out = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq or not key:
            raise ValueError(f"{keyword} syntax: {w!r} is not key=value")
        out.append((key, value))
    return out
