"""The engine, made once per process, and the few ways SQLite and PostgreSQL differ.

SQLite (embedded default): WAL journal, synchronous=FULL (a committed payment survives a power
cut), foreign keys on, and write transactions opened with BEGIN IMMEDIATE so that the write lock
is taken before anything is read: no two writers ever read the same balance. Read-only work
uses a plain deferred BEGIN and does not wait for writers (WAL). A lock another process holds
is waited for BUSY_TIMEOUT_MS, then the statement fails "database is locked" (an outage, retried
by the unit of work within its budget).

PostgreSQL (production): psycopg 3, READ COMMITTED, rows locked with SELECT ... FOR UPDATE in a
fixed order by storage.repository. A connection that cannot be opened within CONNECT_TIMEOUT seconds
fails (an outage) instead of hanging for the kernel's TCP timeout; pooled connections are
checked before use (pre-ping), so a restarted server costs no failed call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

READ_ONLY = "wallet_read_only"  # execution option: this transaction only reads
# seconds to open a PostgreSQL connection before the attempt counts as an outage
# (libpq's connect_timeout; a `?connect_timeout=` in the URL wins)
CONNECT_TIMEOUT = 3
# milliseconds a SQLite statement waits for a lock another process holds before it is an outage
BUSY_TIMEOUT_MS = 2000
# milliseconds the health ping waits for SQLite's write lock (it must not hold up the writers)
PING_BUSY_TIMEOUT_MS = 250


class DatabaseNotFound(FileNotFoundError):
    """A command that only reads was pointed at an SQLite file that does not exist."""


def normalize_url(url: str | URL) -> URL:
    """The URL with its driver: every PostgreSQL scheme (`postgresql://`, `postgres://`,
    `postgresql+psycopg2://`, ...) means psycopg 3 here (the only driver installed); a database
    other than SQLite or PostgreSQL is a ValueError that says what to use instead.
    """
    try:
        u = make_url(str(url).replace("postgres://", "postgresql://", 1) if isinstance(url, str) else url)
    except ArgumentError:
        raise ValueError("not a database URL: use sqlite:///path.db or postgresql://user@host/db") from None
    backend = u.get_backend_name()
    if backend == "postgresql":
        return u.set(drivername="postgresql+psycopg")
    if backend != "sqlite":
        raise ValueError(f"unsupported database {backend!r}: use sqlite:///path.db or postgresql://user@host/db")
    return u


def sqlite_file(url: str | URL) -> Path | None:
    """The file an SQLite URL names (None for PostgreSQL, in-memory and `file:` URI databases)."""
    u = normalize_url(url)
    database = u.database or ""
    if u.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str | URL, *, pool_size: int = 20, echo: bool = False, create: bool = True) -> Engine:
    """The engine for `url`. With `create=False` (commands that only read) a missing SQLite file
    is DatabaseNotFound instead of a new empty database.
    """
    u = normalize_url(url)
    if u.get_backend_name() == "sqlite":
        path = sqlite_file(u)
        if path is not None and not create and not path.is_file():
            raise DatabaseNotFound(f"no database at {path}")
        return _sqlite_engine(u, echo=echo)
    return create_engine(
        u,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={} if "connect_timeout" in u.query else {"connect_timeout": CONNECT_TIMEOUT},
        isolation_level="READ COMMITTED",
        echo=echo,
    )


def ping(engine: Engine) -> None:
    """Raise (a DBAPI or SQLAlchemy error) unless the database can serve a write now.

    PostgreSQL: `SELECT 1` on a pooled connection (pre-pinged, so a dead one is replaced).
    SQLite: the write lock taken and given back at once, waiting at most PING_BUSY_TIMEOUT_MS;
    a WAL reader never waits, so only this notices a lock another process holds. The caller
    keeps the process's own writers out meanwhile.
    """
    with engine.connect() as conn:
        if not is_sqlite(engine):
            conn.execute(text("SELECT 1"))
            return
        raw: Any = conn.connection.dbapi_connection  # no autobegin: BEGIN IMMEDIATE is ours to send
        raw.execute(f"PRAGMA busy_timeout={PING_BUSY_TIMEOUT_MS}")
        try:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("ROLLBACK")
        finally:
            raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def _sqlite_engine(u: URL, *, echo: bool) -> Engine:
    path = sqlite_file(u)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(u, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}, echo=echo)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # take transaction control away from the sqlite3 module; we emit BEGIN ourselves
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine
