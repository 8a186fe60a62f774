"""The throwaway database: created on 127.0.0.1 for one run, migrated, seeded, dropped at the end.

Seeding writes rows directly (10,000 deposits through gRPC would take longer than a quick run),
but writes exactly what 10,000 DEPOSIT credits would: per wallet one applied `deposit`
transaction with its two entries (cashier -> user), cached balances equal to the entries,
system accounts for the client and currency. `reconcile` therefore holds from the start.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from sqlalchemy.engine import make_url

from wallet_core.domain import SYSTEM_KINDS

CLIENT = "fanteam"
CURRENCY = "EUR"
WALLET_MINOR = 100_000  # 1,000.00 EUR per wallet: far more than a run can stake on one wallet
HOT_MINOR = 10_000_000_000  # 100,000,000.00 EUR on the hot wallet
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Seeded:
    wallets: int
    hot_user: str
    system_ids: dict[str, int]


def admin_url(server_url: str) -> str:
    """The maintenance database URL; refuses anything but a PostgreSQL on this machine."""
    url = make_url(server_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"the bench needs PostgreSQL, got {url.get_backend_name()!r}")
    if (url.host or "") not in LOCAL_HOSTS:
        raise ValueError(f"the bench only talks to 127.0.0.1, not {url.host!r}")
    return url.set(drivername="postgresql", host="127.0.0.1", database=url.database or "postgres").render_as_string(
        hide_password=False
    )


@contextmanager
def throwaway_database(server_url: str) -> Iterator[str]:
    """CREATE DATABASE wallet_bench_<hex>; yield its SQLAlchemy URL; DROP it afterwards, even on error."""
    admin = admin_url(server_url)
    name = f"wallet_bench_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def libpq_url(db_url: str) -> str:
    return make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)


def seed(db_url: str, wallets: int) -> Seeded:
    """Open and fund `wallets` user wallets "1".."N" and a hot wallet "N+1", as deposits would."""
    hot = str(wallets + 1)
    with psycopg.connect(libpq_url(db_url)) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO accounts (client, kind, user_id, currency, balance, status, created_at) "
            "SELECT %s, k, '', %s, 0, 'active', now() FROM unnest(%s::text[]) AS k",
            (CLIENT, CURRENCY, [str(kind) for kind in SYSTEM_KINDS]),
        )
        conn.execute(
            "INSERT INTO accounts (client, kind, user_id, currency, balance, status, created_at) "
            "SELECT %s, 'user', g::text, %s, CASE WHEN g = %s THEN %s ELSE %s END, 'active', now() "
            "FROM generate_series(1, %s) AS g",
            (CLIENT, CURRENCY, wallets + 1, HOT_MINOR, WALLET_MINOR, wallets + 1),
        )
        system: dict[str, int] = dict(conn.execute(
            "SELECT kind, id FROM accounts WHERE client = %s AND currency = %s AND kind <> 'user'", (CLIENT, CURRENCY)
        ).fetchall())
        conn.execute(
            "INSERT INTO transactions (client, transaction_id, purpose, status, account_id, user_id, currency, "
            "amount, balance_after, reference, request_hash, created_at) "
            "SELECT client, 'bench-seed:' || user_id, 'deposit', 'applied', id, user_id, currency, balance, balance, "
            "'bench seed', md5('bench-seed:' || user_id) || md5(user_id), now() "
            "FROM accounts WHERE kind = 'user' AND client = %s AND currency = %s",
            (CLIENT, CURRENCY),
        )
        conn.execute(
            "INSERT INTO entries (transaction_pk, account_id, amount) "
            "SELECT id, account_id, amount FROM transactions WHERE purpose = 'deposit' "
            "UNION ALL SELECT id, %s, -amount FROM transactions WHERE purpose = 'deposit'",
            (system["cashier"],),
        )
        conn.execute(
            "UPDATE accounts SET balance = (SELECT -sum(amount) FROM transactions WHERE purpose = 'deposit') "
            "WHERE id = %s",
            (system["cashier"],),
        )
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return Seeded(wallets, hot, system)


def vacuum(db_url: str) -> None:
    """VACUUM ANALYZE the whole throwaway database: every run (ours and pgbench's) starts without the
    dead row versions the previous one left (thousands on the `in_play` and hot-wallet rows), as
    pgbench itself vacuums before a run of its own tables."""
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def seed_plain(db_url: str, wallets: int) -> None:
    """The plain debit's tables (schema `plain`): wallets 1..N and the hot wallet N+1, funded as the ledger's."""
    from wallet_bench.baseline import PLAIN_COUNTER_ACCOUNT, PLAIN_SCHEMA

    with psycopg.connect(libpq_url(db_url)) as conn, conn.transaction():
        conn.execute(PLAIN_SCHEMA)
        conn.execute(
            "INSERT INTO plain.accounts (id, balance) SELECT g, CASE WHEN g = %s THEN %s ELSE %s END "
            "FROM generate_series(1, %s) AS g UNION ALL SELECT %s, 0",
            (wallets + 1, HOT_MINOR, WALLET_MINOR, wallets + 1, PLAIN_COUNTER_ACCOUNT),
        )
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE plain.accounts")


def count_by_pgbench_client(db_url: str, base: int, stride: int) -> dict[int, int]:
    """How many stakes each pgbench client placed in the debit run numbered from `base`."""
    with psycopg.connect(libpq_url(db_url)) as conn:
        rows = conn.execute(
            "SELECT (v - %s) / %s AS c, count(*) FROM (SELECT CASE WHEN transaction_id ~ '^[0-9]{1,18}$' "
            "THEN transaction_id::bigint END AS v FROM transactions "
            "WHERE client = %s AND purpose = 'stake' AND status = 'applied') AS s "
            "WHERE v > %s AND v < %s GROUP BY 1",
            (base, stride, CLIENT, base, base + 1000 * stride),
        ).fetchall()
    return {int(c): int(n) for c, n in rows}


def now(db_url: str) -> datetime:
    with psycopg.connect(libpq_url(db_url)) as conn:
        row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def batch_sizes(db_url: str, prefix: str, since: datetime | None = None) -> dict[str, float]:
    """Group commit as the database saw it: the core stamps every call of one batch with one time."""
    with psycopg.connect(libpq_url(db_url)) as conn:
        calls, batches = conn.execute(
            "SELECT count(*), count(DISTINCT created_at) FROM transactions WHERE transaction_id LIKE %s "
            "AND created_at >= %s",
            (prefix.replace("%", r"\%").replace("_", r"\_") + "%", since or datetime.min.replace(tzinfo=UTC)),
        ).fetchone() or (0, 0)
    return {"calls": int(calls), "batches": int(batches), "mean_batch": round(calls / batches, 1) if batches else 0.0}
