"""Kubernetes quantities: parsing every suffix form and formatting canonically."""

from __future__ import annotations

from decimal import Decimal

import pytest

from miniorch.core.quantity import (
    QuantityError,
    cpu_millis,
    format_quantity,
    parse_quantity,
    to_int,
)


@pytest.mark.parametrize(("text", "value"), [
    pytest.param("100m", Decimal("0.1"), id="milli"),
    pytest.param("0.5", Decimal("0.5"), id="fraction"),
    pytest.param("2", Decimal(2), id="integer"),
    pytest.param("128Mi", Decimal(128 * 2**20), id="mebi"),
    pytest.param("1Gi", Decimal(2**30), id="gibi"),
    pytest.param("1G", Decimal(10**9), id="giga"),
    pytest.param("1k", Decimal(1000), id="kilo"),
    pytest.param("1e3", Decimal(1000), id="exponent"),
    pytest.param("1E3", Decimal(1000), id="upper-exponent"),
    pytest.param("2E", Decimal(2 * 10**18), id="exa"),
    pytest.param("500u", Decimal("0.0005"), id="micro"),
    pytest.param("+1.5Ki", Decimal(1536), id="signed-binary"),
    pytest.param(".5", Decimal("0.5"), id="leading-dot"),
])
def test_parse(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1Mb", "1.2.3", "--1", "1 Gi", "Mi"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_helpers() -> None:
    assert cpu_millis("250m") == 250
    assert cpu_millis("0.0001") == 1  # rounded up, never to zero
    assert cpu_millis(2) == 2000
    assert to_int("1.5Ki") == 1536
    assert parse_quantity("100m") + parse_quantity("200m") == parse_quantity("0.3")


@pytest.mark.parametrize(("value", "binary", "text"), [
    pytest.param(Decimal("0.1"), False, "100m", id="milli"),
    pytest.param(Decimal(2), False, "2", id="int"),
    pytest.param(Decimal(2000), False, "2k", id="kilo"),
    pytest.param(Decimal(1500), False, "1500", id="no-exact-suffix"),
    pytest.param(Decimal(128 * 2**20), True, "128Mi", id="mebi"),
    pytest.param(Decimal(1000), True, "1000", id="not-binary-exact"),
    pytest.param(Decimal(0), False, "0", id="zero"),
])
def test_format(value: Decimal, binary: bool, text: str) -> None:
    assert format_quantity(value, binary=binary) == text
    assert parse_quantity(text) == value
