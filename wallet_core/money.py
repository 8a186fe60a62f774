"""Exact money: decimal strings on the wire, integer minor units everywhere else.

`parse_amount("12.50", scale=2) == 1250`. Nothing here ever touches a float. Anything that
is not a plain non-negative decimal with at most `scale` fraction digits is refused with
InvalidAmount: signs, exponents, NaN, Infinity, blanks, non-ASCII digits, "1.", ".5", leading
zeros such as "007", more decimals than the currency has (even trailing zeros: "1.000" for
EUR), and values beyond the storage range.
"""

from __future__ import annotations

import re

from wallet_core.errors import InvalidAmount

# Largest amount (and balance) in minor units: bigint holds 9.22e18; keep a clean decimal bound
# below it so that a sum of two valid amounts is still detectable before the database overflows.
MAX_MINOR = 10**18 - 1
MAX_TEXT_LENGTH = 40

_AMOUNT = re.compile(r"(0|[1-9][0-9]*)(?:\.([0-9]+))?", re.ASCII)


def check_amount_text(text: object, *, field: str = "amount") -> re.Match[str]:
    """The checks of an amount that need no currency (a plain non-negative decimal string), or InvalidAmount.

    For a call whose currency is known only once its rows are loaded (a resettle): its amount is
    refused before anything is looked at, and its scale is checked by `parse_amount` later."""
    if not isinstance(text, str):
        raise InvalidAmount(f"{field} must be a decimal string such as \"12.50\", got {type(text).__name__}")
    if text == "":
        raise InvalidAmount(f"{field} is empty; expected a decimal string such as \"12.50\"")
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidAmount(f"{field} is too long ({len(text)} characters)")
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise InvalidAmount(
            f"{field} {text!r} is not a plain non-negative decimal such as \"12.50\" "
            "(no sign, exponent, spaces or leading zeros)"
        )
    return match


def parse_amount(text: object, scale: int, *, field: str = "amount") -> int:
    """The amount `text` in minor units of a currency with `scale` decimals, or InvalidAmount."""
    match = check_amount_text(text, field=field)
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > scale:
        raise InvalidAmount(
            f"{field} {text!r} has {len(fraction)} decimals but the currency allows {scale}; "
            "amounts are never rounded"
        )
    minor = int(whole + fraction.ljust(scale, "0"))  # the digits, the fraction padded to the scale
    if minor > MAX_MINOR:
        raise InvalidAmount(f"{field} {text!r} is beyond the largest amount the ledger stores")
    return minor


def format_amount(minor: int, scale: int) -> str:
    """`format_amount(1250, 2) == "12.50"`; negative values (system accounts) keep their sign."""
    sign = "-" if minor < 0 else ""
    digits = str(abs(minor))
    if scale == 0:
        return sign + digits
    digits = digits.rjust(scale + 1, "0")
    return f"{sign}{digits[:-scale]}.{digits[-scale:]}"
