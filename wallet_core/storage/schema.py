"""The ledger's tables. Alembic migrations (wallet_core/migrations) are generated from this metadata.

The database holds the money rules too, against any buggy caller:
- accounts: a user wallet never goes below zero (CHECK); one row per (client, kind, user, currency).
- transactions: a caller's transaction id is unique per client (UNIQUE); amounts are never negative.
- entries: never zero; every applied transaction's entries sum to zero (checked by `wallet reconcile`).
- stakes: a stake is closed by exactly one transaction, a settlement or a cancel (UNIQUE closed_by,
  CHECK that open <=> not closed).
- every money column stays within the storage range, +-(10^18 - 1) minor units (CHECK), and on
  SQLite, whose columns take any type, holds an integer: never a float (CHECK typeof).
- currencies: the scale of every currency the ledger has used, recorded on first use.
- accounts.debt: what a player owes after a clawback took more than the wallet held; never
  negative, and a wallet that owes holds nothing (CHECK: credits pay the debt off first).
- audit_log: every operator action (who, when, what, why), written with its money movement.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from wallet_core.money import MAX_MINOR

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def in_range(column: str, *, low: int = -MAX_MINOR) -> CheckConstraint:
    """`column` (NULL allowed) lies within the storage range."""
    return CheckConstraint(f"{column} BETWEEN {low} AND {MAX_MINOR}", name=f"{column}_in_range")


def integer(column: str, *, nullable: bool = False) -> CheckConstraint:
    """On SQLite, `column` holds an integer: an overflowing sum would otherwise be stored as a float."""
    rule = f"typeof({column}) IN ('integer', 'null')" if nullable else f"typeof({column}) = 'integer'"
    return CheckConstraint(rule, name=f"{column}_integer").ddl_if(dialect="sqlite")


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    client: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # user, in_play, house, cashier, receivable
    user_id: Mapped[str] = mapped_column(String(128))  # "" for system accounts
    currency: Mapped[str] = mapped_column(String(10))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)  # minor units
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # user wallets: what the player owes (minor units) after a clawback; the receivable account holds -sum(debt)
    debt: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    __table_args__ = (
        UniqueConstraint("client", "kind", "user_id", "currency"),
        CheckConstraint("kind IN ('user', 'in_play', 'house', 'cashier', 'receivable')", name="kind"),
        CheckConstraint("status IN ('active', 'blocked')", name="status"),
        CheckConstraint("kind <> 'user' OR balance >= 0", name="user_balance_not_negative"),
        CheckConstraint("(kind = 'user') = (user_id <> '')", name="user_id_only_on_user"),
        in_range("balance"),
        integer("balance"),
        in_range("debt", low=0),
        integer("debt"),
        CheckConstraint("debt = 0 OR (kind = 'user' AND balance = 0)", name="debt_only_on_empty_wallet"),
    )


class Transaction(Base):
    """One movement, or a recorded decision about one: applied, refused (debits), or tombstone."""

    __tablename__ = "transactions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    client: Mapped[str] = mapped_column(String(128))
    # the caller's id; NULL for a cancel's reversal, which is keyed by the stake it reverses
    transaction_id: Mapped[str | None] = mapped_column(String(128))
    purpose: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    user_id: Mapped[str] = mapped_column(String(128), default="")
    currency: Mapped[str] = mapped_column(String(10), default="")
    amount: Mapped[int] = mapped_column(BigInteger, default=0)
    balance_after: Mapped[int | None] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(String(256), default="")
    # payouts and cancels: the stake transaction they close
    target_id: Mapped[str | None] = mapped_column(String(128))
    target_pk: Mapped[int | None] = mapped_column(ForeignKey("transactions.id"))
    request_hash: Mapped[str] = mapped_column(String(64))
    error_reason: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("client", "transaction_id"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("status IN ('applied', 'refused', 'tombstone')", name="status"),
        CheckConstraint(
            "purpose IN ('stake', 'withdrawal', 'payout', 'deposit', 'adjustment', 'cancel', 'unsettle', 'resettle')",
            name="purpose",
        ),
        CheckConstraint("transaction_id IS NOT NULL OR purpose = 'cancel'", name="id_required"),
        in_range("amount", low=0),
        in_range("balance_after"),
        integer("amount"),
        integer("balance_after", nullable=True),
        Index(None, "account_id", "id"),
        Index(None, "target_pk"),
        Index(None, "client", "reference"),  # the payouts of one betflex pool (SettleBatch's payout cap)
    )


class Entry(Base):
    __tablename__ = "entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transaction_pk: Mapped[int] = mapped_column(ForeignKey("transactions.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)  # signed minor units

    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        in_range("amount"),
        integer("amount"),
        Index(None, "transaction_pk"),
        Index(None, "account_id"),
    )


class Stake(Base):
    __tablename__ = "stakes"

    transaction_pk: Mapped[int] = mapped_column(ForeignKey("transactions.id"), primary_key=True, autoincrement=False)
    client: Mapped[str] = mapped_column(String(128))
    currency: Mapped[str] = mapped_column(String(10))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    closed_by_pk: Mapped[int | None] = mapped_column(ForeignKey("transactions.id"), unique=True)

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        in_range("amount", low=0),
        integer("amount"),
        CheckConstraint("state IN ('open', 'settled', 'cancelled')", name="state"),
        CheckConstraint("(state = 'open') = (closed_by_pk IS NULL)", name="closed_iff_not_open"),
        Index(None, "client", "currency", "state"),
    )


class SettlementFailure(Base):
    """Refused payouts, kept for operators; resolved when a payout with the same id succeeds."""

    __tablename__ = "settlement_failures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    client: Mapped[str] = mapped_column(String(128))
    transaction_id: Mapped[str] = mapped_column(String(128))
    settles_transaction_id: Mapped[str] = mapped_column(String(128), default="")
    user_id: Mapped[str] = mapped_column(String(128), default="")
    currency: Mapped[str] = mapped_column(String(10), default="")
    amount: Mapped[str] = mapped_column(String(64), default="")  # as the caller sent it
    reason: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(512), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # how it was resolved: "settled" (a later call with that id succeeded), or an operator's
    # "resolved" / "dismissed", with who and why
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolution_note: Mapped[str | None] = mapped_column(String(512))

    __table_args__ = (
        UniqueConstraint("client", "transaction_id"),
        Index(None, "client", "resolved_at"),
    )


class LedgerCurrency(Base):
    """The scale of each currency, recorded when the ledger first uses it (DESIGN section 1)."""

    __tablename__ = "currencies"

    code: Mapped[str] = mapped_column(String(10), primary_key=True)
    scale: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint("scale BETWEEN 0 AND 18", name="scale"),)


class AuditEntry(Base):
    """One operator action: who (the token's label), when, what, why, and what came of it.

    Written in the same database transaction as the money movement it caused (or the queue
    change), so the trail and the ledger cannot disagree. Append-only.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    client: Mapped[str] = mapped_column(String(128))
    actor: Mapped[str] = mapped_column(String(128))  # the token's label, e.g. "ops-alice" or "token 2"
    action: Mapped[str] = mapped_column(String(32))  # e.g. adjust, cancel, settle, resettle, unsettle, dismiss
    transaction_id: Mapped[str] = mapped_column(String(128), default="")
    target: Mapped[str] = mapped_column(String(128), default="")  # the stake, wallet or queue entry acted on
    reason: Mapped[str] = mapped_column(String(512), default="")  # the operator's why
    outcome: Mapped[str] = mapped_column(String(32))  # applied, replayed, or the refusal's reason

    __table_args__ = (Index(None, "client", "id"),)


# the Core tables for insert()/update(): read from the metadata, which types them as Table
# (a model's __table__ is typed as the wider FromClause)
accounts = Base.metadata.tables[Account.__tablename__]
transactions = Base.metadata.tables[Transaction.__tablename__]
entries = Base.metadata.tables[Entry.__tablename__]
stakes = Base.metadata.tables[Stake.__tablename__]
settlement_failures = Base.metadata.tables[SettlementFailure.__tablename__]
currencies = Base.metadata.tables[LedgerCurrency.__tablename__]
audit_log = Base.metadata.tables[AuditEntry.__tablename__]
