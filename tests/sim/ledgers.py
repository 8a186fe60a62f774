"""The ledgers the simulation runs against, and what the oracle reads from them.

- `MemoryLedger`: the real `wallet_core.service.Ledger` (its validation, its one-call-one-batch
  path) and the real rules (`wallet_core.book.Book`), on rows kept in memory instead of SQL. A
  batch applies to the stored rows directly: the Book changes a row only once every check of a
  call has passed, exactly what the SQL path commits. Fast enough for millions of deliveries.
- `SqlLedger`: the real Ledger on a real SQLite database file, checked by `wallet reconcile`.

Both answer the oracle's questions the same way: what is the stored fact for a transaction id
(`Fact`), what is a wallet's balance, and which ledger invariants are broken now.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine

from wallet_core.book import Book, Call, Outcome, Tx, Wallet
from wallet_core.currencies import CurrencyRegistry
from wallet_core.domain import AccountKey, AccountKind, AccountStatus, CreditCommand, Purpose, StakeState, TxStatus
from wallet_core.reconcile import reconcile
from wallet_core.service import Ledger
from wallet_core.storage.schema import accounts, stakes, transactions

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def sim_clock(now: Callable[[], float]) -> Callable[[], datetime]:
    """Ledger timestamps from simulated seconds, so that a replay writes the same rows."""
    return lambda: EPOCH + timedelta(seconds=now())


@dataclass(frozen=True)
class Fact:
    """What the ledger holds for one (client, transaction id)."""

    status: str  # applied | refused | tombstone
    purpose: str
    user_id: str
    currency: str
    amount: int
    reference: str
    stake_state: str | None  # for an applied stake

    @property
    def taken(self) -> bool:
        return self.status == TxStatus.APPLIED and self.purpose == Purpose.STAKE

    @property
    def void(self) -> bool:
        """Never applied, and never will be: a recorded refusal or a tombstone."""
        return self.status in (TxStatus.REFUSED, TxStatus.TOMBSTONE)


class InlineLedger(Ledger):
    """A Ledger whose async calls run at once: without group commit the real one would hand them
    to a thread, and the simulation's loop is virtual and deterministic, with no threads."""

    async def _submit_async(self, call: Call) -> Outcome:
        return self._submit(call)


class MemoryLedger(InlineLedger):
    """The real Ledger and Book over an in-memory store (no engine, no committer thread)."""

    def __init__(self, currencies: CurrencyRegistry, clock: Callable[[], datetime]) -> None:
        # the engine is never used: every call is a batch of one, applied by _run_batch below
        super().__init__(create_engine("sqlite://"), currencies, group_commit=False, clock=clock)
        self.wallets: dict[AccountKey, Wallet] = {}
        self.txs: dict[tuple[str, str], Tx] = {}
        self.rows: list[Tx] = []
        self.entries: list[tuple[Tx, int, int]] = []
        self.system_ids: dict[tuple[str, str], dict[AccountKind, int]] = {}
        self.system_cache: dict[int, int] = {}
        self._ids = 0

    def _id(self) -> int:
        self._ids += 1
        return self._ids

    def open_wallet(self, key: AccountKey) -> None:
        if (key.client, key.currency) not in self.system_ids:
            ids = {kind: self._id() for kind in (AccountKind.IN_PLAY, AccountKind.HOUSE, AccountKind.CASHIER)}
            self.system_ids[(key.client, key.currency)] = ids
            self.system_cache.update(dict.fromkeys(ids.values(), 0))
        self.wallets[key] = Wallet(self._id(), key, 0, AccountStatus.ACTIVE, 0)

    def _run_batch(self, calls: Sequence[Call]) -> list[Outcome]:
        book = Book(self.currencies, self.clock(), lambda c, cur: self.system_ids[(c, cur)], self.wallets, self.txs,
                    system_balances=self.system_cache)
        outcomes = [book.apply(call) for call in calls]
        for tx in book.new_txs:
            tx.pk = self._id()
            self.rows.append(tx)
        self.entries.extend(book.new_entries)
        for account_id, delta in book.system_deltas.items():
            self.system_cache[account_id] += delta
        for wallet in book.changed_wallets():
            wallet.loaded_balance = wallet.balance
        return outcomes

    def _note_settlement_failure(self, command: CreditCommand, refusal: Exception) -> None:
        pass  # the operator queue is outside the ledger; nothing in the simulation reads it

    # ------------------------------------------------------------------ what the oracle reads

    def fact(self, client: str, transaction_id: str) -> Fact | None:
        tx = self.txs.get((client, transaction_id))
        if tx is None:
            return None
        state = tx.stake.state if tx.stake is not None else None
        return Fact(tx.status, tx.purpose, tx.user_id, tx.currency, tx.amount, tx.reference, state)

    def balance(self, key: AccountKey) -> int:
        return self.wallets[key].balance

    def violations(self) -> list[str]:
        """The checks of `wallet reconcile` (DESIGN §2), on the rows in memory."""
        found = []
        by_tx: dict[int, int] = defaultdict(int)
        by_account: dict[int, int] = defaultdict(int)
        for tx, account_id, amount in self.entries:
            by_tx[id(tx)] += amount
            by_account[account_id] += amount
        found += [f"a transaction's entries sum to {total}" for total in by_tx.values() if total]
        for wallet in self.wallets.values():
            if wallet.balance != by_account[wallet.id]:
                found.append(f"wallet {wallet.key} caches {wallet.balance}, its entries sum to {by_account[wallet.id]}")
            if wallet.balance < 0:
                found.append(f"wallet {wallet.key} is overdrawn: {wallet.balance}")
        for account_id, balance in self.system_cache.items():
            if balance != by_account[account_id]:
                found.append(
                    f"system account {account_id} caches {balance}, its entries sum to {by_account[account_id]}")
        open_stakes: dict[tuple[str, str], int] = defaultdict(int)
        closers: dict[int, int] = defaultdict(int)
        for tx in self.rows:
            if tx.stake is not None and tx.stake.state == StakeState.OPEN:
                open_stakes[(tx.client, tx.currency)] += tx.stake.amount
            if tx.target is not None and tx.status == TxStatus.APPLIED:
                closers[id(tx.target)] += 1
        for (client, currency), ids in self.system_ids.items():
            in_play = self.system_cache[ids[AccountKind.IN_PLAY]]
            if in_play != open_stakes[(client, currency)]:
                found.append(f"in_play of {client}/{currency} is {in_play}, "
                             f"open stakes sum to {open_stakes[(client, currency)]}")
        for tx in self.rows:
            if tx.stake is not None and tx.stake.state != StakeState.OPEN and closers[id(tx)] != 1:
                found.append(f"stake {tx.transaction_id} is {tx.stake.state} by {closers[id(tx)]} transactions")
        return found


class SqlLedger(InlineLedger):
    """The real Ledger on a real database (SQLite in the simulation), one call per batch."""

    def __init__(self, engine: Engine, currencies: CurrencyRegistry, clock: Callable[[], datetime]) -> None:
        super().__init__(engine, currencies, group_commit=False, clock=clock)

    def open_wallet(self, key: AccountKey) -> None:
        self.open_account(key)

    def fact(self, client: str, transaction_id: str) -> Fact | None:
        query = (
            select(transactions, stakes.c.state.label("stake_state"))
            .outerjoin(stakes, stakes.c.transaction_pk == transactions.c.id)
            .where(transactions.c.client == client, transactions.c.transaction_id == transaction_id)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return Fact(row.status, row.purpose, row.user_id, row.currency, row.amount, row.reference, row.stake_state)

    def balance(self, key: AccountKey) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(accounts.c.balance).where(
                accounts.c.client == key.client, accounts.c.kind == AccountKind.USER,
                accounts.c.user_id == key.user_id, accounts.c.currency == key.currency,
            )).scalar_one())

    def violations(self) -> list[str]:
        report = reconcile(self.engine)
        return [] if report.ok else [report.render()]
