"""Settlement corrections on an in-memory book: unsettle, resettle, clawback policies and player debt."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wallet_core import errors
from wallet_core.book import Book, CancelCall, CorrectionCall, CreditCall, DebitCall, Wallet
from wallet_core.currencies import CurrencyRegistry
from wallet_core.domain import (
    AccountKey,
    AccountKind,
    AuditNote,
    ClawbackPolicy,
    CorrectionResult,
    CreditCommand,
    DebitItem,
    Purpose,
    StakeState,
    canonical_id,
    credit_fingerprint,
    debit_fingerprint,
    repay_first,
    user_movement,
)
from wallet_core.money import MAX_MINOR

EUR = CurrencyRegistry().get("EUR")
ALICE = AccountKey("fanteam", "1001", "EUR")
SYSTEM = {AccountKind.IN_PLAY: 901, AccountKind.HOUSE: 902, AccountKind.CASHIER: 903, AccountKind.RECEIVABLE: 904}
REFUSE, DEBT = ClawbackPolicy.REFUSE, ClawbackPolicy.DEBT


@pytest.fixture
def book() -> Book:
    """Alice staked 10.00 of her 100.00 on b1, which was settled with a payout of 50.00: she holds 140.00."""
    b = Book(CurrencyRegistry(), datetime(2026, 1, 1, tzinfo=UTC), lambda client, currency: SYSTEM)
    b.system_balances = dict.fromkeys(SYSTEM.values(), 0)
    b.wallets[ALICE] = Wallet(1, ALICE, 10000, "active", 10000)
    item = DebitItem("b1", ALICE, "10.00", Purpose.STAKE)
    assert not isinstance(b.apply(DebitCall([(item, EUR, 1000)], [debit_fingerprint(item, 1000, ("b1",))])),
                          errors.WalletError)
    assert not isinstance(b.apply(credit("p1", "50.00", Purpose.PAYOUT, "b1")), errors.WalletError)
    return b


def credit(tid: str, amount: str, purpose: Purpose = Purpose.DEPOSIT, settles: str = "") -> CreditCall:
    cmd = CreditCommand(tid, ALICE, amount, purpose, settles)
    minor = EUR.parse(amount)
    return CreditCall(cmd, EUR, minor, credit_fingerprint(cmd, minor))


def unsettle(tid: str, policy: ClawbackPolicy = REFUSE, stake: str = "b1") -> CorrectionCall:
    return CorrectionCall("fanteam", tid, stake, None, "", policy)


def resettle(tid: str, amount: str, policy: ClawbackPolicy = REFUSE, stake: str = "b1") -> CorrectionCall:
    return CorrectionCall("fanteam", tid, stake, amount, "", policy)


def balances(book: Book) -> dict[str, int]:
    """Every account's balance as the book's entries leave it."""
    out = {"user": 0, "in_play": 0, "house": 0, "cashier": 0, "receivable": 0}
    names = {v: k.value for k, v in SYSTEM.items()}
    for _, account_id, amount in book.new_entries:
        out[names.get(account_id, "user")] += amount
    return out


def ok(result: object) -> CorrectionResult:
    assert isinstance(result, CorrectionResult), result
    return result


def test_unsettle_claws_the_payout_back_and_opens_the_stake(book: Book) -> None:
    result = ok(book.apply(unsettle("u1")))
    assert (result.previous_payout, result.taken, result.debt_added) == ("50.00", "50.00", "0.00")
    assert result.transaction.purpose == Purpose.UNSETTLE and result.transaction.balance_after == "90.00"
    stake = book.txs[("fanteam", "b1")].stake
    assert stake is not None and stake.state == StakeState.OPEN and stake.closed_by is None
    # as if the stake had just been placed: 10.00 in play, the house square
    assert balances(book) == {"user": 9000 - 10000, "in_play": 1000, "house": 0, "cashier": 0, "receivable": 0}
    # and it can be settled again (with a new id), or cancelled
    assert not isinstance(book.apply(credit("p2", "20.00", Purpose.PAYOUT, "b1")), errors.WalletError)
    assert book.wallets[ALICE].balance == 11000


def test_unsettle_is_idempotent_by_its_own_id(book: Book) -> None:
    first = ok(book.apply(unsettle("u1")))
    again = ok(book.apply(unsettle("u1")))
    assert again.replayed and again.transaction == first.transaction
    assert book.wallets[ALICE].balance == 9000
    assert isinstance(book.apply(resettle("u1", "5.00")), errors.IdempotencyConflict)
    assert isinstance(book.apply(unsettle("u2")), errors.NotSettled)  # the stake is open now


def test_resettle_replaces_the_payout_atomically(book: Book) -> None:
    lower = ok(book.apply(resettle("r1", "20.00")))
    assert (lower.previous_payout, lower.taken) == ("50.00", "30.00")
    assert book.wallets[ALICE].balance == 11000
    stake = book.txs[("fanteam", "b1")].stake
    assert stake is not None and stake.state == StakeState.SETTLED and stake.closed_by is book.txs[("fanteam", "r1")]
    higher = ok(book.apply(resettle("r2", "80.00")))
    assert higher.previous_payout == "20.00" and book.wallets[ALICE].balance == 17000
    assert balances(book)["in_play"] == 0 and balances(book)["house"] == -(8000 - 1000)
    assert isinstance(book.apply(resettle("r3", "80.00")), errors.InvalidAmount)  # nothing to correct


def test_refuse_policy_refuses_a_clawback_the_wallet_cannot_cover(book: Book) -> None:
    book.wallets[ALICE].balance = 1000  # she spent most of the win
    refused = book.apply(unsettle("u1", REFUSE))
    assert isinstance(refused, errors.InsufficientFunds)
    stake = book.txs[("fanteam", "b1")].stake
    assert book.wallets[ALICE].balance == 1000 and stake is not None and stake.state == StakeState.SETTLED
    assert [f.command.transaction_id for f in book.failures] == ["u1"]  # kept for operators


def test_debt_policy_takes_what_is_there_and_records_the_rest(book: Book) -> None:
    book.wallets[ALICE].balance = 1000
    result = ok(book.apply(unsettle("u1", DEBT)))
    assert (result.taken, result.debt_added) == ("10.00", "40.00")
    assert book.wallets[ALICE].balance == 0 and book.wallets[ALICE].debt == 4000
    assert balances(book)["receivable"] == -4000
    # later credits pay the debt off first
    deposit = book.apply(credit("d1", "25.00"))
    assert not isinstance(deposit, errors.WalletError)
    assert deposit.transaction.balance_after == "0.00" and book.wallets[ALICE].debt == 1500
    book.apply(credit("d2", "20.00"))
    assert book.wallets[ALICE].balance == 500 and book.wallets[ALICE].debt == 0
    assert balances(book)["receivable"] == 0


def test_a_cancel_and_a_payout_pay_the_debt_off_first(book: Book) -> None:
    book.wallets[ALICE].balance = 0
    ok(book.apply(unsettle("u1", DEBT)))
    assert book.wallets[ALICE].debt == 5000
    book.apply(CancelCall("fanteam", "b1", ""))  # the reopened stake's 10.00 goes to the debt
    assert book.wallets[ALICE].debt == 4000 and book.wallets[ALICE].balance == 0


def test_audit_notes_are_written_for_every_outcome(book: Book) -> None:
    note = AuditNote("ops-alice", "unsettle", "result corrected by the league")
    call = CorrectionCall("fanteam", "u1", "b1", None, "", REFUSE, note)
    book.apply(call)
    book.apply(call)
    book.apply(CorrectionCall("fanteam", "u9", "nope", None, "", REFUSE, note))
    assert [(a.actor, a.outcome, a.target) for a in book.audit] == [
        ("ops-alice", "applied", "b1"), ("ops-alice", "replayed", "b1"), ("ops-alice", "STAKE_NOT_FOUND", "nope")]


def test_corrections_of_unknown_cancelled_or_open_stakes_are_refused(book: Book) -> None:
    assert isinstance(book.apply(unsettle("u1", stake="nope")), errors.StakeNotFound)
    item = DebitItem("b2", ALICE, "1.00", Purpose.STAKE)
    book.apply(DebitCall([(item, EUR, 100)], [debit_fingerprint(item, 100, ("b2",))]))
    assert isinstance(book.apply(resettle("r1", "5.00", stake="b2")), errors.NotSettled)
    book.apply(CancelCall("fanteam", "b2", ""))
    assert isinstance(book.apply(resettle("r1", "5.00", stake="b2")), errors.StakeCancelled)
    assert isinstance(book.apply(resettle("r2", "5.001")), errors.InvalidAmount)


def test_a_resettle_within_the_storage_range_only(book: Book) -> None:
    book.system_balances[SYSTEM[AccountKind.HOUSE]] = -MAX_MINOR + 10000
    assert isinstance(book.apply(resettle("r1", "200.00")), errors.InvalidAmount)
    assert book.wallets[ALICE].balance == 14000


def test_user_movement_and_repay_first_keep_sums() -> None:
    legs, taken, added = user_movement(300, 0, -500, DEBT)
    assert sum(leg.amount for leg in legs) == -500 and (taken, added) == (300, 200)
    with pytest.raises(errors.InsufficientFunds):
        user_movement(300, 0, -500, REFUSE)
    legs, taken, added = user_movement(0, 200, 500, REFUSE)
    assert sum(leg.amount for leg in legs) == 500 and added == -200
    from wallet_core.domain import Posting
    legs, repaid = repay_first([Posting(AccountKind.CASHIER, -500), Posting(AccountKind.USER, 500)], 800)
    assert repaid == 500 and sum(leg.amount for leg in legs) == 0


@pytest.mark.parametrize("value", ["07001", "7001 ", " 7001", "fanteam ", "00"])
def test_ids_betflex_could_never_reach_are_refused(value: str) -> None:
    with pytest.raises(errors.InvalidArgument):
        canonical_id("account.user_id", value)


@pytest.mark.parametrize("value", ["0", "7001", "alice", "user-07"])
def test_ordinary_ids_are_kept_as_they_are(value: str) -> None:
    assert canonical_id("account.user_id", value) == value
