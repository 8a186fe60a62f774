"""The unit of work: every database transaction of the ledger begins, commits and is retried here.

`read()` is one read-only transaction; `write(work)` runs `work(conn)` in one transaction that
commits when `work` returns and rolls back when it raises, and runs it again from the start on a
lost race (repository.ConcurrentChange, a unique-key race of two writers with one key, a
serialization failure or deadlock) or a database that cannot serve now (down, unreachable,
locked, full), within RETRY_BUDGET seconds and `max_attempts` attempts. A database that cannot
serve is errors.Unavailable for the caller (UNAVAILABLE on the wire, safe to retry); any other
database error is a bug and propagates as it is.

Also the classification of database errors (PostgreSQL SQLSTATEs, SQLite result codes) that
tells an outage or a lost race from a bug, and `ping()` for the health watcher.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from wallet_core import errors
from wallet_core.storage.engine import READ_ONLY, is_sqlite
from wallet_core.storage.engine import ping as engine_ping
from wallet_core.storage.repository import ConcurrentChange

log = logging.getLogger(__name__)

T = TypeVar("T")

# seconds after which a failing write starts no new attempt (docs/decisions.md)
RETRY_BUDGET = 3.0


def _not_observed(reason: str) -> None:
    pass


class UnitOfWork:
    """Thread-safe; one per engine and process, shared by every caller of the ledger.

    `on_retry(reason)` is called before each retry of a write, with the reason's label:
    `concurrent_change`, `unique_race`, `serialization` or `unavailable` (for metrics).
    """

    def __init__(self, engine: Engine, *, max_attempts: int = 12,
                 on_retry: Callable[[str], None] = _not_observed) -> None:
        self.engine = engine
        self.max_attempts = max_attempts
        self.on_retry = on_retry
        # SQLite has one writer at a time anyway; queueing writers here is fairer and faster
        # than letting them spin on the database lock.
        self._write_lock: AbstractContextManager[object] = threading.Lock() if is_sqlite(engine) else nullcontext()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One read-only transaction; a database that cannot serve it is errors.Unavailable."""
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(**{READ_ONLY: True})
                with conn.begin():
                    yield conn
        except DBAPIError as exc:
            if not _is_unavailable(exc):
                raise
            log.warning("the database cannot serve a read: %s", exc.orig)
            raise errors.Unavailable("the ledger database is unavailable; retry later") from exc

    def write(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one transaction; retry the whole of it on races and transient failures.

        At most `max_attempts` attempts, and none starts after RETRY_BUDGET seconds: a database
        that stays down answers Unavailable within about RETRY_BUDGET plus one attempt (whose
        wait is bounded by the connect timeout, or SQLite's busy timeout).
        """
        delay = 0.005
        last: Exception | None = None
        give_up = time.monotonic() + RETRY_BUDGET
        for attempt in range(self.max_attempts):
            try:
                with self._write_lock, self.engine.begin() as conn:
                    result = work(conn)
            except ConcurrentChange as exc:
                last = exc
                self.on_retry("concurrent_change")
            except IntegrityError as exc:
                if not _is_unique_violation(exc):
                    log.critical("a ledger constraint refused a write: %s", exc.orig)
                    raise
                last = exc  # another call took the same key first: look again
                self.on_retry("unique_race")
            except DBAPIError as exc:
                if not _is_unavailable(exc):
                    raise
                last = exc
                self.on_retry(_retry_reason(exc))
                log.warning("database hiccup (attempt %d/%d): %s", attempt + 1, self.max_attempts, exc.orig)
            else:
                return result
            left = give_up - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(delay * (0.5 + random.random()), left))
            delay = min(delay * 2, 0.5)
        raise errors.Unavailable("the ledger database is unavailable or overloaded; retry later") from last

    def ping(self) -> None:
        """Can the database serve a write now? Raises if not (for the health watcher).

        PostgreSQL: `SELECT 1`. SQLite: the write lock, taken and given back (storage.engine.ping),
        queued behind this process's writers so that it never holds them up.
        """
        with self._write_lock:
            engine_ping(self.engine)


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _is_unique_violation(exc: IntegrityError) -> bool:
    return _sqlstate(exc) == "23505" or "UNIQUE constraint failed" in str(exc.orig)


def _retry_reason(exc: DBAPIError) -> str:
    """The label of a retried database error: a lost race (serialization, deadlock, lock) or an outage."""
    if _sqlstate(exc) in {"40001", "40P01"} or "database is locked" in str(exc.orig).lower():
        return "serialization"
    return "unavailable"


# PostgreSQL SQLSTATEs of a database that cannot serve now (nothing was applied; retry):
# serialization failure, deadlock, insufficient resources (53: too many connections, disk
# full, out of memory), admin/crash shutdown, cannot connect now, database dropped, idle
# session timeout, system or I/O error (58), read-only transaction (a standby after a failover).
_RETRYABLE_STATES = {"40001", "40P01", "57P01", "57P02", "57P03", "57P04", "57P05", "25006"}
_RETRYABLE_CLASSES = ("08", "53", "58")
# SQLite primary result codes of a file that cannot be used now: BUSY, LOCKED, READONLY
# (e.g. a read-only remount), IOERR, FULL, CANTOPEN, PROTOCOL.
_SQLITE_CODES = {5, 6, 8, 10, 13, 14, 15}
_SQLITE_MESSAGES = ("database is locked", "unable to open database", "disk i/o", "database or disk is full",
                    "readonly database")


def _is_unavailable(exc: DBAPIError) -> bool:
    """Is this the database failing to serve (down, unreachable, locked, overloaded), not a bug?

    Those become errors.Unavailable, and a write is retried within its budget. A PostgreSQL
    connection that cannot be opened or breaks (refused, timed out, `database ... is not
    currently accepting connections`, server closed the connection) comes from psycopg as an
    OperationalError without a SQLSTATE, since no server answer carries one.
    """
    if exc.connection_invalidated:
        return True
    state = _sqlstate(exc)
    if state is not None:
        return state in _RETRYABLE_STATES or state.startswith(_RETRYABLE_CLASSES)
    if type(exc.orig).__module__.startswith("psycopg"):
        return isinstance(exc, OperationalError)
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _SQLITE_CODES:
        return True
    message = str(exc.orig).lower()
    return any(m in message for m in _SQLITE_MESSAGES)
