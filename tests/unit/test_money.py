"""DESIGN section 1: amounts are exact; anything not a plain decimal within the currency's scale is refused."""

import pytest

from wallet_core.errors import InvalidAmount
from wallet_core.money import MAX_MINOR, format_amount, parse_amount


@pytest.mark.parametrize(
    ("text", "scale", "minor"),
    [
        ("12.50", 2, 1250),
        ("12.5", 2, 1250),
        ("12", 2, 1200),
        ("0", 2, 0),
        ("0.00", 2, 0),
        ("0.01", 2, 1),
        ("1500", 0, 1500),
        ("1.234", 3, 1234),
        ("0.00000001", 8, 1),
        ("999999999999999.99", 2, 99999999999999999),
    ],
)
def test_valid_amounts_parse_exactly(text: str, scale: int, minor: int) -> None:
    assert parse_amount(text, scale) == minor


@pytest.mark.parametrize(
    "text",
    [
        "-1", "-0", "+1", "1e3", "1E3", "1.5e1", "NaN", "nan", "Infinity", "inf", "-inf", "", " 1", "1 ", "1,50",
        "1.", ".5", "007", "00.5", "0x10", "1_000", "١٢", "１２", "12.5.0", "1.2.3", "∞", "\u00a01",
    ],
)
def test_malformed_amounts_are_refused(text: str) -> None:
    with pytest.raises(InvalidAmount):
        parse_amount(text, 2)


@pytest.mark.parametrize(("text", "scale"), [("12.505", 2), ("1.000", 2), ("1.5", 0), ("0.0001", 3)])
def test_excess_precision_is_refused_never_rounded(text: str, scale: int) -> None:
    with pytest.raises(InvalidAmount, match="decimals"):
        parse_amount(text, scale)


def test_values_beyond_storage_range_are_refused() -> None:
    assert parse_amount(format_amount(MAX_MINOR, 2), 2) == MAX_MINOR
    for text in ["10000000000000000.00", "9" * 30, "1" + "0" * 39]:
        with pytest.raises(InvalidAmount):
            parse_amount(text, 2)


@pytest.mark.parametrize("value", [12.5, 12, None, b"12", ["12"], True])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidAmount, match="decimal string"):
        parse_amount(value, 2)


@pytest.mark.parametrize(
    ("minor", "scale", "text"),
    [(1250, 2, "12.50"), (5, 2, "0.05"), (0, 2, "0.00"), (-1250, 2, "-12.50"), (-5, 3, "-0.005"), (7, 0, "7")],
)
def test_format_is_the_inverse_of_parse(minor: int, scale: int, text: str) -> None:
    assert format_amount(minor, scale) == text
    if minor >= 0:
        assert parse_amount(text, scale) == minor
