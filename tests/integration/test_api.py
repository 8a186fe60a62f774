"""The gRPC API over real sockets, on SQLite and PostgreSQL (DESIGN sections 1-4).

Every test ends with `wallet reconcile`'s checks on its database (the `core` fixture).
"Changes nothing" is checked by comparing a dump of every table before and after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from clients import (
    AccountRef,
    AccountStatus,
    CancelOutcome,
    DebitItem,
    Purpose,
    StakeState,
    TransactionStatus,
    WalletClient,
)
from clients.errors import (
    AccountBlocked,
    AccountNotFound,
    AlreadySettled,
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidArgument,
    NotCancellable,
    PermissionDenied,
    StakeCancelled,
    StakeMismatch,
    StakeNotFound,
    Unauthenticated,
    UnknownCurrency,
)
from tests.support.db import dump
from tests.support.servers import Core

ALICE = AccountRef("fanteam", "1001", "EUR")
BOB = AccountRef("fanteam", "1002", "EUR")


@pytest.fixture
def funded(wallet: WalletClient) -> WalletClient:
    """Alice holds 100.00 EUR; Bob has an empty wallet."""
    wallet.open_account(ALICE)
    wallet.open_account(BOB)
    wallet.deposit("fund-alice", ALICE, "100.00")
    return wallet


def stake(tid: str, amount: str, account: AccountRef = ALICE) -> DebitItem:
    return DebitItem(tid, account, amount, Purpose.STAKE, "pool:550001")


# ------------------------------------------------------------------ every RPC


def test_open_account_is_idempotent(wallet: WalletClient) -> None:
    account, created = wallet.open_account(ALICE)
    assert created and account.balance == Decimal("0.00") and account.status == AccountStatus.ACTIVE
    again, created_again = wallet.open_account(ALICE)
    assert not created_again and again.ref == ALICE


def test_get_balance(funded: WalletClient) -> None:
    assert funded.get_balance(ALICE).balance == Decimal("100.00")
    with pytest.raises(AccountNotFound):
        funded.get_balance(AccountRef("fanteam", "nobody", "EUR"))


def test_debit_stake_then_payout_then_history(funded: WalletClient) -> None:
    debit = funded.debit([stake("bet-1", "15.00")])
    (tx,) = debit.transactions
    assert (tx.transaction_id, tx.amount, tx.balance_after) == ("bet-1", Decimal("15.00"), Decimal("85.00"))
    assert tx.status == TransactionStatus.APPLIED and tx.stake_state == StakeState.OPEN and not debit.replayed

    paid = funded.payout("pay-1", ALICE, "37.50", "bet-1")
    assert paid.transaction.balance_after == Decimal("122.50")
    assert paid.transaction.settles_transaction_id == "bet-1"

    page = funded.list_transactions(ALICE, page_size=2)
    assert [t.transaction_id for t in page.transactions] == ["pay-1", "bet-1"]
    assert page.transactions[1].stake_state == StakeState.SETTLED
    rest = funded.list_transactions(ALICE, page_size=2, page_token=page.next_page_token)
    assert [t.transaction_id for t in rest.transactions] == ["fund-alice"] and rest.next_page_token == ""


def test_withdrawal_deposit_and_adjustment(funded: WalletClient) -> None:
    assert funded.withdraw("wd-1", ALICE, "30.00").transactions[0].balance_after == Decimal("70.00")
    adj = funded.credit("adj-1", ALICE, "0.50", Purpose.ADJUSTMENT, reference="goodwill")
    assert adj.transaction.balance_after == Decimal("70.50") and adj.transaction.reference == "goodwill"
    with pytest.raises(NotCancellable):
        funded.cancel("fanteam", "wd-1")


def test_currency_scales_and_operator_currencies(wallet: WalletClient) -> None:
    jpy, fun = AccountRef("fanteam", "1001", "JPY"), AccountRef("fanteam", "1001", "FUN")
    for account in (jpy, fun):
        wallet.open_account(account)
    assert wallet.deposit("jpy-1", jpy, "1500").transaction.balance_after == Decimal("1500")
    assert wallet.deposit("fun-1", fun, "2.50").transaction.balance_after == Decimal("2.50")
    with pytest.raises(InvalidAmount):
        wallet.deposit("jpy-2", jpy, "15.5")
    with pytest.raises(UnknownCurrency):
        wallet.open_account(AccountRef("fanteam", "1001", "XYZ"))


def test_blocked_wallet_refuses_debits_and_deposits(funded: WalletClient) -> None:
    assert funded.set_account_status(ALICE, AccountStatus.BLOCKED).status == AccountStatus.BLOCKED
    with pytest.raises(AccountBlocked):
        funded.debit([stake("bet-1", "1.00")])
    with pytest.raises(AccountBlocked):
        funded.deposit("dep-2", ALICE, "1.00")
    funded.set_account_status(ALICE, AccountStatus.ACTIVE)
    assert funded.debit([stake("bet-2", "1.00")]).transactions[0].balance_after == Decimal("99.00")


def test_health_and_reflection(core: Core) -> None:
    with grpc.insecure_channel(core.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "wallet.v1.Wallet"):
            # types-grpcio-health-checking declares the stub without its methods
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)  # type: ignore[attr-defined]
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        # types-grpcio-reflection declares the stub's methods without their types
        replies = reflection.ServerReflectionInfo(  # type: ignore[operator]
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = {s.name for s in next(replies).list_services_response.service}
        assert "wallet.v1.Wallet" in names


# ------------------------------------------------------------------ idempotency


def test_replay_of_a_success_returns_the_first_result(funded: WalletClient, core: Core) -> None:
    first = funded.debit([stake("bet-1", "15.00")])
    before = dump(core.engine)
    again = funded.debit([stake("bet-1", "15.00")])
    assert again.replayed and again.transactions == first.transactions
    assert dump(core.engine) == before
    assert funded.get_balance(ALICE).balance == Decimal("85.00")


def test_replay_of_a_refusal_returns_the_first_refusal(funded: WalletClient, core: Core) -> None:
    with pytest.raises(InsufficientFunds):
        funded.debit([stake("bet-1", "500.00")])
    funded.deposit("top-up", ALICE, "1000.00")
    before = dump(core.engine)
    with pytest.raises(InsufficientFunds):  # the first call decided, even though the money is there now
        funded.debit([stake("bet-1", "500.00")])
    assert dump(core.engine) == before


def test_same_id_with_different_content_is_a_conflict_and_changes_nothing(funded: WalletClient, core: Core) -> None:
    funded.debit([stake("bet-1", "15.00")])
    funded.deposit("dep-1", ALICE, "5.00")
    before = dump(core.engine)
    call: Callable[[], object]
    for call in [
        lambda: funded.debit([stake("bet-1", "16.00")]),
        lambda: funded.debit([stake("bet-1", "15.00", BOB)]),
        lambda: funded.debit([stake("bet-1", "15.00"), stake("bet-9", "1.00")]),
        lambda: funded.deposit("dep-1", ALICE, "6.00"),
        lambda: funded.deposit("bet-1", ALICE, "15.00"),
        lambda: funded.withdraw("dep-1", ALICE, "5.00"),
    ]:
        with pytest.raises(IdempotencyConflict):
            call()
    assert dump(core.engine) == before


def test_multi_item_debit_is_all_or_nothing(funded: WalletClient, core: Core) -> None:
    funded.deposit("fund-bob", BOB, "1.00")
    before = dump(core.engine)
    with pytest.raises(InvalidAmount):  # a malformed item: nothing at all is written
        funded.debit([stake("bet-1", "10.00"), stake("bet-2", "1.001", BOB)])
    with pytest.raises(AccountNotFound):
        funded.get_balance(AccountRef("fanteam", "ghost", "EUR"))
    assert dump(core.engine) == before

    with pytest.raises(InsufficientFunds):  # one wallet short: no money moves, the refusal is recorded
        funded.debit([stake("bet-1", "10.00"), stake("bet-2", "5.00", BOB)])
    after = dump(core.engine)
    for table in ("accounts", "entries", "stakes", "settlement_failures"):
        assert after[table] == before[table], table
    assert [r for r in after["transactions"] if r not in before["transactions"]] != []
    assert funded.get_balance(ALICE).balance == Decimal("100.00")
    assert funded.get_balance(BOB).balance == Decimal("1.00")

    both = funded.debit([stake("bet-3", "10.00"), stake("bet-4", "1.00", BOB)])
    assert [t.balance_after for t in both.transactions] == [Decimal("90.00"), Decimal("0.00")]


@pytest.mark.parametrize(
    "item",
    [
        DebitItem("x", ALICE, "-1.00", Purpose.STAKE),
        DebitItem("x", ALICE, "0", Purpose.STAKE),
        DebitItem("x", ALICE, "NaN", Purpose.STAKE),
        DebitItem("x", ALICE, "1e3", Purpose.STAKE),
        DebitItem("x", ALICE, "", Purpose.STAKE),
        DebitItem("x", ALICE, "10000000000000000000", Purpose.STAKE),
        DebitItem("x", AccountRef("fanteam", "1001", "XXX"), "1.00", Purpose.STAKE),
        DebitItem("", ALICE, "1.00", Purpose.STAKE),
        DebitItem("x", ALICE, "1.00", Purpose.PAYOUT),
    ],
)
def test_bad_debits_are_refused_and_change_nothing(funded: WalletClient, core: Core, item: DebitItem) -> None:
    before = dump(core.engine)
    with pytest.raises(InvalidArgument):
        funded.debit([item])
    assert dump(core.engine) == before


# ------------------------------------------------------------------ cancel and tombstones


def test_cancel_reverses_an_open_stake_once(funded: WalletClient) -> None:
    funded.debit([stake("bet-1", "15.00")])
    first = funded.cancel("fanteam", "bet-1")
    assert first.outcome == CancelOutcome.REVERSED and first.transaction.balance_after == Decimal("100.00")
    again = funded.cancel("fanteam", "bet-1")
    assert again.replayed and again.outcome == CancelOutcome.REVERSED
    assert funded.get_balance(ALICE).balance == Decimal("100.00")
    with pytest.raises(StakeCancelled):
        funded.payout("pay-1", ALICE, "10.00", "bet-1")


def test_cancel_of_an_unknown_id_tombstones_it(funded: WalletClient, core: Core) -> None:
    result = funded.cancel("fanteam", "late-bet")
    assert result.outcome == CancelOutcome.TOMBSTONED
    before = dump(core.engine)
    with pytest.raises(StakeCancelled):
        funded.debit([stake("late-bet", "15.00")])
    assert dump(core.engine) == before
    assert funded.cancel("fanteam", "late-bet").outcome == CancelOutcome.TOMBSTONED
    assert funded.get_balance(ALICE).balance == Decimal("100.00")


def test_cancel_of_a_refused_debit_has_nothing_to_do(funded: WalletClient) -> None:
    with pytest.raises(InsufficientFunds):
        funded.debit([stake("bet-1", "500.00")])
    assert funded.cancel("fanteam", "bet-1").outcome == CancelOutcome.NOT_APPLIED


# ------------------------------------------------------------------ settlement


def test_a_payout_of_zero_settles(funded: WalletClient) -> None:
    funded.debit([stake("bet-1", "15.00")])
    lost = funded.payout("pay-1", ALICE, "0", "bet-1")
    assert lost.transaction.amount == Decimal("0.00") and lost.transaction.balance_after == Decimal("85.00")
    with pytest.raises(AlreadySettled):
        funded.cancel("fanteam", "bet-1")


def test_a_second_different_settlement_is_refused(funded: WalletClient, core: Core) -> None:
    funded.debit([stake("bet-1", "15.00")])
    funded.payout("pay-1", ALICE, "37.50", "bet-1")
    assert funded.payout("pay-1", ALICE, "37.50", "bet-1").replayed
    before = dump(core.engine)
    with pytest.raises(AlreadySettled):
        funded.payout("pay-2", ALICE, "37.50", "bet-1")
    with pytest.raises(IdempotencyConflict):
        funded.payout("pay-1", ALICE, "40.00", "bet-1")
    after = dump(core.engine)
    for table in ("accounts", "transactions", "entries", "stakes"):
        assert after[table] == before[table], table
    assert funded.get_balance(ALICE).balance == Decimal("122.50")


def test_a_settlement_in_another_currency_or_wallet_is_refused(funded: WalletClient) -> None:
    funded.debit([stake("bet-1", "15.00")])
    usd = AccountRef("fanteam", "1001", "USD")
    with pytest.raises(CurrencyMismatch):
        funded.payout("pay-1", usd, "37.50", "bet-1")
    funded.open_account(usd)
    with pytest.raises(CurrencyMismatch):
        funded.payout("pay-1", usd, "37.50", "bet-1")
    with pytest.raises(StakeMismatch):
        funded.payout("pay-1", BOB, "37.50", "bet-1")
    with pytest.raises(StakeNotFound):
        funded.payout("pay-1", ALICE, "37.50", "no-such-bet")
    # the refusals wait for an operator; the right payout then settles and resolves them
    (failure,) = funded.list_settlement_failures("fanteam").failures  # one row per payout id, with its last refusal
    assert (failure.transaction_id, failure.reason, failure.attempts) == ("pay-1", "STAKE_NOT_FOUND", 4)
    funded.payout("pay-1", ALICE, "37.50", "bet-1")
    assert funded.list_settlement_failures("fanteam").failures == ()
    assert len(funded.list_settlement_failures("fanteam", include_resolved=True).failures) == 1


def test_settlement_failures_come_in_pages_that_neither_skip_nor_repeat(funded: WalletClient) -> None:
    for n in range(5):  # five refused payouts, each naming a stake that does not exist
        with pytest.raises(StakeNotFound):
            funded.payout(f"pay-{n}", ALICE, "1.00", f"no-bet-{n}")
    first = funded.list_settlement_failures("fanteam", limit=2)
    assert [f.transaction_id for f in first.failures] == ["pay-4", "pay-3"] and first.next_page_token
    # a payout refused again between two pages moves nothing: the next page starts where this one ended
    with pytest.raises(StakeNotFound):
        funded.payout("pay-0", ALICE, "1.00", "no-bet-0")
    second = funded.list_settlement_failures("fanteam", limit=2, page_token=first.next_page_token)
    assert [f.transaction_id for f in second.failures] == ["pay-2", "pay-1"] and second.next_page_token
    last = funded.list_settlement_failures("fanteam", limit=2, page_token=second.next_page_token)
    assert [(f.transaction_id, f.attempts) for f in last.failures] == [("pay-0", 2)]
    assert last.next_page_token == ""
    # a page that ends exactly at the last failure says so
    everything = funded.list_settlement_failures("fanteam", limit=5)
    assert len(everything.failures) == 5 and everything.next_page_token == ""
    # resolved failures leave the default listing, pages and all
    funded.debit([stake("bet-3", "1.00")])
    funded.payout("pay-3", ALICE, "1.00", "bet-3")
    unresolved = funded.list_settlement_failures("fanteam", limit=2)
    assert [f.transaction_id for f in unresolved.failures] == ["pay-4", "pay-2"]
    rest = funded.list_settlement_failures("fanteam", limit=2, page_token=unresolved.next_page_token)
    assert [f.transaction_id for f in rest.failures] == ["pay-1", "pay-0"] and rest.next_page_token == ""
    with_resolved = funded.list_settlement_failures("fanteam", include_resolved=True, limit=2)
    assert [f.transaction_id for f in with_resolved.failures] == ["pay-4", "pay-3"]
    with pytest.raises(InvalidArgument):
        funded.list_settlement_failures("fanteam", page_token="not-a-token")


def test_the_asyncio_client_pages_settlement_failures_too(funded: WalletClient, core: Core) -> None:
    from clients import AsyncWalletClient
    from tests.support.servers import TOKENS

    for n in range(3):
        with pytest.raises(StakeNotFound):
            funded.payout(f"pay-{n}", ALICE, "1.00", f"no-bet-{n}")

    async def pages() -> list[list[str]]:
        found, token = [], ""
        async with AsyncWalletClient(core.target, token=TOKENS["fanteam"], timeout=10) as client:
            while True:
                page = await client.list_settlement_failures("fanteam", limit=2, page_token=token)
                found.append([f.transaction_id for f in page.failures])
                token = page.next_page_token
                if not token:
                    return found

    assert asyncio.run(pages()) == [["pay-2", "pay-1"], ["pay-0"]]


def connections_to(port: int) -> int:
    """Established TCP connections of this machine to 127.0.0.1:port (Linux's /proc/net; gRPC's sockets
    are IPv6 ones, the address mapped: ::ffff:127.0.0.1)."""
    remote = f"0100007F:{port:04X}"
    tables = [Path(f"/proc/net/{name}").read_text().splitlines()[1:] for name in ("tcp", "tcp6")]
    rows = [line.split() for table in tables for line in table]
    return sum(1 for row in rows if row[2].endswith(remote) and row[3] == "01")  # 01: ESTABLISHED


@pytest.mark.parametrize(("channels", "calls", "opened"), [(1, 8, 1), (4, 8, 4), (4, 3, 3)])
def test_the_asyncio_client_opens_a_connection_per_channel_and_takes_them_in_turn(
    core: Core, channels: int, calls: int, opened: int
) -> None:
    """channels=1 is one connection for every call; with more, each channel has a connection of its
    own, opened by its first call, and the calls take the channels in turn (3 calls: 3 of the 4)."""
    from clients import AsyncWalletClient
    from tests.support.servers import TOKENS

    async def call() -> int:
        async with AsyncWalletClient(core.target, token=TOKENS["fanteam"], timeout=10, channels=channels) as client:
            for _ in range(calls):
                with pytest.raises(AccountNotFound):
                    await client.get_balance(AccountRef("fanteam", "nobody", "EUR"))
            return connections_to(core.port)

    assert connections_to(core.port) == 0
    assert asyncio.run(call()) == opened


# ------------------------------------------------------------------ tenants


def test_a_token_for_one_client_cannot_see_or_move_another_clients_money(
    funded: WalletClient, other: WalletClient, core: Core
) -> None:
    funded.debit([stake("bet-1", "15.00")])
    before = dump(core.engine)
    call: Callable[[], object]
    for call in [
        lambda: other.get_balance(ALICE),
        lambda: other.open_account(AccountRef("fanteam", "x", "EUR")),
        lambda: other.debit([stake("o-1", "1.00")]),
        lambda: other.deposit("o-2", ALICE, "1.00"),
        lambda: other.payout("o-3", ALICE, "1.00", "bet-1"),
        lambda: other.cancel("fanteam", "bet-1"),
        lambda: other.list_transactions(ALICE),
        lambda: other.set_account_status(ALICE, AccountStatus.BLOCKED),
        lambda: other.list_settlement_failures("fanteam"),
    ]:
        with pytest.raises(PermissionDenied):
            call()
    assert dump(core.engine) == before


@pytest.mark.parametrize("token", ["", "wrong-token"])
def test_calls_without_a_valid_token_are_refused(core: Core, token: str | None) -> None:
    with WalletClient(core.target, token=token) as anonymous:
        with pytest.raises(Unauthenticated):
            anonymous.open_account(ALICE)


def test_the_client_reads_its_token_from_wallet_token(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.servers import TOKENS

    monkeypatch.setenv("WALLET_TOKEN", TOKENS["fanteam"])
    with WalletClient(core.target) as from_environment:
        assert from_environment.open_account(ALICE)[1]
    with WalletClient(core.target, token="") as anonymous, pytest.raises(Unauthenticated):
        anonymous.get_balance(ALICE)


def test_32_callers_over_grpc_cannot_overdraw_one_wallet(wallet: WalletClient, core: Core) -> None:
    """DESIGN section 3 over real sockets: 32 threads x 20 debits, money for exactly 100 of them."""
    from tests.support.hammer import Outcomes, race

    wallet.open_account(ALICE)
    wallet.deposit("fund", ALICE, "100.00")
    outcomes = Outcomes()

    def debit(n: int, i: int) -> None:
        try:
            wallet.debit([stake(f"t{n}-{i}", "1.00")])
            outcomes.record_ok("debit", ALICE.user_id, 100)
        except InsufficientFunds as refusal:
            outcomes.record_refusal(refusal.reason)

    race(32, 20, debit)
    assert (outcomes.count("debit"), outcomes.refused) == (100, {"INSUFFICIENT_FUNDS": 540})
    assert wallet.get_balance(ALICE).balance == Decimal("0.00")
