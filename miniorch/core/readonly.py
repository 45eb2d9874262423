"""Read-only objects: what shared informers hand to every consumer.

One parsed copy of each object is shared by every handler of a shared informer (the
scheduler, the controllers, each kubelet, the proxy), so nobody may edit it: an edit
would silently change what the others see. `FrozenDict` and `FrozenList` are `dict` and
`list` (so `Obj` code, `json.dumps` and `==` work unchanged) whose mutators raise
`TypeError`. To edit, take a copy: `thaw(obj)` or `copy.deepcopy(obj)` give plain,
mutable objects; `dict(obj)` / `{**obj}` give a plain top level over frozen values.

This is the store's `list(shared=True)` contract ("never mutate them"), enforced: the
store hands out the same copies (which is why this module is in `core`).
"""

from __future__ import annotations

from sys import intern
from typing import Any, NoReturn

from miniorch.core.objects import Obj


def _refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise TypeError("read-only object shared by informer consumers: "
                    "edit a copy (thaw() or copy.deepcopy())")


class FrozenDict(dict[str, Any]):
    """A `dict` that refuses every change (see the module docstring)."""

    __slots__ = ()

    def __setitem__(self, key: str, value: Any) -> None:
        _refuse()

    def __delitem__(self, key: str) -> None:
        _refuse()

    def __ior__(self, other: Any) -> FrozenDict:  # type: ignore[override,misc]
        _refuse()

    def clear(self) -> None:
        _refuse()

    def pop(self, *args: Any) -> Any:
        _refuse()

    def popitem(self) -> tuple[str, Any]:
        _refuse()

    def setdefault(self, *args: Any) -> Any:
        _refuse()

    def update(self, *args: Any, **kwargs: Any) -> None:
        _refuse()

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        copied: dict[str, Any] = thaw(self)
        return copied

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))


class FrozenList(list[Any]):
    """A `list` that refuses every change (see the module docstring)."""

    __slots__ = ()

    def __setitem__(self, index: Any, value: Any) -> None:
        _refuse()

    def __delitem__(self, index: Any) -> None:
        _refuse()

    def __iadd__(self, other: Any) -> FrozenList:  # type: ignore[misc]
        _refuse()

    def __imul__(self, other: Any) -> FrozenList:  # type: ignore[misc]
        _refuse()

    def append(self, value: Any) -> None:
        _refuse()

    def extend(self, values: Any) -> None:
        _refuse()

    def insert(self, index: Any, value: Any) -> None:
        _refuse()

    def pop(self, *args: Any) -> Any:
        _refuse()

    def remove(self, value: Any) -> None:
        _refuse()

    def clear(self) -> None:
        _refuse()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        _refuse()

    def reverse(self) -> None:
        _refuse()

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        copied: list[Any] = thaw(self)
        return copied

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self),))


def _freeze_value(value: Any) -> Any:
    if isinstance(value, dict):
        # Keys interned: 10,000 pods repeat the same few hundred key strings, each
        # parsed document otherwise holding its own copies (~4 KB a pod).
        return value if type(value) is FrozenDict else \
            FrozenDict((intern(k) if type(k) is str else k, _freeze_value(v))
                       for k, v in value.items())
    if isinstance(value, list):
        return value if type(value) is FrozenList else FrozenList(_freeze_value(v) for v in value)
    return value


def freeze(obj: Obj) -> Obj:
    """A read-only deep copy of `obj` (itself, if it is already frozen)."""
    frozen: Obj = _freeze_value(obj)
    return frozen


def thaw(value: Any) -> Any:
    """A plain, mutable deep copy of a (possibly frozen) JSON-like value."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    return value
