"""SQL of the use cases outside a batch of money calls: wallets, reads, and the operator queue.

Each function takes the Connection of a transaction the caller's unit of work opened
(storage.unit_of_work) and returns rows or plain values; what they mean (views, rules, refusals)
is the ledger's (wallet_core.service). The batch's own SQL is storage.repository's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.engine import Connection, Row

from wallet_core.domain import AccountKey, AccountKind, AccountStatus, AuditNote, Resolution
from wallet_core.storage.schema import accounts, audit_log, settlement_failures, stakes, transactions

# ------------------------------------------------------------------ accounts


def find_user(conn: Connection, key: AccountKey, *, lock: bool = False) -> Row[Any] | None:
    """The user wallet of `key` (locked FOR UPDATE with `lock`), None if it does not exist."""
    query = select(accounts).where(
        accounts.c.client == key.client,
        accounts.c.kind == AccountKind.USER,
        accounts.c.user_id == key.user_id,
        accounts.c.currency == key.currency,
    )
    if lock:
        query = query.with_for_update()
    return conn.execute(query).first()


def insert_account(conn: Connection, client: str, kind: AccountKind, user_id: str, currency: str,
                   now: datetime) -> None:
    """A new active account with a zero balance (a system account has the user id "")."""
    conn.execute(
        insert(accounts).values(
            client=client, kind=kind, user_id=user_id, currency=currency,
            balance=0, status=AccountStatus.ACTIVE, created_at=now,
        )
    )


def set_account_status(conn: Connection, account_id: int, status: AccountStatus) -> None:
    conn.execute(update(accounts).where(accounts.c.id == account_id).values(status=status))


def system_account_kinds(conn: Connection, client: str, currency: str) -> set[str]:
    """The kinds of the system accounts (client, currency) has."""
    return {
        r.kind
        for r in conn.execute(
            select(accounts.c.kind).where(
                accounts.c.client == client, accounts.c.currency == currency, accounts.c.kind != AccountKind.USER
            )
        )
    }


def system_account_ids(conn: Connection, client: str, currency: str) -> dict[AccountKind, int]:
    """kind -> id of the system accounts of (client, currency)."""
    rows = conn.execute(
        select(accounts.c.id, accounts.c.kind).where(
            accounts.c.client == client, accounts.c.currency == currency, accounts.c.kind != AccountKind.USER
        )
    ).all()
    return {AccountKind(r.kind): r.id for r in rows}


def currencies_in_use(conn: Connection) -> list[str]:
    """Every currency some account of the ledger is kept in."""
    return list(conn.execute(select(accounts.c.currency).distinct()).scalars().all())


def system_balances(conn: Connection, client: str) -> list[Row[Any, Any, Any]]:
    """(currency, kind, balance) of the client's system accounts, by currency and kind."""
    return list(conn.execute(
        select(accounts.c.currency, accounts.c.kind, accounts.c.balance)
        .where(accounts.c.client == client, accounts.c.kind != AccountKind.USER)
        .order_by(accounts.c.currency, accounts.c.kind)
    ).all())


def clients(conn: Connection) -> list[str]:
    """Every client with an account, in order."""
    return list(conn.execute(select(accounts.c.client).distinct().order_by(accounts.c.client)).scalars())


# ------------------------------------------------------------------ transactions


def history(conn: Connection, account_id: int, limit: int, before: int | None) -> list[Row[Any]]:
    """At most `limit` transactions of an account, newest first, below id `before` if given; each
    with its stake's state (`stake_state`, None unless it is a stake)."""
    query = (
        select(transactions, stakes.c.state.label("stake_state"))
        .outerjoin(stakes, stakes.c.transaction_pk == transactions.c.id)
        .where(transactions.c.account_id == account_id)
        .order_by(transactions.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(transactions.c.id < before)
    return list(conn.execute(query).all())


def transaction_with_stake(conn: Connection, client: str, transaction_id: str) -> Row[Any] | None:
    """One transaction with its stake's state (`stake_state`), None if the id is unknown."""
    t = transactions
    return conn.execute(
        select(t, stakes.c.state.label("stake_state")).outerjoin(stakes, stakes.c.transaction_pk == t.c.id)
        .where(t.c.client == client, t.c.transaction_id == transaction_id)
    ).first()


def transactions_targeting(conn: Connection, client: str, target_id: str) -> list[Row[Any]]:
    """The transactions that name `target_id` (payouts, cancels, corrections of a stake), oldest first."""
    t = transactions
    return list(conn.execute(
        select(t).where(t.c.client == client, t.c.target_id == target_id).order_by(t.c.id)
    ).all())


def _open_stakes_filter(client: str, cutoff: datetime) -> tuple[ColumnElement[bool], ...]:
    t, st = transactions, stakes
    return (st.c.client == client, st.c.state == "open", t.c.created_at <= cutoff)


def open_stakes(conn: Connection, client: str, cutoff: datetime, limit: int) -> list[Row[Any]]:
    """The transactions of the client's stakes still open that were taken at `cutoff` or before, oldest first."""
    t, st = transactions, stakes
    return list(conn.execute(
        select(t).join(st, st.c.transaction_pk == t.c.id).where(*_open_stakes_filter(client, cutoff))
        .order_by(t.c.id).limit(limit)
    ).all())


def open_stake_totals(conn: Connection, client: str, cutoff: datetime) -> list[Row[Any]]:
    """Per currency, the number (`n`) and sum (`total`) of the stakes `open_stakes` selects."""
    t, st = transactions, stakes
    return list(conn.execute(
        select(st.c.currency, func.count().label("n"), func.sum(st.c.amount).label("total"))
        .join(t, st.c.transaction_pk == t.c.id).where(*_open_stakes_filter(client, cutoff))
        .group_by(st.c.currency).order_by(st.c.currency)
    ).all())


# ------------------------------------------------------------------ the operator queue and the audit log


def settlement_failures_page(conn: Connection, client: str, include_resolved: bool, limit: int,
                             before: int | None) -> list[Row[Any]]:
    """At most `limit` of the client's refused payouts, newest first by id, below id `before` if given."""
    query = (
        select(settlement_failures)
        .where(settlement_failures.c.client == client)
        .order_by(settlement_failures.c.id.desc())
        .limit(limit)
    )
    if not include_resolved:
        query = query.where(settlement_failures.c.resolved_at.is_(None))
    if before is not None:
        query = query.where(settlement_failures.c.id < before)
    return list(conn.execute(query).all())


def _failure_named(client: str, transaction_id: str) -> tuple[ColumnElement[bool], ...]:
    return (settlement_failures.c.client == client, settlement_failures.c.transaction_id == transaction_id)


def settlement_failure(conn: Connection, client: str, transaction_id: str, *, lock: bool = False) -> Row[Any] | None:
    """The queue's entry for a refused payout (locked FOR UPDATE with `lock`), None if there is none."""
    query = select(settlement_failures).where(*_failure_named(client, transaction_id))
    if lock:
        query = query.with_for_update()
    return conn.execute(query).first()


def close_settlement_failure(conn: Connection, client: str, transaction_id: str, resolution: Resolution,
                             audit: AuditNote, now: datetime) -> None:
    """Mark an entry of the queue closed, with who closed it and why."""
    conn.execute(update(settlement_failures).where(*_failure_named(client, transaction_id)).values(
        resolved_at=now, resolution=resolution, resolved_by=audit.actor[:128],
        resolution_note=audit.reason[:512]))


def settlement_failures_naming(conn: Connection, client: str, names: set[str]) -> list[Row[Any]]:
    """The queue's entries of these transaction ids, or of payouts of these stakes, oldest first."""
    return list(conn.execute(
        select(settlement_failures).where(settlement_failures.c.client == client).where(
            settlement_failures.c.transaction_id.in_(sorted(names))
            | settlement_failures.c.settles_transaction_id.in_(sorted(names)))
        .order_by(settlement_failures.c.id)
    ).all())


def record_operator_action(conn: Connection, now: datetime, client: str, audit: AuditNote, transaction_id: str,
                           target: str, outcome: str) -> None:
    """One row of the audit log."""
    conn.execute(insert(audit_log).values(
        at=now, client=client, actor=audit.actor[:128], action=audit.action[:32],
        transaction_id=transaction_id, target=target, reason=audit.reason[:512],
        outcome=outcome))


def audit_entries(conn: Connection, client: str, limit: int) -> list[Row[Any]]:
    """The client's last `limit` audit rows, newest first."""
    return list(conn.execute(
        select(audit_log).where(audit_log.c.client == client).order_by(audit_log.c.id.desc()).limit(limit)
    ).all())


def audit_naming(conn: Connection, client: str, names: set[str]) -> list[Row[Any]]:
    """The client's audit rows about these transaction ids (as the act or its target), oldest first."""
    return list(conn.execute(
        select(audit_log).where(audit_log.c.client == client).where(
            audit_log.c.transaction_id.in_(sorted(names)) | audit_log.c.target.in_(sorted(names)))
        .order_by(audit_log.c.id)
    ).all())

