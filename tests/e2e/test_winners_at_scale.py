"""POST /winners at any size, and the checks on what betflex asks us to pay (DESIGN section 5; issue 12).

Real edge on a real port, calling a real core, on SQLite and PostgreSQL. No timings here: the
time of one delivery of 2,500 and 5,000 bets is measured by wallet_bench/winners_size.py.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from clients import AccountRef, DebitItem, Purpose, WalletClient
from edge_http.betflex import pool_reference, stake_id
from edge_http.config import EdgeSettings
from tests.e2e.conftest import ALICE
from tests.e2e.test_winners import place
from tests.support.betflex import bet, winner, winners
from tests.support.db import assert_reconciled, dump
from tests.support.processes import EDGE_TOKEN, CoreProcess
from tests.support.processes import running_edge as running_edge_process
from tests.support.servers import TOKENS, Core
from wallet_core.storage.engine import make_engine

JSON = {"Content-Type": "application/json"}


# ---------------------------------------------------------------- checks on what betflex asks us to pay


def test_a_payout_naming_another_stake_amount_is_refused_as_stake_mismatch(
    http: httpx.Client, funded: WalletClient, core: Core,
) -> None:
    place(http, bet(1, "2.00"), bet(2, "2.00"))
    before = dump(core.engine)
    # betflex reports the 2.00 stake of bet 1 as 20.00: nothing is paid for it; bet 2 is fine
    response = http.post("/winners", json=winners(winner(1, "20.00", "40.00"), winner(2, "2.00", "4.00")))
    assert response.status_code == 422, response.text
    assert response.json()["settled"] == [2]
    [failed] = response.json()["failed"]
    assert (failed["bet_uid"], failed["reason"]) == (1, "stake_mismatch")
    assert "2.00" in failed["message"] and "20.00" in failed["message"]
    assert funded.get_balance(ALICE).balance == Decimal("100.00")  # 100 - 2 - 2 + 4
    assert dump(core.engine)["stakes"] != before["stakes"]  # bet 2 settled, bet 1 still open
    # kept for operators with the callback's values: the payout asked, the stake it named, the stake taken
    [kept] = funded.list_settlement_failures("fanteam").failures
    assert (kept.transaction_id, kept.reason, kept.amount) == (
        "betflex:fanteam:payout:1", "STAKE_AMOUNT_MISMATCH", "40.00")
    assert "20.00" in kept.message and "2.00" in kept.message
    # betflex corrects the callback: bet 1 settles, bet 2 replays, the queue entry is resolved
    response = http.post("/winners", json=winners(winner(1, "2.00", "40.00"), winner(2, "2.00", "4.00")))
    assert response.status_code == 200, response.text
    assert funded.get_balance(ALICE).balance == Decimal("140.00")
    assert funded.list_settlement_failures("fanteam").failures == ()


def test_a_pool_asking_more_than_its_overdraw_is_not_paid(http: httpx.Client, funded: WalletClient) -> None:
    place(http, bet(1, "2.00"), bet(2, "2.00"))
    body = winners(winner(1, "2.00", "2.00"), winner(2, "2.00", "400000.00"), overdraw="4.00")
    response = http.post("/winners", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["settled"] == []
    assert sorted((f["bet_uid"], f["reason"]) for f in response.json()["failed"]) == [
        (1, "overdraw_exceeded"), (2, "overdraw_exceeded")]
    assert funded.get_balance(ALICE).balance == Decimal("96.00")
    kept = {f.transaction_id: f for f in funded.list_settlement_failures("fanteam").failures}
    big = kept["betflex:fanteam:payout:2"]
    assert (big.reason, big.amount) == ("PAYOUT_CAP_EXCEEDED", "400000.00")
    assert "pool:550001" in big.message and "4.00" in big.message and "400002.00" in big.message


def test_the_overdraw_holds_across_callbacks(http: httpx.Client, funded: WalletClient) -> None:
    """betflex may send a pool's bets in several callbacks: what the pool paid before counts."""
    place(http, bet(1, "2.00"), bet(2, "2.00"))
    assert http.post("/winners", json=winners(winner(1, "2.00", "3.00"), overdraw="4.00")).status_code == 200
    response = http.post("/winners", json=winners(winner(2, "2.00", "3.00"), overdraw="4.00"))
    assert response.status_code == 422
    assert [(f["bet_uid"], f["reason"]) for f in response.json()["failed"]] == [(2, "overdraw_exceeded")]
    assert "3.00 paid before" in response.json()["failed"][0]["message"]
    # within the overdraw it settles; the first callback's redelivery is still a replay
    assert http.post("/winners", json=winners(winner(2, "2.00", "1.00"), overdraw="4.00")).status_code == 200
    assert http.post("/winners", json=winners(winner(1, "2.00", "3.00"), overdraw="4.00")).status_code == 200
    assert funded.get_balance(ALICE).balance == Decimal("100.00")


# ---------------------------------------------------------------- at any size

USERS = 40
POOL_SIZE = 10  # bets per pool (coupon)


def callback(count: int) -> tuple[bytes, list[tuple[int, str, int, str]]]:
    """A /winners body of `count` bets in pools of POOL_SIZE (compact JSON), and its bets as
    (uid, user, pool, payout); each pool's overdraw is the sum of its payouts."""
    bets = [(uid, str(3001 + uid % USERS), 770000 + (uid - 1) // POOL_SIZE, "2.00" if uid % 2 else "0")
            for uid in range(1, count + 1)]
    pools: dict[int, list[dict[str, Any]]] = {}
    for uid, user, pool, payout in bets:
        pools.setdefault(pool, []).append(winner(uid, "1.00", payout, user=user))
    body = {"pools": [winners(*entries, pool=pool)["pools"][0] for pool, entries in pools.items()]}
    return json.dumps(body, separators=(",", ":")).encode(), bets


def largest_callback(cap: int) -> tuple[bytes, list[tuple[int, str, int, str]]]:
    """The callback of the most bets whose body fits in `cap` bytes."""
    low, high = 1, cap // 100  # no bet's entry is shorter than 100 bytes
    while low < high:
        middle = (low + high + 1) // 2
        if len(callback(middle)[0]) <= cap:
            low = middle
        else:
            high = middle - 1
    return callback(low)


def stake_all(wallet: WalletClient, bets: list[tuple[int, str, int, str]]) -> None:
    for n in range(USERS):
        ref = AccountRef("fanteam", str(3001 + n), "EUR")
        wallet.open_account(ref)
        wallet.deposit(f"fund-{ref.user_id}", ref, "1000.00")
    for start in range(0, len(bets), 100):
        wallet.debit([
            DebitItem(stake_id("fanteam", uid), AccountRef("fanteam", user, "EUR"), "1.00", Purpose.STAKE,
                      pool_reference(pool))
            for uid, user, pool, _ in bets[start:start + 100]
        ], timeout=30)


def test_the_largest_callback_the_body_cap_allows_settles_within_two_deliveries(db_url: str, tmp_path: Path) -> None:
    """The core and the edge as deployed, each its own process (in one process they would share one GIL
    with each other and with this test, which is not how betflex meets them)."""
    cap = EdgeSettings().edge_max_body_bytes
    body, bets = largest_callback(cap)
    assert len(body) <= cap < len(callback(len(bets) + 1)[0]) and len(bets) > 4000, (len(body), len(bets))
    core = CoreProcess(db_url, tmp_path / "core.log")
    core.start()
    try:
        with running_edge_process(core.target, TOKENS["fanteam"], tmp_path / "edge.log") as edge, \
                WalletClient(core.target, token=TOKENS["admin"], timeout=60) as wallet, \
                httpx.Client(base_url=edge.url, headers={"Authorization": f"Bearer {EDGE_TOKEN}"}, timeout=60) as http:
            stake_all(wallet, bets)
            statuses = []
            for _ in range(2):
                response = http.post("/winners", content=body, headers=JSON)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    break
                # a delivery that runs out of time says so (503); nothing else may fail
                assert response.status_code == 503, response.text[:500]
                assert {f["reason"] for f in response.json()["failed"]} == {"wallet_unavailable"}
            assert statuses[-1] == 200, statuses
            assert sorted(response.json()["settled"]) == [uid for uid, _, _, _ in bets]

            won: dict[str, Decimal] = {}
            for _, user, _, payout in bets:
                won[user] = won.get(user, Decimal(0)) + Decimal(payout) - 1
            for user, delta in won.items():
                assert wallet.get_balance(AccountRef("fanteam", user, "EUR")).balance == Decimal("1000.00") + delta
            # one more delivery replays every bet and moves nothing
            assert http.post("/winners", content=body, headers=JSON).status_code == 200
            assert wallet.list_settlement_failures("fanteam").failures == ()
    finally:
        core.stop()
    engine = make_engine(db_url, create=False)
    try:
        assert_reconciled(engine)
    finally:
        engine.dispose()
