"""The `wallet` command: run the services, migrate the database, and operate wallets over gRPC.

    wallet serve                 core + betflex edge in one process, embedded SQLite, no set-up
    wallet core / wallet edge    each on its own (production topology)
    wallet db upgrade            apply migrations
    wallet deposit|withdraw|balance|history|open|block|unblock|settlements
                                 operator commands, over gRPC with WALLET_TOKEN / --token
    wallet reconcile             check every ledger invariant in the database
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_GRPC = "127.0.0.1:50051"
DEFAULT_HTTP = "127.0.0.1:8080"


def _configure_logging(level: str, fmt: str = "plain") -> None:
    from wallet_core.logs import configure_logging

    configure_logging(level, fmt)


def _settings(config: Path | None, **overrides: Any) -> Any:
    from pydantic import ValidationError

    from wallet_core.config import load_settings

    try:
        return load_settings(config, **overrides)
    except (ValidationError, ValueError) as exc:
        raise click.UsageError(f"configuration: {exc}") from None


config_option = click.option(
    "--config", "config", type=click.Path(path_type=Path, dir_okay=False), envvar="WALLET_CONFIG",
    help="TOML file with settings (environment variables WALLET_* win over it).",
)
metrics_option = click.option(
    "--metrics", "metrics_addr", default=None, metavar="HOST:PORT",
    help="Serve the core's Prometheus /metrics here [default: off, or WALLET_METRICS_ADDR].",
)
db_option = click.option("--db", "db", metavar="URL", help="Database URL [default: sqlite:///wallet.db, or WALLET_DATABASE_URL].")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="wallet")
def cli() -> None:
    """Wallet: an exact double-entry money ledger behind gRPC, with the betflex HTTP edge."""


# ---------------------------------------------------------------- services


def _build_ledger(settings: Any) -> Any:
    from wallet_core.currencies import CurrencyRegistry
    from wallet_core.service import Ledger
    from wallet_core.storage.engine import make_engine

    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
    return Ledger(
        engine, CurrencyRegistry(settings.currencies), group_commit=settings.group_commit,
        max_batch=settings.group_commit_max_batch, max_wait=settings.group_commit_max_wait,
    )


def _dev_token(data_dir: Path) -> tuple[str, bool]:
    """The token `wallet serve` generates once and keeps in the data directory: (token, new?)."""
    path = data_dir / "token"
    if path.exists():
        return path.read_text().strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token, True


@cli.command()
@click.option("--http", "http_addr", default=None, metavar="HOST:PORT", help=f"betflex edge address [default: {DEFAULT_HTTP}].")
@click.option("--grpc", "grpc_addr", default=None, metavar="HOST:PORT", help=f"gRPC address [default: {DEFAULT_GRPC}].")
@metrics_option
@db_option
@config_option
def serve(http_addr: str | None, grpc_addr: str | None, metrics_addr: str | None, db: str | None,
          config: Path | None) -> None:
    """Run the core and the betflex edge together (embedded SQLite by default), migrating first."""
    from edge_http.app import run as run_edge
    from edge_http.config import EdgeSettings
    from wallet_core import tracing
    from wallet_core.grpc_api.server import create_server, serve_metrics
    from wallet_core.storage.migrate import upgrade

    settings = _settings(config, database_url=db, grpc_addr=grpc_addr, metrics_addr=metrics_addr)
    _configure_logging(settings.log_level, settings.log_format)
    tracer = tracing.start("wallet")
    token, new = _dev_token(settings.data_dir)
    # the generated token always reaches every client, so the edge (and the operator) can use it
    grpc_tokens = ";".join(filter(None, [settings.grpc_tokens, f"{token}=*"]))
    settings = settings.model_copy(update={"grpc_tokens": grpc_tokens})
    upgrade(settings.database_url)
    server, port = create_server(settings, _build_ledger(settings), tracer_provider=tracer)
    server.start()
    serve_metrics(settings, server)
    edge = EdgeSettings(core_addr=f"127.0.0.1:{port}", core_token=token, **({"http_addr": http_addr} if http_addr else {}))
    if not edge.edge_tokens and not edge.insecure_no_auth:
        edge = edge.model_copy(update={"edge_tokens": token})
    host, _, http_port = edge.http_addr.rpartition(":")
    url = f"http://{host}:{http_port}"
    lines = [
        f"wallet core on {settings.grpc_addr.rpartition(':')[0]}:{port} (database {settings.database_url})",
        f"betflex edge on {url}",
    ]
    if new:
        lines += [
            f"generated an access token, kept in {settings.data_dir / 'token'} (shown only this once):",
            f"  {token}",
        ]
    else:
        lines.append(f"access token: in {settings.data_dir / 'token'}")
    lines += [
        "try it (a wallet must exist: `wallet deposit --client fanteam --user 1001 --currency EUR --amount 100`",
        f"  with WALLET_TOKEN=$(cat {settings.data_dir / 'token'}) and --grpc 127.0.0.1:{port}):",
        f"  curl -sS -X POST {url}/bets -H 'Authorization: Bearer '$(cat {settings.data_dir / 'token'}) \\",
        "    -H 'Content-Type: application/json' \\",
        "    -d '{\"bets\":[{\"user\":{\"client\":\"fanteam\",\"uid\":1001,\"ip\":\"203.0.113.7\"},"
        "\"pool\":{\"client\":\"fanteam\",\"currency\":\"EUR\",\"game\":\"betflex\",\"uid\":550001,\"overdraw\":\"37.50\"},"
        "\"bet\":{\"uid\":9000001,\"amount\":\"15.00\"}}]}'",
    ]
    click.echo("\n".join(lines), err=True)
    try:
        run_edge(edge)
    finally:
        server.stop(grace=5).wait()


@cli.command()
@click.option("--grpc", "grpc_addr", default=None, metavar="HOST:PORT", help=f"gRPC address [default: {DEFAULT_GRPC}].")
@metrics_option
@db_option
@config_option
@click.option("--migrate", is_flag=True, help="Apply pending migrations before serving.")
@click.option("--insecure-no-auth", is_flag=True, help="Accept calls without a token (local trials only).")
def core(grpc_addr: str | None, metrics_addr: str | None, db: str | None, config: Path | None, migrate: bool,
         insecure_no_auth: bool) -> None:
    """Run the gRPC wallet core."""
    from wallet_core import tracing
    from wallet_core.grpc_api.server import serve_forever
    from wallet_core.storage.migrate import check_schema, upgrade

    settings = _settings(config, database_url=db, grpc_addr=grpc_addr, metrics_addr=metrics_addr,
                         insecure_no_auth=insecure_no_auth or None)
    _configure_logging(settings.log_level, settings.log_format)
    tracer = tracing.start()
    if migrate:
        upgrade(settings.database_url)
    ledger = _build_ledger(settings)
    try:
        check_schema(ledger.engine)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    serve_forever(settings, ledger, tracer_provider=tracer)


@cli.command()
@click.option("--http", "http_addr", default=None, metavar="HOST:PORT", help=f"Listen address [default: {DEFAULT_HTTP}].")
@click.option("--core", "core_addr", default=None, metavar="HOST:PORT", help="The core's gRPC address [default: WALLET_CORE_ADDR].")
@click.option("--insecure-no-auth", is_flag=True, help="Accept callbacks without a token (local trials only).")
def edge(http_addr: str | None, core_addr: str | None, insecure_no_auth: bool) -> None:
    """Run the betflex HTTP edge alone, against WALLET_CORE_ADDR with WALLET_CORE_TOKEN."""
    from pydantic import ValidationError

    from edge_http.app import run as run_edge
    from edge_http.config import EdgeSettings

    overrides = {"http_addr": http_addr, "core_addr": core_addr, "insecure_no_auth": insecure_no_auth or None}
    try:
        settings = EdgeSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise click.UsageError(f"configuration: {exc}") from None
    _configure_logging(settings.log_level, settings.log_format)
    run_edge(settings)


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@db_option
@config_option
def db_upgrade(db: str | None, config: Path | None) -> None:
    """Apply every pending migration (the only way the schema changes)."""
    from wallet_core.storage.migrate import current_revision, upgrade
    from wallet_core.storage.engine import make_engine

    settings = _settings(config, database_url=db)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url, pool_size=1)
    click.echo(f"database at revision {current_revision(engine)}")
    engine.dispose()


@db.command("current")
@db_option
@config_option
def db_current(db: str | None, config: Path | None) -> None:
    """Show the database's schema revision and the one this version needs."""
    from wallet_core.storage.engine import make_engine
    from wallet_core.storage.migrate import current_revision, head_revision

    settings = _settings(config, database_url=db)
    engine = make_engine(settings.database_url, pool_size=1)
    click.echo(f"database: {current_revision(engine) or 'empty'}; needed: {head_revision()}")
    engine.dispose()


@cli.command()
@db_option
@config_option
def reconcile(db: str | None, config: Path | None) -> None:
    """Check every ledger invariant; exit 1 on any violation."""
    from wallet_core.reconcile import reconcile as run
    from wallet_core.storage.engine import make_engine

    settings = _settings(config, database_url=db)
    engine = make_engine(settings.database_url, pool_size=1)
    report = run(engine)
    engine.dispose()
    click.echo(report.render())
    sys.exit(0 if report.ok else 1)


@cli.command()
@click.option("--quick", is_flag=True, help="1 s per point and 1,000 wallets: a smoke run in well under a minute.")
@click.option("--duration", type=click.FloatRange(min=1), default=None,
              help="Seconds per point, for us and for pgbench [default: 10, 1 with --quick].")
@click.option("--wallets", type=click.IntRange(min=1, max=10_000_000), default=None,
              help="Funded wallets for the random-wallet scenarios [default: 10000, 1000 with --quick].")
@click.option("--scenarios", default="A,B,C,D", show_default=True,
              help="Scenarios (A, B, C, D) or points (A1, A16, A64, B16, B64, C64, D64), comma-separated.")
@click.option("--processes", type=click.IntRange(min=1, max=64), default=2, show_default=True,
              help="Load generator processes (callers are spread over them).")
@click.option("--pg", "server_url", default="postgresql://postgres@127.0.0.1:5432/postgres", show_default=True,
              envvar="WALLET_BENCH_POSTGRES_URL",
              help="PostgreSQL server on this machine; a throwaway database is created there and dropped.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where the JSON and PNG go [default: bench/results].")
@click.option("--profile", is_flag=True, help="Sample the core (and the edge) with py-spy during A64 and C64.")
def bench(quick: bool, duration: float | None, wallets: int | None, scenarios: str, processes: int,
          server_url: str, out_dir: Path | None, profile: bool) -> None:
    """Load-test the core (gRPC) and the edge (HTTP) on PostgreSQL, side by side with pgbench."""
    from bench.report import table
    from bench.runner import RESULTS_DIR, Options, command_line, run, select_points

    try:
        select_points(scenarios)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    options = Options(
        duration=duration or (1.0 if quick else 10.0), wallets=wallets or (1_000 if quick else 10_000),
        scenarios=scenarios, processes=processes, server_url=server_url, out_dir=out_dir or RESULTS_DIR,
        profile=profile, quick=quick, command=command_line(sys.argv[1:]),
    )
    try:
        report = run(options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(table(report))
    click.echo(f"results: {report['files']['json']}\nplot:    {report['files']['png']}")


# ---------------------------------------------------------------- operator commands (gRPC)


def client_options(fn: F) -> F:
    options = [
        click.option("--grpc", "target", default=DEFAULT_GRPC, envvar="WALLET_CORE_ADDR", show_default=True,
                     metavar="HOST:PORT", help="The core (env WALLET_CORE_ADDR)."),
        click.option("--token", envvar="WALLET_TOKEN", help="Bearer token (env WALLET_TOKEN)."),
        click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="CA certificate: use TLS and verify the core against it."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def account_options(fn: F) -> F:
    for option in reversed([
        click.option("--client", required=True, help="Client (tenant), e.g. fanteam."),
        click.option("--user", required=True, help="The client's user id."),
        click.option("--currency", required=True, help="Currency code, e.g. EUR."),
    ]):
        fn = option(fn)
    return fn


def _run(target: str, token: str | None, tls_ca: Path | None, call: Callable[[Any], Any]) -> Any:
    from clients import WalletClient
    from clients.errors import WalletError

    root = tls_ca.read_bytes() if tls_ca else None
    try:
        with WalletClient(target, token=token, root_certificates=root) as client:
            return call(client)
    except WalletError as exc:
        raise click.ClickException(str(exc)) from None


def _plain(value: Any) -> Any:
    import dataclasses
    import enum
    from datetime import datetime

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _emit(as_json: bool, value: Any, text: str) -> None:
    click.echo(json.dumps(_plain(value), indent=2) if as_json else text)


def _account(client: str, user: str, currency: str) -> Any:
    from clients import AccountRef

    return AccountRef(client, user, currency)


@cli.command("open")
@account_options
@client_options
def open_account(client: str, user: str, currency: str, target: str, token: str | None, tls_ca: Path | None,
                 as_json: bool) -> None:
    """Open a wallet (nothing happens if it exists)."""
    account, created = _run(target, token, tls_ca, lambda c: c.open_account(_account(client, user, currency)))
    _emit(as_json, account, f"{'opened' if created else 'exists'}: {client}/{user} {account.balance} {currency}")


@cli.command()
@account_options
@click.option("--amount", required=True, help="Decimal amount, e.g. 100.00.")
@click.option("--id", "transaction_id", help="Transaction id (idempotency key); repeat it to retry safely.")
@click.option("--reference", default="", help="Free text kept with the transaction.")
@client_options
def deposit(client: str, user: str, currency: str, amount: str, transaction_id: str | None, reference: str,
            target: str, token: str | None, tls_ca: Path | None, as_json: bool) -> None:
    """Credit a deposit (opens the wallet if needed)."""
    tid = transaction_id or f"cli-deposit-{uuid.uuid4()}"
    ref = _account(client, user, currency)

    def call(c: Any) -> Any:
        c.open_account(ref)
        return c.deposit(tid, ref, amount, reference=reference)

    result = _run(target, token, tls_ca, call)
    t = result.transaction
    _emit(as_json, result, f"deposited {t.amount} {currency} to {client}/{user}: balance {t.balance_after} "
                           f"(transaction {tid}{', replayed' if result.replayed else ''})")


@cli.command()
@account_options
@click.option("--amount", required=True, help="Decimal amount, e.g. 20.00.")
@click.option("--id", "transaction_id", help="Transaction id (idempotency key); repeat it to retry safely.")
@click.option("--reference", default="", help="Free text kept with the transaction.")
@client_options
def withdraw(client: str, user: str, currency: str, amount: str, transaction_id: str | None, reference: str,
             target: str, token: str | None, tls_ca: Path | None, as_json: bool) -> None:
    """Debit a withdrawal."""
    tid = transaction_id or f"cli-withdrawal-{uuid.uuid4()}"
    result = _run(target, token, tls_ca,
                  lambda c: c.withdraw(tid, _account(client, user, currency), amount, reference=reference))
    t = result.transactions[0]
    _emit(as_json, result, f"withdrew {t.amount} {currency} from {client}/{user}: balance {t.balance_after} "
                           f"(transaction {tid}{', replayed' if result.replayed else ''})")


@cli.command()
@account_options
@client_options
def balance(client: str, user: str, currency: str, target: str, token: str | None, tls_ca: Path | None,
            as_json: bool) -> None:
    """Show a wallet's balance."""
    account = _run(target, token, tls_ca, lambda c: c.get_balance(_account(client, user, currency)))
    _emit(as_json, account, f"{client}/{user}: {account.balance} {currency} ({account.status.value})")


@cli.command()
@account_options
@click.option("--limit", default=20, show_default=True, help="How many transactions, newest first.")
@client_options
def history(client: str, user: str, currency: str, limit: int, target: str, token: str | None,
            tls_ca: Path | None, as_json: bool) -> None:
    """Show a wallet's transactions, newest first."""
    def call(c: Any) -> list[Any]:
        found: list[Any] = []
        token_ = ""
        while len(found) < limit:
            page = c.list_transactions(_account(client, user, currency), page_size=min(limit, 500), page_token=token_)
            found.extend(page.transactions)
            token_ = page.next_page_token
            if not token_:
                break
        return found[:limit]

    rows = _run(target, token, tls_ca, call)
    text = "\n".join(
        f"{t.created_at:%Y-%m-%d %H:%M:%S}  {t.purpose.value:<10} {t.status.value:<9} {t.amount:>14} "
        f"-> {t.balance_after or '-':>14}  {t.transaction_id}"
        + (f"  (settles {t.settles_transaction_id})" if t.settles_transaction_id else "")
        for t in rows
    ) or "no transactions"
    _emit(as_json, rows, text)


def _set_status(status_name: str) -> Callable[..., None]:
    def command(client: str, user: str, currency: str, target: str, token: str | None, tls_ca: Path | None,
                as_json: bool) -> None:
        from clients import AccountStatus

        status = AccountStatus(status_name)
        account = _run(target, token, tls_ca,
                       lambda c: c.set_account_status(_account(client, user, currency), status))
        _emit(as_json, account, f"{client}/{user} {currency}: {account.status.value}")

    return command


cli.command("block", help="Block a wallet: debits and deposits are refused.")(
    account_options(client_options(_set_status("blocked"))))
cli.command("unblock", help="Unblock a wallet.")(account_options(client_options(_set_status("active"))))


@cli.command()
@click.option("--client", required=True, help="Client (tenant).")
@click.option("--failed", "failed", is_flag=True, default=True, help="Only unresolved failures (the default).")
@click.option("--all", "include_resolved", is_flag=True, help="Include failures resolved by a later payout.")
@click.option("--limit", default=100, show_default=True)
@client_options
def settlements(client: str, failed: bool, include_resolved: bool, limit: int, target: str, token: str | None,
                tls_ca: Path | None, as_json: bool) -> None:
    """List refused payouts (e.g. betflex /winners for unknown bets) for operators to resolve."""
    rows = _run(target, token, tls_ca, lambda c: c.list_settlement_failures(
        client, include_resolved=include_resolved, limit=limit))
    text = "\n".join(
        f"{f.last_seen:%Y-%m-%d %H:%M:%S}  {f.transaction_id}  settles {f.settles_transaction_id}  "
        f"{f.account.user_id} {f.amount} {f.account.currency}  {f.reason} x{f.attempts}: {f.message}"
        + (f"  [resolved {f.resolved_at:%Y-%m-%d %H:%M:%S}]" if f.resolved_at else "")
        for f in rows
    ) or "no failed settlements"
    _emit(as_json, rows, text)


def main() -> None:
    cli(prog_name="wallet")


if __name__ == "__main__":
    main()
