"""The engine, made once per process, and the few ways SQLite and PostgreSQL differ.

SQLite (embedded default): WAL journal, synchronous=FULL (a committed payment survives a power
cut), foreign keys on, and write transactions opened with BEGIN IMMEDIATE so that the write lock
is taken before anything is read: no two writers ever read the same balance. Read-only work
uses a plain deferred BEGIN and does not wait for writers (WAL).

PostgreSQL (production): psycopg 3, READ COMMITTED, rows locked with SELECT ... FOR UPDATE in a
fixed order by the service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url

READ_ONLY = "wallet_read_only"  # execution option: this transaction only reads


def normalize_url(url: str | URL) -> URL:
    """`postgresql://` and `postgres://` mean psycopg 3 here (psycopg2 is not a dependency)."""
    u = make_url(str(url).replace("postgres://", "postgresql://", 1) if isinstance(url, str) else url)
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    return u


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str | URL, *, pool_size: int = 20, echo: bool = False) -> Engine:
    u = normalize_url(url)
    if u.get_backend_name() == "sqlite":
        return _sqlite_engine(u, echo=echo)
    if u.get_backend_name() != "postgresql":
        raise ValueError(f"unsupported database {u.get_backend_name()!r}: use sqlite:/// or postgresql://")
    return create_engine(
        u,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=10,
        isolation_level="READ COMMITTED",
        echo=echo,
    )


def _sqlite_engine(u: URL, *, echo: bool) -> Engine:
    database = u.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(u, connect_args={"check_same_thread": False, "timeout": 30}, echo=echo)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # take transaction control away from the sqlite3 module; we emit BEGIN ourselves
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine
