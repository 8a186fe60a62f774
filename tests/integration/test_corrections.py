"""Settlement corrections and the operator's side over gRPC, on SQLite and PostgreSQL (issue 12).

Every test ends with `wallet reconcile`'s checks (the `core` fixture), which cover the receivable
accounts and player debt.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from clients import AccountRef, ClawbackPolicy, DebitItem, Purpose, Resolution, StakeState, WalletClient
from clients.errors import IdempotencyConflict, InsufficientFunds, InvalidArgument, NotSettled, PermissionDenied
from tests.support.db import dump
from tests.support.servers import TOKENS, Core

ALICE = AccountRef("fanteam", "1001", "EUR")


@pytest.fixture
def ops(core: Core) -> Iterator[WalletClient]:
    with WalletClient(core.target, token=TOKENS["ops"], timeout=10) as c:
        yield c


@pytest.fixture
def settled(wallet: WalletClient) -> WalletClient:
    """Alice deposited 100.00, staked 10.00 on b1, which paid 50.00: she holds 140.00."""
    wallet.open_account(ALICE)
    wallet.deposit("dep", ALICE, "100.00")
    wallet.debit([DebitItem("b1", ALICE, "10.00", Purpose.STAKE)])
    wallet.payout("p1", ALICE, "50.00", "b1")
    return wallet


def balance(wallet: WalletClient) -> Decimal:
    return wallet.get_balance(ALICE).balance


def system(wallet: WalletClient) -> dict[str, Decimal]:
    return {b.kind: b.balance for b in wallet.system_balances("fanteam") if b.currency == "EUR"}


def test_unsettle_reopens_the_stake_and_is_idempotent(settled: WalletClient, ops: WalletClient) -> None:
    result = ops.unsettle("fanteam", "u1", "b1", reason="league corrected the result")
    assert result.transaction.purpose == Purpose.UNSETTLE and not result.replayed
    assert (result.previous_payout, result.taken, result.debt_added) == (Decimal("50.00"), Decimal("50.00"), Decimal(0))
    assert balance(settled) == Decimal("90.00")
    assert system(settled)["in_play"] == Decimal("10.00")
    again = ops.unsettle("fanteam", "u1", "b1", reason="league corrected the result")
    assert again.replayed and balance(settled) == Decimal("90.00")
    with pytest.raises(NotSettled):
        ops.unsettle("fanteam", "u2", "b1")
    with pytest.raises(IdempotencyConflict):
        ops.resettle("fanteam", "u1", "b1", "5.00")
    settled.payout("p2", ALICE, "20.00", "b1")  # settled again, with a new id
    assert balance(settled) == Decimal("110.00")
    found = ops.lookup_transaction("fanteam", "b1")
    assert found.transaction is not None and found.transaction.stake_state == StakeState.SETTLED
    assert [t.purpose for t in found.related] == [Purpose.PAYOUT, Purpose.UNSETTLE, Purpose.PAYOUT]
    # every operator action is in the trail, refusals included
    assert [(a.actor, a.action, a.reason, a.outcome) for a in found.audit] == [
        ("ops-desk", "unsettle", "league corrected the result", "applied"),
        ("ops-desk", "unsettle", "league corrected the result", "replayed"),
        ("ops-desk", "unsettle", "", "NOT_SETTLED"),
        ("ops-desk", "resettle", "", "IDEMPOTENCY_CONFLICT")]


def test_resettle_replaces_the_payout_atomically(settled: WalletClient, ops: WalletClient) -> None:
    lower = ops.resettle("fanteam", "r1", "b1", "20.00", reason="half won")
    assert lower.previous_payout == Decimal("50.00") and balance(settled) == Decimal("110.00")
    higher = ops.resettle("fanteam", "r2", "b1", "70.00", reason="full win after all")
    assert higher.previous_payout == Decimal("20.00") and balance(settled) == Decimal("160.00")
    assert higher.transaction.purpose == Purpose.RESETTLE and higher.transaction.amount == Decimal("70.00")
    assert system(settled)["in_play"] == 0 and system(settled)["house"] == Decimal("-60.00")


def test_refuse_policy_keeps_the_refusal_for_operators(core: Core, settled: WalletClient, ops: WalletClient) -> None:
    settled.withdraw("w1", ALICE, "130.00")  # she spent the win: 10.00 left
    before = dump(core.engine)
    with pytest.raises(InsufficientFunds):
        ops.unsettle("fanteam", "u1", "b1", reason="void", clawback=ClawbackPolicy.REFUSE)
    after = dump(core.engine)
    assert {k: v for k, v in after.items() if k not in ("settlement_failures", "audit_log")} == \
        {k: v for k, v in before.items() if k not in ("settlement_failures", "audit_log")}
    queue = settled.list_settlement_failures("fanteam").failures
    assert [(f.transaction_id, f.settles_transaction_id, f.reason) for f in queue] == [
        ("u1", "b1", "INSUFFICIENT_FUNDS")]
    resolved = ops.resolve_settlement_failure("fanteam", "u1", Resolution.DISMISSED, "player banned; written off")
    assert resolved.resolution == Resolution.DISMISSED and resolved.resolved_by == "ops-desk"
    assert settled.list_settlement_failures("fanteam").failures == ()
    with pytest.raises(InvalidArgument):
        ops.resolve_settlement_failure("fanteam", "u1", Resolution.RESOLVED, "")


def test_debt_policy_records_the_rest_and_credits_pay_it_first(settled: WalletClient, ops: WalletClient) -> None:
    settled.withdraw("w1", ALICE, "130.00")
    result = ops.unsettle("fanteam", "u1", "b1", reason="void", clawback=ClawbackPolicy.DEBT)
    assert (result.taken, result.debt_added) == (Decimal("10.00"), Decimal("40.00"))
    assert balance(settled) == 0 and system(settled)["receivable"] == Decimal("-40.00")
    settled.deposit("d2", ALICE, "25.00")
    assert balance(settled) == 0 and system(settled)["receivable"] == Decimal("-15.00")
    settled.deposit("d3", ALICE, "25.00")
    assert balance(settled) == Decimal("10.00") and system(settled)["receivable"] == 0


def test_the_configured_policy_applies_per_client(db_url: str) -> None:
    from tests.support.servers import running_core

    with running_core(db_url, clawback="fanteam=debt,*=refuse") as core, \
            WalletClient(core.target, token=TOKENS["admin"], timeout=10) as w:
        for ref in (ALICE, AccountRef("casino", "1001", "EUR")):
            w.open_account(ref)
            w.deposit(f"dep-{ref.client}", ref, "10.00")
            w.debit([DebitItem(f"b-{ref.client}", ref, "10.00", Purpose.STAKE)])
            w.payout(f"p-{ref.client}", ref, "50.00", f"b-{ref.client}")
            w.withdraw(f"w-{ref.client}", ref, "40.00")
        assert w.unsettle("fanteam", "u", "b-fanteam").debt_added == Decimal("40.00")
        with pytest.raises(InsufficientFunds):
            w.unsettle("casino", "u", "b-casino")


def test_operator_reads_are_scoped_to_the_token(settled: WalletClient, other: WalletClient, ops: WalletClient) -> None:
    with pytest.raises(PermissionDenied):
        other.unsettle("fanteam", "u1", "b1")
    with pytest.raises(PermissionDenied):
        other.system_balances("fanteam")
    assert other.list_clients().clients == ()
    listed = ops.list_clients()
    assert listed.clients == ("fanteam",) and listed.label == "ops-desk"
    assert {b.kind for b in ops.system_balances("fanteam")} == {"in_play", "house", "cashier", "receivable"}


def test_open_stakes_and_audited_adjustments(settled: WalletClient, ops: WalletClient) -> None:
    settled.debit([DebitItem("b2", ALICE, "5.00", Purpose.STAKE), DebitItem("b3", ALICE, "7.50", Purpose.STAKE)])
    found = ops.list_open_stakes("fanteam", older_than_seconds=0)
    assert [s.stake.transaction_id for s in found.stakes] == ["b2", "b3"]
    assert [(t.currency, t.count, t.amount) for t in found.totals] == [("EUR", 2, Decimal("12.50"))]
    assert ops.list_open_stakes("fanteam", older_than_seconds=3600).stakes == ()
    ops.adjust("adj-1", ALICE, "3.00", "goodwill after outage #42")
    ops.operator_cancel("fanteam", "b2", "duplicate bet reported by support")
    trail = ops.list_audit("fanteam")
    assert [(a.action, a.transaction_id, a.reason, a.outcome) for a in trail] == [
        ("cancel", "b2", "duplicate bet reported by support", "applied"),
        ("adjustment", "adj-1", "goodwill after outage #42", "applied")]
    assert settled.list_audit("fanteam") == trail  # the same trail, whoever reads it


@pytest.mark.parametrize("user", ["07001", "7001 ", " 7001"])
def test_ids_betflex_could_never_reach_are_refused(ops: WalletClient, user: str) -> None:
    with pytest.raises(InvalidArgument):
        ops.open_account(AccountRef("fanteam", user, "EUR"))
    with pytest.raises(InvalidArgument):
        ops.open_account(AccountRef("fanteam ", "7001", "EUR"))
