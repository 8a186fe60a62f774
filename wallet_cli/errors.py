"""How the `wallet` command fails: its exit codes, one table from client errors to them, and the
one line (or, with `--json`, the JSON object) it writes to stderr.

An operator mistake (a missing file, an unreachable database, a port in use, a refused token)
never ends in a traceback: it becomes a `CommandError` that says what failed and what to do.
A traceback is left only for what no operator can fix: a bug.
"""

from __future__ import annotations

import enum
import json
import sys
from typing import IO, Any

import click


class Exit(enum.IntEnum):
    """The `wallet` command's exit codes (README "Exit codes", docs/configuration.md)."""

    OK = 0
    FAILED = 1  # a check found a problem: `reconcile` (a violated invariant), `db current` (schema behind)
    # the command, its settings or its surroundings need fixing (the message says how); retrying as is won't help
    USAGE = 2
    REFUSED = 3  # the ledger said no (insufficient funds, blocked, unknown wallet, ...): definite, nothing changed
    UNAVAILABLE = 4  # the core or the database could not be reached or did not answer: retry (the same --id is safe)


class CommandError(click.ClickException):
    """A failure the `wallet` command reports as one line (or JSON) and an exit code."""

    def __init__(self, message: str, *, code: Exit = Exit.USAGE, reason: str = "USAGE",
                 show_reason: bool = False) -> None:
        super().__init__(message)
        self.exit_code = int(code)  # type: ignore[misc]  # click declares it a ClassVar; each error has its own
        self.reason = reason
        self.show_reason = show_reason  # the text line starts with the reason (the core's, e.g. INSUFFICIENT_FUNDS)


# The client's error classes (clients/errors.py) → exit code; the most specific class wins.
def client_exit_code(error: Exception) -> Exit:
    from clients import errors

    table: dict[type[errors.WalletError], Exit] = {
        errors.InvalidArgument: Exit.REFUSED,  # with InvalidAmount, UnknownCurrency
        errors.AccountNotFound: Exit.REFUSED,
        errors.StakeNotFound: Exit.REFUSED,
        errors.InsufficientFunds: Exit.REFUSED,
        errors.AccountBlocked: Exit.REFUSED,
        errors.AlreadySettled: Exit.REFUSED,
        errors.StakeCancelled: Exit.REFUSED,
        errors.CurrencyMismatch: Exit.REFUSED,
        errors.StakeMismatch: Exit.REFUSED,
        errors.NotCancellable: Exit.REFUSED,
        errors.NotSettled: Exit.REFUSED,
        errors.IdempotencyConflict: Exit.REFUSED,
        errors.Unauthenticated: Exit.USAGE,  # the token: fix it, retrying will not help
        errors.PermissionDenied: Exit.USAGE,
        errors.Unavailable: Exit.UNAVAILABLE,
        errors.DeadlineExceeded: Exit.UNAVAILABLE,  # may have been applied: repeat with the same --id
        errors.TransportError: Exit.UNAVAILABLE,
    }
    for cls in type(error).__mro__:
        if cls in table:
            return table[cls]
    return Exit.FAILED


def from_client_error(error: Any, *, target: str, token_given: bool) -> CommandError:
    """The CommandError for a failed gRPC call, with what to do about it."""
    from clients import errors

    code = client_exit_code(error)
    message = error.message
    if isinstance(error, errors.Unavailable) and error.connect_failed:
        message = (f"cannot reach the wallet core at {target}: start it (`wallet serve` or `wallet core`) or give "
                   f"its address with --grpc or WALLET_CORE_ADDR; retrying is safe")
    elif isinstance(error, errors.Unauthenticated):
        message = (f"the core refused the token ({message}): " + (
            "check --token, --token-file or WALLET_TOKEN against the core's WALLET_GRPC_TOKENS" if token_given else
            "no token was given: use --token-file .wallet/token (the one `wallet serve` generated), --token, "
            "or set WALLET_TOKEN"))
    elif isinstance(error, errors.PermissionDenied):
        message = f"{message}: use a token the core's WALLET_GRPC_TOKENS grants this client"
    elif isinstance(error, errors.DeadlineExceeded):
        message = f"{message}: the call may or may not have been applied; repeat it with the same --id"
    elif code is Exit.UNAVAILABLE:
        message = f"{message}: retry (with the same --id, a retry is safe)"
    return CommandError(message, code=code, reason=error.reason, show_reason=True)


def invalid_settings(error: Any) -> CommandError:
    """A pydantic ValidationError of the settings as one line naming each variable."""
    problems = []
    for detail in error.errors():
        name = f"WALLET_{str(detail['loc'][0]).upper()}: " if detail.get("loc") else ""
        problems.append(name + str(detail["msg"]).removeprefix("Value error, "))
    return CommandError("invalid settings: " + "; ".join(problems), reason="INVALID_SETTINGS")


def from_exception(error: BaseException) -> CommandError | None:
    """The CommandError for an operator-caused failure raised outside the commands' own checks
    (the database, the edge's settings); None for anything else (a bug: its traceback is kept).
    """
    from pydantic import ValidationError
    from sqlalchemy.exc import DBAPIError, OperationalError

    from wallet_core.storage.engine import DatabaseNotFound

    if isinstance(error, ValidationError):
        return invalid_settings(error)
    if isinstance(error, DatabaseNotFound):
        return CommandError(
            f"{error}: give the database with --db or WALLET_DATABASE_URL (or run where `wallet serve` ran); "
            "`wallet db upgrade` creates one", reason="DATABASE_NOT_FOUND")
    if isinstance(error, OperationalError) or (isinstance(error, DBAPIError) and error.connection_invalidated):
        first = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
        if any(refusal in first for refusal in ("does not exist", "authentication failed")):
            return CommandError(f"the database refused: {first}; check --db / WALLET_DATABASE_URL (`wallet db "
                                "upgrade` fills a new, empty database)", reason="DATABASE_REFUSED")
        return CommandError(
            f"the database failed: {first}; check --db / WALLET_DATABASE_URL, or retry when it is up",
            code=Exit.UNAVAILABLE, reason="DATABASE_UNAVAILABLE")
    try:
        from edge_http.app import EdgeConfigError
    except ImportError:  # pragma: no cover - the edge is part of the same distribution
        return None
    if isinstance(error, EdgeConfigError):
        return CommandError(str(error))
    return None


def report(error: click.ClickException, *, as_json: bool, file: IO[str] | None = None) -> None:
    """One line on stderr: `wallet: <message>`, or {"error": reason, "message": ...} with --json."""
    stream = file if file is not None else sys.stderr
    reason = getattr(error, "reason", "USAGE")
    message = " ".join(error.format_message().split())  # one line, whatever the message held
    if isinstance(error, click.UsageError) and error.ctx is not None:
        message = f"{message} (see `{error.ctx.command_path} --help`)"
    if as_json:
        click.echo(json.dumps({"error": reason, "message": message}), file=stream)
    else:
        click.echo(f"wallet: {reason}: {message}" if getattr(error, "show_reason", False) else f"wallet: {message}",
                   file=stream)
