"""When the core is down or slow, /bets answers what the core confirmed, never a guess (DESIGN §5).

A failed connect proves nothing (an earlier delivery may have taken the bet), so it is a 503;
a Debit stuck past the deadline is fenced, never reversed: once the core catches up, the bet
is taken exactly once and every delivery is answered 200, or it is voided and answered 402.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine

from clients import Purpose, StakeState, WalletClient
from tests.e2e.conftest import ALICE
from tests.support.betflex import bet, bets, example, winner, winners
from tests.support.db import dump
from tests.support.servers import Core
from tests.support.stack import free_port, running_edge, wait_until

FAST: dict[str, Any] = {"edge_bets_deadline": 1.0, "edge_core_attempt_timeout": 0.3, "edge_winners_deadline": 1.0}


def test_core_stopped_is_a_503_and_nothing_moved_then_a_redelivery_is_taken(
    funded: WalletClient, core: Core
) -> None:
    before = dump(core.engine)
    with running_edge(f"127.0.0.1:{free_port()}", **FAST) as dead, dead.client() as http:
        response = http.post("/bets", json=example("bets"))
        assert response.status_code == 503, response.text  # never a 402 on a failed connect
        assert response.json()["error"] == "wallet_unavailable"
        assert http.get("/readyz").status_code == 503
        settle = http.post("/winners", json=winners(winner(1, "10.00", "20.00")))
        assert settle.status_code == 503 and settle.json()["failed"][0]["reason"] == "wallet_unavailable"
    assert dump(core.engine) == before
    # betflex delivers again once the core is back: the bet is taken, once
    with running_edge(core.target, **FAST) as edge, edge.client() as http:
        assert http.post("/bets", json=example("bets")).status_code == 200
    assert funded.get_balance(ALICE).balance == Decimal("85.00")


@contextmanager
def core_stalled(engine: Engine, seconds: float) -> Iterator[None]:
    """The core's writes wait on a lock held by another connection for `seconds` (from now)."""
    locked = threading.Event()

    def hold() -> None:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":  # the wallet's row, as a slow transaction would hold it
                conn.execute(text("SELECT id FROM accounts WHERE user_id = '1001' FOR UPDATE"))
            else:  # SQLite: the database's write lock (BEGIN IMMEDIATE)
                conn.execute(text("SELECT 1"))
            locked.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold, name="stall")
    thread.start()
    assert locked.wait(10)
    try:
        yield
    finally:
        thread.join()


def test_a_debit_stuck_past_the_deadline_is_fenced_never_reversed(funded: WalletClient, core: Core) -> None:
    """The Debit waits on a lock past the callback's deadline; the edge fences the bet, and the fence
    queues behind the Debit: the core reports it applied, so the answer is 200, and nothing is reversed."""
    with running_edge(core.target, **FAST, edge_fence_deadline=10.0) as edge, edge.client() as http:
        with core_stalled(core.engine, 2.0):
            response = http.post("/bets", json=example("bets"))
        assert response.status_code == 200, response.text
        assert response.json()["bets"][0]["balance"] == "85.00"
        again = http.post("/bets", json=example("bets"))
        assert (again.status_code, again.json()) == (200, response.json())
    history = funded.list_transactions(ALICE).transactions
    assert [t.purpose for t in history].count(Purpose.CANCEL) == 0
    assert funded.get_balance(ALICE).balance == Decimal("85.00")


def test_a_slow_core_within_the_deadline_is_just_slow(funded: WalletClient, core: Core) -> None:
    with running_edge(core.target, edge_bets_deadline=5.0, edge_core_attempt_timeout=0.3) as edge:
        with edge.client() as http, core_stalled(core.engine, 1.0):
            response = http.post("/bets", json=bets(bet(1, "15.00")))
        assert response.status_code == 200, response.text
    assert funded.get_balance(ALICE).balance == Decimal("85.00")


def test_when_neither_debit_nor_fence_is_confirmed_the_answer_is_503_and_the_bet_stays_taken(
    funded: WalletClient, core: Core
) -> None:
    """The core is stuck past both deadlines: nobody knows yet whether money moved, so no 402. When
    it catches up, the Debit lands first and the fence finds it applied: a redelivery gets 200."""
    with running_edge(core.target, **FAST, edge_fence_deadline=1.0) as edge, edge.client() as http:
        with core_stalled(core.engine, 3.5):
            response = http.post("/bets", json=example("bets"))
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "wallet_unavailable"

        def taken() -> bool:
            history = funded.list_transactions(ALICE).transactions
            return any(t.purpose == Purpose.STAKE and t.stake_state == StakeState.OPEN for t in history)

        wait_until(taken, 10, "the stuck Debit never landed")
        again = http.post("/bets", json=example("bets"))
        assert again.status_code == 200, again.text
    assert funded.get_balance(ALICE).balance == Decimal("85.00")


def test_a_slow_core_during_winners_settles_within_the_deadline(
    http: httpx.Client, funded: WalletClient, core: Core
) -> None:
    assert http.post("/bets", json=bets(bet(1, "10.00"))).status_code == 200
    with running_edge(core.target, edge_winners_deadline=5.0, edge_core_attempt_timeout=0.3) as edge:
        with edge.client() as slow_http, core_stalled(core.engine, 1.0):
            response = slow_http.post("/winners", json=winners(winner(1, "10.00", "20.00")))
        assert response.status_code == 200, response.text
    assert funded.get_balance(ALICE).balance == Decimal("110.00")
