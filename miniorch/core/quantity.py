"""Kubernetes resource quantities (`100m`, `0.5`, `128Mi`, `1G`, `1e3`), as Decimals.

A quantity is a signed decimal number with an optional suffix: a binary SI one
(`Ki Mi Gi Ti Pi Ei`, powers of 1024), a decimal SI one (`n u m "" k M G T P E`,
powers of 1000) or a decimal exponent (`e3`, `E-2`). Note that `1E` is one exa,
while `1E3` is one thousand, as apimachinery's parser reads them.

Values are exact (`Decimal`), so `0.1 + 0.2` cpus is exactly `300m`; the scheduler
compares sums of requests against allocatable without float rounding.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -3, "u": -2, "m": -1, "": 0, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_QUANTITY_RE = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"((?:[eE][+-]?[0-9]+)|[KMGTPE]i|[numkMGTPE])?$")


# apimachinery's own wording, returned to clients verbatim.
QUANTITY_FORMAT_MESSAGE = ("quantities must match the regular expression "
                           "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


class QuantityError(ValueError):
    """Not a Kubernetes quantity."""


def parse_quantity(text: object) -> Decimal:
    """`"100m"` → `Decimal("0.1")`, `"128Mi"` → `Decimal(134217728)`."""
    if isinstance(text, Decimal):
        return text
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise QuantityError(QUANTITY_FORMAT_MESSAGE)
    if isinstance(text, int | float):
        return Decimal(str(text))
    match = _QUANTITY_RE.match(text.strip())
    if not match:
        raise QuantityError(QUANTITY_FORMAT_MESSAGE)
    number, suffix = match.group(1), match.group(2) or ""
    try:
        value = Decimal(number)
    except InvalidOperation:  # pragma: no cover - the regex already checked it
        raise QuantityError(text) from None
    if suffix in _BINARY:
        return value * (Decimal(1024) ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return value.scaleb(3 * _DECIMAL[suffix])
    return value.scaleb(int(suffix[1:]))  # e3, E-2


def is_quantity(value: object) -> bool:
    try:
        parse_quantity(value)
    except QuantityError:
        return False
    return True


def cpu_millis(text: str | int | float | Decimal) -> int:
    """CPU in millicores, rounded up as kube-scheduler does (`0.0001` → 1m)."""
    value = parse_quantity(text) * 1000
    return int(value.to_integral_value(rounding="ROUND_CEILING"))


def to_int(text: str | int | float | Decimal) -> int:
    """A quantity rounded up to an integer (bytes of memory, pod counts)."""
    return int(parse_quantity(text).to_integral_value(rounding="ROUND_CEILING"))


def format_quantity(value: Decimal | int, *, binary: bool = False) -> str:
    """The canonical text for `value`: `Decimal("0.1")` → `100m`; with `binary`,
    `134217728` → `128Mi`; otherwise the largest exact decimal suffix (`2k`, `1500`)."""
    value = Decimal(value)
    if value == 0:
        return "0"
    if value == value.to_integral_value():
        whole = int(value)
        if binary:
            for suffix, power in sorted(_BINARY.items(), key=lambda kv: -kv[1]):
                unit = 1024 ** power
                if whole % unit == 0:
                    return f"{whole // unit}{suffix}"
            return str(whole)
        for suffix, power in sorted(_DECIMAL.items(), key=lambda kv: -kv[1]):
            if power <= 0:
                break
            unit = 1000 ** power
            if whole % unit == 0:
                return f"{whole // unit}{suffix}"
        return str(whole)
    for suffix in ("m", "u", "n"):
        scaled = value.scaleb(-3 * _DECIMAL[suffix])
        if scaled == scaled.to_integral_value():
            return f"{int(scaled)}{suffix}"
    # Finer than a nano: round up to nanos, as apimachinery does.
    return f"{int(value.scaleb(9).to_integral_value(rounding='ROUND_CEILING'))}n"
