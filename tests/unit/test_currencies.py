from typing import Any

import pytest

from wallet_core.currencies import CurrencyRegistry, parse_overrides
from wallet_core.errors import InvalidAmount, UnknownCurrency


@pytest.mark.parametrize(("code", "scale"), [("EUR", 2), ("USD", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3),
                                             ("CLF", 4)])
def test_iso_4217_scales_are_built_in(code: str, scale: int) -> None:
    assert CurrencyRegistry().get(code).scale == scale


def test_unknown_currencies_are_refused() -> None:
    registry = CurrencyRegistry()
    for code in ["XXX", "eur", "EURO", "", "BTC", None]:
        with pytest.raises(UnknownCurrency):
            registry.get(code)


def test_operator_overrides_add_and_replace_codes() -> None:
    registry = CurrencyRegistry({"FUN": 2, "BTC": 8, "JPY": 2})
    assert registry.get("BTC").parse("0.00000001") == 1
    assert registry.get("JPY").scale == 2
    assert registry.get("FUN").format(150) == "1.50"


def test_currency_scale_governs_parsing() -> None:
    registry = CurrencyRegistry()
    assert registry.get("JPY").parse("1500") == 1500
    with pytest.raises(InvalidAmount):
        registry.get("JPY").parse("15.5")
    assert registry.get("KWD").parse("1.005") == 1005


@pytest.mark.parametrize("overrides", [{"fun": 2}, {"F": 2}, {"FUN": -1}, {"FUN": 19}, {"FUN": 2.5}, {"FUN": True}])
def test_bad_overrides_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CurrencyRegistry(overrides)


def test_override_syntax() -> None:
    assert parse_overrides("FUN=2, BTC=8") == {"FUN": 2, "BTC": 8}
    assert parse_overrides("") == {}
    for bad in ["FUN", "FUN=x", "FUN=-1"]:
        with pytest.raises(ValueError):
            parse_overrides(bad)
