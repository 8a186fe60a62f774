"""DESIGN section 5: the betflex bodies are validated whole, at the edge, before anything is called."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge_http import betflex
from edge_http.betflex import MAX_CLIENT_LENGTH, MAX_UID, payout_id, stake_id
from edge_http.schemas import BodyError, decode_bets, decode_winners
from tests.support.betflex import example
from wallet_core import domain


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


def bets_error(body: Any) -> BodyError:
    with pytest.raises(BodyError) as caught:
        decode_bets(body if isinstance(body, bytes) else encode(body))
    return caught.value


def winners_error(body: Any) -> BodyError:
    with pytest.raises(BodyError) as caught:
        decode_winners(body if isinstance(body, bytes) else encode(body))
    return caught.value


# ---------------------------------------------------------------- /bets


def test_the_betflex_bets_example_is_accepted() -> None:
    body = decode_bets(encode(example("bets")))
    [entry] = body.bets
    assert (entry.user.client, entry.user.uid, entry.pool.currency, entry.pool.uid) == ("fanteam", 1001, "EUR", 550001)
    assert (entry.bet.uid, entry.bet.amount) == (9000001, "15.00")


def test_unknown_and_unused_fields_are_ignored_whatever_they_hold() -> None:
    body = example("bets")
    body["extra"] = {"anything": [1, 2, 3]}
    body["bets"][0]["user"]["ip"] = None
    body["bets"][0]["pool"]["overdraw"] = 37.5
    body["bets"][0]["pool"]["game"] = ["not", "a", "string"]
    del body["bets"][0]["pool"]["client"]
    body["bets"][0]["bet"]["new_field"] = True
    assert decode_bets(encode(body)).bets[0].bet.amount == "15.00"


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("bets", 0, "bet", "amount"), 15, "$.bets[0].bet.amount: Expected `str`, got `int`"),
        (("bets", 0, "bet", "amount"), 15.0, "$.bets[0].bet.amount: Expected `str`, got `float`"),
        (("bets", 0, "bet", "uid"), "9000001", "$.bets[0].bet.uid: Expected `int`, got `str`"),
        (("bets", 0, "bet", "uid"), True, "$.bets[0].bet.uid: Expected `int`, got `bool`"),
        (("bets", 0, "bet", "uid"), 9000001.0, "$.bets[0].bet.uid: Expected `int`, got `float`"),
        (("bets", 0, "bet", "uid"), -1, "$.bets[0].bet.uid: Expected `int` >= 0"),
        (("bets", 0, "bet", "uid"), 2**63, "$.bets[0].bet.uid: Expected `int` <= 9223372036854775807"),
        (("bets", 0, "pool", "uid"), None, "$.bets[0].pool.uid: Expected `int`, got `null`"),
        (("bets", 0, "pool", "currency"), 978, "$.bets[0].pool.currency: Expected `str`, got `int`"),
        (("bets", 0, "user", "uid"), False, "$.bets[0].user.uid: Expected `int | str`, got `bool`"),
        (("bets", 0, "user", "client"), "", "$.bets[0].user.client: Expected `str` of length >= 1"),
        (("bets", 0, "user"), "fanteam", "$.bets[0].user: Expected `object`, got `str`"),
        (("bets",), {}, "$.bets: Expected `array`, got `object`"),
        (("bets",), [], "$.bets: Expected `array` of length >= 1"),
    ],
)
def test_a_mistyped_field_is_invalid_request_naming_the_field(path: tuple[Any, ...], value: Any, message: str) -> None:
    body = example("bets")
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    error = bets_error(body)
    assert error.code == "invalid_request"
    assert error.message == message


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (("bets", 0, "bet", "amount"), "$.bets[0].bet: Object missing required field `amount`"),
        (("bets", 0, "bet", "uid"), "$.bets[0].bet: Object missing required field `uid`"),
        (("bets", 0, "pool", "currency"), "$.bets[0].pool: Object missing required field `currency`"),
        (("bets", 0, "user", "uid"), "$.bets[0].user: Object missing required field `uid`"),
        (("bets", 0, "user"), "$.bets[0]: Object missing required field `user`"),
        (("bets",), "$: Object missing required field `bets`"),
    ],
)
def test_a_missing_field_is_invalid_request_naming_it(path: tuple[Any, ...], message: str) -> None:
    body = example("bets")
    target = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    error = bets_error(body)
    assert (error.code, error.message) == ("invalid_request", message)


@pytest.mark.parametrize(
    "raw",
    [b"", b"   ", b"{", b"null", b"[]", b'"bets"', b"\xff\xfe", b'{"bets": [}', b"{} trailing",
     "{\"bets\": \"\u00e9\"}".encode("latin-1")],
)
def test_malformed_json_is_invalid_request(raw: bytes) -> None:
    assert bets_error(raw).code == "invalid_request"


def test_deeply_nested_json_is_refused_not_crashing() -> None:
    for raw in [
        b'{"bets": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"ignored": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b', "bets": []}',
    ]:
        assert bets_error(raw).code == "invalid_request"


def test_with_duplicate_keys_the_body_is_refused() -> None:
    """The reliability campaign: the last key counted for the edge, the first may count for another reader."""
    raw = (b'{"bets": [{"user": {"client": "fanteam", "uid": 1001}, "pool": {"currency": "EUR", "uid": 1},'
           b' "bet": {"uid": 7, "amount": "1.00", "amount": "2.00"}}]}')
    assert bets_error(raw).code == "invalid_request"



@pytest.mark.timeout(20)
def test_a_duplicate_key_among_many_in_an_ignored_object_is_found_in_one_pass() -> None:
    """Issue 11: 60,000 distinct keys and the last one again took 25 s of the event loop (keys.count()
    for every key); the check is linear now. The timeout is an upper bound, not a measurement
    (wallet_bench/hostile_bodies.py measures)."""
    ignored = b"{" + b",".join(b'"k%d":0' % n for n in range(60_000)) + b',"k59999":1}'
    raw = encode(example("bets"))[:-1] + b', "extra": ' + ignored + b"}"
    error = bets_error(raw)
    assert error.code == "invalid_request"
    assert error.message.startswith("the key 'k59999' appears twice in one object")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("a byte that is not UTF-8 in an ignored string", b'"caf\xe9"'),
        ("an integer of 4301 digits", b"1" * 4301),
        ("a negative integer of 4301 digits", b"-" + b"1" * 4301),
    ],
)
def test_what_msgspec_skips_unread_must_still_be_json_anyone_can_read(name: str, value: bytes) -> None:
    """Issue 11: msgspec skips ignored fields without reading them, the second reader refused them with a
    ValueError, and the edge answered 500 "outcome unknown" (and 500 forever on /winners)."""
    raw = encode(example("bets"))[:-1] + b', "extra": ' + value + b"}"
    error = bets_error(raw)
    assert error.code == "invalid_request", name
    raw = encode(example("winners")).replace(b'"extra": {', b'"extra": ' + value + b', "more": {')
    assert winners_error(raw).code == "invalid_request", name


def test_the_longest_accepted_client_yields_transaction_ids_the_core_accepts() -> None:
    """Issue 11: a client of 110 characters was accepted, and every callback then failed in the core,
    whose identifiers have at most 128 characters (the edge keeps its own copy of that number)."""
    client = "c" * MAX_CLIENT_LENGTH
    assert betflex.MAX_ID_LENGTH == domain.MAX_ID_LENGTH
    assert max(len(stake_id(client, MAX_UID)), len(payout_id(client, MAX_UID))) == domain.MAX_ID_LENGTH
    for derived in (stake_id(client, MAX_UID), payout_id(client, MAX_UID)):
        domain.check_identifier("transaction_id", derived)
    body = example("bets")
    body["bets"][0]["user"]["client"] = client
    body["bets"][0]["bet"]["uid"] = MAX_UID
    assert decode_bets(encode(body)).bets[0].user.client == client


@pytest.mark.parametrize("route", ["bets", "winners"])
def test_a_client_too_long_for_the_transaction_ids_is_refused_with_the_reason(route: str) -> None:
    body = example(route)
    entry = body["bets"][0] if route == "bets" else body["pools"][0]["bets"][0]
    entry["user"]["client"] = "c" * 110
    error = bets_error(body) if route == "bets" else winners_error(body)
    at = "$.bets[0]" if route == "bets" else "$.pools[0].bets[0]"
    assert error.code == "invalid_request"
    assert error.message == (
        f"{at}.user.client: the client may have at most {MAX_CLIENT_LENGTH} characters (it has 110): the wallet's "
        "transaction ids, betflex:{client}:payout:{bet uid}, are limited to 128"
    )

@pytest.mark.parametrize(
    "amount",
    ["", " 15.00", "15.00 ", "15,00", "-15.00", "+15", "1e3", "1E3", "NaN", "Infinity", "inf", ".5", "5.", "015.00",
     "0x10", "1_000", "١٥", "１５", "15.0\n", "15.00.0", "∞", "\u00a015"],
)
def test_an_amount_that_is_not_a_plain_decimal_is_invalid_amount(amount: str) -> None:
    body = example("bets")
    body["bets"][0]["bet"]["amount"] = amount
    error = bets_error(body)
    assert error.code == "invalid_amount"
    assert error.message.startswith("$.bets[0].bet.amount: ")


@pytest.mark.parametrize("amount", ["15.00", "15", "0.01", "0", "0.00", "123456789012345678901234567890.5"])
def test_plain_decimal_amounts_pass_the_edge(amount: str) -> None:
    """Zero and out-of-range amounts pass here and are refused by the core (invalid_amount there)."""
    body = example("bets")
    body["bets"][0]["bet"]["amount"] = amount
    assert decode_bets(encode(body)).bets[0].bet.amount == amount


@pytest.mark.parametrize("currency", ["", "eur", "EU", "E", "EURO12345678", "€UR", "1EU", "EUR ", "ＥＵＲ"])
def test_a_currency_that_is_not_a_code_is_currency_not_supported(currency: str) -> None:
    body = example("bets")
    body["bets"][0]["pool"]["currency"] = currency
    error = bets_error(body)
    assert error.code == "currency_not_supported"
    assert error.message.startswith("$.bets[0].pool.currency: ")


@pytest.mark.parametrize("currency", ["EUR", "JPY", "BTC", "USDT", "FUN2"])
def test_currency_codes_pass_the_edge(currency: str) -> None:
    body = example("bets")
    body["bets"][0]["pool"]["currency"] = currency
    decode_bets(encode(body))


def test_the_same_bet_uid_twice_in_one_body_is_invalid_request() -> None:
    body = example("bets")
    body["bets"].append(json.loads(json.dumps(body["bets"][0])))
    error = bets_error(body)
    assert (error.code, error.message.split(":")[0]) == ("invalid_request", "$.bets[1].bet.uid")


def test_bets_of_two_clients_in_one_body_are_invalid_request() -> None:
    body = example("bets")
    other = json.loads(json.dumps(body["bets"][0]))
    other["user"]["client"] = "othersite"
    other["bet"]["uid"] = 9000002
    body["bets"].append(other)
    error = bets_error(body)
    assert (error.code, error.message.split(":")[0]) == ("invalid_request", "$.bets[1].user.client")


@pytest.mark.parametrize("uid", ["1001", "0"])
def test_a_user_uid_sent_as_a_string_of_digits_is_the_same_user(uid: str) -> None:
    body = example("bets")
    body["bets"][0]["user"]["uid"] = uid
    assert decode_bets(encode(body)).bets[0].user.uid == uid


@pytest.mark.parametrize("uid", ["", "01001", "1001 ", "-1", "1e3", "abc", "١٠٠١", "99999999999999999999"])
def test_a_user_uid_string_that_is_not_a_canonical_number_is_invalid_request(uid: str) -> None:
    body = example("bets")
    body["bets"][0]["user"]["uid"] = uid
    error = bets_error(body)
    assert (error.code, error.message.split(":")[0]) == ("invalid_request", "$.bets[0].user.uid")


def test_huge_numbers_are_refused_not_rounded() -> None:
    raw = encode(example("bets")).replace(b"9000001", b"1" + b"0" * 400)
    assert bets_error(raw).code == "invalid_request"
    raw = encode(example("bets")).replace(b"9000001", b"1e400")
    assert bets_error(raw).code == "invalid_request"


# ---------------------------------------------------------------- /winners


def test_the_betflex_winners_example_is_accepted() -> None:
    body = decode_winners(encode(example("winners")))
    [pool] = body.pools
    [entry] = pool.bets
    assert pool.pool is not None and pool.pool.uid == 550001
    assert (entry.user.client, entry.user.uid) == ("fanteam", "1001")
    assert (entry.bet.uid, entry.bet.currency, entry.bet.payout) == (9000001, "EUR", "37.50")


def test_winners_optional_fields_may_be_absent_or_anything() -> None:
    body = example("winners")
    bet = body["pools"][0]["bets"][0]["bet"]
    for name in ["odds", "rake", "base_payout", "result"]:
        del bet[name]
    bet["extra"] = "not an object"
    del body["pools"][0]["bets"][0]["user"]["name"]
    body["pools"][0]["pool"] = {"guaranteed": "yes", "uid": 550001, "overdraw": "37.50"}
    decode_winners(encode(body))
    del body["pools"][0]["pool"]
    assert decode_winners(encode(body)).pools[0].pool is None


@pytest.mark.parametrize("path", [("bets", 0, "bet", "amount"), ("pool", "overdraw")])
def test_winners_fields_the_payout_checks_use_are_required(path: tuple[object, ...]) -> None:
    """The bet's `amount` (the stake betflex took) and the pool's `overdraw` (its total payout) are
    checked by the core before paying (DESIGN section 5): a body without them is a 400 naming them."""
    body = example("winners")
    parent = body["pools"][0]
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    with pytest.raises(BodyError) as refused:
        decode_winners(encode(body))
    assert refused.value.code == "invalid_request" and f"`{path[-1]}`" in refused.value.message


def test_a_winners_user_uid_may_be_the_number_sent_to_bets() -> None:
    body = example("winners")
    body["pools"][0]["bets"][0]["user"]["uid"] = 1001
    assert decode_winners(encode(body)).pools[0].bets[0].user.uid == 1001


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("pools", 0, "bets", 0, "bet", "payout"), 37.5, "$.pools[0].bets[0].bet.payout: Expected `str`, got `float`"),
        (("pools", 0, "bets", 0, "bet", "uid"), "9000001", "$.pools[0].bets[0].bet.uid: Expected `int`, got `str`"),
        (("pools", 0, "bets", 0, "bet", "uid"), True, "$.pools[0].bets[0].bet.uid: Expected `int`, got `bool`"),
        (("pools", 0, "bets", 0, "bet", "currency"), None,
         "$.pools[0].bets[0].bet.currency: Expected `str`, got `null`"),
        (("pools", 0, "bets", 0, "user", "uid"), True, "$.pools[0].bets[0].user.uid: Expected `int | str`, got `bool`"),
        (("pools", 0, "bets", 0, "user", "client"), 7, "$.pools[0].bets[0].user.client: Expected `str`, got `int`"),
        (("pools", 0, "pool", "uid"), "550001", "$.pools[0].pool.uid: Expected `int | null`, got `str`"),
        (("pools", 0, "bets"), None, "$.pools[0].bets: Expected `array`, got `null`"),
        (("pools",), [], "$.pools: Expected `array` of length >= 1"),
    ],
)
def test_a_mistyped_winners_field_is_named(path: tuple[Any, ...], value: Any, message: str) -> None:
    body = example("winners")
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    error = winners_error(body)
    assert (error.code, error.message) == ("invalid_request", message)


@pytest.mark.parametrize("field", ["uid", "currency", "payout"])
def test_a_missing_winners_bet_field_is_named(field: str) -> None:
    body = example("winners")
    del body["pools"][0]["bets"][0]["bet"][field]
    error = winners_error(body)
    assert error.message == f"$.pools[0].bets[0].bet: Object missing required field `{field}`"


@pytest.mark.parametrize("uid", ["01001", "alice", "", "١٠٠١"])
def test_a_winners_user_uid_must_be_digits(uid: str) -> None:
    body = example("winners")
    body["pools"][0]["bets"][0]["user"]["uid"] = uid
    assert winners_error(body).message.startswith("$.pools[0].bets[0].user.uid: ")


def test_the_same_bet_twice_in_winners_is_refused_whole() -> None:
    body = example("winners")
    body["pools"].append(json.loads(json.dumps(body["pools"][0])))
    assert winners_error(body).message.startswith("$.pools[1].bets[0].bet.uid: ")


def test_winners_payout_and_currency_values_are_left_to_the_core() -> None:
    """A bad amount or currency fails only its bet (422, kept by the core), not the whole callback."""
    body = example("winners")
    body["pools"][0]["bets"][0]["bet"]["payout"] = "-1e3"
    body["pools"][0]["bets"][0]["bet"]["currency"] = "euro"
    decode_winners(encode(body))
