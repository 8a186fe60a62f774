"""DESIGN section 2: who pays whom; every movement sums to zero."""

import pytest

from wallet_core.domain import AccountKey, AccountKind, CreditCommand, Purpose, credit_fingerprint, postings

USER, IN_PLAY, HOUSE, CASHIER = AccountKind.USER, AccountKind.IN_PLAY, AccountKind.HOUSE, AccountKind.CASHIER


def legs(purpose: Purpose, amount: int, stake: int = 0) -> dict[AccountKind, int]:
    result: dict[AccountKind, int] = {}
    for p in postings(purpose, amount, stake_amount=stake):
        result[p.kind] = result.get(p.kind, 0) + p.amount
    return result


def test_stake_moves_user_money_in_play() -> None:
    assert legs(Purpose.STAKE, 1500) == {USER: -1500, IN_PLAY: 1500}


def test_payout_closes_the_stake_into_house_and_pays_the_user() -> None:
    assert legs(Purpose.PAYOUT, 3750, stake=1500) == {IN_PLAY: -1500, HOUSE: 1500 - 3750, USER: 3750}


def test_zero_payout_keeps_the_stake_in_the_house() -> None:
    assert legs(Purpose.PAYOUT, 0, stake=1500) == {IN_PLAY: -1500, HOUSE: 1500, USER: 0}


@pytest.mark.parametrize(
    ("purpose", "expected"),
    [
        (Purpose.WITHDRAWAL, {USER: -100, CASHIER: 100}),
        (Purpose.DEPOSIT, {CASHIER: -100, USER: 100}),
        (Purpose.ADJUSTMENT, {HOUSE: -100, USER: 100}),
        (Purpose.CANCEL, {IN_PLAY: -100, USER: 100}),
    ],
)
def test_other_movements(purpose: Purpose, expected: dict[AccountKind, int]) -> None:
    assert legs(purpose, 100) == expected


@pytest.mark.parametrize("purpose", list(Purpose))
def test_every_movement_sums_to_zero(purpose: Purpose) -> None:
    assert sum(p.amount for p in postings(purpose, 12345, stake_amount=777)) == 0


def test_fingerprint_tells_content_apart() -> None:
    key = AccountKey("c", "u", "EUR")
    a = credit_fingerprint(CreditCommand("t", key, "1", Purpose.DEPOSIT), 100)
    assert a == credit_fingerprint(CreditCommand("t", key, "1.00", Purpose.DEPOSIT), 100)
    assert a != credit_fingerprint(CreditCommand("t", key, "1", Purpose.DEPOSIT), 101)
    assert a != credit_fingerprint(CreditCommand("t", AccountKey("c", "u2", "EUR"), "1", Purpose.DEPOSIT), 100)
