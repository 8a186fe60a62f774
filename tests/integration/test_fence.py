"""Fence (DESIGN §3, §5): make the fate of transaction ids final without ever moving money.

A caller whose Debit timed out fences its ids: each id is then APPLIED (the Debit happened, and
stays), REFUSED (the ledger refused it) or FENCED (never seen: tombstoned, so it never will be).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from clients import AccountRef, DebitItem, FenceOutcome, Purpose, StakeState, TransactionStatus, WalletClient
from clients.errors import IdempotencyConflict, InsufficientFunds, InvalidArgument, PermissionDenied, StakeCancelled
from tests.support.db import dump
from tests.support.servers import TOKENS, Core

ALICE = AccountRef("fanteam", "1001", "EUR")


@pytest.fixture
def funded(wallet: WalletClient) -> WalletClient:
    wallet.open_account(ALICE)
    wallet.deposit("fund-alice", ALICE, "100.00")
    return wallet


def stake(tid: str, amount: str) -> DebitItem:
    return DebitItem(tid, ALICE, amount, Purpose.STAKE, "pool:550001")


def outcomes(wallet: WalletClient, *ids: str) -> list[FenceOutcome]:
    return [r.outcome for r in wallet.fence("fanteam", list(ids)).results]


def test_a_fence_of_an_unknown_id_tombstones_it_and_a_later_debit_is_refused(funded: WalletClient, core: Core) -> None:
    first = funded.fence("fanteam", ["bet-1", "bet-2"], reference="deadline passed")
    assert [(r.transaction_id, r.outcome, r.replayed) for r in first.results] == [
        ("bet-1", FenceOutcome.FENCED, False), ("bet-2", FenceOutcome.FENCED, False),
    ]
    assert first.results[0].transaction.status == TransactionStatus.TOMBSTONE
    before = dump(core.engine)
    with pytest.raises(StakeCancelled):
        funded.debit([stake("bet-1", "15.00"), stake("bet-2", "5.00")])
    assert dump(core.engine) == before
    again = funded.fence("fanteam", ["bet-1", "bet-2"])
    assert [(r.outcome, r.replayed) for r in again.results] == [(FenceOutcome.FENCED, True)] * 2
    assert funded.get_balance(ALICE).balance == Decimal("100.00")


def test_a_fence_never_reverses_an_applied_stake(funded: WalletClient, core: Core) -> None:
    funded.debit([stake("bet-1", "15.00"), stake("bet-2", "5.00")])
    before = dump(core.engine)
    result = funded.fence("fanteam", ["bet-1", "bet-2"])
    assert [r.outcome for r in result.results] == [FenceOutcome.APPLIED, FenceOutcome.APPLIED]
    assert result.results[0].transaction.stake_state == StakeState.OPEN
    assert result.results[0].transaction.amount == Decimal("15.00")
    assert dump(core.engine) == before  # nothing written, nothing reversed
    assert funded.get_balance(ALICE).balance == Decimal("80.00")
    # the stake is still there to be settled, and the Debit still replays
    assert funded.debit([stake("bet-1", "15.00"), stake("bet-2", "5.00")]).replayed
    funded.payout("pay-1", ALICE, "30.00", "bet-1")


def test_a_fence_reports_a_refused_debit_with_its_reason(funded: WalletClient) -> None:
    with pytest.raises(InsufficientFunds):
        funded.debit([stake("bet-1", "500.00")])
    (result,) = funded.fence("fanteam", ["bet-1"]).results
    assert result.outcome == FenceOutcome.REFUSED and result.reason == "INSUFFICIENT_FUNDS"


def test_one_fence_call_reports_each_id_as_it_stands(funded: WalletClient, core: Core) -> None:
    funded.debit([stake("taken", "10.00")])
    with pytest.raises(InsufficientFunds):
        funded.debit([stake("refused", "500.00")])
    assert outcomes(funded, "taken", "refused", "new") == [
        FenceOutcome.APPLIED, FenceOutcome.REFUSED, FenceOutcome.FENCED,
    ]
    with pytest.raises(StakeCancelled):
        funded.debit([stake("new", "1.00")])


def test_a_fenced_id_cannot_be_reused_by_a_credit(funded: WalletClient) -> None:
    funded.fence("fanteam", ["dep-late"])
    with pytest.raises(IdempotencyConflict):
        funded.deposit("dep-late", ALICE, "1.00")


@pytest.mark.parametrize("ids", [[], ["a", "a"], ["x" * 129], [f"id-{n}" for n in range(101)]])
def test_bad_fences_are_refused_and_change_nothing(funded: WalletClient, core: Core, ids: list[str]) -> None:
    before = dump(core.engine)
    with pytest.raises(InvalidArgument):
        funded.fence("fanteam", ids)
    assert dump(core.engine) == before


def test_a_fence_needs_a_token_allowed_the_client(core: Core) -> None:
    with WalletClient(core.target, token=TOKENS["fanteam"], timeout=10) as wallet:
        before = dump(core.engine)
        with pytest.raises(PermissionDenied):
            wallet.fence("casino", ["bet-1"])
        assert dump(core.engine) == before
