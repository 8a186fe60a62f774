"""The operator's side of the `wallet` command: find a bet, correct it, and explain what happened.

    wallet tx                        a transaction, or a betflex bet (--bet UID), with its whole story
    wallet cancel                    reverse an open stake
    wallet settle|resettle|unsettle  pay, replace or take back a stake's settlement
    wallet adjust                    an ADJUSTMENT credit (goodwill, a correction)
    wallet settlements [resolve|dismiss]
                                     the failed-settlement queue, and closing one of its entries
    wallet stakes --open             open stakes older than an age, with totals
    wallet system-balances           in_play, house, cashier and receivable per client and currency
    wallet audit                     the audit trail: who did what, when, and why
    wallet clients                   the clients this token may see, and its label in the audit trail

Every command that moves money sends `--reason` to the core, which records it in the audit
trail in the same database transaction as the money (docs/operations.md). Registered on the
`wallet` group by wallet_cli/cli.py.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from clients.betflex_ids import stake_id as betflex_stake_id
from wallet_cli.cli import (
    F,
    _account,
    _amount,
    _emit,
    _run,
    account_options,
    cli,
    client_options,
    id_option,
    reason_option,
)
from wallet_cli.errors import CommandError, Exit

SYSTEM_KINDS = ("in_play", "house", "cashier", "receivable")
SETTLEMENTS_PAGE = 100  # failures per ListSettlementFailures call; `--limit` follows as many pages as it needs


# ---------------------------------------------------------------- options


def stake_options(fn: F) -> F:
    """--client, and the stake as --stake ID or as a betflex bet --bet UID; the command receives `stake`."""
    options = [
        click.option("--client", required=True, help="Client (tenant), e.g. fanteam."),
        click.option("--stake", "stake_id", metavar="ID", help="The stake's transaction id."),
        click.option("--bet", "bet_uid", type=click.IntRange(min=0), metavar="UID",
                     help="A betflex bet uid: the stake is betflex:<client>:bet:<UID>."),
    ]

    @functools.wraps(fn)
    def command(*args: Any, client: str, stake_id: str | None, bet_uid: int | None, **kwargs: Any) -> Any:
        return fn(*args, client=client, stake=_stake(client, stake_id, bet_uid, "--stake"), **kwargs)

    for option in reversed(options):
        command = option(command)
    return command  # type: ignore[return-value]


def _stake(client: str, transaction_id: str | None, bet_uid: int | None, name: str) -> str:
    if (transaction_id is None) == (bet_uid is None):
        raise click.UsageError(f"give the transaction as {name} ID or as a betflex bet --bet UID (one of them)")
    return transaction_id if transaction_id is not None else betflex_stake_id(client, bet_uid)  # type: ignore[arg-type]


clawback_option = click.option(
    "--clawback", type=click.Choice(["refuse", "debt"]), default=None,
    help="When the player already spent the payout taken back: refuse (INSUFFICIENT_FUNDS, kept in the "
         "failed-settlement queue) or debt (take what the wallet holds, the rest becomes the player's debt) "
         "[default: the client's WALLET_CLAWBACK].")
reference_option = click.option("--reference", default="", help="Free text kept with the transaction.")


def _clawback(value: str | None) -> Any:
    from clients import ClawbackPolicy

    return ClawbackPolicy(value) if value else None


def _clients(c: Any, client: str | None) -> list[str]:
    """`client`, or every client with wallets that the token may see (ListClients)."""
    return [client] if client else list(c.list_clients().clients)


def parse_age(text: str) -> int:
    """`2h`, `90m`, `1d12h`, `45s` or plain seconds (`3600`) as seconds."""
    match = re.fullmatch(r"\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s?)?\s*", text)
    if not text.strip() or match is None:
        raise click.BadParameter(f"{text!r}: expected an age like 2h, 90m, 1d12h, 45s or seconds")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _age(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return "".join(parts[:2]) or f"{seconds}s"


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}" if at is not None else "-"


def _tx_line(t: Any, marker: str = " ") -> str:
    after = "-" if t.balance_after is None else _amount(t.balance_after)
    state = f" [{t.stake_state.value}]" if t.stake_state is not None else ""
    settles = f"  (settles {t.settles_transaction_id})" if t.settles_transaction_id else ""
    reference = f"  ref {t.reference!r}" if t.reference else ""
    return (f"{marker} {_when(t.created_at)}  {t.purpose.value:<10} {t.status.value:<9} {_amount(t.amount):>12} "
            f"-> {after:>12}  {t.transaction_id}{state}{settles}{reference}")


def _failure_line(f: Any) -> str:
    state = f"resolved {_when(f.resolved_at)}" if f.resolved_at else "open"
    return (f"  {_when(f.last_seen)}  {f.client}  {f.transaction_id}  settles {f.settles_transaction_id}  "
            f"{f.account.user_id} {f.amount} {f.account.currency}  {f.reason} x{f.attempts}: {f.message}  [{state}]")


def _audit_line(a: Any) -> str:
    target = f" on {a.target}" if a.target and a.target != a.transaction_id else ""
    return (f"  {_when(a.at)}  {a.client}  {a.actor}  {a.action} {a.transaction_id}{target}: "
            f"{a.outcome}  why: {a.reason or '-'}")


# ---------------------------------------------------------------- finding things


@cli.command("tx")
@click.argument("transaction_id", required=False)
@click.option("--client", required=True, help="The transaction's client, e.g. fanteam.")
@click.option("--bet", "bet_uid", type=click.IntRange(min=0), metavar="UID",
              help="A betflex bet uid instead of a transaction id: its stake betflex:<client>:bet:<UID>.")
@client_options
def tx(transaction_id: str | None, client: str, bet_uid: int | None, target: str, token: str, tls_ca: Path | None,
       as_json: bool) -> None:
    """Look up a transaction (or a betflex bet): its stake, settlement, cancels, corrections,
    refused payouts and corrections with their reasons, and the operator actions on it."""
    wanted = _stake(client, transaction_id, bet_uid, "TRANSACTION_ID")
    found = _run(target, token, tls_ca, lambda c: c.lookup_transaction(client, wanted))
    story = ([found.transaction] if found.transaction is not None else []) + list(found.related)
    story.sort(key=lambda t: t.created_at)  # stable: the stake first when they share a timestamp
    lines = [f"{wanted} ({client})" + ("" if found.transaction is not None else ": no transaction with this id")]
    if story:
        first = story[0].account
        lines[0] += f": wallet {first.user_id} {first.currency}"
        lines += [_tx_line(t, "*" if t is found.transaction else " ") for t in story]
    lines.append("refused payouts and corrections:" if found.failures else "refused payouts and corrections: none")
    lines += [_failure_line(f) for f in found.failures]
    lines.append("audit:" if found.audit else "audit: none")
    lines += [_audit_line(a) for a in found.audit]
    _emit(as_json, found, "\n".join(lines))


@cli.command("clients")
@client_options
def clients_(target: str, token: str, tls_ca: Path | None, as_json: bool) -> None:
    """The clients with wallets that this token may see, and the token's label in the audit trail."""
    listed = _run(target, token, tls_ca, lambda c: c.list_clients())
    _emit(as_json, listed, f"token label: {listed.label}\nclients: {', '.join(listed.clients) or 'none'}")


# ---------------------------------------------------------------- moving money (audited)


@cli.command()
@stake_options
@reason_option(required=True)
@click.option("--tombstone", is_flag=True,
              help="If the id was never used, block it for good (a later stake with it is refused) instead of "
                   "refusing with STAKE_NOT_FOUND.")
@reference_option
@client_options
def cancel(client: str, stake: str, reason: str, tombstone: bool, reference: str, target: str, token: str,
           tls_ca: Path | None, as_json: bool) -> None:
    """Reverse an open stake: its money goes back to the wallet (idempotent: a rerun replays)."""
    from clients.errors import StakeNotFound

    def call(c: Any) -> Any:
        if not tombstone:  # an operator's typo must not block an id for ever
            try:
                known = c.lookup_transaction(client, stake).transaction is not None
            except StakeNotFound:
                known = False
            if not known:
                raise CommandError(f"no transaction {stake!r} for client {client!r}: nothing to cancel (with "
                                   "--tombstone, the id is blocked so that a stake with it is refused later)",
                                   code=Exit.REFUSED, reason="STAKE_NOT_FOUND", show_reason=True)
        return c.operator_cancel(client, stake, reason, reference=reference)

    result = _run(target, token, tls_ca, call)
    t = result.transaction
    replayed = ", replayed" if result.replayed else ""
    text = {
        "reversed": f"cancelled stake {stake}: {_amount(t.amount)} {t.account.currency} back to "
                    f"{client}/{t.account.user_id}, "
                    f"balance {_amount(t.balance_after) if t.balance_after is not None else '-'}",
        "tombstoned": f"{stake} was never used: it is now blocked, a stake with it will be refused",
        "not_applied": f"stake {stake} had been refused: nothing to reverse",
    }[result.outcome.value]
    _emit(as_json, result, f"{text} ({result.outcome.value}{replayed})")


@cli.command()
@stake_options
@click.option("--amount", required=True, help="The payout, a decimal in the stake's currency (0 for a lost bet).")
@id_option
@reason_option(required=True)
@click.option("--reference", default=None,
              help="Free text kept with the payout [default: the stake's, e.g. betflex's pool:<uid>, which a "
                   "redelivered /winners sends too: with the same id and amount it then replays].")
@client_options
def settle(client: str, stake: str, amount: str, transaction_id: str, reason: str, reference: str | None,
           target: str, token: str, tls_ca: Path | None, as_json: bool) -> None:
    """Settle an open stake with a payout to its wallet. To fix a failed betflex payout, give the
    queue entry's id (betflex:<client>:payout:<UID>): the entry is then marked settled, and
    a redelivery of the /winners replays instead of paying twice."""
    from clients import Purpose
    from clients.errors import StakeNotFound

    def call(c: Any) -> Any:
        try:
            found = c.lookup_transaction(client, stake).transaction
        except StakeNotFound:
            found = None
        if found is None or found.purpose != Purpose.STAKE:
            what = "no transaction" if found is None else f"a {found.purpose.value}, not a stake"
            raise CommandError(f"{stake!r} of client {client!r} is {what}: nothing to settle",
                               code=Exit.REFUSED, reason="STAKE_NOT_FOUND", show_reason=True)
        return c.operator_credit(transaction_id, found.account, amount, Purpose.PAYOUT, reason,
                                 settles_transaction_id=stake,
                                 reference=found.reference if reference is None else reference)

    result = _run(target, token, tls_ca, call)
    t = result.transaction
    _emit(as_json, result, f"paid {_amount(t.amount)} {t.account.currency} to {client}/{t.account.user_id} for stake "
                           f"{stake}: balance {_amount(t.balance_after) if t.balance_after is not None else '-'} "
                           f"(transaction {transaction_id}{', replayed' if result.replayed else ''})")


def _correction_text(verb: str, stake: str, result: Any, transaction_id: str) -> str:
    t = result.transaction
    where = f"{t.account.client}/{t.account.user_id}"
    balance = _amount(t.balance_after) if t.balance_after is not None else "-"
    if result.replayed:
        return f"{verb} stake {stake} of {where} (transaction {transaction_id}, replayed: nothing moved now)"
    money = (f"payout {_amount(result.previous_payout)} -> {_amount(t.amount)} {t.account.currency}"
             if verb == "resettled" else f"payout {_amount(result.previous_payout)} {t.account.currency} taken back, "
                                         "the stake is open again")
    parts = [f"taken from the balance {_amount(result.taken)}"]
    if result.debt_added:
        parts.append(f"recorded as the player's debt {_amount(result.debt_added)}")
    if result.debt_repaid:
        parts.append(f"debt repaid {_amount(result.debt_repaid)}")
    return (f"{verb} stake {stake} of {where}: {money}; {', '.join(parts)}; balance {balance} "
            f"(transaction {transaction_id})")


@cli.command()
@stake_options
@click.option("--amount", required=True, help="The new payout (decimal, different from the current one; 0: lost).")
@id_option
@reason_option(required=True)
@clawback_option
@reference_option
@client_options
def resettle(client: str, stake: str, amount: str, transaction_id: str, reason: str, clawback: str | None,
             reference: str, target: str, token: str, tls_ca: Path | None, as_json: bool) -> None:
    """Replace a settled stake's payout with --amount, atomically (a new RESETTLE transaction)."""
    result = _run(target, token, tls_ca, lambda c: c.resettle(
        client, transaction_id, stake, amount, reason=reason, reference=reference, clawback=_clawback(clawback)))
    _emit(as_json, result, _correction_text("resettled", stake, result, transaction_id))


@cli.command()
@stake_options
@id_option
@reason_option(required=True)
@clawback_option
@reference_option
@client_options
def unsettle(client: str, stake: str, transaction_id: str, reason: str, clawback: str | None, reference: str,
             target: str, token: str, tls_ca: Path | None, as_json: bool) -> None:
    """Reverse a settled stake's settlement: its payout is taken back and the stake is open again."""
    result = _run(target, token, tls_ca, lambda c: c.unsettle(
        client, transaction_id, stake, reason=reason, reference=reference, clawback=_clawback(clawback)))
    _emit(as_json, result, _correction_text("unsettled", stake, result, transaction_id))


@cli.command()
@account_options
@click.option("--amount", required=True, help="Decimal amount credited to the wallet, e.g. 5.00.")
@id_option
@reason_option(required=True)
@reference_option
@client_options
def adjust(client: str, user: str, currency: str, amount: str, transaction_id: str, reason: str, reference: str,
           target: str, token: str, tls_ca: Path | None, as_json: bool) -> None:
    """Credit an ADJUSTMENT from the house to a wallet (goodwill, a correction), with a mandatory reason."""
    result = _run(target, token, tls_ca, lambda c: c.adjust(
        transaction_id, _account(client, user, currency), amount, reason, reference=reference))
    t = result.transaction
    _emit(as_json, result, f"adjusted {client}/{user} by {_amount(t.amount)} {currency}: balance "
                           f"{_amount(t.balance_after) if t.balance_after is not None else '-'} "
                           f"(transaction {transaction_id}{', replayed' if result.replayed else ''})")


# ---------------------------------------------------------------- the failed-settlement queue


@cli.group(invoke_without_command=True)
@click.option("--client", default=None, help="Client (tenant) [default: every client the token may see].")
@click.option("--failed", "failed", is_flag=True, default=True, help="Only unresolved failures (the default).")
@click.option("--all", "include_resolved", is_flag=True, help="Include entries already settled, resolved or dismissed.")
@click.option("--limit", default=100, show_default=True, help="At most this many entries per client, newest first.")
@client_options
@click.pass_context
def settlements(ctx: click.Context, client: str | None, failed: bool, include_resolved: bool, limit: int, target: str,
                token: str, tls_ca: Path | None, as_json: bool) -> None:
    """List refused payouts and corrections (unknown bet, wrong currency, a clawback the wallet
    cannot cover, ...) waiting for an operator; `resolve` or `dismiss` closes one."""
    if ctx.invoked_subcommand is not None:
        return

    def pages(c: Any, name: str) -> list[Any]:
        found: list[Any] = []
        page_token = ""
        while len(found) < limit:
            page = c.list_settlement_failures(name, include_resolved=include_resolved,
                                              limit=min(limit - len(found), SETTLEMENTS_PAGE), page_token=page_token)
            found.extend(page.failures)
            page_token = page.next_page_token
            if not page_token:
                break
        return found[:limit]

    rows = _run(target, token, tls_ca, lambda c: [f for name in _clients(c, client) for f in pages(c, name)])
    _emit(as_json, rows, "\n".join(_failure_line(f).strip() for f in rows) or "no failed settlements")


def _close(resolution: str) -> Callable[..., None]:
    def command(transaction_id: str, client: str, reason: str, target: str, token: str, tls_ca: Path | None,
                as_json: bool) -> None:
        from clients import Resolution

        closed = _run(target, token, tls_ca, lambda c: c.resolve_settlement_failure(
            client, transaction_id, Resolution(resolution), reason))
        _emit(as_json, closed, f"{resolution} {transaction_id} ({client}, settles "
                               f"{closed.failure.settles_transaction_id}) by {closed.resolved_by}: "
                               f"{closed.resolution_note}")

    return command


_queue_entry = [
    click.argument("transaction_id"),
    click.option("--client", required=True, help="The entry's client."),
]


def _queue_command(name: str, resolution: str, help_text: str) -> None:
    command: Any = _close(resolution)
    for decorator in reversed([*_queue_entry, reason_option(required=True), client_options]):
        command = decorator(command)
    settlements.command(name, help=help_text)(command)


_queue_command("resolve", "resolved", "Close a queue entry fixed by other means (e.g. `wallet settle` with "
                                      "another id), with the reason. TRANSACTION_ID is the refused call's id.")
_queue_command("dismiss", "dismissed", "Close a queue entry for which nothing is owed, with the reason. "
                                       "TRANSACTION_ID is the refused call's id.")


# ---------------------------------------------------------------- reports


@cli.command()
@click.option("--open", "open_", is_flag=True, default=True, help="Open stakes (the only kind listed; the default).")
@click.option("--older-than", "older_than", default="0", metavar="AGE",
              help="Only stakes open for longer than AGE: 2h, 90m, 1d12h, 45s, or seconds [default: every one].")
@click.option("--client", default=None, help="Client (tenant) [default: every client the token may see].")
@click.option("--limit", default=100, show_default=True, help="At most this many stakes per client (totals count all).")
@client_options
def stakes(open_: bool, older_than: str, client: str | None, limit: int, target: str, token: str,
           tls_ca: Path | None, as_json: bool) -> None:
    """Open stakes older than an age (bets the sportsbook never settled), oldest first, per client, with totals."""
    seconds = parse_age(older_than)
    found = _run(target, token, tls_ca, lambda c: [
        {"client": name, "older_than_seconds": seconds, **vars(c.list_open_stakes(name, seconds, limit))}
        for name in _clients(c, client)])
    lines = []
    for entry in found:
        lines.append(f"{entry['client']}: open stakes older than {_age(seconds) if seconds else '0s'}")
        lines += [f"  {_when(s.stake.created_at)}  {_age(s.age_seconds):>6}  {s.stake.transaction_id}  "
                  f"{s.stake.account.user_id}  {_amount(s.stake.amount)} {s.stake.account.currency}"
                  + (f"  {s.stake.reference}" if s.stake.reference else "") for s in entry["stakes"]]
        lines += [f"  total {t.currency}: {t.count} stake{'s' if t.count != 1 else ''}, {_amount(t.amount)}"
                  + (f" (listed {len(entry['stakes'])})" if t.count > len(entry["stakes"]) and len(entry["totals"]) == 1
                     else "") for t in entry["totals"]] or ["  none"]
    _emit(as_json, found, "\n".join(lines) or "no clients")


@cli.command("system-balances")
@click.option("--client", default=None, help="Client (tenant) [default: every client the token may see].")
@client_options
def system_balances(client: str | None, target: str, token: str, tls_ca: Path | None, as_json: bool) -> None:
    """Balances of the system accounts per client and currency: in_play (open stakes), house,
    cashier (minus what was deposited and not withdrawn) and receivable (minus what players owe)."""
    rows = _run(target, token, tls_ca, lambda c: [
        {"client": name, "currency": b.currency, "kind": b.kind, "balance": b.balance}
        for name in _clients(c, client) for b in c.system_balances(name)])
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        grouped.setdefault((row["client"], row["currency"]), {})[row["kind"]] = row["balance"]
    text = "\n".join(
        f"{name:<16} {currency:<5} " + "  ".join(f"{kind} {_amount(kinds.get(kind, 0)):>12}" for kind in SYSTEM_KINDS)
        for (name, currency), kinds in grouped.items()) or "no system accounts"
    _emit(as_json, rows, text)


@cli.command()
@click.option("--client", default=None, help="Client (tenant) [default: every client the token may see].")
@click.option("--limit", default=100, show_default=True, help="The newest this many entries per client.")
@client_options
def audit(client: str | None, limit: int, target: str, token: str, tls_ca: Path | None, as_json: bool) -> None:
    """The audit trail, newest first: every operator action (who: the token's label; when; what; why;
    and its outcome: applied, replayed, or the refusal's reason)."""
    rows = _run(target, token, tls_ca, lambda c: [
        a for name in _clients(c, client) for a in c.list_audit(name, limit)])
    rows.sort(key=lambda a: (a.at, a.id), reverse=True)
    _emit(as_json, rows, "\n".join(_audit_line(a).strip() for a in rows) or "no operator actions")
