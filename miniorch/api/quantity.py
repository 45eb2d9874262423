"""Kubernetes resource quantities (`500m`, `128Mi`, `1.5`, `2e3`) as exact fractions.

Used by defaulting (QoS class), validation (requests <= limits) and anyone who needs
to compare or sum `resources` values. Parsing follows apimachinery's
`resource.ParseQuantity` grammar: a signed decimal number, then an optional suffix
that is a binary SI (`Ki`..`Ei`), decimal SI (`n`, `u`, `m`, ``, `k`, `M`..`E`) or
decimal exponent (`e3`, `E-2`). Values are `Fraction`s so `0.1` + `0.2` == `300m`.
"""

from __future__ import annotations

import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL: dict[str, Fraction | int] = {
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
                       r"(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")

# apimachinery's own wording, returned to clients verbatim.
QUANTITY_FORMAT_MESSAGE = ("quantities must match the regular expression "
                           "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


class QuantityError(ValueError):
    """Not a Kubernetes quantity."""


def parse_quantity(value: object) -> Fraction:
    """`"500m"` → 1/2; ints and floats (as JSON may carry them) are taken as they are."""
    if isinstance(value, bool):
        raise QuantityError(QUANTITY_FORMAT_MESSAGE)
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(str(value))
    if not isinstance(value, str):
        raise QuantityError(QUANTITY_FORMAT_MESSAGE)
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise QuantityError(QUANTITY_FORMAT_MESSAGE)
    number = Fraction(match.group(1))
    suffix = match.group(2) or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * Fraction(_DECIMAL[suffix])
    return number * Fraction(10) ** int(suffix[1:])


def is_quantity(value: object) -> bool:
    try:
        parse_quantity(value)
    except QuantityError:
        return False
    return True
