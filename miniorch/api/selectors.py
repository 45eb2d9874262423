"""Label and field selectors, parsed once and matched against objects.

Label selectors take kubectl's grammar: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
`a notin (x)`, `a`, `!a`, comma-separated (all must hold). Field selectors take
`path=value`, `path==value`, `path!=value` over dotted paths (`spec.nodeName`,
`status.phase`, `involvedObject.uid`, `metadata.name`). An unparsable selector is a
`BadRequest`, as kube-apiserver answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from miniorch.api.errors import BadRequest
from miniorch.core.objects import Obj

_SET_RE = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
"""metav1.LabelSelectorOperator → the operators of the text grammar."""
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_./:-]*)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    """one of `=`, `!=`, `in`, `notin`, `exists`, `!`"""
    values: tuple[str, ...] = ()

    def matches(self, value: str | None) -> bool:
        if self.operator == "exists":
            return value is not None
        if self.operator == "!":
            return value is None
        if self.operator == "=":
            return value == self.values[0]
        if self.operator == "!=":
            return value != self.values[0]
        if self.operator == "in":
            return value in self.values
        return value not in self.values  # notin


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses: `a in (x,y),b` → [`a in (x,y)`, `b`]."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in (p.strip() for p in parts) if p]


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        if not text:
            return cls()
        reqs: list[Requirement] = []
        for part in _split_top_level(text):
            eq = _EQ_RE.match(part)
            if eq:
                op = "=" if eq.group(2) in ("=", "==") else "!="
                reqs.append(Requirement(eq.group(1), op, (eq.group(3),)))
                continue
            st = _SET_RE.match(part)
            if not st:
                raise BadRequest(f"unable to parse requirement: invalid label selector: {part!r}")
            negated, key, op, values = st.groups()
            if op:
                if negated:
                    raise BadRequest(f"unable to parse requirement: {part!r}")
                vals = tuple(v.strip() for v in values.split(",") if v.strip())
                reqs.append(Requirement(key, op, vals))
            else:
                reqs.append(Requirement(key, "!" if negated else "exists"))
        return cls(tuple(reqs))

    @classmethod
    def from_match_labels(cls, labels: Mapping[str, str]) -> LabelSelector:
        return cls(tuple(Requirement(k, "=", (v,)) for k, v in sorted(labels.items())))

    @classmethod
    def from_label_selector(cls, selector: Mapping[str, Any] | None) -> LabelSelector:
        """A meta/v1 `LabelSelector` object (`matchLabels` + `matchExpressions`, as
        workloads carry it); an unknown operator matches nothing, as Go's conversion
        fails closed. Validation refuses such selectors before they are stored."""
        selector = selector or {}
        reqs = [Requirement(k, "=", (str(v),))
                for k, v in sorted((selector.get("matchLabels") or {}).items())]
        operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
        for expr in selector.get("matchExpressions") or []:
            op = operators.get(str(expr.get("operator")))
            if op is None:
                return cls((Requirement("", "in", ()),))  # `in ()`: never true
            reqs.append(Requirement(str(expr.get("key", "")), op,
                                    tuple(str(v) for v in expr.get("values") or ())))
        return cls(tuple(sorted(reqs, key=lambda r: r.key)))

    def __str__(self) -> str:
        """apimachinery's `Selector.String()`: `a=b,c in (x,y),!d` ("" when empty)."""
        parts = []
        for r in self.requirements:
            if r.operator in ("=", "!="):
                parts.append(f"{r.key}{r.operator}{r.values[0]}")
            elif r.operator == "exists":
                parts.append(r.key)
            elif r.operator == "!":
                parts.append(f"!{r.key}")
            else:
                parts.append(f"{r.key} {r.operator} ({','.join(sorted(r.values))})")
        return ",".join(parts)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels.get(r.key)) for r in self.requirements)

    def matches_object(self, obj: Obj) -> bool:
        return self.matches(obj.get("metadata", {}).get("labels"))


def _lookup(obj: Obj, path: str) -> str | None:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if node is None:
        return None
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> FieldSelector:
        if not text:
            return cls()
        reqs: list[Requirement] = []
        for part in _split_top_level(text):
            eq = _EQ_RE.match(part)
            if not eq:
                raise BadRequest(f"invalid field selector: {part!r}")
            op = "=" if eq.group(2) in ("=", "==") else "!="
            reqs.append(Requirement(eq.group(1), op, (eq.group(3),)))
        return cls(tuple(reqs))

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches_object(self, obj: Obj) -> bool:
        for r in self.requirements:
            value = _lookup(obj, r.key)
            # An absent field compares as "" (kube-apiserver's field sets hold "" for it).
            if not r.matches(value if value is not None else ""):
                return False
        return True

    def value_of(self, key: str) -> str | None:
        """The value of an equality requirement on `key` (used to narrow watches)."""
        for r in self.requirements:
            if r.key == key and r.operator == "=":
                return r.values[0]
        return None
