"""SQL for a batch of money calls: load what they name into a Book, write back what they changed.

Lock order, the same for every batch in every process (so batches never deadlock each other):
user wallets (one SELECT ... FOR UPDATE, ascending id), then the stakes being closed (one
SELECT ... FOR UPDATE on `stakes` alone, so a row read after a wait is the committed one),
then system accounts (updated last, ascending id). Writes are multi-row statements.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, select, text, tuple_, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql.elements import TextClause

from wallet_core.book import (
    Book,
    Call,
    CorrectionCall,
    CreditCall,
    DebitCall,
    Failure,
    FenceCall,
    SettleCall,
    Stake,
    Tx,
    Wallet,
)
from wallet_core.currencies import Currency
from wallet_core.domain import AccountKey, AccountKind, Purpose, TxStatus
from wallet_core.money import MAX_MINOR
from wallet_core.storage.schema import (
    accounts,
    audit_log,
    currencies,
    entries,
    settlement_failures,
    stakes,
    transactions,
)


def load(conn: Connection, book: Book, calls: Sequence[Call]) -> None:
    """Fill `book` with every row the calls name; lock the wallets and the stakes they may change."""
    names: set[tuple[str, str]] = set()
    keys: set[AccountKey] = set()
    closing: set[tuple[str, str]] = set()  # stakes a payout or a cancel may close
    flat = [c for call in calls for c in (call.credits() if isinstance(call, SettleCall) else [call])]
    for call in flat:
        if isinstance(call, DebitCall):
            names.update((call.client, item.transaction_id) for item, _, _ in call.items)
        elif isinstance(call, CreditCall):
            names.add((call.command.account.client, call.command.transaction_id))
            if call.command.purpose == Purpose.PAYOUT:
                names.add((call.command.account.client, call.command.settles_transaction_id))
        elif isinstance(call, FenceCall):  # reads only: a fence changes no wallet and closes no stake
            names.update((call.client, transaction_id) for transaction_id in call.transaction_ids)
        elif isinstance(call, CorrectionCall):  # its own id, and the settled stake it reopens or re-closes
            names.update({(call.client, call.transaction_id), (call.client, call.stake_id)})
            closing.add((call.client, call.stake_id))
        else:
            names.add((call.client, call.transaction_id))
    rows = _transactions(conn, names)
    # a credit whose id is already used is a replay or a conflict: judged on its stored row, it
    # changes nothing, so it locks nothing (a redelivered /winners replays cheaply)
    used = {(row.client, row.transaction_id) for row in rows}

    fresh: list[CreditCall] = []
    for call in flat:
        if isinstance(call, DebitCall):
            keys.update(item.account for item, _, _ in call.items)
        elif isinstance(call, CreditCall):
            cmd = call.command
            if (cmd.account.client, cmd.transaction_id) in used:
                continue
            fresh.append(call)
            keys.add(cmd.account)
            if cmd.purpose == Purpose.PAYOUT:
                closing.add((cmd.account.client, cmd.settles_transaction_id))
        elif not isinstance(call, FenceCall):
            closing.add((call.client, call.transaction_id))
    _lock_and_load_groups(conn, book, {c.group for c in fresh if c.group is not None})

    for row in rows:
        if row.transaction_id in (None, ""):
            continue
        if (row.client, row.transaction_id) in closing and row.purpose == Purpose.STAKE:
            keys.add(AccountKey(row.client, row.user_id, row.currency))

    _lock_wallets(conn, book, keys)
    _system_balances(conn, book)
    txs = {row.id: tx_from_row(row) for row in rows}
    for tx in txs.values():
        book.txs[(tx.client, tx.transaction_id or "")] = tx
    stake_pks = [pk for pk, tx in txs.items() if tx.purpose == Purpose.STAKE and tx.status == TxStatus.APPLIED]
    lock_pks = {pk for pk in stake_pks if (txs[pk].client, txs[pk].transaction_id) in closing}
    if not stake_pks:
        return
    locked: list[Row[Any]] = []
    if lock_pks:
        locked += conn.execute(
            select(stakes).where(stakes.c.transaction_pk.in_(sorted(lock_pks)))
            .order_by(stakes.c.transaction_pk).with_for_update()
        ).all()
    rest = [pk for pk in stake_pks if pk not in lock_pks]
    if rest:
        locked += conn.execute(select(stakes).where(stakes.c.transaction_pk.in_(rest))).all()
    closers = [s.closed_by_pk for s in locked if s.closed_by_pk is not None and s.transaction_pk in lock_pks]
    closed_by = {row.id: tx_from_row(row) for row in conn.execute(
        select(transactions).where(transactions.c.id.in_(closers)))} if closers else {}
    for s in locked:
        tx = txs[s.transaction_pk]
        tx.stake = Stake(tx, s.client, s.currency, s.account_id, s.amount, s.state,
                         closed_by=closed_by.get(s.closed_by_pk) if s.closed_by_pk else None)


def _lock_and_load_groups(conn: Connection, book: Book, groups: set[tuple[str, str, str]]) -> None:
    """The applied payouts' total of each capped group (client, currency, reference).

    Taken before any other lock of the batch: on PostgreSQL one transaction-scoped advisory lock per
    group, in sorted order, so that two batches paying into one group are judged one after the
    other (READ COMMITTED: the sum read after the lock sees the other's commit). SQLite has one
    writer at a time anyway."""
    if not groups:
        return
    ordered = sorted(groups)
    if _is_postgres(conn):  # one statement; the locks in ascending key order, whatever the groups
        conn.execute(
            text("SELECT pg_advisory_xact_lock(s.key) FROM (SELECT DISTINCT hashtextextended(k, 12) AS key"
                 " FROM unnest(CAST(:groups AS TEXT[])) AS k ORDER BY key) AS s"),
            {"groups": [f"payout-cap\x1f{client}\x1f{currency}\x1f{reference}"
                        for client, currency, reference in ordered]},
        )
    book.group_paid.update(dict.fromkeys(ordered, 0))
    query = (
        select(transactions.c.client, transactions.c.currency, transactions.c.reference,
               func.sum(transactions.c.amount).label("paid"))
        .where(tuple_(transactions.c.client, transactions.c.reference).in_(sorted({(c, r) for c, _, r in ordered})))
        .where(transactions.c.purpose == Purpose.PAYOUT, transactions.c.status == TxStatus.APPLIED)
        .group_by(transactions.c.client, transactions.c.currency, transactions.c.reference)
    )
    for row in conn.execute(query):
        group = (row.client, row.currency, row.reference)
        if group in book.group_paid:
            book.group_paid[group] = int(row.paid)


def transactions_named(conn: Connection, names: set[tuple[str, str]]) -> list[Row[Any]]:
    """The rows of these (client, transaction id) pairs, read without locks."""
    return _transactions(conn, names)


def _transactions(conn: Connection, names: set[tuple[str, str]]) -> list[Row[Any]]:
    if not names:
        return []
    ordered = sorted(names)
    if _is_postgres(conn):
        return list(conn.execute(_TRANSACTIONS_NAMED, {"clients": [c for c, _ in ordered],
                                                       "ids": [i for _, i in ordered]}).all())
    return list(conn.execute(
        select(transactions).where(tuple_(transactions.c.client, transactions.c.transaction_id).in_(ordered))
    ).all())


# The batch's reads on PostgreSQL: one array parameter per key column, so that each is one
# fixed statement (prepared by psycopg after a few uses) whatever the batch's size, where a
# row-value IN list is rendered again for every size of batch. Same rows, same locks, same order.
_TRANSACTIONS_NAMED = text(
    "SELECT t.* FROM transactions AS t JOIN unnest(CAST(:clients AS VARCHAR[]), CAST(:ids AS VARCHAR[]))"
    " AS n(client, transaction_id) ON t.client = n.client AND t.transaction_id = n.transaction_id"
).columns(*transactions.c)
_LOCK_WALLETS = text(
    "SELECT a.* FROM accounts AS a JOIN unnest(CAST(:clients AS VARCHAR[]), CAST(:users AS VARCHAR[]),"
    " CAST(:currencies AS VARCHAR[])) AS k(client, user_id, currency)"
    " ON a.client = k.client AND a.user_id = k.user_id AND a.currency = k.currency"
    " WHERE a.kind = 'user' ORDER BY a.id FOR UPDATE OF a"
).columns(*accounts.c)
_SYSTEM_BALANCES = text(
    "SELECT a.id, a.balance FROM accounts AS a JOIN unnest(CAST(:clients AS VARCHAR[]),"
    " CAST(:currencies AS VARCHAR[])) AS k(client, currency) ON a.client = k.client AND a.currency = k.currency"
    " WHERE a.kind <> 'user'"
).columns(accounts.c.id, accounts.c.balance)


def _lock_wallets(conn: Connection, book: Book, keys: Iterable[AccountKey]) -> None:
    wanted = sorted((k.client, k.user_id, k.currency) for k in keys)
    if not wanted:
        return
    if _is_postgres(conn):
        rows = conn.execute(_LOCK_WALLETS, {"clients": [w[0] for w in wanted], "users": [w[1] for w in wanted],
                                            "currencies": [w[2] for w in wanted]})
    else:
        rows = conn.execute(
            select(accounts)
            .where(accounts.c.kind == AccountKind.USER)
            .where(tuple_(accounts.c.client, accounts.c.user_id, accounts.c.currency).in_(wanted))
            .order_by(accounts.c.id)
            .with_for_update()
        )
    for row in rows:
        key = AccountKey(row.client, row.user_id, row.currency)
        book.wallets[key] = Wallet(row.id, key, row.balance, row.status, row.balance, row.debt, row.debt)


def _system_balances(conn: Connection, book: Book) -> None:
    """The system accounts' balances, for the storage range rule; not locked: `write` updates them
    only if they still leave room for the batch's deltas, else the batch is retried and judged again."""
    pairs = sorted({(k.client, k.currency) for k in book.wallets})
    if not pairs:
        return
    if _is_postgres(conn):
        rows = conn.execute(_SYSTEM_BALANCES, {"clients": [p[0] for p in pairs], "currencies": [p[1] for p in pairs]})
    else:
        rows = conn.execute(
            select(accounts.c.id, accounts.c.balance)
            .where(accounts.c.kind != AccountKind.USER)
            .where(tuple_(accounts.c.client, accounts.c.currency).in_(pairs))
        )
    book.system_balances.update({row.id: row.balance for row in rows})


def recorded_scales(conn: Connection, code: str | None = None) -> dict[str, int]:
    """The scale the ledger keeps for each currency it has used (for `code` only, if given)."""
    query = select(currencies.c.code, currencies.c.scale)
    if code is not None:
        query = query.where(currencies.c.code == code)
    return {row.code: row.scale for row in conn.execute(query)}


def record_scale(conn: Connection, currency: Currency, now: datetime) -> None:
    """Record a currency's scale; a concurrent first use of it makes this a unique violation (retried)."""
    conn.execute(insert(currencies).values(code=currency.code, scale=currency.scale, recorded_at=now))


def tx_from_row(row: Row[Any]) -> Tx:
    return Tx(
        client=row.client, transaction_id=row.transaction_id, purpose=row.purpose, status=row.status,
        account_id=row.account_id, user_id=row.user_id, currency=row.currency, amount=row.amount,
        balance_after=row.balance_after, reference=row.reference, request_hash=row.request_hash,
        created_at=aware(row.created_at), target_id=row.target_id, target_pk=row.target_pk,
        error_reason=row.error_reason, error_message=row.error_message, pk=row.id,
    )


def write(conn: Connection, book: Book) -> None:
    """Write everything the book's calls changed: multi-row inserts, then updates in lock order."""
    _insert_transactions(conn, book.new_txs)
    if book.new_entries:
        _insert(conn, entries, [
            {"transaction_pk": tx.pk, "account_id": account_id, "amount": amount}
            for tx, account_id, amount in book.new_entries
        ])
    if book.new_stakes:
        _insert(conn, stakes, [
            {"transaction_pk": s.tx.pk, "client": s.client, "currency": s.currency, "account_id": s.account_id,
             "amount": s.amount, "state": s.state, "closed_by_pk": s.closed_by.pk if s.closed_by else None}
            for s in book.new_stakes
        ])
    for stake, previous in book.corrected_stakes:
        if stake.is_new or any(s is stake for s in book.closed_stakes):
            continue  # written whole by the insert or by the closing update below
        done = conn.execute(
            update(stakes)
            .where(stakes.c.transaction_pk == stake.tx.pk, stakes.c.closed_by_pk == previous.pk)
            .values(state=stake.state, closed_by_pk=stake.closed_by.pk if stake.closed_by else None)
        )
        if done.rowcount != 1:
            raise ConcurrentChange(f"stake {stake.tx.transaction_id!r} was changed by someone else")
    _close_stakes(conn, book.closed_stakes)
    changed = sorted(book.changed_wallets(), key=lambda w: w.id)
    if changed and _is_postgres(conn):  # one statement whatever the number of wallets
        conn.execute(
            text("UPDATE accounts SET balance = v.balance, debt = v.debt FROM unnest(CAST(:ids AS BIGINT[]),"
                 " CAST(:balances AS BIGINT[]), CAST(:debts AS BIGINT[])) AS v(id, balance, debt)"
                 " WHERE accounts.id = v.id"),
            {"ids": [w.id for w in changed], "balances": [w.balance for w in changed],
             "debts": [w.debt for w in changed]},
        )
    elif changed:
        conn.execute(
            update(accounts).where(accounts.c.id == bindparam("wallet_id"))
            .values(balance=bindparam("new_balance"), debt=bindparam("new_debt")),
            [{"wallet_id": w.id, "new_balance": w.balance, "new_debt": w.debt} for w in changed],
        )
    for account_id in sorted(book.system_deltas):
        delta = book.system_deltas[account_id]
        if delta:
            # the book judged the range on the balance it loaded; another process may have moved it since
            done = conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .where(accounts.c.balance.between(-MAX_MINOR - delta, MAX_MINOR - delta))
                .values(balance=accounts.c.balance + delta)
            )
            if done.rowcount != 1:
                raise ConcurrentChange(
                    f"system account {account_id} moved since it was loaded; judging the batch again")
    if book.resolved_failures:
        conn.execute(
            update(settlement_failures)
            .where(tuple_(settlement_failures.c.client, settlement_failures.c.transaction_id)
                   .in_(book.resolved_failures))
            .where(settlement_failures.c.resolved_at.is_(None))
            .values(resolved_at=book.now, resolution="settled")
        )
    record_failures(conn, book.now, book.failures)
    if book.audit:
        _insert(conn, audit_log, [entry.row() for entry in book.audit])


def _close_stakes(conn: Connection, closed: list[Stake]) -> None:
    """Close the stakes the batch settled or cancelled, each only if it is still open."""
    for stake in closed:
        assert stake.closed_by is not None
    if len(closed) > 1 and _is_postgres(conn):  # one statement for a batch of settlements (SettleBatch)
        done = conn.execute(
            text("UPDATE stakes SET state = v.state, closed_by_pk = v.closed_by_pk"
                 " FROM unnest(CAST(:pks AS BIGINT[]), CAST(:states AS VARCHAR[]), CAST(:closers AS BIGINT[]))"
                 " AS v(pk, state, closed_by_pk) WHERE stakes.transaction_pk = v.pk AND stakes.state = 'open'"),
            {"pks": [s.tx.pk for s in closed], "states": [str(s.state) for s in closed],
             "closers": [s.closed_by.pk for s in closed if s.closed_by is not None]},
        )
        if done.rowcount != len(closed):
            raise ConcurrentChange(f"{len(closed) - done.rowcount} of {len(closed)} stakes were closed by someone else")
        return
    for stake in closed:
        assert stake.closed_by is not None
        done = conn.execute(
            update(stakes)
            .where(stakes.c.transaction_pk == stake.tx.pk, stakes.c.state == "open")
            .values(state=stake.state, closed_by_pk=stake.closed_by.pk)
        )
        if done.rowcount != 1:
            raise ConcurrentChange(f"stake {stake.tx.transaction_id!r} was closed by someone else")


def _insert_transactions(conn: Connection, txs: list[Tx]) -> None:
    """Multi-row INSERT ... RETURNING id; rows that name a stake placed in this same batch go second."""
    waves = [[t for t in txs if t.target is None or t.target.pk is not None],
             [t for t in txs if t.target is not None and t.target.pk is None]]
    for wave in waves:
        if not wave:
            continue
        for tx, pk in zip(wave, _insert(conn, transactions, [t.row() for t in wave], returning_ids=True), strict=True):
            tx.pk = pk


_POSTGRES = postgresql.dialect()


def _is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]], *, returning_ids: bool = False) -> list[int]:
    """Insert `rows`; with `returning_ids`, their new ids in the order of `rows`.

    On PostgreSQL this is one `INSERT ... SELECT FROM unnest(<one array per column>)`, whatever
    the number of rows: a short statement with one parameter per column, which psycopg parses
    once and caches, where a multi-row VALUES list (one parameter per cell) is parsed again for
    every batch and an executemany sends one statement per row. The ids of an identity column
    are drawn in the order the SELECT produces the rows (ORDER BY ordinality), so sorting the
    returned ids gives them in the order of `rows` (the property SQLAlchemy's own
    `sort_by_parameter_order` relies on for PostgreSQL).
    """
    if not _is_postgres(conn):
        if not returning_ids:
            conn.execute(insert(table), rows)
            return []
        result = conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
        return list(result.scalars().all())
    columns = tuple(rows[0])
    statement = _unnest_insert(table, columns, returning_ids)
    result = conn.execute(statement, {c: [row[c] for row in rows] for c in columns})
    return sorted(result.scalars().all()) if returning_ids else []


@functools.cache
def _unnest_insert(table: Table, columns: tuple[str, ...], returning_ids: bool) -> TextClause:
    """The PostgreSQL INSERT ... SELECT FROM unnest statement for these columns, built once per process."""
    arrays = ", ".join(f"CAST(:{c} AS {table.c[c].type.compile(dialect=_POSTGRES)}[])" for c in columns)
    names = ", ".join(columns)
    return text(f"INSERT INTO {table.name} ({names}) SELECT {names} FROM unnest({arrays}) WITH ORDINALITY"
                f" AS u({names}, ordinality) ORDER BY ordinality" + (" RETURNING id" if returning_ids else ""))


def record_failures(conn: Connection, now: datetime, failures: Sequence[Failure]) -> None:
    """Add or update the operator-queue row of each refused payout (a resolved one stays resolved)."""
    for failure in failures:
        cmd, error = failure.command, failure.error
        key = cmd.account
        if not key.client or not cmd.transaction_id or len(key.client) > 128 or len(cmd.transaction_id) > 128:
            continue
        values = {
            "settles_transaction_id": cmd.settles_transaction_id[:128], "user_id": str(key.user_id)[:128],
            "currency": str(key.currency)[:10], "amount": str(cmd.amount)[:64], "reason": error.reason,
            "message": error.message[:512], "last_seen": now,
        }
        found = conn.execute(
            select(settlement_failures.c.id)
            .where(settlement_failures.c.client == key.client,
                   settlement_failures.c.transaction_id == cmd.transaction_id)
        ).first()
        if found is None:
            conn.execute(insert(settlement_failures).values(
                client=key.client, transaction_id=cmd.transaction_id, attempts=1, first_seen=now,
                resolved_at=None, **values))
        else:
            conn.execute(update(settlement_failures).where(settlement_failures.c.id == found.id)
                         .values(attempts=settlement_failures.c.attempts + 1, **values))


class ConcurrentChange(Exception):
    """Another writer changed a row this batch relied on; the batch is retried from the start."""


def aware(value: Any) -> Any:
    return value if value is None or value.tzinfo is not None else value.replace(tzinfo=UTC)
