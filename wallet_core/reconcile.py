"""`wallet reconcile`: check every ledger invariant of DESIGN section 2 against the database.

Read-only. Each check is one SQL query that returns the rows that break it; an empty result
means the invariant holds. The same checks run after every test scenario.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, case, func, select
from sqlalchemy.engine import Engine

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


def _queries() -> list[tuple[str, str, object]]:
    e, a, t, s = entries, accounts, transactions, stakes
    entry_sum = select(e.c.account_id, func.sum(e.c.amount).label("total")).group_by(e.c.account_id).subquery()
    open_stakes = (
        select(s.c.client, s.c.currency, func.sum(s.c.amount).label("total"))
        .where(s.c.state == "open").group_by(s.c.client, s.c.currency).subquery()
    )
    payouts = (
        select(t.c.target_pk, func.count().label("n"))
        .where(t.c.status == "applied", t.c.purpose.in_(["payout", "cancel"]))
        .group_by(t.c.target_pk).subquery()
    )
    entry_count = select(e.c.transaction_pk, func.count().label("n")).group_by(e.c.transaction_pk).subquery()
    return [
        (
            "zero_sum",
            "the entries of every transaction sum to zero",
            select(e.c.transaction_pk, func.sum(e.c.amount)).group_by(e.c.transaction_pk)
            .having(func.sum(e.c.amount) != 0),
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
            select(a.c.id, a.c.client, a.c.kind, a.c.user_id, a.c.currency, a.c.balance, entry_sum.c.total)
            .outerjoin(entry_sum, entry_sum.c.account_id == a.c.id)
            .where(a.c.balance != func.coalesce(entry_sum.c.total, 0)),
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
            select(a.c.client, a.c.currency, a.c.balance, open_stakes.c.total)
            .outerjoin(open_stakes, and_(open_stakes.c.client == a.c.client, open_stakes.c.currency == a.c.currency))
            .where(a.c.kind == "in_play", a.c.balance != func.coalesce(open_stakes.c.total, 0)),
        ),
        (
            "settlement",
            "every settled or cancelled stake is closed by exactly one transaction, an open one by none",
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
            for name, description, query in _queries():
                rows = conn.execute(query).all()  # type: ignore[call-overload]
                check = Check(name, description, [str(tuple(r)) for r in rows[:SAMPLE]], len(rows))
                checks.append(check)
    return Report(checks, *counts)
