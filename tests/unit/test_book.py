"""The ledger rules on an in-memory book (no database): DESIGN sections 2 and 3, call by call."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wallet_core import errors
from wallet_core.book import Book, CancelCall, CreditCall, DebitCall, FenceCall, Wallet
from wallet_core.currencies import CurrencyRegistry
from wallet_core.domain import (
    AccountKey,
    AccountKind,
    CancelOutcome,
    CreditCommand,
    DebitItem,
    FenceOutcome,
    Purpose,
    StakeState,
    TxStatus,
    credit_fingerprint,
    debit_fingerprint,
)
from wallet_core.money import MAX_MINOR

EUR = CurrencyRegistry().get("EUR")
ALICE = AccountKey("fanteam", "1001", "EUR")
BOB = AccountKey("fanteam", "1002", "EUR")
SYSTEM = {AccountKind.IN_PLAY: 901, AccountKind.HOUSE: 902, AccountKind.CASHIER: 903}


@pytest.fixture
def book() -> Book:
    b = Book(CurrencyRegistry(), datetime(2026, 1, 1, tzinfo=UTC), lambda client, currency: SYSTEM)
    b.system_balances = dict.fromkeys(SYSTEM.values(), 0)
    b.wallets[ALICE] = Wallet(1, ALICE, 10000, "active", 10000)
    b.wallets[BOB] = Wallet(2, BOB, 0, "active", 0)
    return b


def stake(*items: tuple[str, AccountKey, str]) -> DebitCall:
    parsed = [(DebitItem(tid, key, amount, Purpose.STAKE, "pool:1"), EUR, EUR.parse(amount))
              for tid, key, amount in items]
    ids = tuple(sorted(t for t, _, _ in items))
    return DebitCall(parsed, [debit_fingerprint(i, m, ids) for i, _, m in parsed])


def payout(tid: str, key: AccountKey, amount: str, settles: str) -> CreditCall:
    cmd = CreditCommand(tid, key, amount, Purpose.PAYOUT, settles)
    minor = EUR.parse(amount)
    return CreditCall(cmd, EUR, minor, credit_fingerprint(cmd, minor))


def entries_sum_to_zero(book: Book) -> bool:
    by_tx: dict[int, int] = {}
    for tx, _, amount in book.new_entries:
        by_tx[id(tx)] = by_tx.get(id(tx), 0) + amount
    return all(v == 0 for v in by_tx.values())


def test_a_stake_moves_money_in_play_and_opens(book: Book) -> None:
    result = book.apply(stake(("b1", ALICE, "15.00")))
    assert not isinstance(result, errors.WalletError)
    assert result.transactions[0].balance_after == "85.00"
    assert result.transactions[0].stake_state == StakeState.OPEN
    assert book.wallets[ALICE].balance == 8500
    assert book.system_deltas == {901: 1500}
    assert entries_sum_to_zero(book)


def test_a_multi_item_debit_is_all_or_nothing(book: Book) -> None:
    refused = book.apply(stake(("b1", ALICE, "15.00"), ("b2", BOB, "1.00")))
    assert isinstance(refused, errors.InsufficientFunds)
    assert book.wallets[ALICE].balance == 10000
    assert book.new_entries == [] and book.new_stakes == []
    assert {t.status for t in book.new_txs} == {TxStatus.REFUSED}  # the decision is recorded, nothing moved


def test_items_on_one_wallet_add_up_before_the_funds_check(book: Book) -> None:
    assert isinstance(book.apply(stake(("b1", ALICE, "60.00"), ("b2", ALICE, "60.00"))), errors.InsufficientFunds)


def test_replay_returns_the_first_result_and_conflict_changes_nothing(book: Book) -> None:
    first = book.apply(stake(("b1", ALICE, "15.00")))
    again = book.apply(stake(("b1", ALICE, "15.00")))
    assert again.replayed and again.transactions == first.transactions  # type: ignore[union-attr]
    before = (len(book.new_txs), book.wallets[ALICE].balance)
    assert isinstance(book.apply(stake(("b1", ALICE, "16.00"))), errors.IdempotencyConflict)
    assert isinstance(book.apply(stake(("b1", BOB, "15.00"))), errors.IdempotencyConflict)
    assert (len(book.new_txs), book.wallets[ALICE].balance) == before


def test_a_refusal_is_replayed_even_after_the_balance_changed(book: Book) -> None:
    assert isinstance(book.apply(stake(("b1", BOB, "5.00"))), errors.InsufficientFunds)
    book.wallets[BOB].balance = 100000
    assert isinstance(book.apply(stake(("b1", BOB, "5.00"))), errors.InsufficientFunds)
    assert book.wallets[BOB].balance == 100000


def test_settlement_pays_out_once(book: Book) -> None:
    book.apply(stake(("b1", ALICE, "15.00")))
    won = book.apply(payout("p1", ALICE, "37.50", "b1"))
    assert won.transaction.balance_after == "122.50"  # type: ignore[union-attr]
    assert book.system_deltas == {901: 0, 902: 1500 - 3750}
    assert book.apply(payout("p1", ALICE, "37.50", "b1")).replayed  # type: ignore[union-attr]
    assert isinstance(book.apply(payout("p2", ALICE, "37.50", "b1")), errors.AlreadySettled)
    assert isinstance(book.apply(payout("p1", ALICE, "40.00", "b1")), errors.IdempotencyConflict)
    assert entries_sum_to_zero(book)


def test_a_zero_payout_settles(book: Book) -> None:
    book.apply(stake(("b1", ALICE, "15.00")))
    lost = book.apply(payout("p1", ALICE, "0", "b1"))
    assert lost.transaction.amount == "0.00" and lost.transaction.balance_after == "85.00"  # type: ignore[union-attr]
    assert book.new_txs[0].stake.state == StakeState.SETTLED  # type: ignore[union-attr]


def test_settlement_refusals_name_the_problem(book: Book) -> None:
    book.apply(stake(("b1", ALICE, "15.00")))
    assert isinstance(book.apply(payout("p1", ALICE, "1", "nope")), errors.StakeNotFound)
    assert isinstance(book.apply(payout("p2", BOB, "1", "b1")), errors.StakeMismatch)
    usd = AccountKey("fanteam", "1001", "USD")
    cmd = CreditCommand("p3", usd, "1", Purpose.PAYOUT, "b1")
    assert isinstance(book.apply(CreditCall(cmd, EUR, 100, credit_fingerprint(cmd, 100))), errors.CurrencyMismatch)
    assert [f.error.reason for f in book.failures] == ["STAKE_NOT_FOUND", "STAKE_MISMATCH", "CURRENCY_MISMATCH"]


def test_cancel_reverses_an_open_stake_once(book: Book) -> None:
    book.apply(stake(("b1", ALICE, "15.00")))
    first = book.apply(CancelCall("fanteam", "b1", ""))
    assert first.outcome == CancelOutcome.REVERSED and first.transaction.balance_after == "100.00"  # type: ignore[union-attr]
    assert book.apply(CancelCall("fanteam", "b1", "")).replayed  # type: ignore[union-attr]
    assert book.wallets[ALICE].balance == 10000
    assert isinstance(book.apply(payout("p1", ALICE, "1", "b1")), errors.StakeCancelled)


def test_cancel_of_an_unknown_id_tombstones_it(book: Book) -> None:
    assert book.apply(CancelCall("fanteam", "late", "")).outcome == CancelOutcome.TOMBSTONED  # type: ignore[union-attr]
    assert isinstance(book.apply(stake(("late", ALICE, "1.00"))), errors.StakeCancelled)
    assert book.wallets[ALICE].balance == 10000


def test_a_settled_stake_cannot_be_cancelled(book: Book) -> None:
    book.apply(stake(("b1", ALICE, "15.00")))
    book.apply(payout("p1", ALICE, "0", "b1"))
    assert isinstance(book.apply(CancelCall("fanteam", "b1", "")), errors.AlreadySettled)


def test_a_refused_debit_has_nothing_to_cancel(book: Book) -> None:
    book.apply(stake(("b1", BOB, "1.00")))
    assert book.apply(CancelCall("fanteam", "b1", "")).outcome == CancelOutcome.NOT_APPLIED  # type: ignore[union-attr]


def test_blocked_and_unknown_wallets_refuse_debits(book: Book) -> None:
    book.wallets[ALICE].status = "blocked"
    assert isinstance(book.apply(stake(("b1", ALICE, "1.00"))), errors.AccountBlocked)
    assert isinstance(book.apply(stake(("b2", AccountKey("fanteam", "ghost", "EUR"), "1.00"))), errors.AccountNotFound)


# ------------------------------------------------------------------ fence


def test_a_fence_tombstones_unknown_ids_reports_the_rest_and_moves_no_money(book: Book) -> None:
    book.apply(stake(("taken", ALICE, "15.00")))
    book.apply(stake(("refused", ALICE, "500.00")))
    entries, balance = len(book.new_entries), book.wallets[ALICE].balance
    result = book.apply(FenceCall("fanteam", ("taken", "refused", "new"), "deadline"))
    assert not isinstance(result, errors.WalletError)
    assert [(r.outcome, r.reason) for r in result.results] == [
        (FenceOutcome.APPLIED, ""), (FenceOutcome.REFUSED, "INSUFFICIENT_FUNDS"), (FenceOutcome.FENCED, ""),
    ]
    assert len(book.new_entries) == entries and book.wallets[ALICE].balance == balance
    stake_of_taken = book.txs[("fanteam", "taken")].stake
    assert stake_of_taken is not None and stake_of_taken.state == StakeState.OPEN
    assert isinstance(book.apply(stake(("new", ALICE, "1.00"))), errors.StakeCancelled)


def test_a_fence_is_idempotent_and_agrees_with_cancel_on_tombstones(book: Book) -> None:
    first = book.apply(FenceCall("fanteam", ("b1",), ""))
    again = book.apply(FenceCall("fanteam", ("b1",), ""))
    assert not isinstance(first, errors.WalletError) and not isinstance(again, errors.WalletError)
    assert (first.results[0].replayed, again.results[0].replayed) == (False, True)
    cancel = book.apply(CancelCall("fanteam", "b1", ""))
    assert not isinstance(cancel, errors.WalletError)
    assert cancel.outcome == CancelOutcome.TOMBSTONED and cancel.replayed

# ---------------------------------------------------------------- the storage range (DESIGN section 1)

IN_PLAY, HOUSE, CASHIER = SYSTEM[AccountKind.IN_PLAY], SYSTEM[AccountKind.HOUSE], SYSTEM[AccountKind.CASHIER]


def credit(tid: str, key: AccountKey, amount: str, purpose: Purpose) -> CreditCall:
    cmd = CreditCommand(tid, key, amount, purpose)
    minor = EUR.parse(amount)
    return CreditCall(cmd, EUR, minor, credit_fingerprint(cmd, minor))


def snapshot(book: Book) -> tuple[object, ...]:
    return (len(book.new_txs), len(book.new_entries), dict(book.system_deltas),
            {k: w.balance for k, w in book.wallets.items()}, len(book.new_stakes), len(book.closed_stakes))


def test_a_deposit_that_would_take_the_cashier_past_the_range_is_refused_before_anything_changes(book: Book) -> None:
    book.system_balances[CASHIER] = -MAX_MINOR + 5000  # 50.00 EUR of room left
    assert not isinstance(book.apply(credit("d1", BOB, "30.00", Purpose.DEPOSIT)), errors.WalletError)
    before = snapshot(book)
    refused = book.apply(credit("d2", BOB, "20.01", Purpose.DEPOSIT))
    assert isinstance(refused, errors.InvalidAmount)
    assert "cashier account of fanteam/EUR" in refused.message and "nothing was changed" in refused.message
    assert snapshot(book) == before
    assert not isinstance(book.apply(credit("d3", BOB, "20.00", Purpose.DEPOSIT)), errors.WalletError)
    assert book.system_balances[CASHIER] + book.system_deltas[CASHIER] == -MAX_MINOR


def test_a_stake_that_would_overflow_in_play_is_refused_and_the_refusal_is_the_decision(book: Book) -> None:
    book.system_balances[IN_PLAY] = MAX_MINOR - 1000
    refused = book.apply(stake(("b1", ALICE, "5.00"), ("b2", ALICE, "5.01")))
    assert isinstance(refused, errors.InvalidAmount) and "in_play account" in refused.message
    assert book.wallets[ALICE].balance == 10000 and book.new_entries == [] and book.system_deltas == {}
    assert {t.status for t in book.new_txs} == {TxStatus.REFUSED}
    book.system_balances[IN_PLAY] = 0  # room again: the bet was refused once and stays refused
    assert isinstance(book.apply(stake(("b1", ALICE, "5.00"), ("b2", ALICE, "5.01"))), errors.InvalidAmount)


def test_withdrawals_payouts_and_adjustments_respect_the_range_of_cashier_and_house(book: Book) -> None:
    book.system_balances[CASHIER] = MAX_MINOR - 100
    assert not isinstance(book.apply(stake(("w1", ALICE, "1.01"))), errors.WalletError)
    withdrawal = DebitItem("w2", ALICE, "1.01", Purpose.WITHDRAWAL, "")
    refused = book.apply(DebitCall([(withdrawal, EUR, 101)], [debit_fingerprint(withdrawal, 101, ("w2",))]))
    assert isinstance(refused, errors.InvalidAmount) and "cashier" in refused.message
    book.system_balances[HOUSE] = -MAX_MINOR + 50
    assert isinstance(book.apply(credit("a1", BOB, "0.51", Purpose.ADJUSTMENT)), errors.InvalidAmount)
    # a payout takes the stake into house before paying from it: only the net change counts
    assert book.apply(payout("p1", ALICE, "1.51", "w1")).transaction.amount == "1.51"  # type: ignore[union-attr]
    assert isinstance(book.apply(credit("a2", BOB, "0.01", Purpose.ADJUSTMENT)), errors.InvalidAmount)


def test_a_cancel_that_would_take_the_wallet_past_the_range_is_refused(book: Book) -> None:
    book.apply(stake(("b1", ALICE, "15.00")))
    book.wallets[ALICE].balance = MAX_MINOR - 1000  # deposits arrived while the stake was open
    before = snapshot(book)
    refused = book.apply(CancelCall("fanteam", "b1", ""))
    assert isinstance(refused, errors.InvalidAmount) and "wallet fanteam/1001/EUR" in refused.message
    assert snapshot(book) == before
    assert book.new_txs[0].stake.state == StakeState.OPEN  # type: ignore[union-attr]
