"""A fast reader for the block-style YAML kubeconfigs that miniorch (and kubectl) write.

Why: importing PyYAML and parsing with it costs ~40 ms, a third of a `get pods`. This
reader understands only what those files contain — block mappings, block sequences
of mappings, plain or quoted scalars, `{}` / `[]` — and returns None on anything
else, so the caller falls back to the full YAML loader. It never guesses.
"""

from __future__ import annotations

import json
import re
from typing import Any

_KEY = re.compile(r"^([A-Za-z0-9_.\-/]+):(?: (.*))?$")


class _Unsupported(Exception):
    pass


def _scalar(text: str) -> Any:
    text = text.strip()
    if text in ("{}",):
        return {}
    if text in ("[]",):
        return []
    if text.startswith('"'):
        if not text.endswith('"') or len(text) < 2:
            raise _Unsupported
        return json.loads(text)
    if text.startswith("'"):
        if not text.endswith("'") or len(text) < 2:
            raise _Unsupported
        return text[1:-1].replace("''", "'")
    if not text or text[0] in "&*!|>%@`{[#" or " #" in text:
        raise _Unsupported
    if text in ("null", "~"):
        return None
    if text in ("true", "false"):
        return text == "true"
    return text


def parse(text: str) -> dict[str, Any] | None:
    lines = [ln.rstrip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if any("\t" in ln[: len(ln) - len(ln.lstrip())] for ln in lines) or \
            any(ln.strip() in ("---", "...") for ln in lines):
        return None
    try:
        value, pos = _block(lines, 0, 0)
    except (_Unsupported, ValueError, IndexError):
        return None
    if pos != len(lines) or not isinstance(value, dict):
        return None
    return value


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block(lines: list[str], pos: int, indent: int) -> tuple[Any, int]:
    if lines[pos].lstrip().startswith("- ") or lines[pos].strip() == "-":
        return _sequence(lines, pos, _indent(lines[pos]))
    return _mapping(lines, pos, indent)


def _mapping(lines: list[str], pos: int, indent: int, first: str | None = None
             ) -> tuple[dict[str, Any], int]:
    result: dict[str, Any] = {}
    while pos < len(lines) or first is not None:
        if first is not None:
            content, first = first, None
        else:
            line = lines[pos]
            if _indent(line) != indent:
                if _indent(line) > indent:
                    raise _Unsupported
                break
            content = line.strip()
            if content.startswith("- "):
                break
        m = _KEY.match(content)
        if not m:
            raise _Unsupported
        key, rest = m.group(1), m.group(2)
        pos += 1
        if rest is None or rest == "":
            if pos < len(lines) and (_indent(lines[pos]) > indent or (
                    _indent(lines[pos]) == indent and lines[pos].lstrip().startswith("- "))):
                result[key], pos = _block(lines, pos, _indent(lines[pos]))
            else:
                result[key] = None
        else:
            result[key] = _scalar(rest)
    return result, pos


def _sequence(lines: list[str], pos: int, indent: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    while pos < len(lines) and _indent(lines[pos]) == indent \
            and lines[pos].lstrip().startswith("- "):
        content = lines[pos].strip()[2:]
        if _KEY.match(content):
            # "- key: value" opens a mapping whose keys sit at indent + 2.
            item, pos = _mapping(lines, pos, indent + 2, first=content)
            items.append(item)
        else:
            items.append(_scalar(content))
            pos += 1
    return items, pos
