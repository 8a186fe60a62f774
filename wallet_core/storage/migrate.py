"""Alembic, driven from code: `wallet db upgrade` and the start-up schema check.

The migrations run on the caller's engine (handed to env.py in `Config.attributes`), so the
URL is never rendered to text and parsed again on the way.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL, Engine

from wallet_core.storage.engine import make_engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic's configuration: our migrations, and the engine they run on (env.py uses it)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def upgrade(target: Engine | URL | str, revision: str = "head") -> None:
    """Migrate the database of `target` to `revision`: an engine (used as it is), or a URL (an
    engine is made for the migration and disposed of; SQLite's directory is created)."""
    if isinstance(target, Engine):
        command.upgrade(alembic_config(target), revision)
        return
    engine = make_engine(target, pool_size=1)
    try:
        command.upgrade(alembic_config(engine), revision)
    finally:
        engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(engine: Engine) -> None:
    """Raise RuntimeError, saying what to run, unless the database is at the newest migration."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise RuntimeError(
            f"database schema is at revision {current or 'none'}, this version needs {head}: "
            "run `wallet db upgrade --db URL` first"
        )
