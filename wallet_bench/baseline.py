"""The pgbench baselines: the core's own SQL per call, and the plain debit an operator would hand-write.

1. `debit_script` / `settle_script`: PostgreSQL executing, one transaction per call, exactly the
   SQL the core issues (below).
2. `plain_debit_script`: the debit as one would write it by hand, with no ledger bookkeeping
   beyond the money itself: insert the transaction, a conditional
   `UPDATE ... SET balance = balance - x WHERE id = a AND balance >= x`, insert its two entries,
   commit. No row is shared between calls (the counter-entry's account is never updated), so on
   random wallets nothing queues on a lock; on the hot wallet every call queues on that one row.
   It runs on tables of its own (schema `plain`, `wallet_bench.database.seed_plain`), so the ledger the
   core writes, and `reconcile`, are untouched by it.

The statements below were transcribed from the core with SQLAlchemy's echo on (one Debit and
one PAYOUT Credit against PostgreSQL; see docs/benchmarks.md): same tables, same column lists,
same row-value IN lists, same lock order (user wallet FOR UPDATE, then the stake FOR UPDATE,
then the system accounts, ascending id), same casts, one INSERT per entry row (the core's
executemany). Only the values differ: pgbench computes the new balance from the locked row,
where the core computes it in Python. What pgbench leaves behind is valid ledger data (entries
sum to zero, cached balances follow the entries, in_play is the sum of open stakes), so
`reconcile` stays clean after a run.

Since 2026-11-30 the core reads a batch's transactions, wallets and system balances on PostgreSQL
by joining `unnest` arrays (one fixed, prepared statement whatever the batch size) instead of
row-value IN lists; for one call both are the same unique-index lookups, so the scripts keep the
IN form they were transcribed with.

Transaction ids are numbers unique per run, client and step (`:base + :client_id * 10^8 + :n`,
`:n` counting each pgbench client's transactions), so the settlement script can settle exactly
the stakes a debit run placed.
"""

from __future__ import annotations

import re
import resource
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

STAKE_MINOR = 100  # 1.00 EUR, as the load generator's stakes
PAYOUT_MINOR = 200  # 2.00 EUR, as the load generator's /winners payouts
ID_STRIDE = 100_000_000  # per pgbench client: room for 10^8 transactions

_TX_COLUMNS = (
    "transactions.id, transactions.client, transactions.transaction_id, transactions.purpose, "
    "transactions.status, transactions.account_id, transactions.user_id, transactions.currency, "
    "transactions.amount, transactions.balance_after, transactions.reference, transactions.target_id, "
    "transactions.target_pk, transactions.request_hash, transactions.error_reason, transactions.error_message, "
    "transactions.created_at"
)
_ACCOUNT_COLUMNS = (
    "accounts.id, accounts.client, accounts.kind, accounts.user_id, accounts.currency, accounts.balance, "
    "accounts.status, accounts.created_at"
)
_INSERT_TX = (
    "INSERT INTO transactions (client, transaction_id, purpose, status, account_id, user_id, currency, amount, "
    "balance_after, reference, target_id, target_pk, request_hash, error_reason, error_message, created_at) "
    "VALUES ({values}) RETURNING transactions.id"
)
_LOCK_WALLET = (
    f"SELECT {_ACCOUNT_COLUMNS} \nFROM accounts \nWHERE accounts.kind = 'user'::VARCHAR AND "
    "(accounts.client, accounts.user_id, accounts.currency) IN ((:client, {user}, :currency)) "
    "ORDER BY accounts.id FOR UPDATE \\gset w_"
)


def debit_script() -> str:
    """One stake Debit of 1.00 on wallet `random(:lo, :hi)`: what Ledger.debit issues for one item."""
    return "\n".join([
        "\\set n :n + 1",
        f"\\set tid :base + :client_id * {ID_STRIDE} + :n",
        "\\set uid random(:lo, :hi)",
        f"\\set amount {STAKE_MINOR}",
        f"\\set neg -{STAKE_MINOR}",
        "BEGIN;",
        f"SELECT {_TX_COLUMNS} \nFROM transactions \nWHERE (transactions.client, transactions.transaction_id) "
        "IN ((:client, CAST(:tid AS VARCHAR)));",
        _LOCK_WALLET.format(user="CAST(:uid AS VARCHAR)") + "",
        "\\set nb :w_balance - :amount",
        _INSERT_TX.format(values=(
            ":client::VARCHAR, CAST(:tid AS VARCHAR)::VARCHAR, 'stake'::VARCHAR, 'applied'::VARCHAR, :w_id::BIGINT, "
            "CAST(:uid AS VARCHAR)::VARCHAR, :currency::VARCHAR, :amount::BIGINT, :nb::BIGINT, 'bench'::VARCHAR, "
            "NULL::VARCHAR, NULL::BIGINT, :hash::VARCHAR, NULL::VARCHAR, NULL::VARCHAR, "
            "now()::TIMESTAMP WITH TIME ZONE"
        )) + " \\gset t_",
        "INSERT INTO entries (transaction_pk, account_id, amount) VALUES (:t_id::BIGINT, :w_id::BIGINT, :neg::BIGINT);",
        "INSERT INTO entries (transaction_pk, account_id, amount) "
        "VALUES (:t_id::BIGINT, :in_play::BIGINT, :amount::BIGINT);",
        "INSERT INTO stakes (transaction_pk, client, currency, account_id, amount, state, closed_by_pk) VALUES "
        "(:t_id::BIGINT, :client::VARCHAR, :currency::VARCHAR, :w_id::BIGINT, :amount::BIGINT, 'open'::VARCHAR, "
        "NULL::BIGINT);",
        "UPDATE accounts SET balance=:nb::BIGINT WHERE accounts.id = :w_id::BIGINT;",
        "UPDATE accounts SET balance=(accounts.balance + :amount::BIGINT) WHERE accounts.id = :in_play::BIGINT;",
        "COMMIT;",
        "",
    ])


def settle_script(system_ids: dict[str, int]) -> str:
    """One PAYOUT Credit of 2.00 settling the 1.00 stake a `debit_script` run with `:stake_base` placed."""
    # the core updates system accounts last, in ascending id order
    deltas = {system_ids["in_play"]: ("in_play", "neg"), system_ids["house"]: ("house", "house_delta")}
    system_updates = [
        f"UPDATE accounts SET balance=(accounts.balance + :{delta}::BIGINT) WHERE accounts.id = :{name}::BIGINT;"
        for _, (name, delta) in sorted(deltas.items())
    ]
    return "\n".join([
        "\\set n :n + 1",
        f"\\set stake_tid :stake_base + :client_id * {ID_STRIDE} + :n",
        f"\\set tid :base + :client_id * {ID_STRIDE} + :n",
        f"\\set stake {STAKE_MINOR}",
        f"\\set neg -{STAKE_MINOR}",
        f"\\set payout {PAYOUT_MINOR}",
        f"\\set negpayout -{PAYOUT_MINOR}",
        f"\\set house_delta {STAKE_MINOR - PAYOUT_MINOR}",
        "BEGIN;",
        f"SELECT {_TX_COLUMNS} \nFROM transactions \nWHERE (transactions.client, transactions.transaction_id) "
        "IN ((:client, CAST(:tid AS VARCHAR)), (:client, CAST(:stake_tid AS VARCHAR))) \\gset s_",
        _LOCK_WALLET.format(user=":s_user_id"),
        "SELECT stakes.transaction_pk, stakes.client, stakes.currency, stakes.account_id, stakes.amount, "
        "stakes.state, stakes.closed_by_pk \nFROM stakes \nWHERE stakes.transaction_pk IN (:s_id::BIGINT) "
        "ORDER BY stakes.transaction_pk FOR UPDATE;",
        "\\set nb :w_balance + :payout",
        _INSERT_TX.format(values=(
            ":client::VARCHAR, CAST(:tid AS VARCHAR)::VARCHAR, 'payout'::VARCHAR, 'applied'::VARCHAR, "
            ":w_id::BIGINT, :s_user_id::VARCHAR, :currency::VARCHAR, :payout::BIGINT, :nb::BIGINT, "
            "'bench'::VARCHAR, CAST(:stake_tid AS VARCHAR)::VARCHAR, :s_id::BIGINT, :hash::VARCHAR, NULL::VARCHAR, "
            "NULL::VARCHAR, now()::TIMESTAMP WITH TIME ZONE"
        )) + " \\gset p_",
        "INSERT INTO entries (transaction_pk, account_id, amount) "
        "VALUES (:p_id::BIGINT, :in_play::BIGINT, :neg::BIGINT);",
        "INSERT INTO entries (transaction_pk, account_id, amount) "
        "VALUES (:p_id::BIGINT, :house::BIGINT, :stake::BIGINT);",
        "INSERT INTO entries (transaction_pk, account_id, amount) "
        "VALUES (:p_id::BIGINT, :house::BIGINT, :negpayout::BIGINT);",
        "INSERT INTO entries (transaction_pk, account_id, amount) "
        "VALUES (:p_id::BIGINT, :w_id::BIGINT, :payout::BIGINT);",
        "UPDATE stakes SET state='settled'::VARCHAR, closed_by_pk=:p_id::BIGINT WHERE stakes.transaction_pk = "
        ":s_id::BIGINT AND stakes.state = 'open'::VARCHAR;",
        "UPDATE accounts SET balance=:nb::BIGINT WHERE accounts.id = :w_id::BIGINT;",
        *system_updates,
        "UPDATE settlement_failures SET resolved_at=now()::TIMESTAMP WITH TIME ZONE WHERE "
        "(settlement_failures.client, settlement_failures.transaction_id) IN ((:client, CAST(:tid AS VARCHAR))) "
        "AND settlement_failures.resolved_at IS NULL;",
        "COMMIT;",
        "",
    ])


PLAIN_SCHEMA = """
CREATE SCHEMA plain;
CREATE TABLE plain.accounts (
    id BIGINT PRIMARY KEY,
    balance BIGINT NOT NULL CHECK (balance >= 0)
);
CREATE TABLE plain.transactions (
    id BIGSERIAL PRIMARY KEY,
    client VARCHAR(64) NOT NULL,
    transaction_id VARCHAR(128) NOT NULL,
    account_id BIGINT NOT NULL REFERENCES plain.accounts (id),
    amount BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (client, transaction_id)
);
CREATE TABLE plain.entries (
    id BIGSERIAL PRIMARY KEY,
    transaction_pk BIGINT NOT NULL REFERENCES plain.transactions (id),
    account_id BIGINT NOT NULL REFERENCES plain.accounts (id),
    amount BIGINT NOT NULL
);
CREATE INDEX ON plain.entries (account_id);
"""
PLAIN_COUNTER_ACCOUNT = 0  # the counter-entry's account (in play); inserted into, never updated


def plain_debit_script() -> str:
    """The hand-written debit of 1.00 on wallet `random(:lo, :hi)`: 4 statements, no shared row."""
    return "\n".join([
        "\\set n :n + 1",
        f"\\set tid :base + :client_id * {ID_STRIDE} + :n",
        "\\set uid random(:lo, :hi)",
        "BEGIN;",
        "INSERT INTO plain.transactions (client, transaction_id, account_id, amount) "
        f"VALUES (:client, CAST(:tid AS VARCHAR), :uid, {STAKE_MINOR}) RETURNING id \\gset t_",
        f"UPDATE plain.accounts SET balance = balance - {STAKE_MINOR} WHERE id = :uid AND balance >= {STAKE_MINOR};",
        "INSERT INTO plain.entries (transaction_pk, account_id, amount) "
        f"VALUES (:t_id, :uid, -{STAKE_MINOR}), (:t_id, {PLAIN_COUNTER_ACCOUNT}, {STAKE_MINOR});",
        "COMMIT;",
        "",
    ])


@dataclass
class PgbenchResult:
    tps: float
    transactions: int
    failed: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    aborted: bool = False
    command: str = ""
    output_tail: str = ""

    def summary(self) -> dict[str, Any]:
        from wallet_bench.stats import percentiles

        return {
            "tps": round(self.tps, 1), "transactions": self.transactions, "failed": self.failed,
            "aborted": self.aborted, "seconds": round(self.seconds, 2),
            "latency_ms": percentiles(self.latencies_ms),
            "cpu_cores": round(self.cpu_seconds / self.seconds, 2) if self.seconds else None,
            "command": self.command,
        }


def run_pgbench(
    db_url: str, script: Path, *, clients: int, variables: dict[str, Any], log_dir: Path,
    duration: float | None = None, transactions: int | None = None, timeout: float = 120.0,
    on_tick: Callable[[float], None] | None = None, rate: float | None = None,
) -> PgbenchResult:
    """Run pgbench (prepared statements, like psycopg's server-side prepares) and read its per-call log.

    With `rate`, pgbench offers that many transactions per second (`-R`: Poisson arrivals) and
    measures each latency from the transaction's scheduled start, so that queueing counts.
    """
    url = make_url(db_url)
    threads = min(2, clients)
    prefix = log_dir / f"pgbench-{script.stem}-{clients}-{time.monotonic_ns()}"
    args = [
        "pgbench", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres",
        "-n", "-M", "prepared", "-c", str(clients), "-j", str(threads), "-f", str(script),
        "--log", f"--log-prefix={prefix}",
    ]
    args += ["-T", str(max(1, round(duration)))] if duration is not None else ["-t", str(transactions)]
    if rate is not None:
        args += ["-R", f"{rate:g}"]
    for name, value in variables.items():
        args += ["-D", f"{name}={value}"]
    args.append(url.database or "")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while True:
        try:
            output, _ = proc.communicate(timeout=0.25)
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() - started > timeout:
                proc.kill()
                output, _ = proc.communicate()
                break
            if on_tick is not None:
                on_tick(time.monotonic() - started)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = output or ""
    tps = _number(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    done = _number(r"number of transactions actually processed: ([0-9]+)", out)
    failed = _number(r"number of failed transactions: ([0-9]+)", out)
    latencies: list[float] = []
    for log in log_dir.glob(prefix.name + "*"):
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[2].isdigit():
                latencies.append(int(parts[2]) / 1000.0)
        log.unlink()
    return PgbenchResult(
        tps=tps or 0.0, transactions=int(done or 0), failed=int(failed or 0),
        seconds=duration if duration is not None else seconds, latencies_ms=latencies,
        cpu_seconds=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        aborted=proc.returncode != 0, command=" ".join(args), output_tail="\n".join(out.strip().splitlines()[-6:]),
    )


def _number(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else None
