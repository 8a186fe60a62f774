"""POST /winners end to end: each bet settled on its own, failures listed and kept for operators."""

from __future__ import annotations

from decimal import Decimal

import httpx

from clients import Purpose, StakeState, WalletClient
from tests.e2e.conftest import ALICE, BOB
from tests.support.betflex import bet, bets, example, winner, winners
from tests.support.db import dump
from tests.support.servers import Core
from tests.support.stack import running_edge


def place(http: httpx.Client, *slips: dict[str, object]) -> None:
    for slip in slips:
        response = http.post("/bets", json=bets(slip))
        assert response.status_code == 200, response.text


def test_the_example_bodies_stake_then_pay_out(http: httpx.Client, funded: WalletClient) -> None:
    assert http.post("/bets", json=example("bets")).status_code == 200
    response = http.post("/winners", json=example("winners"))
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "settled": [9000001]}
    assert funded.get_balance(ALICE).balance == Decimal("122.50")
    payout, stake = funded.list_transactions(ALICE, page_size=2).transactions
    assert (payout.settles_transaction_id, stake.stake_state) == ("betflex:fanteam:bet:9000001", StakeState.SETTLED)


def test_won_lost_and_void_like(http: httpx.Client, funded: WalletClient) -> None:
    place(http, bet(1, "10.00"), bet(2, "20.00"), bet(3, "5.00"))
    assert funded.get_balance(ALICE).balance == Decimal("65.00")
    body = winners(winner(1, "10.00", "25.00"), winner(2, "20.00", "0", result="lost"),
                   winner(3, "5.00", "5.00", result="void"))
    response = http.post("/winners", json=body)
    assert response.status_code == 200, response.text
    assert sorted(response.json()["settled"]) == [1, 2, 3]
    assert funded.get_balance(ALICE).balance == Decimal("95.00")


def test_a_replayed_settlement_changes_nothing(http: httpx.Client, funded: WalletClient, core: Core) -> None:
    place(http, bet(1, "10.00"))
    first = http.post("/winners", json=winners(winner(1, "10.00", "30.00")))
    before = dump(core.engine)
    again = http.post("/winners", json=winners(winner(1, "10.00", "30.00")))
    assert (again.status_code, again.json()) == (first.status_code, first.json()) == (
        200, {"status": "ok", "settled": [1]})
    assert dump(core.engine) == before and funded.get_balance(ALICE).balance == Decimal("120.00")


def test_a_different_second_settlement_is_refused(http: httpx.Client, funded: WalletClient, core: Core) -> None:
    place(http, bet(1, "10.00"))
    assert http.post("/winners", json=winners(winner(1, "10.00", "30.00"))).status_code == 200
    before = dump(core.engine)
    response = http.post("/winners", json=winners(winner(1, "10.00", "50.00")))
    assert response.status_code == 422
    assert response.json()["failed"] == [
        {"bet_uid": 1, "reason": "settlement_conflict", "message": response.json()["failed"][0]["message"]}
    ]
    after = dump(core.engine)
    for table in ("accounts", "entries", "stakes", "transactions"):
        assert after[table] == before[table], table


def test_an_unknown_bet_is_reported_and_kept_for_operators(http: httpx.Client, funded: WalletClient) -> None:
    response = http.post("/winners", json=winners(winner(777, "10.00", "30.00")))
    assert response.status_code == 422, response.text
    assert [(f["bet_uid"], f["reason"]) for f in response.json()["failed"]] == [(777, "unknown_bet")]
    (failure,) = funded.list_settlement_failures("fanteam").failures
    assert (failure.transaction_id, failure.reason) == ("betflex:fanteam:payout:777", "STAKE_NOT_FOUND")
    assert funded.get_balance(ALICE).balance == Decimal("100.00")


def test_one_bad_bet_among_good_ones_then_a_retry_after_the_fix(http: httpx.Client, funded: WalletClient) -> None:
    place(http, bet(1, "10.00"), bet(2, "10.00", user=1002))
    # bet 2 is named with the wrong user: the good bet settles, the bad one is listed
    body = winners(winner(1, "10.00", "20.00"), winner(2, "10.00", "20.00", user="1001"))
    response = http.post("/winners", json=body)
    assert response.status_code == 422
    assert response.json()["settled"] == [1]
    assert [(f["bet_uid"], f["reason"]) for f in response.json()["failed"]] == [(2, "stake_mismatch")]
    assert [f.reason for f in funded.list_settlement_failures("fanteam").failures] == ["STAKE_MISMATCH"]
    # betflex corrects the body and retries: bet 1 is a replay, bet 2 settles now
    fixed = winners(winner(1, "10.00", "20.00"), winner(2, "10.00", "20.00", user="1002"))
    response = http.post("/winners", json=fixed)
    assert response.status_code == 200, response.text
    assert sorted(response.json()["settled"]) == [1, 2]
    assert (funded.get_balance(ALICE).balance, funded.get_balance(BOB).balance) == (Decimal("110.00"), Decimal("20.00"))
    assert funded.list_settlement_failures("fanteam").failures == ()


def test_a_payout_in_another_currency_is_refused(http: httpx.Client, funded: WalletClient) -> None:
    place(http, bet(1, "10.00"))
    response = http.post("/winners", json=winners(winner(1, "10.00", "20.00", currency="USD")))
    assert response.status_code == 422
    assert response.json()["failed"][0]["reason"] == "currency_mismatch"
    assert funded.get_balance(ALICE).balance == Decimal("90.00")


def test_a_malformed_winners_body_is_a_400_naming_the_field(http: httpx.Client, funded: WalletClient) -> None:
    body = winners(winner(1, "10.00", "20.00"))
    body["pools"][0]["bets"][0]["bet"]["payout"] = 20
    response = http.post("/winners", json=body)
    assert response.status_code == 400
    assert "payout" in response.json()["message"]


def test_a_new_payout_for_a_settled_bet_is_a_conflict_kept_for_operators_by_default(
    http: httpx.Client, funded: WalletClient
) -> None:
    place(http, bet(1, "10.00"))
    assert http.post("/winners", json=winners(winner(1, "10.00", "30.00"))).status_code == 200
    corrected = http.post("/winners", json=winners(winner(1, "10.00", "12.00")))
    assert corrected.status_code == 422, corrected.text
    assert [f["reason"] for f in corrected.json()["failed"]] == ["settlement_conflict"]
    assert funded.get_balance(ALICE).balance == Decimal("120.00")  # the first settlement stands
    queue = funded.list_settlement_failures("fanteam").failures
    assert [(f.transaction_id, f.amount) for f in queue] == [("betflex:fanteam:payout:1", "12.00")]


def test_a_client_may_let_betflex_correct_a_settled_payout(funded: WalletClient, core: Core) -> None:
    """WALLET_EDGE_AUTO_RESETTLE: a /winners with another payout resettles the bet (issue 12), once."""
    with running_edge(core.target, edge_auto_resettle="fanteam") as edge, edge.client() as http:
        place(http, bet(1, "10.00"))
        assert http.post("/winners", json=winners(winner(1, "10.00", "30.00"))).status_code == 200
        assert funded.get_balance(ALICE).balance == Decimal("120.00")
        for _ in range(2):  # the corrected callback, delivered twice: resettled once
            corrected = http.post("/winners", json=winners(winner(1, "10.00", "12.00")))
            assert corrected.status_code == 200, corrected.text
            assert corrected.json()["settled"] == [1]
        assert funded.get_balance(ALICE).balance == Decimal("102.00")
        purposes = [t.purpose for t in funded.list_transactions(ALICE).transactions]
        assert purposes.count(Purpose.RESETTLE) == 1
