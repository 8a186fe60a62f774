"""One decision per bet (DESIGN §5) over real processes: the four ways the edge broke it before issue 10.

The core runs as `wallet core` and the edge as `wallet edge`, each a process on a real port, on
SQLite and on PostgreSQL; the core is killed (SIGKILL), hung (SIGSTOP) or kept waiting on a
database lock. Every answer betflex receives is recorded, and at the end the ledger is checked
against all of them: never a 200 and a 402 for one bet uid; every 200'd bet taken once and never
reversed; every 402'd bet refused or fenced (never taken, now or later); every 409 slip holds a
taken bet and nothing else can be taken. On the old edge each test below fails (issue 10):
1. a 402 after the stake was taken (redelivery while the core was down);
2. a 200 after a 402 (a new slip while the core was down, delivered again later);
3. a timeout that reversed a confirmed bet (a hung core; two concurrent deliveries behind a lock);
4. a 402 for a taken bet (slips that share a bet uid).
"""

from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from clients import AccountRef, WalletClient
from edge_http.betflex import stake_id
from tests.support.db import assert_reconciled
from tests.support.processes import EDGE_TOKEN, CoreProcess, EdgeProcess, wait_until
from tests.support.servers import TOKENS
from wallet_core.storage.engine import make_engine
from wallet_core.storage.schema import stakes, transactions

BETTOR = AccountRef("fanteam", "7001", "FUN")
EDGE_ENV = {
    "WALLET_EDGE_BETS_DEADLINE": "1.0", "WALLET_EDGE_CORE_ATTEMPT_TIMEOUT": "0.3", "WALLET_EDGE_FENCE_DEADLINE": "4.0",
}


def slip(*bets: tuple[int, str] | tuple[int, str, int]) -> dict[str, Any]:
    """A /bets body for the bettor: (bet uid, amount[, pool uid])."""
    return {"bets": [{
        "user": {"client": "fanteam", "uid": int(BETTOR.user_id), "ip": "203.0.113.7"},
        "pool": {"client": "fanteam", "currency": "FUN", "game": "betflex",
                 "uid": b[2] if len(b) > 2 else 550000 + b[0], "overdraw": "30.00"},
        "bet": {"uid": b[0], "amount": b[1]},
    } for b in bets]}


@dataclass
class Betflex:
    """Posts callbacks to the edge and remembers every answer it received."""

    url: str
    answers: list[tuple[list[int], int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def post(self, body: dict[str, Any]) -> int:
        response = httpx.post(f"{self.url}/bets", json=body, headers={"Authorization": f"Bearer {EDGE_TOKEN}"},
                              timeout=60)
        with self.lock:
            self.answers.append(([b["bet"]["uid"] for b in body["bets"]], response.status_code, response.text))
        return response.status_code

    def until_definite(self, body: dict[str, Any], timeout: float = 30) -> int:
        """Deliver again and again, as betflex does after a 503, until the answer is not a 503."""
        statuses: list[int] = []
        def definite() -> bool:
            statuses.append(self.post(body))
            return statuses[-1] != 503

        wait_until(definite, timeout, "no definite answer")
        return statuses[-1]

    def check(self, engine: Engine) -> None:
        """Every answer against the ledger as it is now (DESIGN §5)."""
        seen: dict[int, set[int]] = defaultdict(set)
        problems = []
        for uids, status, text_ in self.answers:
            facts = {uid: fact(engine, uid) for uid in uids}
            for uid in uids:
                seen[uid].add(status)
            if status == 200 and not all(f == ("applied", "open") for f in facts.values()):
                problems.append(f"200 for {uids} but the ledger holds {facts}")
            if status == 402 and not all(f is not None and f[0] in ("refused", "tombstone") for f in facts.values()):
                problems.append(f"402 for {uids} but the ledger holds {facts}: {text_}")
            if status == 409 and not (any(f == ("applied", "open") for f in facts.values()) and all(
                    f is not None for f in facts.values())):
                problems.append(f"409 for {uids} but the ledger holds {facts}")
        problems += [f"bet {uid} was answered both 200 and 402" for uid, s in seen.items() if {200, 402} <= s]
        assert not problems, "\n".join([*problems, f"answers: {[(u, s) for u, s, _ in self.answers]}"])
        assert_reconciled(engine)


def fact(engine: Engine, uid: int) -> tuple[str, str | None] | None:
    """(transaction status, stake state) of the bet's stake id, or None if the ledger never saw it."""
    query = (select(transactions.c.status, stakes.c.state)
             .outerjoin(stakes, stakes.c.transaction_pk == transactions.c.id)
             .where(transactions.c.client == "fanteam", transactions.c.transaction_id == stake_id("fanteam", uid)))
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else (str(row[0]), None if row[1] is None else str(row[1]))


@dataclass
class Stack:
    core: CoreProcess
    edge: EdgeProcess
    engine: Engine
    betflex: Betflex

    def balance(self) -> Decimal:
        with WalletClient(self.core.target, token=TOKENS["admin"], timeout=10) as admin:
            return admin.get_balance(BETTOR).balance


@pytest.fixture
def stack(db_url: str, tmp_path: Path) -> Iterator[Stack]:
    core = CoreProcess(db_url, tmp_path / "core.log")
    core.start()
    edge = EdgeProcess(core.target, TOKENS["fanteam"], tmp_path / "edge.log", **EDGE_ENV)
    engine = make_engine(db_url, pool_size=2)
    try:
        with WalletClient(core.target, token=TOKENS["admin"], timeout=10) as admin:
            admin.open_account(BETTOR)
            admin.deposit("fund", BETTOR, "100.00")
        edge.start()
        yield Stack(core, edge, engine, Betflex(edge.url))
    finally:
        edge.stop()
        core.stop()
        engine.dispose()


@contextmanager
def database_held(engine: Engine) -> Iterator[None]:
    """Another session holds what a stake needs (PostgreSQL: the wallet's row; SQLite: the write lock)."""
    with engine.connect() as conn:
        trans = conn.begin()
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT id FROM accounts WHERE client = 'fanteam' AND user_id = :u FOR UPDATE"),
                         {"u": BETTOR.user_id})
        else:
            conn.exec_driver_sql("UPDATE accounts SET balance = balance WHERE id = -1")  # takes the write lock
        try:
            yield
        finally:
            trans.rollback()


def test_1_a_redelivery_while_the_core_is_down_is_a_503_never_a_402(stack: Stack) -> None:
    assert stack.betflex.post(slip((1, "10.00"))) == 200
    stack.core.kill()  # the 200 was lost on its way; betflex delivers again while the core is down
    assert stack.betflex.post(slip((1, "10.00"))) == 503
    stack.core.start()  # back on the same port; the edge's channel may still be in its reconnect backoff
    assert stack.betflex.until_definite(slip((1, "10.00"))) == 200
    assert stack.balance() == Decimal("90.00")
    stack.betflex.check(stack.engine)


def test_2_a_new_slip_while_the_core_is_down_is_a_503_and_is_taken_once_it_is_back(stack: Stack) -> None:
    stack.core.kill()
    assert stack.betflex.post(slip((2, "10.00"))) == 503
    stack.core.start()
    # taken, or (if the edge's Debit could not get through in time) fenced: either way, for good
    final = stack.betflex.until_definite(slip((2, "10.00")))
    assert final in (200, 402)
    assert stack.betflex.post(slip((2, "10.00"))) == final
    assert stack.balance() == (Decimal("90.00") if final == 200 else Decimal("100.00"))
    stack.betflex.check(stack.engine)


def test_3a_a_hung_core_never_gets_a_confirmed_bet_reversed(stack: Stack) -> None:
    assert stack.betflex.post(slip((3, "10.00"))) == 200
    assert stack.core.proc is not None
    stack.core.proc.send_signal(signal.SIGSTOP)  # hung for 2 s: past the Debit's deadline, within the fence's
    try:
        with ThreadPoolExecutor(2) as pool:
            answers = [pool.submit(stack.betflex.post, slip((3, "10.00"))) for _ in range(2)]
            time.sleep(2.0)
            stack.core.proc.send_signal(signal.SIGCONT)
            statuses = [a.result(timeout=60) for a in answers]
    finally:
        stack.core.proc.send_signal(signal.SIGCONT)
    assert statuses == [200, 200], statuses
    assert stack.balance() == Decimal("90.00")
    stack.betflex.check(stack.engine)


def test_3b_two_deliveries_of_a_new_slip_behind_a_held_lock_agree(stack: Stack) -> None:
    with ThreadPoolExecutor(2) as pool, database_held(stack.engine):
        answers = [pool.submit(stack.betflex.post, slip((4, "10.00"))) for _ in range(2)]
        time.sleep(2.0)  # past the Debit's deadline (1 s), within the fence's (4 s)
    statuses = sorted(a.result(timeout=60) for a in answers)
    assert statuses in ([200, 200], [402, 402], [200, 503], [402, 503], [503, 503]), statuses
    final = stack.betflex.until_definite(slip((4, "10.00")))
    assert stack.balance() == (Decimal("90.00") if final == 200 else Decimal("100.00"))
    stack.betflex.check(stack.engine)


def test_4_slips_that_share_a_taken_bet_get_409_and_take_nothing_more(stack: Stack) -> None:
    assert stack.betflex.post(slip((5, "10.00"), (6, "10.00"))) == 200
    assert stack.betflex.post(slip((5, "10.00"))) == 409  # a subset
    assert stack.betflex.post(slip((5, "10.00"), (6, "10.00"), (7, "10.00"))) == 409  # a superset
    assert stack.betflex.post(slip((5, "10.00", 123))) == 409  # another pool
    assert stack.betflex.post(slip((7, "10.00"))) == 402  # 7 was fenced by the superset's refusal
    assert stack.betflex.post(slip((5, "10.00"), (6, "10.00"))) == 200  # the original still replays
    assert fact(stack.engine, 7) == ("tombstone", None)
    assert stack.balance() == Decimal("80.00")
    stack.betflex.check(stack.engine)
