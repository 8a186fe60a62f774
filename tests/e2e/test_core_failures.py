"""When the core is down or slow, a 402 from /bets still means that no money moved (DESIGN section 5)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine

from clients import Purpose, StakeState, WalletClient
from tests.support.betflex import bet, bets, example, winner, winners
from tests.e2e.conftest import ALICE
from tests.support.db import dump
from tests.support.servers import Core
from tests.support.stack import free_port, running_edge, wait_until

FAST = {"edge_bets_deadline": 1.0, "edge_core_attempt_timeout": 0.3, "edge_winners_deadline": 1.0}


def test_core_stopped_is_a_402_and_nothing_moved(funded: WalletClient, core: Core) -> None:
    before = dump(core.engine)
    with running_edge(f"127.0.0.1:{free_port()}", **FAST) as dead, dead.client() as http:
        response = http.post("/bets", json=example("bets"))
        assert response.status_code == 402, response.text
        assert response.json()["error"] == "wallet_unavailable"
        assert http.get("/readyz").status_code == 503
        settle = http.post("/winners", json=winners(winner(1, "10.00", "20.00")))
        assert settle.status_code == 503 and settle.json()["failed"][0]["reason"] == "wallet_unavailable"
    assert dump(core.engine) == before


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


def test_core_too_slow_is_a_402_and_the_balance_stays_unchanged(funded: WalletClient, core: Core) -> None:
    """The Debit is stuck past the callback's deadline; the edge cancels the bet before it answers 402.

    When the core catches up, the stuck Debit is applied and then reversed by the Cancel: the
    wallet ends where it began, and the bet is cancelled so no redelivery can take it.
    """
    with running_edge(core.target, **FAST, edge_cancel_deadline=10.0) as edge, edge.client() as http:
        with core_stalled(core.engine, 2.0):
            response = http.post("/bets", json=example("bets"))
        assert response.status_code == 402, response.text
        assert response.json()["error"] == "wallet_unavailable"
        assert funded.get_balance(ALICE).balance == Decimal("100.00")
        history = funded.list_transactions(ALICE).transactions
        stake, reversal = (next(t for t in history if t.purpose == p) for p in (Purpose.STAKE, Purpose.CANCEL))
        assert stake.transaction_id == reversal.transaction_id == "betflex:fanteam:bet:9000001"
        assert stake.stake_state == StakeState.CANCELLED
        # a redelivery of the same callback is refused the same way, and still takes nothing
        again = http.post("/bets", json=example("bets"))
        assert (again.status_code, again.json()["error"]) == (402, "wallet_unavailable")
    time.sleep(0.5)  # anything still queued in the core has landed by now
    assert funded.get_balance(ALICE).balance == Decimal("100.00")


def test_a_slow_core_within_the_deadline_is_just_slow(funded: WalletClient, core: Core) -> None:
    with running_edge(core.target, edge_bets_deadline=5.0, edge_core_attempt_timeout=0.3) as edge:
        with edge.client() as http, core_stalled(core.engine, 1.0):
            response = http.post("/bets", json=bets(bet(1, "15.00")))
        assert response.status_code == 200, response.text
    assert funded.get_balance(ALICE).balance == Decimal("85.00")


def test_when_neither_debit_nor_cancel_is_confirmed_the_answer_is_503_never_402(
    funded: WalletClient, core: Core
) -> None:
    """The core is stuck past both deadlines: nobody knows yet whether money moved, so no 402."""
    with running_edge(core.target, **FAST, edge_cancel_deadline=1.0) as edge, edge.client() as http:
        with core_stalled(core.engine, 3.5):
            response = http.post("/bets", json=example("bets"))
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "wallet_unavailable"
        # the core catches up: the stuck Debit lands, then the Cancels that were sent reverse it
        def cancelled() -> bool:
            history = funded.list_transactions(ALICE).transactions
            return any(t.purpose == Purpose.STAKE and t.stake_state == StakeState.CANCELLED for t in history)

        wait_until(cancelled, 10, "the edge's Cancel never landed")
        assert funded.get_balance(ALICE).balance == Decimal("100.00")
        # betflex retries after the 503: the answer is now a definite 402, and nothing is taken
        again = http.post("/bets", json=example("bets"))
        assert (again.status_code, again.json()["error"]) == (402, "wallet_unavailable")
    assert funded.get_balance(ALICE).balance == Decimal("100.00")


def test_a_slow_core_during_winners_settles_within_the_deadline(
    http: httpx.Client, funded: WalletClient, core: Core
) -> None:
    assert http.post("/bets", json=bets(bet(1, "10.00"))).status_code == 200
    with running_edge(core.target, edge_winners_deadline=5.0, edge_core_attempt_timeout=0.3) as edge:
        with edge.client() as slow_http, core_stalled(core.engine, 1.0):
            response = slow_http.post("/winners", json=winners(winner(1, "10.00", "20.00")))
        assert response.status_code == 200, response.text
    assert funded.get_balance(ALICE).balance == Decimal("110.00")
