"""`wallet reconcile`: check every ledger invariant of DESIGN section 2 against the database.

Read-only. Each check is one SQL query that returns the rows that break it; an empty result
means the invariant holds. The same checks run after every test scenario.

Sums are exact on any ledger, however large or damaged: PostgreSQL sums bigints as NUMERIC; on
SQLite, whose sum() of integers fails with "integer overflow" past 2^63 (and total() is a
float), each value is split into its high and low 32 bits, summed apart, and the parts are put
together only in the comparison. A check that cannot run is reported as failed, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, case, func, inspect, literal_column, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import aliased
from sqlalchemy.types import BigInteger

from wallet_core.money import MAX_MINOR
from wallet_core.storage.engine import READ_ONLY
from wallet_core.storage.schema import accounts, entries, stakes, transactions

SAMPLE = 10  # violations shown per check


@dataclass
class Check:
    name: str
    description: str
    violations: list[str] = field(default_factory=list)
    count: int = 0

    @property
    def ok(self) -> bool:
        return self.count == 0


@dataclass
class Report:
    checks: list[Check]
    accounts: int
    transactions: int
    entries: int

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def render(self) -> str:
        lines = [f"checked {self.accounts} accounts, {self.transactions} transactions, {self.entries} entries"]
        for c in self.checks:
            lines.append(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.description}" + ("" if c.ok else f" ({c.count})"))
            lines.extend(f"       {v}" for v in c.violations)
        lines.append("ledger is consistent" if self.ok else "LEDGER INVARIANTS VIOLATED")
        return "\n".join(lines)


def _half() -> ColumnElement[int]:
    """2^32, written into the SQL (SQLite divides integers by integers exactly, truncating)."""
    return literal_column(str(2**32), BigInteger)


class _ExactSum:
    """sum() that cannot overflow: as is on PostgreSQL (NUMERIC), in two 32-bit halves on SQLite."""

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite

    def parts(self, column: ColumnElement[int], label: str) -> list[ColumnElement[int]]:
        if not self.sqlite:
            return [func.sum(column).label(label)]
        # C division truncates: column == (column / 2^32) * 2^32 + column % 2^32, each sum far from 2^63
        return [func.sum(column.op("/")(_half())).label(f"{label}_high"),
                func.sum(column.op("%")(_half())).label(f"{label}_low")]

    def total(self, sub: object, label: str) -> ColumnElement[int]:
        """The whole sum from a subquery's parts; on SQLite only ever compared, never stored."""
        c = sub.c  # type: ignore[attr-defined]
        if not self.sqlite:
            return func.coalesce(c[label], 0)
        # exact while the total is within int64; past it SQLite turns the product into a float,
        # which `differs` reports
        return func.coalesce(c[f"{label}_high"], 0) * _half() + func.coalesce(c[f"{label}_low"], 0)

    def differs(self, stored: ColumnElement[int], total: ColumnElement[int]) -> ColumnElement[bool]:
        """`stored` is not exactly `total`; on SQLite a float on either side (an overflowed sum, a
        balance stored as a float) is never exactly equal to anything."""
        if not self.sqlite:
            return stored != total
        return or_(stored != total, func.typeof(stored) != "integer", func.typeof(total) != "integer")

    def nonzero(self, column: ColumnElement[int]) -> ColumnElement[bool]:
        if not self.sqlite:
            return func.sum(column) != 0
        total = func.sum(column.op("/")(_half())) * _half() + func.sum(column.op("%")(_half()))
        return self.differs(literal_column("0"), total)


# checks that need the columns of migration 0003 (player debt, receivable accounts); a ledger
# still at an older revision (only ever read directly: `wallet reconcile` refuses one) skips them
CORRECTION_CHECKS = {"in_range_accounts_debt", "player_debt", "receivable", "debt_on_empty_wallet", "system_accounts"}


def _queries(sqlite: bool, corrections: bool = True) -> list[tuple[str, str, object]]:
    return [q for q in _all_queries(sqlite) if corrections or q[0] not in CORRECTION_CHECKS]


def _all_queries(sqlite: bool) -> list[tuple[str, str, object]]:
    e, a, t, s = entries, accounts, transactions, stakes
    exact = _ExactSum(sqlite)
    entry_sum = select(e.c.account_id, *exact.parts(e.c.amount, "total")).group_by(e.c.account_id).subquery()
    open_stakes = (
        select(s.c.client, s.c.currency, *exact.parts(s.c.amount, "total"))
        .where(s.c.state == "open").group_by(s.c.client, s.c.currency).subquery()
    )
    # a payout or a cancel closes a stake, an unsettle reopens it, a resettle leaves it closed
    payouts = (
        select(t.c.target_pk, func.sum(case((t.c.purpose == "unsettle", -1), else_=1)).label("n"))
        .where(t.c.status == "applied", t.c.purpose.in_(["payout", "cancel", "unsettle"]))
        .group_by(t.c.target_pk).subquery()
    )
    receivable = aliased(a)
    debt_entries = (  # per wallet: the receivable entries of its transactions (minus what it owes)
        select(t.c.account_id, *exact.parts(e.c.amount, "total"))
        .select_from(e.join(t, t.c.id == e.c.transaction_pk).join(receivable, receivable.c.id == e.c.account_id))
        .where(receivable.c.kind == "receivable").group_by(t.c.account_id).subquery()
    )
    debts = (
        select(a.c.client, a.c.currency, *exact.parts(a.c.debt, "total"))
        .where(a.c.kind == "user").group_by(a.c.client, a.c.currency).subquery()
    )
    entry_count = select(e.c.transaction_pk, func.count().label("n")).group_by(e.c.transaction_pk).subquery()
    money = [(a, a.c.balance, -MAX_MINOR), (a, a.c.debt, 0), (t, t.c.amount, 0), (t, t.c.balance_after, -MAX_MINOR),
             (e, e.c.amount, -MAX_MINOR), (s, s.c.amount, 0)]
    checks: list[tuple[str, str, object]] = [
        (
            f"in_range_{col.table.name}_{col.name}",
            f"every {col.table.name}.{col.name} is an integer within the storage range "
            f"({low} to {MAX_MINOR})",
            select(tbl.c[next(iter(tbl.primary_key.columns)).name], col)
            .where(or_(col < low, col > MAX_MINOR,
                       *([func.typeof(col).not_in(["integer", "null"])] if sqlite else []))),
        )
        for tbl, col, low in money
    ]
    return [
        *checks,
        (
            "zero_sum",
            "the entries of every transaction sum to zero",
            select(e.c.transaction_pk).group_by(e.c.transaction_pk).having(exact.nonzero(e.c.amount)),
        ),
        (
            "one_currency",
            "every entry is in its transaction's currency and client",
            select(e.c.id, e.c.transaction_pk).join(t, t.c.id == e.c.transaction_pk).join(a, a.c.id == e.c.account_id)
            .where((a.c.currency != t.c.currency) | (a.c.client != t.c.client)),
        ),
        (
            "cached_balance",
            "every account's cached balance equals the sum of its entries",
            select(a.c.id, a.c.client, a.c.kind, a.c.user_id, a.c.currency, a.c.balance)
            .outerjoin(entry_sum, entry_sum.c.account_id == a.c.id)
            .where(exact.differs(a.c.balance, exact.total(entry_sum, "total"))),
        ),
        (
            "no_overdraft",
            "no user wallet is below zero",
            select(a.c.id, a.c.client, a.c.user_id, a.c.currency, a.c.balance)
            .where(a.c.kind == "user", a.c.balance < 0),
        ),
        (
            "in_play",
            "every in_play account holds exactly the sum of its open stakes",
            select(a.c.client, a.c.currency, a.c.balance)
            .outerjoin(open_stakes, and_(open_stakes.c.client == a.c.client, open_stakes.c.currency == a.c.currency))
            .where(a.c.kind == "in_play", exact.differs(a.c.balance, exact.total(open_stakes, "total"))),
        ),
        (
            "settlement",
            "every settled or cancelled stake is closed by exactly one transaction (payouts and cancels, "
            "less the unsettles that reopened it), an open one by none",
            select(s.c.transaction_pk, s.c.state, payouts.c.n)
            .outerjoin(payouts, payouts.c.target_pk == s.c.transaction_pk)
            .where(func.coalesce(payouts.c.n, 0) != case((s.c.state == "open", 0), else_=1)),
        ),
        (
            "closing_link",
            "every stake's closing transaction names that stake",
            select(s.c.transaction_pk, s.c.closed_by_pk).join(t, t.c.id == s.c.closed_by_pk)
            .where(t.c.target_pk != s.c.transaction_pk),
        ),
        (
            "player_debt",
            "every wallet's debt equals what its transactions put on the receivable account",
            select(a.c.id, a.c.client, a.c.user_id, a.c.currency, a.c.debt)
            .outerjoin(debt_entries, debt_entries.c.account_id == a.c.id)
            .where(a.c.kind == "user", exact.differs(-a.c.debt, exact.total(debt_entries, "total"))),
        ),
        (
            "receivable",
            "every receivable account holds minus the debts of its client's wallets in its currency",
            select(a.c.client, a.c.currency, a.c.balance)
            .outerjoin(debts, and_(debts.c.client == a.c.client, debts.c.currency == a.c.currency))
            .where(a.c.kind == "receivable", exact.differs(-a.c.balance, exact.total(debts, "total"))),
        ),
        (
            "debt_on_empty_wallet",
            "no wallet owes money while holding some, and no debt is negative or off a user wallet",
            select(a.c.id, a.c.client, a.c.kind, a.c.user_id, a.c.currency, a.c.balance, a.c.debt)
            .where((a.c.debt < 0) | ((a.c.debt != 0) & ((a.c.kind != "user") | (a.c.balance != 0)))),
        ),
        (
            "system_accounts",
            "every client and currency with a wallet has its four system accounts",
            select(a.c.client, a.c.currency, func.count(a.c.kind.distinct()).label("kinds"))
            .where(a.c.kind != "user").group_by(a.c.client, a.c.currency)
            .having(func.count(a.c.kind.distinct()) != 4),
        ),
        (
            "entries_only_when_applied",
            "applied transactions have entries; refusals and tombstones have none",
            select(t.c.id, t.c.transaction_id, t.c.status, entry_count.c.n)
            .outerjoin(entry_count, entry_count.c.transaction_pk == t.c.id)
            .where(
                ((t.c.status != "applied") & (func.coalesce(entry_count.c.n, 0) != 0))
                | ((t.c.status == "applied") & (func.coalesce(entry_count.c.n, 0) == 0))
            ),
        ),
    ]


def reconcile(engine: Engine) -> Report:
    checks = []
    with engine.connect() as conn:
        conn = conn.execution_options(**{READ_ONLY: True})
        with conn.begin():
            counts = [conn.execute(select(func.count()).select_from(tbl)).scalar_one()
                      for tbl in (accounts, transactions, entries)]
            corrections = "debt" in {c["name"] for c in inspect(conn).get_columns("accounts")}
            for name, description, query in _queries(conn.dialect.name == "sqlite", corrections):
                try:
                    with conn.begin_nested():
                        rows = conn.execute(query).all()  # type: ignore[call-overload]
                except DBAPIError as exc:  # report it as a failed check; the other checks still run
                    checks.append(Check(name, description, [f"could not run: {exc.orig}"], 1))
                    continue
                checks.append(Check(name, description, [str(tuple(r)) for r in rows[:SAMPLE]], len(rows)))
    return Report(checks, *counts)
