"""Alembic environment: the metadata is wallet_core.storage.schema; the database is the caller's
engine (wallet_core.storage.migrate puts it in `config.attributes`), or, for `alembic` run by
hand, the URL of alembic.ini.
"""

from __future__ import annotations

from alembic import context

from wallet_core.storage.engine import make_engine
from wallet_core.storage.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("engine")
    engine = given if given is not None else make_engine(config.get_main_option("sqlalchemy.url") or "", pool_size=1)
    try:
        with engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # batch mode rebuilds tables (drop, rename): foreign keys must be off, which SQLite
                # only allows outside a transaction; they are checked once the migration is done
                driver = connection.connection.driver_connection
                assert driver is not None  # an open connection holds its DBAPI connection
                driver.execute("PRAGMA foreign_keys=OFF")
            try:
                context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
                with context.begin_transaction():
                    context.run_migrations()
                    if sqlite:
                        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                        if broken:
                            raise RuntimeError(f"the migration broke foreign keys: {broken[:10]}")
            finally:
                if sqlite:  # never give the caller's pool a connection with foreign keys off
                    connection.invalidate()
    finally:
        if given is None:
            engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
