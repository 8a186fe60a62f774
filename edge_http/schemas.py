"""The betflex callback bodies: msgspec structs, and the checks that types alone cannot say.

A body is decoded and checked whole before anything is called. Unknown fields are ignored;
fields the edge does not use are not declared, so they are ignored whatever they hold (but
the body as a whole must still be JSON that any reader reads the same way: see
`ambiguity`). `decode_bets` / `decode_winners` return the parsed body or raise
`BodyError`, whose message names the offending field as a JSON path (`$.bets[0].bet.amount: ...`).

Cost: both passes are linear in the body and run in C/Rust. msgspec skips what is not declared
without building it (about a millisecond for the worst 1 MiB body); the second pass
(`ambiguity`) builds everything and is run off the event loop for large bodies by
`edge_http.jsoncheck` (`wallet_bench/hostile_bodies.py` measures what the worst bodies cost).
"""

from __future__ import annotations

import re
from typing import Annotated, TypeVar

import jiter
import msgspec

from edge_http.betflex import MAX_CLIENT_LENGTH, MAX_ID_LENGTH, MAX_UID

Uid = Annotated[int, msgspec.Meta(ge=0, le=MAX_UID)]
# its length is checked by `check_client`, once, with a message that says why
Client = Annotated[str, msgspec.Meta(min_length=1)]

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
    client: Client
    uid: Uid | str  # a number in the spec; a string of digits is read as the same user


class BetsPool(msgspec.Struct):
    currency: str
    uid: Uid
    client: Client | None = None  # checked against the token's clients (edge_http.tenants)


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
    client: Client
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
    client: Client | None = None  # checked against the token's clients (edge_http.tenants)


class PoolEntry(msgspec.Struct):
    bets: list[WinnerEntry]
    pool: WinnersPool | None = None


class WinnersBody(msgspec.Struct):
    pools: Annotated[list[PoolEntry], msgspec.Meta(min_length=1)]


# ---------------------------------------------------------------- decoding

T = TypeVar("T")
_BETS_DECODER = msgspec.json.Decoder(BetsBody)
_WINNERS_DECODER = msgspec.json.Decoder(WinnersBody)


def _decode(decoder: msgspec.json.Decoder[T], body: bytes, check_json: bool) -> T:
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
    if check_json:
        refuse_ambiguous_json(body)
    return parsed


_DUPLICATE = re.compile(r'Detected duplicate key "(?P<key>.*)" at (?P<where>line \d+ column \d+)', re.DOTALL)


def ambiguity(body: bytes) -> str | None:
    """Why a body that msgspec accepted may not be used, or None: what another reader could read
    differently, or not at all.

    - A key twice in one object (`{"bets": [...], "bets": [...]}`), anywhere in the body: msgspec
      keeps the last, another reader (a proxy, a log, betflex itself) may take the first, and money
      must not depend on it.
    - What msgspec skips without reading, in fields the edge ignores: bytes that are not UTF-8 in a
      string, an integer of more than 4300 digits (Python's limit for int()), nesting deeper than
      jiter's limit.

    jiter reads the whole body once: linear, in Rust, but it builds every value as a Python object,
    which for the worst 1 MiB body takes tens of milliseconds (`edge_http.jsoncheck` runs large
    bodies in a worker process). Every one of its refusals is a ValueError.
    """
    try:
        jiter.from_json(body, catch_duplicate_keys=True, cache_mode="keys")
    except (ValueError, RecursionError) as exc:
        return _jiter_message(str(exc))
    return None


def refuse_ambiguous_json(body: bytes) -> None:
    problem = ambiguity(body)
    if problem is not None:
        raise BodyError("invalid_request", problem)


def _jiter_message(text: str) -> str:
    duplicate = _DUPLICATE.fullmatch(text)
    if duplicate:
        return (f"the key {duplicate['key'][:40]!r} appears twice in one object ({duplicate['where']}); "
                "the body is ambiguous")
    if text.startswith("recursion limit exceeded"):
        return "JSON is nested too deeply"
    return f"the body is not JSON the wallet can read: {text[:200]}"


def check_client(client: str, path: str) -> str:
    """betflex's client names the wallets and is part of every transaction id derived from a bet
    (`betflex:{client}:payout:{bet uid}`), which the core limits to 128 characters."""
    if len(client) > MAX_CLIENT_LENGTH:
        raise BodyError(
            "invalid_request",
            f"{path}: the client may have at most {MAX_CLIENT_LENGTH} characters (it has {len(client)}): the "
            f"wallet's transaction ids, betflex:{{client}}:payout:{{bet uid}}, are limited to {MAX_ID_LENGTH}",
        )
    return client


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


def decode_bets(body: bytes, *, check_json: bool = True) -> BetsBody:
    """The body of POST /bets, checked whole. `check_json=False` leaves out `refuse_ambiguous_json`,
    for a caller that runs it elsewhere (the resources: `edge_http.jsoncheck`)."""
    parsed: BetsBody = _decode(_BETS_DECODER, body, check_json)
    client = check_client(parsed.bets[0].user.client, "$.bets[0].user.client")
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
                "invalid_amount",
                f"{at}.bet.amount: {entry.bet.amount[:40]!r} is not a plain decimal amount such as \"12.50\"",
            )
        if not CURRENCY.fullmatch(entry.pool.currency):
            raise BodyError(
                "currency_not_supported", f"{at}.pool.currency: {entry.pool.currency[:40]!r} is not a currency code"
            )
        if entry.bet.uid in seen:
            raise BodyError("invalid_request", f"{at}.bet.uid: bet {entry.bet.uid} appears more than once")
        seen.add(entry.bet.uid)
    return parsed


def decode_winners(body: bytes, *, check_json: bool = True) -> WinnersBody:
    """The body of POST /winners, checked whole; `check_json` as for `decode_bets`."""
    parsed: WinnersBody = _decode(_WINNERS_DECODER, body, check_json)
    seen: set[tuple[str, int]] = set()
    for p, pool in enumerate(parsed.pools):
        for b, entry in enumerate(pool.bets):
            at = f"$.pools[{p}].bets[{b}]"
            user_id(entry.user.uid, f"{at}.user.uid")
            check_client(entry.user.client, f"{at}.user.client")
            key = (entry.user.client, entry.bet.uid)
            if key in seen:
                raise BodyError("invalid_request", f"{at}.bet.uid: bet {entry.bet.uid} appears more than once")
            seen.add(key)
    return parsed


# ---------------------------------------------------------------- the bet uids of an unusable /bets body


class _NamedUser(msgspec.Struct):
    client: Client


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
