"""Throwaway databases for tests.

SQLite: one migrated template file per session, copied for each test.
PostgreSQL: one database per session, created on the server named by WALLET_TEST_POSTGRES_URL
(default postgresql://postgres@127.0.0.1:5432/postgres), migrated once, emptied between tests
and dropped at the end. No other database on that server is touched.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from wallet_core.reconcile import reconcile
from wallet_core.storage.engine import normalize_url
from wallet_core.storage.migrate import upgrade
from wallet_core.storage.schema import Base

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
LEDGER_TABLES = [t.name for t in Base.metadata.sorted_tables]


def postgres_server_url() -> str:
    return os.environ.get("WALLET_TEST_POSTGRES_URL", DEFAULT_PG)


def postgres_required() -> bool:
    return os.environ.get("WALLET_TEST_REQUIRE_POSTGRES") == "1"


class PostgresDatabase:
    """A database of our own on the test server, created now and dropped by `drop()`."""

    def __init__(self, prefix: str = "wallet_test") -> None:
        self.server = normalize_url(postgres_server_url())
        self.name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.admin = create_engine(self.server, isolation_level="AUTOCOMMIT", pool_size=1)
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = self.server.set(database=self.name).render_as_string(hide_password=False)

    def drop(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


def postgres_or_skip() -> PostgresDatabase:
    try:
        return PostgresDatabase()
    # server missing (whatever the driver raises): skip, or fail when CI demands PostgreSQL
    except Exception as exc:  # noqa: BLE001
        message = f"PostgreSQL test server unreachable at {make_url(postgres_server_url())!r}: {exc}"
        if postgres_required():
            pytest.fail(message + " (WALLET_TEST_REQUIRE_POSTGRES=1)")
        pytest.skip(message)


@contextmanager
def migrated_postgres() -> Iterator[PostgresDatabase]:
    """A throwaway PostgreSQL database at the latest schema, dropped afterwards (skips without a server)."""
    db = postgres_or_skip()
    try:
        upgrade(db.url)
        yield db
    finally:
        db.drop()


class SqliteTemplate:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "template.db"
        upgrade(f"sqlite:///{self.path}")

    def fresh(self, directory: Path) -> str:
        target = directory / "wallet.db"
        shutil.copyfile(self.path, target)
        return f"sqlite:///{target}"


def empty_postgres(engine: Engine) -> None:
    names = ", ".join(LEDGER_TABLES)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def dump(engine: Engine, *, tombstones: bool = True) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every ledger table, in primary-key order: compare two dumps for 'unchanged'.

    `tombstones=False` leaves out the tombstones (fenced ids: no money, no balance), which a
    refused /bets body whose bet uids can be read writes so that its 402 stays true.
    """
    result = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            order = list(table.primary_key.columns)
            query = table.select().order_by(*order)
            if not tombstones and table.name == "transactions":
                query = query.where(table.c.status != "tombstone")
            result[table.name] = [tuple(r) for r in conn.execute(query).all()]
    return result


def assert_reconciled(engine: Engine) -> None:
    report = reconcile(engine)
    assert report.ok, report.render()
