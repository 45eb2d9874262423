"""Request bodies as JSON values, decoded the way kube-apiserver's Go decoder sees them.

    request body (JSON object, patch, YAML document) ─► loads / sanitize ─► plain value
                                                      └► BadRequest (caller's wording)

Two things a Python decoder lets through that Go's does not, and that must never reach
the registry:
- **Lone surrogates.** `"\\ud800"` is valid JSON text but no Unicode string: Go's
  decoder turns it into U+FFFD, Python keeps a code point that UTF-8 cannot encode, so
  an object stored with one made every later GET, list and watch of its kind fail
  (500) at serialization. Here they become U+FFFD, as in Go, keys included.
- **Unbounded nesting.** Every layer above (defaulting, patching, deep copies, the
  unknown-field walk) recurses over the value: a body nested a few hundred levels
  deep raised RecursionError (500) somewhere in the middle of a request. Values deeper
  than `MAX_DEPTH` are refused up front (`TooDeep`, a ValueError); no Kubernetes object
  nests anywhere near it.

The walk is iterative, so checking a hostile value cannot itself overflow the stack.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 100
"""Deepest nesting accepted (objects and arrays); a Pod nests about 12 levels."""

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class TooDeep(ValueError):
    """A value nested deeper than MAX_DEPTH."""

    def __init__(self) -> None:
        super().__init__(f"exceeded max depth of {MAX_DEPTH}")


def loads(data: bytes | str) -> Any:
    """`json.loads`, then `sanitize`. Raises ValueError (including TooDeep) or
    UnicodeDecodeError on a body that is not acceptable JSON."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise TooDeep() from None
    return sanitize(value)


def _clean(text: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


def sanitize(value: Any) -> Any:
    """The value with lone surrogates replaced by U+FFFD (in place where it is a
    container); TooDeep if it nests deeper than MAX_DEPTH."""
    if isinstance(value, str):
        return _clean(value)
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > MAX_DEPTH:
                raise TooDeep()
            if any(_LONE_SURROGATE.search(key) for key in node):
                items = list(node.items())
                node.clear()
                node.update((_clean(key), item) for key, item in items)
            for key, item in node.items():
                if isinstance(item, str):
                    node[key] = _clean(item)
                elif isinstance(item, dict | list):
                    stack.append((item, depth + 1))
        elif isinstance(node, list):
            if depth > MAX_DEPTH:
                raise TooDeep()
            for index, item in enumerate(node):
                if isinstance(item, str):
                    node[index] = _clean(item)
                elif isinstance(item, dict | list):
                    stack.append((item, depth + 1))
    return value
