"""Alembic, driven from code: `wallet db upgrade` and the start-up schema check."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from wallet_core.storage.engine import make_engine, normalize_url

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # '%' is ConfigParser's interpolation character; URLs may contain it
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


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


def upgrade_engine_url(url: str) -> None:
    """Upgrade, making sure SQLite's directory exists first."""
    make_engine(url).dispose()
    upgrade(url)
