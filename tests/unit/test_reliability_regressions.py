"""Regressions for what the reliability campaign (tests/reliability) found."""

from __future__ import annotations

import pytest

from edge_http.schemas import BodyError, decode_bets, decode_winners
from wallet_core.config import load_settings

BET = b'{"user":{"client":"fanteam","uid":1},"pool":{"currency":"EUR","uid":1},"bet":{"uid":%d,"amount":"%s"}}'


@pytest.mark.parametrize("value, expected", [("FUN=2", {"FUN": 2}), ("FUN=2,BTC=8", {"FUN": 2, "BTC": 8}),
                                             ('{"FUN": 2}', {"FUN": 2})])
def test_wallet_currencies_is_read_as_documented(monkeypatch: pytest.MonkeyPatch, value: str,
                                                 expected: dict[str, int]) -> None:
    """`WALLET_CURRENCIES="FUN=2,BTC=8"` made the core refuse to start (pydantic-settings read it as JSON)."""
    monkeypatch.setenv("WALLET_CURRENCIES", value)
    assert load_settings().currencies == expected


def test_a_callback_body_with_a_key_twice_is_refused() -> None:
    """msgspec kept the last of two "bets" keys: the edge debited a bet another reader would not see."""
    body = b'{"bets":[' + BET % (1, b"1.00") + b'],"bets":[' + BET % (9, b"500.00") + b"]}"
    with pytest.raises(BodyError) as refused:
        decode_bets(body)
    assert refused.value.code == "invalid_request" and "twice" in refused.value.message
    nested = b'{"bets":[{"user":{"client":"fanteam","uid":1,"uid":2},"pool":{"currency":"EUR","uid":1},' \
             b'"bet":{"uid":1,"amount":"1.00"}}]}'
    with pytest.raises(BodyError):
        decode_bets(nested)
    with pytest.raises(BodyError):
        decode_winners(b'{"pools":[],"pools":[]}')
    assert decode_bets(b'{"bets":[' + BET % (1, b"1.00") + b"]}").bets[0].bet.uid == 1
