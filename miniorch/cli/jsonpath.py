"""kubectl's JSONPath templates (`-o jsonpath='{.items[*].metadata.name}'`).

A template is literal text with `{...}` actions: a path (`.a.b`, `['a.b']`, `[0]`,
`[*]`, `[1:3]`, `..name`, `[?(@.type=="Ready")]`, unions `[0,1]`), a string literal
(`{"\\n"}`), or `{range PATH}...{end}`. Like kubectl's printer: each action's results
are written space-separated; strings raw, numbers as Go prints them, maps and lists as
compact JSON; a missing key gives no output (kubectl's `allowMissingKeys`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from miniorch.cli.errors import CliError

_MISSING = object()


class JSONPathError(CliError):
    pass


@dataclass
class _Node:
    kind: str  # "text" | "path" | "range" | "literal"
    value: str = ""
    steps: list[tuple[str, Any]] = field(default_factory=list)
    body: list[_Node] = field(default_factory=list)


def render(template: str, data: Any) -> str:
    nodes = _parse_template(template)
    out: list[str] = []
    _execute(nodes, data, data, out)
    return "".join(out)


# -- template parsing ---------------------------------------------------------------------


def _split_actions(template: str) -> list[tuple[str, str]]:
    parts: list[tuple[str, str]] = []
    i = 0
    while i < len(template):
        start = template.find("{", i)
        if start < 0:
            parts.append(("text", template[i:]))
            break
        if start > i:
            parts.append(("text", template[i:start]))
        j, quote = start + 1, ""
        while j < len(template):
            ch = template[j]
            if quote:
                if ch == "\\":
                    j += 1
                elif ch == quote:
                    quote = ""
            elif ch in "\"'":
                quote = ch
            elif ch == "}":
                break
            j += 1
        if j >= len(template):
            raise JSONPathError(f"error parsing jsonpath {template}, unclosed action")
        parts.append(("action", template[start + 1:j].strip()))
        i = j + 1
    return parts


def _parse_template(template: str) -> list[_Node]:
    root: list[_Node] = []
    stack: list[list[_Node]] = [root]
    for kind, text in _split_actions(template):
        if kind == "text":
            stack[-1].append(_Node("text", text))
        elif text == "end":
            if len(stack) == 1:
                raise JSONPathError(f"error parsing jsonpath {template}, not in range")
            stack.pop()
        elif text.startswith("range "):
            node = _Node("range", steps=_parse_path(text[6:].strip()))
            stack[-1].append(node)
            stack.append(node.body)
        elif text[:1] in "\"'":
            stack[-1].append(_Node("literal", _unquote(text)))
        else:
            stack[-1].append(_Node("path", steps=_parse_path(text)))
    if len(stack) != 1:
        raise JSONPathError(f"error parsing jsonpath {template}, unclosed range")
    return root


def _unquote(text: str) -> str:
    if text[:1] == '"':
        try:
            return str(json.loads(text))
        except ValueError:
            raise JSONPathError(f"invalid string literal {text}") from None
    return text[1:-1]


_FIELD = re.compile(r"[^.\[\]\s]+")


def _parse_path(expr: str) -> list[tuple[str, Any]]:
    steps: list[tuple[str, Any]] = []
    i = 0
    if expr[:1] in "$@":
        steps.append(("root" if expr[0] == "$" else "current", None))
        i = 1
    while i < len(expr):
        if expr.startswith("..", i):
            m = _FIELD.match(expr, i + 2)
            if not m:
                raise JSONPathError(f"invalid jsonpath {expr}")
            steps.append(("recursive", m.group()))
            i = m.end()
        elif expr[i] == ".":
            m = _FIELD.match(expr, i + 1)
            if not m:
                i += 1  # a lone "." is the current object
                continue
            steps.append(("field", m.group()))
            i = m.end()
        elif expr[i] == "[":
            depth, j = 0, i
            while j < len(expr):
                if expr[j] == "[":
                    depth += 1
                elif expr[j] == "]":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= len(expr):
                raise JSONPathError(f"invalid jsonpath {expr}: unterminated [")
            steps.append(_parse_bracket(expr[i + 1:j].strip(), expr))
            i = j + 1
        elif expr[i].isspace():
            i += 1
        else:
            m = _FIELD.match(expr, i)
            if not m:
                raise JSONPathError(f"invalid jsonpath {expr}")
            steps.append(("field", m.group()))
            i = m.end()
    return steps


def _parse_bracket(inner: str, expr: str) -> tuple[str, Any]:
    if inner == "*":
        return ("wildcard", None)
    if inner.startswith("?(") and inner.endswith(")"):
        return ("filter", _parse_filter(inner[2:-1].strip()))
    if ":" in inner and inner[:1] not in "\"'":
        bounds = [int(p) if p.strip() else None for p in inner.split(":")]
        return ("slice", bounds)
    items: list[Any] = []
    for part in (p.strip() for p in inner.split(",")):
        if part[:1] in "\"'":
            items.append(_unquote(part))
        else:
            try:
                items.append(int(part))
            except ValueError:
                raise JSONPathError(f"invalid array index {part} in {expr}") from None
    return ("union", items)


_FILTER = re.compile(r"^(@[^\s=!<>]*)\s*(==|!=|<=|>=|<|>|=~)?\s*(.*)$")


def _parse_filter(text: str) -> tuple[list[tuple[str, Any]], str, Any]:
    m = _FILTER.match(text)
    if not m:
        raise JSONPathError(f"unrecognized filter {text}")
    path, op, literal = m.group(1), m.group(2) or "", m.group(3).strip()
    value: Any = None
    if op:
        if literal[:1] in "\"'":
            value = _unquote(literal)
        elif literal in ("true", "false"):
            value = literal == "true"
        else:
            try:
                value = float(literal) if "." in literal else int(literal)
            except ValueError:
                value = literal
    return (_parse_path(path), op, value)


# -- evaluation ---------------------------------------------------------------------------


def _execute(nodes: list[_Node], root: Any, current: Any, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text" or node.kind == "literal":
            out.append(node.value)
        elif node.kind == "path":
            out.append(_print_results(_evaluate(node.steps, root, current)))
        else:
            for value in _evaluate(node.steps, root, current):
                for item in (value if isinstance(value, list) else [value]):
                    _execute(node.body, root, item, out)


def _evaluate(steps: list[tuple[str, Any]], root: Any, current: Any) -> list[Any]:
    values = [current]
    for op, arg in steps:
        nxt: list[Any] = []
        for value in values:
            if op == "root":
                nxt.append(root)
            elif op == "current":
                nxt.append(value)
            elif op == "field":
                if isinstance(value, dict) and arg in value:
                    nxt.append(value[arg])
            elif op == "recursive":
                _recurse(value, arg, nxt)
            elif op == "wildcard":
                if isinstance(value, list):
                    nxt.extend(value)
                elif isinstance(value, dict):
                    nxt.extend(value[k] for k in sorted(value))
            elif op == "slice":
                if isinstance(value, list):
                    nxt.extend(value[slice(*arg)])
            elif op == "union":
                for key in arg:
                    if isinstance(key, int) and isinstance(value, list):
                        if -len(value) <= key < len(value):
                            nxt.append(value[key])
                        else:
                            raise JSONPathError(f"array index out of bounds: index {key}, "
                                                f"length {len(value)}")
                    elif isinstance(key, str) and isinstance(value, dict) and key in value:
                        nxt.append(value[key])
            elif op == "filter":
                items = value if isinstance(value, list) else (
                    list(value.values()) if isinstance(value, dict) else [])
                nxt.extend(item for item in items if _matches(arg, root, item))
        values = nxt
    return values


def _recurse(value: Any, name: str, out: list[Any]) -> None:
    if isinstance(value, dict):
        if name in value:
            out.append(value[name])
        for v in value.values():
            _recurse(v, name, out)
    elif isinstance(value, list):
        for v in value:
            _recurse(v, name, out)


def _matches(spec: tuple[list[tuple[str, Any]], str, Any], root: Any, item: Any) -> bool:
    steps, op, expected = spec
    found = _evaluate(steps, root, item)
    if not op:
        return bool(found)
    if not found:
        return False
    actual = found[0]
    try:
        if op == "==":
            return bool(actual == expected or str(actual) == str(expected))
        if op == "!=":
            return bool(actual != expected and str(actual) != str(expected))
        if op == "=~":
            return re.search(str(expected), str(actual)) is not None
        a, b = float(actual), float(expected)
        return {"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op]
    except (TypeError, ValueError):
        return False


def _print_results(results: list[Any]) -> str:
    texts: list[str] = []
    for r in results:
        if isinstance(r, (dict, list)):
            texts.append(json.dumps(r, separators=(",", ":"), sort_keys=True))
        elif isinstance(r, bool):
            texts.append("true" if r else "false")
        elif r is None:
            texts.append("<nil>")
        elif isinstance(r, float) and r.is_integer():
            texts.append(f"{r:.0f}")
        else:
            texts.append(str(r))
    return " ".join(texts)
