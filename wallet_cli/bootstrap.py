"""The one place that turns settings into running parts: a ledger, a gRPC core, an edge.

    core_settings(config, **options)   the core's Settings, built once (TOML < WALLET_* < options)
    edge_settings(**options)           the edge's EdgeSettings, built once
    open_database(settings)            the engine, made from the URL Settings normalised (never re-parsed)
    migrate(engine)                    every pending migration, on that engine
    build_ledger(settings, engine)     the Ledger, refusing an old schema or a currency it cannot keep
    build_core(settings, ledger)       the gRPC server, unstarted, and the port it bound
    run_core(settings)                 one gRPC core until SIGTERM/SIGINT
    check_core(settings)               what every core checks at start (database, schema, currencies), once
    run_core_workers(settings, config) N core processes on one port, supervised (wallet_cli.supervisor)
    run_edge(settings)                 the betflex edge until interrupted

The `wallet` commands (wallet_cli.cli) only call these; `wallet_core` and `edge_http` know
nothing of them, and `wallet_core` never imports `edge_http` (tests/test_project.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from wallet_cli.errors import CommandError, invalid_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from edge_http.config import EdgeSettings
    from wallet_core.config import Settings
    from wallet_core.grpc_api.server import CoreServer
    from wallet_core.service import Ledger


def core_settings(config: Path | None, **overrides: Any) -> Settings:
    """The core's settings: defaults < the TOML file `config` < WALLET_* < `overrides` (None ignored)."""
    from pydantic import ValidationError

    from wallet_core.config import load_settings

    if config is not None and not config.is_file():
        raise CommandError(f"settings file {config} not found (given by --config or WALLET_CONFIG)",
                           reason="CONFIG_NOT_FOUND")
    try:
        return load_settings(config, **overrides)
    except ValidationError as exc:
        raise invalid_settings(exc) from None
    except (ValueError, OSError) as exc:
        raise CommandError(f"settings: {exc}", reason="INVALID_SETTINGS") from None


def edge_settings(**overrides: Any) -> EdgeSettings:
    """The edge's settings: defaults < WALLET_* < `overrides` (None ignored)."""
    from pydantic import ValidationError

    from edge_http.config import EdgeSettings

    try:
        return EdgeSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise invalid_settings(exc) from None


def open_database(settings: Settings, *, pool_size: int | None = None, create: bool = True) -> Engine:
    """The engine on `settings.database_url` (already normalised by Settings). With `create=False`
    a missing SQLite file is DatabaseNotFound, never a new empty database.
    """
    from wallet_core.storage.engine import make_engine

    return make_engine(settings.database_url, pool_size=pool_size or settings.db_pool_size, create=create)


def migrate(engine: Engine) -> None:
    """Apply every pending migration on `engine` (the only way the schema changes)."""
    from wallet_core.storage.migrate import upgrade

    upgrade(engine)


def build_ledger(settings: Settings, engine: Engine) -> Ledger:
    """The Ledger on `engine`; refuses (CommandError) an old schema or a currency scale it does not keep."""
    from wallet_core.currencies import CurrencyRegistry
    from wallet_core.service import Ledger
    from wallet_core.storage.migrate import check_schema

    ledger = Ledger(
        engine, CurrencyRegistry(settings.currencies), group_commit=settings.group_commit,
        max_batch=settings.group_commit_max_batch, max_wait=settings.group_commit_max_wait,
        clawback=settings.clawback_policies(),
    )
    try:
        check_schema(engine)
        ledger.check_currencies()
    except RuntimeError as exc:
        ledger.close()
        engine.dispose()
        raise CommandError(str(exc), reason="REFUSED_TO_START") from None
    return ledger


def build_core(settings: Settings, ledger: Ledger, *, tracer_provider: Any = None) -> tuple[CoreServer, int]:
    """The gRPC core on `settings.grpc_addr`, unstarted: (server, the port it bound)."""
    from wallet_core.grpc_api.server import create_server

    return create_server(settings, ledger, tracer_provider=tracer_provider)


def start_tracing(service_name: str) -> Any:
    """OpenTelemetry, if the OTEL_* variables ask (before any engine is made); the provider or None."""
    from wallet_core import tracing

    return tracing.start(service_name)


def run_core(settings: Settings, *, migrate_first: bool = False) -> None:
    """`wallet core`: one engine for the migrations and the ledger, then serve until SIGTERM/SIGINT.

    Without `migrate_first` a missing database is not made empty, and an old schema is refused.
    """
    from wallet_core.grpc_api.server import serve_forever

    tracer = start_tracing("wallet-core")
    engine = open_database(settings, create=migrate_first)
    if migrate_first:
        migrate(engine)
    serve_forever(settings, build_ledger(settings, engine), tracer_provider=tracer)


def check_core(settings: Settings, *, migrate_first: bool = False) -> None:
    """What every core process checks at start, made once: the database (made and migrated with
    `migrate_first`, else it must exist), its schema and the currency scales; nothing is kept open."""
    engine = open_database(settings, pool_size=1, create=migrate_first)
    try:
        if migrate_first:
            migrate(engine)
        build_ledger(settings, engine).close()
    finally:
        engine.dispose()


def run_core_workers(settings: Settings, *, config: Path | None, migrate_first: bool = False) -> int:
    """`wallet core --workers N` (N > 1): the checks and the migrations once, then N worker processes
    on `settings.grpc_addr` until SIGTERM/SIGINT; the supervisor's exit status (wallet_cli.supervisor)."""
    from wallet_cli.supervisor import Supervisor

    check_core(settings, migrate_first=migrate_first)
    return Supervisor(settings, config).run()


def run_edge(settings: EdgeSettings) -> None:
    """`wallet edge` (and the edge of `wallet serve`): serve betflex until interrupted."""
    from edge_http.app import run

    run(settings)
