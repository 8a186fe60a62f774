"""The betflex callback bodies: msgspec structs, and the checks that types alone cannot say.

A body is decoded and checked whole before anything is called. Unknown fields are ignored;
fields the edge does not use are not declared, so they are ignored whatever they hold.
`decode_bets` / `decode_winners` return the parsed body or raise `BodyError`, whose
message names the offending field as a JSON path (`$.bets[0].bet.amount: ...`).
"""

from __future__ import annotations

import json
import re
from typing import Annotated

import msgspec

# Identifiers betflex sends as JSON numbers: non-negative and within a signed 64-bit integer.
MAX_UID = 2**63 - 1
Uid = Annotated[int, msgspec.Meta(ge=0, le=MAX_UID)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]

AMOUNT = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")  # ASCII digits only: [0-9] is not \d
CURRENCY = re.compile(r"[A-Z][A-Z0-9]{2,9}")
USER_ID = re.compile(r"0|[1-9][0-9]{0,18}")


class BodyError(Exception):
    """The body cannot be used. `code` is the betflex error code; `message` names the field."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------- POST /bets


class BetsUser(msgspec.Struct):
    client: Name
    uid: Uid | str  # a number in the spec; a string of digits is read as the same user


class BetsPool(msgspec.Struct):
    currency: str
    uid: Uid
    client: Name | None = None  # checked against the token's clients (edge_http.tenants)


class BetsBet(msgspec.Struct):
    uid: Uid
    amount: str


class BetEntry(msgspec.Struct):
    user: BetsUser
    pool: BetsPool
    bet: BetsBet


class BetsBody(msgspec.Struct):
    bets: Annotated[list[BetEntry], msgspec.Meta(min_length=1)]


# ---------------------------------------------------------------- POST /winners


class WinnersUser(msgspec.Struct):
    client: Name
    uid: str | Uid  # a string in the spec; the number sent to /bets is the same user


class WinnersBet(msgspec.Struct):
    uid: Uid
    currency: str
    payout: str
    amount: str  # the stake betflex says it took: the core refuses a payout naming another (stake_mismatch)


class WinnerEntry(msgspec.Struct):
    user: WinnersUser
    bet: WinnersBet


class WinnersPool(msgspec.Struct):
    overdraw: str  # the pool's total payout: the core refuses payouts of the pool beyond it
    uid: Uid | None = None
    client: Name | None = None  # checked against the token's clients (edge_http.tenants)


class PoolEntry(msgspec.Struct):
    bets: list[WinnerEntry]
    pool: WinnersPool | None = None


class WinnersBody(msgspec.Struct):
    pools: Annotated[list[PoolEntry], msgspec.Meta(min_length=1)]


# ---------------------------------------------------------------- decoding

_BETS_DECODER = msgspec.json.Decoder(BetsBody)
_WINNERS_DECODER = msgspec.json.Decoder(WinnersBody)


def _decode(decoder: msgspec.json.Decoder, body: bytes):  # type: ignore[no-untyped-def]
    if not body.strip():
        raise BodyError("invalid_request", "the body is empty; a JSON object is expected")
    try:
        parsed = decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BodyError("invalid_request", _with_path_first(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise BodyError("invalid_request", str(exc)) from None
    except RecursionError:
        raise BodyError("invalid_request", "JSON is nested too deeply") from None
    _refuse_duplicate_keys(body)
    return parsed


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(key for key in keys if keys.count(key) > 1)
        raise BodyError("invalid_request", f"the key {duplicate[:40]!r} appears twice in one object; the body is ambiguous")
    return dict(pairs)


def _refuse_duplicate_keys(body: bytes) -> None:
    """A key twice in one object (`{"bets": [...], "bets": [...]}`) is refused: msgspec keeps the last,
    another reader (a proxy, a log, betflex itself) may take the first, and money must not depend on it.
    Runs only on bodies msgspec already accepted, so the input is valid JSON of bounded depth."""
    try:
        json.loads(body, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise BodyError("invalid_request", "JSON is nested too deeply") from None


def _with_path_first(message: str) -> str:
    """msgspec's "Expected `str`, got `int` - at `$.x`" → "$.x: Expected `str`, got `int`"."""
    text, sep, path = message.rpartition(" - at `")
    if sep and path.endswith("`"):
        return f"{path[:-1]}: {text}"
    return f"$: {message}"


def user_id(value: int | str, path: str) -> str:
    """The wallet's user id: the decimal text of betflex's user uid, whichever JSON type carried it."""
    if isinstance(value, int):
        return str(value)
    if not USER_ID.fullmatch(value) or int(value) > MAX_UID:
        raise BodyError("invalid_request", f"{path}: {value!r} is not a user id (digits, as the number sent to /bets)")
    return value


def decode_bets(body: bytes) -> BetsBody:
    parsed: BetsBody = _decode(_BETS_DECODER, body)
    client = parsed.bets[0].user.client
    seen: set[int] = set()
    for index, entry in enumerate(parsed.bets):
        at = f"$.bets[{index}]"
        user_id(entry.user.uid, f"{at}.user.uid")
        if entry.user.client != client:
            raise BodyError(
                "invalid_request", f"{at}.user.client: all bets of one callback must belong to one client ({client!r})"
            )
        if not AMOUNT.fullmatch(entry.bet.amount):
            raise BodyError(
                "invalid_amount", f"{at}.bet.amount: {entry.bet.amount[:40]!r} is not a plain decimal amount such as \"12.50\""
            )
        if not CURRENCY.fullmatch(entry.pool.currency):
            raise BodyError(
                "currency_not_supported", f"{at}.pool.currency: {entry.pool.currency[:40]!r} is not a currency code"
            )
        if entry.bet.uid in seen:
            raise BodyError("invalid_request", f"{at}.bet.uid: bet {entry.bet.uid} appears more than once")
        seen.add(entry.bet.uid)
    return parsed


def decode_winners(body: bytes) -> WinnersBody:
    parsed: WinnersBody = _decode(_WINNERS_DECODER, body)
    seen: set[tuple[str, int]] = set()
    for p, pool in enumerate(parsed.pools):
        for b, entry in enumerate(pool.bets):
            at = f"$.pools[{p}].bets[{b}]"
            user_id(entry.user.uid, f"{at}.user.uid")
            key = (entry.user.client, entry.bet.uid)
            if key in seen:
                raise BodyError("invalid_request", f"{at}.bet.uid: bet {entry.bet.uid} appears more than once")
            seen.add(key)
    return parsed


# ---------------------------------------------------------------- the bet uids of an unusable /bets body


class _NamedUser(msgspec.Struct):
    client: Name


class _NamedBet(msgspec.Struct):
    uid: Uid


class _NamedEntry(msgspec.Struct):
    user: _NamedUser
    bet: _NamedBet


class _NamedSlip(msgspec.Struct):
    bets: list[_NamedEntry]


_NAMED_DECODER = msgspec.json.Decoder(_NamedSlip)


def slip_ids(body: bytes) -> dict[str, list[int]]:
    """The bet uids an unusable /bets body names, by client ({} when they cannot be read).

    A refusal of such a body must stay true for every later delivery of those uids, so the edge
    fences them before it answers 402 (edge_http.placement)."""
    try:
        named = _NAMED_DECODER.decode(body)
    except (msgspec.DecodeError, RecursionError, ValueError):
        return {}
    result: dict[str, list[int]] = {}
    for entry in named.bets:
        uids = result.setdefault(entry.user.client, [])
        if entry.bet.uid not in uids:
            uids.append(entry.bet.uid)
    return result
