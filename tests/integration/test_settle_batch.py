"""SettleBatch over real sockets, on SQLite and PostgreSQL: many payouts per call, each on its own.

The checks DESIGN section 5 asks of /winners live in the core, so that they hold for every caller
and across calls: the stake a payout names must be the stake taken, and the payouts of one
reference (a betflex pool) may not exceed their cap (its overdraw).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from clients import AccountRef, DebitItem, Purpose, SettleItem, StakeState, WalletClient
from clients.errors import (
    AlreadySettled,
    InvalidAmount,
    InvalidArgument,
    PayoutCapExceeded,
    StakeAmountMismatch,
    StakeNotFound,
)
from tests.support.db import dump
from tests.support.servers import Core

ALICE = AccountRef("fanteam", "1001", "EUR")
POOL = "pool:550001"


@pytest.fixture
def staked(wallet: WalletClient) -> WalletClient:
    """Alice held 100.00 EUR and staked 2.00 on each of bets 1..5 (pool 550001): 90.00 left."""
    wallet.open_account(ALICE)
    wallet.deposit("fund-alice", ALICE, "100.00")
    wallet.debit([DebitItem(f"bet:{n}", ALICE, "2.00", Purpose.STAKE, POOL) for n in range(1, 6)])
    return wallet


def payout(n: int, amount: str, *, stake: str = "2.00", cap: str = "", reference: str = POOL) -> SettleItem:
    return SettleItem(f"payout:{n}", ALICE, amount, f"bet:{n}", reference, stake_amount=stake, payout_cap=cap)


def test_each_item_is_settled_on_its_own_and_a_repeat_replays(staked: WalletClient, core: Core) -> None:
    items = [payout(1, "5.00"), payout(99, "1.00"), payout(2, "0")]
    first = staked.settle_batch(items)
    assert [r.settled for r in first] == [True, False, True]
    assert isinstance(first[1].error, StakeNotFound)
    assert staked.get_balance(ALICE).balance == Decimal("95.00")
    before = dump(core.engine)
    again = staked.settle_batch(items)
    assert [(r.settled, r.replayed) for r in again] == [(True, True), (False, False), (True, True)]
    after = dump(core.engine)
    for table in ("accounts", "entries", "stakes", "transactions"):
        assert after[table] == before[table], table
    stake = staked.list_transactions(ALICE, page_size=50).transactions[-2]
    assert stake.stake_state == StakeState.SETTLED


def test_a_plain_credit_payout_replays_as_a_batch_item(staked: WalletClient) -> None:
    staked.payout("payout:1", ALICE, "4.00", "bet:1", reference=POOL)
    (result,) = staked.settle_batch([payout(1, "4.00", cap="10.00")])
    assert (result.settled, result.replayed) == (True, True)
    (other,) = staked.settle_batch([payout(1, "6.00")])
    assert not other.settled and other.error is not None and other.error.reason == "IDEMPOTENCY_CONFLICT"


def test_a_payout_naming_another_stake_amount_is_refused_and_kept(staked: WalletClient, core: Core) -> None:
    before = dump(core.engine)
    (result,) = staked.settle_batch([payout(1, "40.00", stake="20.00")])
    assert isinstance(result.error, StakeAmountMismatch)
    assert "2.00" in result.error.message and "20.00" in result.error.message
    after = dump(core.engine)
    for table in ("accounts", "entries", "stakes", "transactions"):
        assert after[table] == before[table], table
    (failure,) = staked.list_settlement_failures("fanteam").failures
    assert (failure.transaction_id, failure.reason, failure.amount) == ("payout:1", "STAKE_AMOUNT_MISMATCH", "40.00")
    assert "20.00" in failure.message and "2.00" in failure.message
    # the corrected request settles it, and resolves the queue entry
    assert staked.settle_batch([payout(1, "40.00")])[0].settled
    assert staked.list_settlement_failures("fanteam").failures == ()


def test_a_pool_over_its_cap_pays_none_of_its_new_payouts(staked: WalletClient) -> None:
    results = staked.settle_batch([payout(1, "2.00", cap="4.00"), payout(2, "400000.00", cap="4.00")])
    assert all(isinstance(r.error, PayoutCapExceeded) for r in results)
    assert staked.get_balance(ALICE).balance == Decimal("90.00")
    failures = {f.transaction_id: f for f in staked.list_settlement_failures("fanteam").failures}
    assert set(failures) == {"payout:1", "payout:2"}
    assert failures["payout:2"].amount == "400000.00" and "4.00" in failures["payout:2"].message
    assert "400002.00" in failures["payout:2"].message


def test_the_cap_counts_what_earlier_calls_paid(staked: WalletClient) -> None:
    results = staked.settle_batch([payout(1, "3.00", cap="4.00"), payout(2, "1.00", cap="4.00")])
    assert [r.settled for r in results] == [True, True]
    # the pool has paid its 4.00: a later call for another of its bets may pay nothing more
    (over,) = staked.settle_batch([payout(3, "0.01", cap="4.00")])
    assert isinstance(over.error, PayoutCapExceeded) and "4.00 paid before" in over.error.message
    assert staked.settle_batch([payout(3, "0", cap="4.00")])[0].settled  # a lost bet still settles
    # a replay of a payout already made is not a new payout
    assert [r.replayed for r in staked.settle_batch([payout(1, "3.00", cap="4.00")])] == [True]
    # another pool is another group
    (elsewhere,) = staked.settle_batch([payout(4, "9.00", cap="9.00", reference="pool:550002")])
    assert elsewhere.settled
    assert staked.get_balance(ALICE).balance == Decimal("103.00")


def test_items_refused_on_their_own_do_not_stop_the_others(staked: WalletClient) -> None:
    results = staked.settle_batch([payout(1, "1.001"), payout(2, "3.00", stake="2.001"), payout(3, "3.00")])
    assert [type(r.error) for r in results] == [InvalidAmount, InvalidAmount, type(None)]
    staked.settle_batch([payout(3, "3.00")])
    (again,) = staked.settle_batch([SettleItem("payout:3b", ALICE, "1.00", "bet:3", POOL)])
    assert isinstance(again.error, AlreadySettled)
    failures = staked.list_settlement_failures("fanteam").failures
    assert {f.transaction_id for f in failures} == {"payout:1", "payout:2", "payout:3b"}


def test_what_concerns_the_whole_call_refuses_it(staked: WalletClient) -> None:
    with pytest.raises(InvalidArgument):
        staked.settle_batch([])
    with pytest.raises(InvalidArgument):
        staked.settle_batch([payout(1, "1.00"), payout(1, "1.00")])
    with pytest.raises(InvalidArgument):
        staked.settle_batch([payout(n, "0") for n in range(501)])
    assert staked.get_balance(ALICE).balance == Decimal("90.00")
