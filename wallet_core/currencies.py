"""The currency registry: code -> scale (number of decimals of the minor unit).

ISO 4217's active currencies are built in; operators add or override codes (play money,
tokens, crypto) in configuration (`WALLET_CURRENCIES="FUN=2,BTC=8"` or `[currencies]` in TOML).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from wallet_core.errors import UnknownCurrency
from wallet_core.money import format_amount, parse_amount

_SCALE_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_SCALE_3 = "BHD IQD JOD KWD LYD OMR TND"
_SCALE_4 = "CLF UYW"
_SCALE_2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD "
    "KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD "
    "NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP "
    "SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED "
    "VES WST XCD XCG YER ZAR ZMW ZWG"
)

ISO_4217: dict[str, int] = {
    **dict.fromkeys(_SCALE_0.split(), 0),
    **dict.fromkeys(_SCALE_2.split(), 2),
    **dict.fromkeys(_SCALE_3.split(), 3),
    **dict.fromkeys(_SCALE_4.split(), 4),
}

CODE_PATTERN = re.compile(r"[A-Z][A-Z0-9]{2,9}", re.ASCII)
MAX_SCALE = 18


@dataclass(frozen=True)
class Currency:
    code: str
    scale: int

    def parse(self, text: object, *, field: str = "amount") -> int:
        return parse_amount(text, self.scale, field=field)

    def format(self, minor: int) -> str:
        return format_amount(minor, self.scale)


class CurrencyRegistry:
    def __init__(self, overrides: Mapping[str, int] | None = None) -> None:
        scales = dict(ISO_4217)
        for code, scale in (overrides or {}).items():
            if not CODE_PATTERN.fullmatch(code):
                raise ValueError(f"currency code {code!r}: expected 3 to 10 upper-case letters or digits")
            if not isinstance(scale, int) or isinstance(scale, bool) or not 0 <= scale <= MAX_SCALE:
                raise ValueError(f"currency {code}: scale must be an integer from 0 to {MAX_SCALE}")
            scales[code] = scale
        self._currencies = {code: Currency(code, scale) for code, scale in scales.items()}

    def get(self, code: object) -> Currency:
        if not isinstance(code, str) or code not in self._currencies:
            raise UnknownCurrency(f"currency {code!r} is not supported", currency=str(code))
        return self._currencies[code]

    def __contains__(self, code: object) -> bool:
        return code in self._currencies

    def codes(self) -> list[str]:
        return sorted(self._currencies)


def parse_overrides(text: str) -> dict[str, int]:
    """`"FUN=2, BTC=8"` -> {"FUN": 2, "BTC": 8}, as WALLET_CURRENCIES is written."""
    result: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        code, sep, scale = part.partition("=")
        if not sep or not scale.strip().isdigit():
            raise ValueError(f"currency override {part!r}: expected CODE=SCALE, e.g. FUN=2")
        result[code.strip()] = int(scale)
    return result
