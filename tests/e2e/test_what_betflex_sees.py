"""Issue 11, "what betflex sees": no internal address in any answer, no stale balance in a replayed refusal."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from clients import WalletClient
from tests.e2e.conftest import BOB
from tests.support.betflex import bet, bets, example, winner, winners
from tests.support.stack import free_port, running_edge

FAST: dict[str, Any] = {"edge_bets_deadline": 1.0, "edge_core_attempt_timeout": 0.3, "edge_winners_deadline": 1.0}


def test_an_unreachable_core_is_named_in_the_log_and_in_no_answer(caplog: pytest.LogCaptureFixture) -> None:
    """gRPC's details ("failed to connect to all addresses; ... ipv4:127.0.0.1:PORT ...") were answered to
    betflex in /bets' message, each failed bet of /winners and /readyz's detail."""
    port = free_port()
    with caplog.at_level(logging.WARNING), running_edge(f"127.0.0.1:{port}", **FAST) as dead, \
            dead.client() as http:
        answers = [
            http.post("/bets", json=example("bets")),
            http.post("/winners", json=winners(winner(1, "10.00", "20.00"))),
            http.get("/readyz"),
        ]
    assert [a.status_code for a in answers] == [503, 503, 503]  # a failed connect proves nothing (DESIGN §5)
    for answer in answers:
        assert str(port) not in answer.text and "127.0.0.1" not in answer.text and "ipv4" not in answer.text
    assert answers[0].json()["error"] == "wallet_unavailable"
    assert answers[1].json()["failed"][0]["message"] == "the wallet is unavailable"
    assert any(f"127.0.0.1:{port}" in record.getMessage() for record in caplog.records)  # the operator's copy


def test_a_replayed_refusal_does_not_quote_a_balance_that_moved_on(funded: WalletClient, http: httpx.Client) -> None:
    """The core stores a refused Debit's message and replays it verbatim, even after a deposit: it said
    "holds 10.00" when the wallet held 110.00."""
    slip = bets(bet(9000001, "15.00", user=int(BOB.user_id)))
    refused = http.post("/bets", json=slip)
    assert (refused.status_code, refused.json()["error"]) == (402, "insufficient_funds")
    funded.deposit("top-up", BOB, "100.00")
    again = http.post("/bets", json=slip)
    assert (again.status_code, again.json()["error"]) == (402, "insufficient_funds")  # the first decision stands
    message = again.json()["message"]
    assert message == refused.json()["message"]
    assert "15.00" in message  # what the slip needed
    assert "10.00" not in message and "110.00" not in message  # no balance, stale or current
