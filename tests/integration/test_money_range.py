"""Exact money at every scale (DESIGN section 1), on SQLite and PostgreSQL.

The storage range, +-(10^18 - 1) minor units, holds for every account, system accounts
included: with ETH at scale 18 that is just under 1 ETH per account, so the cashier, house and
in_play reach it with a handful of calls. A movement past it is refused before anything is
written; the database refuses it too (CHECK), and on SQLite never stores a float. `wallet
reconcile` reports a damaged ledger whose sums leave 64 bits; it never crashes.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from clients import AccountRef, DebitItem, Purpose, WalletClient
from clients.errors import InvalidAmount
from tests.support.db import PostgresDatabase, dump, postgres_or_skip
from tests.support.servers import TOKENS, running_core
from wallet_cli.cli import cli
from wallet_core.book import Book
from wallet_core.currencies import CurrencyRegistry
from wallet_core.domain import AccountKey
from wallet_core.money import MAX_MINOR
from wallet_core.reconcile import reconcile
from wallet_core.service import Ledger
from wallet_core.storage import repository
from wallet_core.storage.engine import make_engine
from wallet_core.storage.migrate import upgrade
from wallet_core.storage.repository import ConcurrentChange

ALMOST_ONE_ETH = "0.999999999999999999"  # the largest amount at scale 18


def eth(user: str) -> AccountRef:
    return AccountRef("fanteam", user, "ETH")


@pytest.fixture
def eth_wallet(db_url: str) -> Iterator[WalletClient]:
    """A core configured with ETH=18 (an operator override); reconciled when it stops."""
    with running_core(db_url, currencies={"ETH": 18}) as core, \
            WalletClient(core.target, token=TOKENS["fanteam"], timeout=10) as client:
        client.engine = core.engine  # type: ignore[attr-defined]
        yield client


def test_deposits_that_would_overflow_the_cashier_are_refused_and_money_keeps_moving(
    eth_wallet: WalletClient,
) -> None:
    wallet, engine = eth_wallet, eth_wallet.engine  # type: ignore[attr-defined]
    for user in ("1", "2"):
        wallet.open_account(eth(user))
    wallet.deposit("d1", eth("1"), ALMOST_ONE_ETH)
    before = dump(engine)
    with pytest.raises(InvalidAmount, match="cashier account of fanteam/ETH"):
        wallet.deposit("d2", eth("2"), "0.000000000000000001")
    assert dump(engine) == before  # refused before anything was written
    # the ledger goes on: money that leaves makes room, and every balance stays exact
    wallet.withdraw("w1", eth("1"), "0.5")
    wallet.deposit("d3", eth("2"), "0.4")
    wallet.debit([DebitItem("b1", eth("2"), "0.4", Purpose.STAKE, "pool:1")])
    wallet.payout("p1", eth("2"), "0.1", "b1")
    assert wallet.get_balance(eth("1")).balance == Decimal("0.499999999999999999")
    assert wallet.get_balance(eth("2")).balance == Decimal("0.1")


def test_a_stake_that_would_overflow_in_play_is_refused_for_good(eth_wallet: WalletClient) -> None:
    wallet, engine = eth_wallet, eth_wallet.engine  # type: ignore[attr-defined]
    for user in ("1", "2"):
        wallet.open_account(eth(user))
    wallet.deposit("d1", eth("1"), "0.9")
    wallet.credit("a1", eth("2"), "0.9", Purpose.ADJUSTMENT)  # from the house: the cashier is not the limit
    wallet.debit([DebitItem("b1", eth("1"), "0.9", Purpose.STAKE, "pool:1")])
    with pytest.raises(InvalidAmount, match="in_play account of fanteam/ETH"):
        wallet.debit([DebitItem("b2", eth("2"), "0.9", Purpose.STAKE, "pool:1")])
    assert wallet.get_balance(eth("2")).balance == Decimal("0.9")
    wallet.cancel("fanteam", "b1")  # in_play has room again, but the bet was refused: that decision stands
    with pytest.raises(InvalidAmount):
        wallet.debit([DebitItem("b2", eth("2"), "0.9", Purpose.STAKE, "pool:1")])
    assert wallet.get_balance(eth("2")).balance == Decimal("0.9")
    before = dump(engine)
    with pytest.raises(InvalidAmount, match="house account of fanteam/ETH"):
        wallet.credit("a2", eth("1"), "0.1", Purpose.ADJUSTMENT)  # the house would be at -1.0
    assert dump(engine) == before


def test_the_database_refuses_money_outside_the_range_and_sqlite_never_stores_a_float(ledger: Ledger) -> None:
    alice = AccountKey("fanteam", "1001", "EUR")
    ledger.open_account(alice)
    ledger.credit(_deposit("d1", alice, "1.00"))
    sqlite = ledger.engine.dialect.name == "sqlite"
    writes = [
        f"UPDATE accounts SET balance = {MAX_MINOR + 1} WHERE kind = 'user'",
        f"UPDATE accounts SET balance = {-MAX_MINOR - 1} WHERE kind = 'cashier'",
        f"UPDATE transactions SET amount = {MAX_MINOR + 1}",
        f"UPDATE transactions SET balance_after = {MAX_MINOR + 1}",
        f"UPDATE entries SET amount = {-MAX_MINOR - 1} WHERE amount < 0",
    ]
    if sqlite:  # an overflowing sum, as an UPDATE ... SET balance = balance + delta made it, and plain floats
        writes += [
            "UPDATE accounts SET balance = balance + 9223372036854775807 WHERE kind = 'user'",
            "UPDATE accounts SET balance = 1.5 WHERE kind = 'user'",
            "UPDATE entries SET amount = 100.5 WHERE amount > 0",
            "UPDATE transactions SET amount = 100.5, balance_after = 100.5",
        ]
    for statement in writes:
        with pytest.raises(IntegrityError), ledger.engine.begin() as conn:
            conn.execute(text(statement))


def test_system_accounts_are_updated_only_if_they_still_have_room(ledger: Ledger) -> None:
    """Another process may move a system account between this batch's read and its write."""
    alice = AccountKey("fanteam", "1001", "EUR")
    ledger.open_account(alice)
    before = dump(ledger.engine)
    with ledger.engine.begin() as conn:
        cashier = conn.execute(text("SELECT id FROM accounts WHERE kind = 'cashier'")).scalar_one()
        book = Book(CurrencyRegistry(), ledger.clock(), lambda client, currency: {})
        book.system_deltas = {cashier: -MAX_MINOR - 1}  # as if judged on a balance of +1 that is now 0
        with pytest.raises(ConcurrentChange):
            repository.write(conn, book)
    assert dump(ledger.engine) == before


def _deposit(tid: str, key: AccountKey, amount: str):
    from wallet_core.domain import CreditCommand
    from wallet_core.domain import Purpose as DomainPurpose

    return CreditCommand(tid, key, amount, DomainPurpose.DEPOSIT)


# ---------------------------------------------------------------- ledgers written before the range rule


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database at revision 0001, the schema before the range CHECKs and `currencies`."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, "0001")
        yield url
        return
    db: PostgresDatabase = postgres_or_skip()
    try:
        upgrade(db.url, "0001")
        yield db.url
    finally:
        db.drop()


def _write_deposits(engine: Engine, amounts: list[int], cashier_balance: int | float) -> None:
    """Rows of a ledger at revision 0001: deposits of `amounts` (minor units) in ETH, one wallet each."""
    now = "2026-01-01 00:00:00+00"
    with engine.begin() as conn:
        def account(kind: str, user: str, balance: int | float) -> int:
            return int(conn.execute(text(
                "INSERT INTO accounts (client, kind, user_id, currency, balance, status, created_at) "
                "VALUES ('fanteam', :kind, :user, 'ETH', :balance, 'active', :now) RETURNING id"),
                {"kind": kind, "user": user, "balance": balance, "now": now}).scalar_one())

        account("in_play", "", 0)
        account("house", "", 0)
        cashier = account("cashier", "", cashier_balance)
        for n, amount in enumerate(amounts):
            user = account("user", str(n), amount)
            tx = conn.execute(text(
                "INSERT INTO transactions (client, transaction_id, purpose, status, account_id, user_id, currency,"
                " amount, balance_after, reference, request_hash, created_at) VALUES ('fanteam', :tid, 'deposit',"
                " 'applied', :user, :uid, 'ETH', :amount, :amount, '', 'h', :now) RETURNING id"),
                {"tid": f"d{n}", "user": user, "uid": str(n), "amount": amount, "now": now}).scalar_one()
            conn.execute(text("INSERT INTO entries (transaction_pk, account_id, amount)"
                              " VALUES (:tx, :c, :neg), (:tx, :u, :pos)"),
                         {"tx": tx, "c": cashier, "u": user, "neg": -amount, "pos": amount})


def test_reconcile_reports_a_ledger_whose_sums_overflow_and_never_crashes(old_db_url: str) -> None:
    """The damage of the old bug: ten deposits of ~1 ETH summed past 2^63 in the cashier."""
    engine = make_engine(old_db_url, pool_size=1)
    try:
        sqlite = engine.dialect.name == "sqlite"
        amounts = [MAX_MINOR] * 12
        # SQLite stored the overflowing cashier as a float; PostgreSQL could not store it at all
        _write_deposits(engine, amounts, -1.2e19 if sqlite else -(2**63))
        report = reconcile(engine)
    finally:
        engine.dispose()
    failed = {c.name for c in report.checks if not c.ok}
    assert "cached_balance" in failed and "in_range_accounts_balance" in failed
    assert "zero_sum" not in failed  # each deposit still sums to zero
    assert not any("could not run" in v for c in report.checks for v in c.violations), report.render()
    result = CliRunner().invoke(cli, ["reconcile", "--db", old_db_url], env={"WALLET_CONFIG": ""})
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, result.output  # reported, not crashed
    assert "LEDGER INVARIANTS VIOLATED" in result.output


def test_the_migration_keeps_a_populated_ledger_and_refuses_a_damaged_one(old_db_url: str) -> None:
    engine = make_engine(old_db_url, pool_size=1)
    try:
        _write_deposits(engine, [10**17, 2 * 10**17], -3 * 10**17)
        upgrade(old_db_url)
        assert reconcile(engine).ok
        with engine.connect() as conn:
            users = conn.execute(text("SELECT sum(balance) FROM accounts WHERE kind = 'user'")).scalar_one()
            assert users == 3 * 10**17
    finally:
        engine.dispose()


def test_the_migration_names_the_damage_instead_of_half_applying(old_db_url: str) -> None:
    engine = make_engine(old_db_url, pool_size=1)
    try:
        _write_deposits(engine, [MAX_MINOR, MAX_MINOR], -2 * MAX_MINOR)
        with pytest.raises((RuntimeError, DBAPIError), match=r"accounts\.balance are outside the storage range"):
            upgrade(old_db_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0001"
        assert "currencies" not in inspect(engine).get_table_names()  # nothing of 0002 was left behind
    finally:
        engine.dispose()
