"""The `wallet` command: run the services, migrate the database, and operate wallets over gRPC.

    wallet serve                 core + betflex edge in one process, embedded SQLite, no set-up
    wallet core / wallet edge    each on its own (production topology)
    wallet db upgrade            apply migrations
    wallet deposit|withdraw|balance|history|open|block|unblock
                                 operator commands, over gRPC with WALLET_TOKEN / --token
    wallet tx|cancel|settle|resettle|unsettle|adjust|settlements|stakes|system-balances|audit|clients
                                 the operator's support desk (wallet_cli/operator.py)
    wallet reconcile             check every ledger invariant in the database

Commands only: what they build (settings, engine, ledger, core, edge) comes from wallet_cli.bootstrap.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import socket
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from wallet_cli import bootstrap
from wallet_cli.errors import CommandError, Exit, from_client_error, from_exception, report

if TYPE_CHECKING:
    from wallet_core.config import Settings

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_GRPC = "127.0.0.1:50051"
DEFAULT_HTTP = "127.0.0.1:8080"


def _configure_logging(level: str, fmt: str = "plain") -> None:
    from wallet_core.logs import configure_logging

    configure_logging(level, fmt)


def _check_listen(addr: str, where: str, *, reuse_port: bool = False) -> None:
    """Fail with a clear line if `addr` (HOST:PORT) cannot be listened on (e.g. a port in use).

    With `reuse_port` (a worker of `core --workers N`) a port its siblings listen on with
    SO_REUSEPORT is free; one held by any other listener is not.
    """
    host, _, port = addr.rpartition(":")
    if port == "0":
        return
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host.strip("[]"), int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
            if reuse_port:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind(sockaddr)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CommandError(f"cannot listen on {addr} ({reason.lower()}): choose another address with {where}",
                           reason="CANNOT_LISTEN") from None


class WalletGroup(click.Group):
    """The `wallet` group: every failure ends as one line on stderr (JSON with --json) and an exit code."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        as_json = "--json" in argv
        try:
            result = super().main(argv, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # `wallet` or `wallet db` alone (click >= 8.2): the help
                exc.show()
            else:
                report(exc, as_json=as_json)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            report(CommandError("aborted", code=Exit.FAILED, reason="ABORTED"), as_json=as_json)
            sys.exit(Exit.FAILED)
        except Exception as exc:
            translated = from_exception(exc)
            if translated is None:
                raise  # a bug, not an operator mistake: keep its traceback
            report(translated, as_json=as_json)
            sys.exit(translated.exit_code)
        sys.exit(result if isinstance(result, int) else Exit.OK)


config_option = click.option(
    "--config", "config", type=click.Path(path_type=Path, dir_okay=False), envvar="WALLET_CONFIG",
    help="TOML file with settings (environment variables WALLET_* win over it).",
)
metrics_option = click.option(
    "--metrics", "metrics_addr", default=None, metavar="HOST:PORT",
    help="Serve the core's Prometheus /metrics here [default: off, or WALLET_METRICS_ADDR].",
)
db_option = click.option(
    "--db", "db", metavar="URL", help="Database URL [default: sqlite:///wallet.db, or WALLET_DATABASE_URL].")


@click.group(cls=WalletGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="betflex-wallet-ledger", prog_name="wallet")
def cli() -> None:
    """Wallet: an exact double-entry money ledger behind gRPC, with the betflex HTTP edge."""


# ---------------------------------------------------------------- services


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


DEFAULT_SERVE_CLIENTS = "fanteam"


@cli.command()
@click.option("--http", "http_addr", default=None, metavar="HOST:PORT",
              help=f"betflex edge address [default: {DEFAULT_HTTP}].")
@click.option("--grpc", "grpc_addr", default=None, metavar="HOST:PORT", help=f"gRPC address [default: {DEFAULT_GRPC}].")
@click.option("--clients", "dev_clients", default=DEFAULT_SERVE_CLIENTS, envvar="WALLET_SERVE_CLIENTS",
              show_default=True,
              metavar="C1,C2", help="Clients the generated access token may act for (env WALLET_SERVE_CLIENTS); "
                                    "'*' for every client.")
@metrics_option
@db_option
@config_option
def serve(http_addr: str | None, grpc_addr: str | None, dev_clients: str, metrics_addr: str | None, db: str | None,
          config: Path | None) -> None:
    """Run the core and the betflex edge together (embedded SQLite by default), migrating first.

    Tokens: a generated access token, kept in the data directory, may act for --clients; it is
    betflex's token unless WALLET_EDGE_TOKENS is set. The edge reaches the core with
    WALLET_CORE_TOKEN when it is set (the core must grant it in WALLET_GRPC_TOKENS), else with a
    token generated at each start, kept in memory only, for exactly the clients of the edge's tokens.
    """
    from clients.tokens import find_grant, parse_token_spec, spec
    from edge_http.app import describe_tokens
    from edge_http.auth import TokenVerifier
    from wallet_core.grpc_api.server import serve_metrics

    settings = bootstrap.core_settings(config, database_url=db, grpc_addr=grpc_addr, metrics_addr=metrics_addr)
    edge = bootstrap.edge_settings(http_addr=http_addr)
    _configure_logging(settings.log_level, settings.log_format)
    tracer = bootstrap.start_tracing("wallet")
    clients = sorted({c.strip() for c in dev_clients.split(",") if c.strip()})
    if not clients or any(";" in c or "=" in c for c in clients):
        raise click.UsageError("--clients / WALLET_SERVE_CLIENTS: expected client names separated by ',' (or '*')")
    _check_listen(settings.grpc_addr, "--grpc or WALLET_GRPC_ADDR")
    _check_listen(edge.http_addr, "--http or WALLET_HTTP_ADDR")
    token, new = _dev_token(settings.data_dir)
    grants = [spec(token, clients)]  # the generated access token: the operator's, and betflex's by default
    if not edge.edge_tokens and not edge.insecure_no_auth:
        edge = edge.model_copy(update={"edge_tokens": spec(token, clients)})
    edge_tokens = TokenVerifier.from_setting(edge.edge_tokens)
    edge_clients = sorted(edge_tokens.clients()) if edge_tokens and not edge.insecure_no_auth else clients
    if edge.core_token:
        granted = find_grant(edge.core_token, parse_token_spec(settings.grpc_tokens))
        if granted is None and not settings.insecure_no_auth:
            raise click.UsageError("WALLET_CORE_TOKEN is set but WALLET_GRPC_TOKENS does not grant it: "
                                   "add 'token=client1,client2' for the clients of the edge's tokens")
        missing = [c for c in edge_clients if granted is not None and not granted.allows(c)]
        if missing and not settings.insecure_no_auth:
            names = "every client" if "*" in missing else ", ".join(missing)
            click.echo(f"warning: WALLET_CORE_TOKEN may not act for {names}, which an edge token "
                       "may: the core will refuse those callbacks", err=True)
        core_line = "the edge reaches the core with WALLET_CORE_TOKEN (granted by WALLET_GRPC_TOKENS)"
    else:
        core_token = secrets.token_urlsafe(32)  # this process's own, never stored nor shown
        grants.append(spec(core_token, edge_clients))
        edge = edge.model_copy(update={"core_token": core_token})
        core_line = f"the edge reaches the core with a generated token for clients: {', '.join(edge_clients)}"
    grpc_tokens = ";".join(filter(None, [settings.grpc_tokens, *grants]))
    parse_token_spec(grpc_tokens)  # the generated entries are well-formed: the configured part was checked
    settings = settings.model_copy(update={"grpc_tokens": grpc_tokens})
    engine = bootstrap.open_database(settings)  # one engine: the migrations, then the ledger
    bootstrap.migrate(engine)
    server, port = bootstrap.build_core(settings, bootstrap.build_ledger(settings, engine), tracer_provider=tracer)
    server.start()
    serve_metrics(settings, server)
    edge = edge.model_copy(update={"core_addr": f"127.0.0.1:{port}"})
    host, _, http_port = edge.http_addr.rpartition(":")
    url = f"http://{host}:{http_port}"
    default_edge_token = edge.edge_tokens == spec(token, clients)
    lines = [
        f"wallet core on {settings.grpc_addr.rpartition(':')[0]}:{port} (database {settings.database_url})",
        f"betflex edge on {url}",
    ]
    if edge.insecure_no_auth:
        lines.append("  INSECURE: the edge accepts callbacks without a token (WALLET_INSECURE_NO_AUTH)")
    elif default_edge_token:
        lines.append(f"  betflex's token is the generated access token; it may act for clients: {', '.join(clients)}")
    else:
        lines += [f"  {line} (WALLET_EDGE_TOKENS)" for line in describe_tokens(edge_tokens)]
    lines.append(f"  {core_line}")
    if new:
        lines += [
            f"generated an access token for clients {', '.join(clients)}, kept in {settings.data_dir / 'token'} "
            "(shown only this once):",
            f"  {token}",
        ]
    else:
        lines.append(f"access token (clients {', '.join(clients)}): in {settings.data_dir / 'token'}")
    bearer = f"$(cat {settings.data_dir / 'token'})" if default_edge_token else "'<a token of WALLET_EDGE_TOKENS>'"
    lines += [
        "try it (a wallet must exist: "
        "`wallet deposit --client fanteam --user 1001 --currency EUR --amount 100 --id dep-1`",
        f"  with WALLET_TOKEN=$(cat {settings.data_dir / 'token'}) and --grpc 127.0.0.1:{port}):",
        f"  curl -sS -X POST {url}/bets -H 'Authorization: Bearer '{bearer} \\",
        "    -H 'Content-Type: application/json' \\",
        "    -d '{\"bets\":[{\"user\":{\"client\":\"fanteam\",\"uid\":1001,\"ip\":\"203.0.113.7\"},"
        "\"pool\":{\"client\":\"fanteam\",\"currency\":\"EUR\",\"game\":\"betflex\",\"uid\":550001,\"overdraw\":\"37.50\"},"
        "\"bet\":{\"uid\":9000001,\"amount\":\"15.00\"}}]}'",
    ]
    click.echo("\n".join(lines), err=True)
    try:
        bootstrap.run_edge(edge)
    finally:
        server.stop(grace=5).wait()


@cli.command()
@click.option("--grpc", "grpc_addr", default=None, metavar="HOST:PORT", help=f"gRPC address [default: {DEFAULT_GRPC}].")
@metrics_option
@db_option
@config_option
@click.option("--migrate", is_flag=True, help="Apply pending migrations before serving (once, with --workers).")
@click.option("--insecure-no-auth", is_flag=True, help="Accept calls without a token (local trials only).")
@click.option("--workers", "workers", type=click.IntRange(min=1, max=64), default=None, metavar="N",
              help="Core processes serving the --grpc port together (SO_REUSEPORT), PostgreSQL only; worker i "
                   "serves /metrics on PORT+i [default: 1, or WALLET_CORE_WORKERS].")
@click.option("--worker-of", "supervisor_pid", type=int, default=None, hidden=True)  # set by the supervisor
def core(grpc_addr: str | None, metrics_addr: str | None, db: str | None, config: Path | None, migrate: bool,
         insecure_no_auth: bool, workers: int | None, supervisor_pid: int | None) -> None:
    """Run the gRPC wallet core: one process, or --workers N processes on one port and one database."""
    settings = bootstrap.core_settings(config, database_url=db, grpc_addr=grpc_addr, metrics_addr=metrics_addr,
                                       insecure_no_auth=insecure_no_auth or None, core_workers=workers)
    _configure_logging(settings.log_level, settings.log_format)
    if settings.core_workers > 1:
        sys.exit(_supervise(settings, config, migrate))
    if supervisor_pid is not None:
        from wallet_cli.supervisor import follow_supervisor

        follow_supervisor(supervisor_pid)
    _check_listen(settings.grpc_addr, "--grpc or WALLET_GRPC_ADDR", reuse_port=settings.grpc_reuse_port)
    # without --migrate a missing database is not made empty; an old schema is refused
    bootstrap.run_core(settings, migrate_first=migrate)


def _supervise(settings: Settings, config: Path | None, migrate: bool) -> int:
    """`core --workers N`: refuse what N processes cannot share, then run them (wallet_cli.supervisor)."""
    from wallet_cli.supervisor import metrics_addresses

    n = settings.core_workers
    if settings.grpc_addr.rpartition(":")[2] == "0":
        raise CommandError(f"--workers {n} needs a fixed port: port 0 picks a different free port in each process, "
                           "which clients could not find; give --grpc HOST:PORT (or WALLET_GRPC_ADDR)")
    if settings.database_url.get_backend_name() == "sqlite":
        raise CommandError(f"--workers {n} needs PostgreSQL: SQLite takes one writer at a time, so more processes "
                           "would only wait on its lock; run one process (--workers 1) or set WALLET_DATABASE_URL "
                           "to postgresql://...")
    _check_listen(settings.grpc_addr, "--grpc or WALLET_GRPC_ADDR")
    for addr in metrics_addresses(settings.metrics_addr, n):
        if addr is not None:
            _check_listen(addr, f"--metrics or WALLET_METRICS_ADDR (worker i serves PORT+i, for {n} workers)")
    return bootstrap.run_core_workers(settings, config=config, migrate_first=migrate)


@cli.command()
@click.option("--http", "http_addr", default=None, metavar="HOST:PORT",
              help=f"Listen address [default: {DEFAULT_HTTP}].")
@click.option("--core", "core_addr", default=None, metavar="HOST:PORT",
              help="The core's gRPC address [default: WALLET_CORE_ADDR].")
@click.option("--insecure-no-auth", is_flag=True, help="Accept callbacks without a token (local trials only).")
def edge(http_addr: str | None, core_addr: str | None, insecure_no_auth: bool) -> None:
    """Run the betflex HTTP edge alone, against WALLET_CORE_ADDR with WALLET_CORE_TOKEN."""
    settings = bootstrap.edge_settings(http_addr=http_addr, core_addr=core_addr,
                                       insecure_no_auth=insecure_no_auth or None)
    _configure_logging(settings.log_level, settings.log_format)
    _check_listen(settings.http_addr, "--http or WALLET_HTTP_ADDR")
    bootstrap.run_edge(settings)  # no edge token: EdgeConfigError, reported as one line naming WALLET_EDGE_TOKENS


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@db_option
@config_option
def db_upgrade(db: str | None, config: Path | None) -> None:
    """Apply every pending migration (the only way the schema changes)."""
    from wallet_core.storage.migrate import current_revision

    settings = bootstrap.core_settings(config, database_url=db)
    engine = bootstrap.open_database(settings, pool_size=1)
    try:
        bootstrap.migrate(engine)
        click.echo(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()


@db.command("current")
@db_option
@config_option
def db_current(db: str | None, config: Path | None) -> None:
    """Show the database's schema revision and the one this version needs; exit 1 if they differ."""
    from wallet_core.storage.migrate import current_revision, head_revision

    settings = bootstrap.core_settings(config, database_url=db)
    engine = bootstrap.open_database(settings, pool_size=1, create=False)
    try:
        current, head = current_revision(engine), head_revision()
    finally:
        engine.dispose()
    behind = current != head
    click.echo(f"database: {current or 'empty'}; needed: {head}" + (": run `wallet db upgrade`" if behind else ""))
    sys.exit(Exit.FAILED if behind else Exit.OK)


@cli.command()
@db_option
@config_option
def reconcile(db: str | None, config: Path | None) -> None:
    """Check every ledger invariant; exit 1 on any violation. Never creates a database."""
    from wallet_core.reconcile import reconcile as run
    from wallet_core.storage.migrate import current_revision, head_revision

    settings = bootstrap.core_settings(config, database_url=db)
    engine = bootstrap.open_database(settings, pool_size=1, create=False)
    try:
        current, head = current_revision(engine), head_revision()
        if current is None:
            raise CommandError("this database holds no wallet ledger (no schema): "
                               "run `wallet db upgrade` to create one",
                               reason="SCHEMA_OUT_OF_DATE")
        if current != head:
            # a ledger that cannot be upgraded (e.g. damaged by an old bug) is exactly one to check
            click.echo(f"warning: the schema is at revision {current}, the newest is {head}; the checks of newer "
                       "tables are skipped (`wallet db upgrade` brings them)", err=True)
        result = run(engine)
    finally:
        engine.dispose()
    click.echo(result.render())
    sys.exit(Exit.OK if result.ok else Exit.FAILED)


@cli.command()
@click.option("--quick", is_flag=True, help="1 s per point and 1,000 wallets: a smoke run in well under a minute.")
@click.option("--duration", type=click.FloatRange(min=1), default=None,
              help="Seconds per point, for us and for pgbench [default: 10, 1 with --quick].")
@click.option("--wallets", type=click.IntRange(min=1, max=10_000_000), default=None,
              help="Funded wallets for the random-wallet scenarios [default: 10000, 1000 with --quick].")
@click.option("--scenarios", default="A,B,C,D,O", show_default=True,
              help="Scenarios (A, B, C, D, O) or points (A1, A16, A64, B16, B64, C64, D64, O250, O500), "
                   "comma-separated.")
@click.option("--processes", type=click.IntRange(min=1, max=64), default=2, show_default=True,
              help="Load generator processes (callers are spread over them).")
@click.option("--pg", "server_url", default="postgresql://postgres@127.0.0.1:5432/postgres", show_default=True,
              envvar="WALLET_BENCH_POSTGRES_URL",
              help="PostgreSQL server on this machine; a throwaway database is created there and dropped.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where the JSON and PNG go [default: wallet_bench/results].")
@click.option("--profile", is_flag=True, help="Sample the core (and the edge) with py-spy during A64 and C64.")
@click.option("--core-workers", type=click.IntRange(min=1, max=64), default=1, show_default=True,
              help="Core processes (`wallet core --workers N`); their CPU is summed, peak RSS is the largest one's.")
def bench(quick: bool, duration: float | None, wallets: int | None, scenarios: str, processes: int,
          server_url: str, out_dir: Path | None, profile: bool, core_workers: int) -> None:
    """Load-test the core (gRPC) and the edge (HTTP) on PostgreSQL, side by side with pgbench."""
    from wallet_bench.report import table
    from wallet_bench.runner import RESULTS_DIR, Options, command_line, run, select_points

    try:
        select_points(scenarios)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    options = Options(
        duration=duration or (1.0 if quick else 10.0), wallets=wallets or (1_000 if quick else 10_000),
        scenarios=scenarios, processes=processes, server_url=server_url, out_dir=out_dir or RESULTS_DIR,
        profile=profile, quick=quick, command=command_line(sys.argv[1:]), core_workers=core_workers,
    )
    try:
        report = run(options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(table(report))
    click.echo(f"results: {report['files']['json']}\nplot:    {report['files']['png']}")


# ---------------------------------------------------------------- operator commands (gRPC)


def client_options(fn: F) -> F:
    """--grpc, --token / --token-file, --tls-ca and --json; the command receives the resolved `token`."""
    options = [
        click.option("--grpc", "target", default=DEFAULT_GRPC, envvar="WALLET_CORE_ADDR", show_default=True,
                     metavar="HOST:PORT", help="The core (env WALLET_CORE_ADDR)."),
        click.option("--token", help="Bearer token [default: from --token-file, else env WALLET_TOKEN]."),
        click.option("--token-file", type=click.Path(path_type=Path, dir_okay=False),
                     help="File holding the bearer token, e.g. .wallet/token (the one `wallet serve` generated)."),
        click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="CA certificate: use TLS and verify the core against it."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON (errors too, on stderr)."),
    ]

    @functools.wraps(fn)
    def command(*args: Any, token: str | None, token_file: Path | None, **kwargs: Any) -> Any:
        return fn(*args, token=_token(token, token_file), **kwargs)

    for option in reversed(options):
        command = option(command)
    return command  # type: ignore[return-value]


def _token(token: str | None, token_file: Path | None) -> str:
    """--token, else the first line of --token-file, else WALLET_TOKEN; "" when none is given."""
    if token is not None and token_file is not None:
        raise click.UsageError("give --token or --token-file, not both")
    if token is not None:
        return token
    if token_file is not None:
        try:
            text = token_file.read_text().strip()
        except OSError as exc:
            raise CommandError(f"cannot read the token file {token_file} ({exc.strerror or exc}): give the file "
                               "`wallet serve` wrote (.wallet/token where it ran) or one you made",
                               reason="TOKEN_FILE") from None
        if not text:
            raise CommandError(f"the token file {token_file} is empty", reason="TOKEN_FILE")
        return text.splitlines()[0].strip()
    return os.environ.get("WALLET_TOKEN", "")


def account_options(fn: F) -> F:
    for option in reversed([
        click.option("--client", required=True, help="Client (tenant), e.g. fanteam."),
        click.option("--user", required=True, help="The client's user id."),
        click.option("--currency", required=True, help="Currency code, e.g. EUR."),
    ]):
        fn = option(fn)
    return fn


def _run(target: str, token: str, tls_ca: Path | None, call: Callable[[Any], Any]) -> Any:
    from clients import WalletClient
    from clients.errors import WalletError

    root = tls_ca.read_bytes() if tls_ca else None
    try:
        with WalletClient(target, token=token, root_certificates=root) as client:
            return call(client)
    except WalletError as exc:
        raise from_client_error(exc, target=target, token_given=bool(token)) from None


def _require_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    if value is None or not value.strip():
        raise click.UsageError(
            "missing --id: the transaction id makes a rerun safe (the core replays it instead of moving the money "
            "again); choose one naming the operation, e.g. --id refund-ticket-4711", ctx=ctx)
    return value


id_option = click.option(
    "--id", "transaction_id", metavar="ID", callback=_require_id, required=False,
    help="Required: this transaction's id (idempotency key); a rerun with the same id replays, "
         "never moves money twice.")


def _require_reason(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    if value is None or not value.strip():
        raise click.UsageError("missing --reason: say why (it is kept in the audit trail, `wallet audit`)", ctx=ctx)
    return value


def reason_option(*, required: bool) -> Callable[[F], F]:
    """--reason: why, sent to the core and kept in the audit trail with who and when."""
    if required:
        return click.option("--reason", metavar="TEXT", callback=_require_reason,
                            help="Required: why (kept in the audit trail, at most 512 characters).")
    return click.option("--reason", metavar="TEXT", default="",
                        help="Why (kept in the audit trail with who and when, at most 512 characters).")


def _amount(value: Any) -> str:
    """An amount as a plain decimal string, never in exponent form (`0.00000001`, not `1E-8`)."""
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _plain(value: Any) -> Any:
    import dataclasses
    import enum
    from datetime import datetime

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return _amount(value)
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
def open_account(client: str, user: str, currency: str, target: str, token: str, tls_ca: Path | None,
                 as_json: bool) -> None:
    """Open a wallet (nothing happens if it exists)."""
    account, created = _run(target, token, tls_ca, lambda c: c.open_account(_account(client, user, currency)))
    state = "opened" if created else "exists"
    _emit(as_json, account, f"{state}: {client}/{user} {_amount(account.balance)} {currency}")


@cli.command()
@account_options
@click.option("--amount", required=True, help="Decimal amount, e.g. 100.00.")
@id_option
@reason_option(required=False)
@click.option("--reference", default="", help="Free text kept with the transaction.")
@client_options
def deposit(client: str, user: str, currency: str, amount: str, transaction_id: str, reason: str, reference: str,
            target: str, token: str, tls_ca: Path | None, as_json: bool) -> None:
    """Credit a deposit (opens the wallet if needed); recorded in the audit trail."""
    from clients import Purpose

    tid = transaction_id
    ref = _account(client, user, currency)

    def call(c: Any) -> Any:
        c.open_account(ref)
        return c.operator_credit(tid, ref, amount, Purpose.DEPOSIT, reason, reference=reference)

    result = _run(target, token, tls_ca, call)
    t = result.transaction
    _emit(as_json, result, f"deposited {_amount(t.amount)} {currency} to {client}/{user}: "
                           f"balance {_amount(t.balance_after)} "
                           f"(transaction {tid}{', replayed' if result.replayed else ''})")


@cli.command()
@account_options
@click.option("--amount", required=True, help="Decimal amount, e.g. 20.00.")
@id_option
@reason_option(required=False)
@click.option("--reference", default="", help="Free text kept with the transaction.")
@client_options
def withdraw(client: str, user: str, currency: str, amount: str, transaction_id: str, reason: str, reference: str,
             target: str, token: str, tls_ca: Path | None, as_json: bool) -> None:
    """Debit a withdrawal; recorded in the audit trail."""
    tid = transaction_id
    result = _run(target, token, tls_ca, lambda c: c.operator_withdraw(
        tid, _account(client, user, currency), amount, reason, reference=reference))
    t = result.transactions[0]
    _emit(as_json, result, f"withdrew {_amount(t.amount)} {currency} from {client}/{user}: "
                           f"balance {_amount(t.balance_after)} "
                           f"(transaction {tid}{', replayed' if result.replayed else ''})")


@cli.command()
@account_options
@client_options
def balance(client: str, user: str, currency: str, target: str, token: str, tls_ca: Path | None,
            as_json: bool) -> None:
    """Show a wallet's balance."""
    account = _run(target, token, tls_ca, lambda c: c.get_balance(_account(client, user, currency)))
    _emit(as_json, account, f"{client}/{user}: {_amount(account.balance)} {currency} ({account.status.value})")


@cli.command()
@account_options
@click.option("--limit", default=20, show_default=True, help="How many transactions, newest first.")
@client_options
def history(client: str, user: str, currency: str, limit: int, target: str, token: str,
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
        f"{t.created_at:%Y-%m-%d %H:%M:%S}  {t.purpose.value:<10} {t.status.value:<9} {_amount(t.amount):>14} "
        f"-> {'-' if t.balance_after is None else _amount(t.balance_after):>14}  {t.transaction_id}"
        + (f"  (settles {t.settles_transaction_id})" if t.settles_transaction_id else "")
        for t in rows
    ) or "no transactions"
    _emit(as_json, rows, text)


def _set_status(status_name: str) -> Callable[..., None]:
    def command(client: str, user: str, currency: str, target: str, token: str, tls_ca: Path | None,
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


# the operator's support desk: tx, cancel, settle, resettle, unsettle, adjust, settlements, stakes, ...
from wallet_cli import operator  # noqa: E402,F401  (registers its commands on `cli`; imports the helpers above)


def main() -> None:
    cli.main(prog_name="wallet")


if __name__ == "__main__":  # `python -m wallet_cli.cli`: run the importable module's group, which
    from wallet_cli.cli import main as _main  # wallet_cli/operator.py's commands are registered on

    _main()
