"""Faults (issue 3): the core SIGKILLed under load and restarted; PostgreSQL connections terminated
mid-transaction; the edge's call to the core timing out; a callback redelivered while its first
delivery is still running; PostgreSQL restarted (last: it disturbs every PostgreSQL user).

After each: the clients that retried converge to exactly-once (every wallet is its opening balance
plus what succeeded), no transaction is half applied, a 402 never hides a debit, reconcile is clean.
Fault injection is real: signals, `pg_terminate_backend`, row locks held by another session,
`pg_ctlcluster restart`. Waits are bounded; nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from clients import WalletClient
from tests.support.db import PostgresDatabase, assert_reconciled, postgres_server_url
from tests.support.processes import EDGE_TOKEN, CoreProcess, running_edge, wait_for_postgres
from tests.support.servers import TOKENS, Core, running_core
from tests.support.torture import (
    Run,
    all_or_nothing,
    evaluate,
    make_plan,
    minor_units,
    money,
    ref,
    run_scripts,
)
from wallet_core.storage.engine import make_engine

OPENING = 10_000  # 100.00 FUN
USERS = [f"f{n}" for n in range(4)]


def open_wallets(target: str) -> None:
    with WalletClient(target, token=TOKENS["admin"], timeout=10, max_attempts=5) as admin:
        for user in USERS:
            admin.open_account(ref(user))
            admin.deposit(f"opening-{user}", ref(user), money(OPENING))


def converge(target: str, engine: Engine, run: Run) -> list[str]:
    """Every check the campaign makes after a fault; returns the violations."""
    with WalletClient(target, token=TOKENS["admin"], timeout=10, max_attempts=10) as admin:
        balances = {u: minor_units(admin.get_balance(ref(u)).balance) for u in USERS}
    violations = evaluate(run.records, dict.fromkeys(USERS, OPENING), balances)
    violations += all_or_nothing(engine, run.records)
    if run.gave_up:
        violations.append(f"{len(run.gave_up)} calls never got a definite answer, e.g. {run.gave_up[:2]}")
    return violations


def under_load(target: str, threads: int, seed: int, inject: Callable[[], None], *, timeout: float = 2) -> Run:
    """Mixed calls from `threads` threads for as long as `inject` runs its faults (and a little after)."""
    plan = make_plan(seed=seed, users=USERS, slots=threads, scripts_per_slot=400)
    stop = threading.Event()

    def fault() -> None:
        try:
            inject()
        finally:
            time.sleep(0.5)  # some calls after the last fault, too
            stop.set()

    thread = threading.Thread(target=fault)
    thread.start()
    try:
        return run_scripts(lambda: WalletClient(target, token=TOKENS["admin"], timeout=timeout, max_attempts=1), plan,
                           give_up_after=90.0, stop=stop)
    finally:
        stop.set()
        thread.join(180)


def report(figures: Counter[str], name: str, run: Run, faults: int, violations: list[str]) -> None:
    figures.update(operations=run.calls, retries=run.retries, faults=faults, violations=len(violations))
    answers = Counter(r.answer for r in run.records)
    print(f"\n{name}: {run.calls} calls ({run.retries} repeated after a fault), {faults} faults, "
          f"answers {dict(answers)}, {len(violations)} violations")


# ---------------------------------------------------------------- the core killed


def test_core_killed_with_sigkill_under_load_converges(
    db_url: str, tmp_path: Path, long_mode: bool, figures: Counter[str]
) -> None:
    core = CoreProcess(db_url, tmp_path / "core.log")
    core.start()
    try:
        open_wallets(core.target)
        kills = 15 if long_mode else 3
        killed = 0

        def killer() -> None:
            nonlocal killed
            rng = random.Random(1)
            for _ in range(kills):
                time.sleep(rng.uniform(0.3, 1.0))
                core.restart()  # SIGKILL, then start again on the same port
                killed += 1

        run = under_load(core.target, 8 if long_mode else 6, 11, killer)
        if not core.alive():
            core.start()
        engine = make_engine(db_url, pool_size=2)
        try:
            violations = converge(core.target, engine, run)
            report(figures, "SIGKILL", run, killed, violations)
            assert not violations, "\n".join(violations[:20])
            assert killed >= 1
            assert_reconciled(engine)
        finally:
            engine.dispose()
    finally:
        core.stop()


# ---------------------------------------------------------------- PostgreSQL connections terminated


@contextmanager
def terminator(db_name: str, every: float) -> Iterator[Counter[str]]:
    """Terminates the database's other backends (busy or idle in a transaction) every `every` seconds."""
    engine = make_engine(postgres_server_url(), pool_size=1)
    count: Counter[str] = Counter()
    stop = threading.Event()
    query = text(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :db "
        "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
    )

    def loop() -> None:
        rng = random.Random(3)
        while not stop.wait(rng.uniform(every / 2, every * 1.5)):
            try:
                with engine.connect() as conn:
                    count["terminated"] += int(conn.execute(query, {"db": db_name}).scalar() or 0)
                    conn.commit()
                count["rounds"] += 1
            except Exception:  # noqa: BLE001 - keep injecting
                pass

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield count
    finally:
        stop.set()
        thread.join(10)
        engine.dispose()


@pytest.mark.postgres
def test_postgres_connections_terminated_mid_transaction_converge(
    pg_url: str, long_mode: bool, figures: Counter[str]
) -> None:
    db_name = make_url(pg_url).database or ""
    with running_core(pg_url) as core:
        open_wallets(core.target)
        with terminator(db_name, every=0.05) as killed:
            run = under_load(core.target, 8 if long_mode else 6, 12, lambda: time.sleep(60 if long_mode else 3),
                             timeout=5)
        violations = converge(core.target, core.engine, run)
        report(figures, "pg_terminate_backend", run, killed["terminated"], violations)
        assert not violations, "\n".join(violations[:20])
        assert killed["rounds"] > 0


# ---------------------------------------------------------------- the edge's call to the core times out


BETTOR = "7001"


def bets_body(bet_uid: int, amount: str = "10.00", user: str = BETTOR) -> dict[str, object]:
    return {"bets": [{
        "user": {"client": "fanteam", "uid": int(user), "ip": "203.0.113.7"},
        "pool": {"client": "fanteam", "currency": "FUN", "game": "betflex", "uid": 550000 + bet_uid,
                 "overdraw": "30.00"},
        "bet": {"uid": bet_uid, "amount": amount},
    }]}


def winners_body(bet_uid: int, payout: str, user: str = BETTOR) -> dict[str, object]:
    return {"pools": [{
        "pool": {"client": "fanteam", "game": "betflex", "uid": 550000 + bet_uid, "currency": "FUN",
                 "overdraw": payout, "cost": "10.00", "guaranteed": True},
        "bets": [{"user": {"client": "fanteam", "uid": user, "name": "bettor"},
                  "bet": {"uid": bet_uid, "currency": "FUN", "amount": "10.00", "odds": 2.0, "rake": 0,
                          "payout": payout, "base_payout": payout, "result": "won", "extra": {}}}],
    }]}


@contextmanager
def wallet_row_locked(engine: Engine, user: str) -> Iterator[None]:
    """Another session holds the wallet's row lock: every call on it waits (a slow database, for real)."""
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(text("SELECT id FROM accounts WHERE client = 'fanteam' AND user_id = :u FOR UPDATE"), {"u": user})
        try:
            yield
        finally:
            trans.rollback()


def post(url: str, body: object) -> httpx.Response:
    return httpx.post(url, json=body, headers={"Authorization": f"Bearer {EDGE_TOKEN}"}, timeout=60)


def balance(core: Core, user: str = BETTOR) -> str:
    with WalletClient(core.target, token=TOKENS["admin"], timeout=10) as admin:
        return str(admin.get_balance(ref_fanteam(user)).balance)


def ref_fanteam(user: str):
    from clients import AccountRef

    return AccountRef("fanteam", user, "FUN")


def quiet(core: Core) -> None:
    """Wait (bounded) until the calls the edge gave up on have been applied by the core."""
    from tests.support.processes import wait_until

    def drained() -> bool:
        with core.engine.connect() as conn:
            return not conn.execute(text(
                "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND (state = 'active' OR wait_event_type = 'Lock')")).first()

    wait_until(drained, 30, "the core did not finish the calls in flight")
    time.sleep(0.3)  # the queued Cancels behind them (group commit) get their turn


@pytest.mark.postgres
def test_edge_call_to_core_timing_out_never_reverses_a_debit(
    pg_url: str, tmp_path: Path, figures: Counter[str]
) -> None:
    """The core is slow (its wallet row is locked by another session): the edge's Debit attempts time
    out and it fences the bet. The fence queues behind the stuck Debit, so the core reports the bet
    taken (200) when it catches up within the fence's deadline, and the outcome stays unknown (503)
    when it does not. Either way the Debit lands once, nothing reverses it, and a redelivery gets 200."""
    with running_core(pg_url) as core, running_edge(
        core.target, TOKENS["fanteam"], tmp_path / "edge.log",
        WALLET_EDGE_CORE_ATTEMPT_TIMEOUT="0.3", WALLET_EDGE_BETS_DEADLINE="1.0", WALLET_EDGE_FENCE_DEADLINE="4.0",
    ) as edge:
        with WalletClient(core.target, token=TOKENS["fanteam"], timeout=10) as fanteam:
            fanteam.open_account(ref_fanteam(BETTOR))
            fanteam.deposit("fund", ref_fanteam(BETTOR), "100.00")
        statuses = []
        # held past the Debit's deadline, not past the fence's: expect 200; held past both: expect 503
        for bet_uid, hold, expected in [(1, 2.0, 200), (2, 6.0, 503)]:
            before = Decimal(balance(core))
            with ThreadPoolExecutor(1) as pool, wallet_row_locked(core.engine, BETTOR):
                answer = pool.submit(post, f"{edge.url}/bets", bets_body(bet_uid))
                time.sleep(hold)
            response = answer.result(timeout=60)
            quiet(core)
            statuses.append(response.status_code)
            assert response.status_code == expected, response.text
            again = post(f"{edge.url}/bets", bets_body(bet_uid))  # betflex delivers again
            assert again.status_code == 200, again.text  # taken once, never reversed
            assert Decimal(balance(core)) == before - Decimal("10.00")
        figures.update(operations=4, faults=2)
        print(f"\nedge timeouts: first answers {statuses}")
        assert_reconciled(core.engine)


@pytest.mark.postgres
def test_callback_redelivered_while_the_first_is_running_applies_once(
    pg_url: str, tmp_path: Path, figures: Counter[str]
) -> None:
    with running_core(pg_url) as core, running_edge(core.target, TOKENS["fanteam"], tmp_path / "edge.log") as edge:
        with WalletClient(core.target, token=TOKENS["fanteam"], timeout=10) as fanteam:
            fanteam.open_account(ref_fanteam(BETTOR))
            fanteam.deposit("fund", ref_fanteam(BETTOR), "100.00")
        for route, body, expected in [
            ("/bets", bets_body(21, "10.00"), "90.00"),
            ("/winners", winners_body(21, "25.00"), "115.00"),
        ]:
            with ThreadPoolExecutor(3) as pool:
                with wallet_row_locked(core.engine, BETTOR):
                    answers = [pool.submit(post, f"{edge.url}{route}", body) for _ in range(3)]
                    time.sleep(0.5)  # all three deliveries are inside the edge, waiting on the core
                responses = [a.result(timeout=60) for a in answers]
            assert [r.status_code for r in responses] == [200, 200, 200], [r.text for r in responses]
            if route == "/bets":
                assert len({json.dumps(r.json()["bets"]) for r in responses}) == 1  # one stake, one answer
            assert balance(core) == expected
        figures.update(operations=6, faults=2)
        assert_reconciled(core.engine)


# ---------------------------------------------------------------- PostgreSQL restarted (last)


def _pg_ctl() -> list[str] | None:
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        return None
    listing = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, timeout=30).stdout.split()
    if len(listing) < 2:
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", listing[0], listing[1], "restart"]


@pytest.mark.postgres
def test_postgres_restarted_under_load_converges(
    pg_url: str, postgres_database: PostgresDatabase, long_mode: bool, figures: Counter[str]
) -> None:
    command = _pg_ctl()
    if command is None:
        pytest.skip("pg_ctlcluster is not available to restart PostgreSQL")
    restarts = 3 if long_mode else 1
    with running_core(pg_url) as core:
        open_wallets(core.target)
        restarted = 0
        errors: list[str] = []

        def restarter() -> None:
            nonlocal restarted
            for _ in range(restarts):
                time.sleep(0.8)
                result = subprocess.run(command, capture_output=True, text=True, timeout=120)
                if result.returncode != 0:
                    errors.append(result.stderr.strip())
                    return
                restarted += 1
                wait_for_postgres(pg_url, timeout=60)

        try:
            run = under_load(core.target, 8 if long_mode else 6, 13, restarter, timeout=5)
        finally:
            wait_for_postgres(pg_url, timeout=60)
            postgres_database.admin.dispose()  # its pooled connection died with the server
        if errors:
            pytest.skip(f"cannot restart PostgreSQL here: {errors[0]}")
        violations = converge(core.target, core.engine, run)
        report(figures, "PostgreSQL restart", run, restarted, violations)
        assert not violations, "\n".join(violations[:20])
        assert restarted >= 1
