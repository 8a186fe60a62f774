"""POST /winners (DESIGN section 5): each bet settled on its own, idempotently; 200 only when all are."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import falcon.testing
import pytest

from clients import Purpose
from clients.errors import (
    AccountNotFound,
    AlreadySettled,
    CurrencyMismatch,
    IdempotencyConflict,
    InvalidAmount,
    PermissionDenied,
    StakeCancelled,
    StakeMismatch,
    StakeNotFound,
    TransportError,
    Unauthenticated,
    UnknownCurrency,
    WalletError,
)
from edge_http.app import create_app
from tests.unit.test_edge_fakes import (
    AUTH, FakeWallet, client, deadline, error, example, metric, settings, unavailable, wallet,
)

__all__ = ["client", "wallet"]  # fixtures


def post(client: falcon.testing.TestClient, body: Any) -> falcon.testing.Result:
    return client.simulate_post("/winners", headers=AUTH, body=body if isinstance(body, bytes) else json.dumps(body))


def three_bets() -> dict[str, Any]:
    """Pool 550001 with bets 9000001 (won) and 9000002 (lost); pool 550002 with 9000003 of user 1002."""
    body = example("winners")
    lost = json.loads(json.dumps(body["pools"][0]["bets"][0]))
    lost["bet"].update(uid=9000002, payout="0", result="lost")
    body["pools"][0]["bets"].append(lost)
    other = json.loads(json.dumps(body["pools"][0]))
    other["pool"]["uid"] = 550002
    other["bets"] = [json.loads(json.dumps(lost))]
    other["bets"][0]["bet"]["uid"] = 9000003
    other["bets"][0]["user"]["uid"] = "1002"
    body["pools"].append(other)
    return body


def payout(uid: int) -> str:
    return f"betflex:fanteam:payout:{uid}"


def test_the_example_is_settled_with_one_payout_credit(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    response = post(client, example("winners"))
    assert response.status_code == 200
    assert response.json == {"status": "ok", "settled": [9000001]}
    [credit] = wallet.credits
    assert credit.transaction_id == "betflex:fanteam:payout:9000001"
    assert credit.settles_transaction_id == "betflex:fanteam:bet:9000001"
    assert (credit.account.client, credit.account.user_id, credit.account.currency) == ("fanteam", "1001", "EUR")
    assert (credit.amount, credit.purpose, credit.reference) == ("37.50", Purpose.PAYOUT, "pool:550001")
    assert credit.timeout == pytest.approx(0.1, abs=0.01)


def test_every_bet_of_every_pool_is_settled_a_zero_payout_too(
    client: falcon.testing.TestClient, wallet: FakeWallet
) -> None:
    response = post(client, three_bets())
    assert response.json == {"status": "ok", "settled": [9000001, 9000002, 9000003]}
    by_id = {c.transaction_id: c for c in wallet.credits}
    assert by_id[payout(9000002)].amount == "0"
    assert by_id[payout(9000003)].reference == "pool:550002"
    assert by_id[payout(9000003)].account.user_id == "1002"


def test_a_replayed_credit_counts_as_settled(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    from types import SimpleNamespace

    wallet.credit_script[payout(9000001)] = [SimpleNamespace(transaction=None, replayed=True)]
    assert post(client, example("winners")).json == {"status": "ok", "settled": [9000001]}


def test_a_bet_without_its_pool_is_settled_with_no_reference(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    body = example("winners")
    del body["pools"][0]["pool"]
    assert post(client, body).status_code == 200
    assert wallet.credits[0].reference == ""


@pytest.mark.parametrize(
    ("cls", "reason"),
    [
        (StakeNotFound, "unknown_bet"),
        (StakeMismatch, "stake_mismatch"),
        (CurrencyMismatch, "currency_mismatch"),
        (AlreadySettled, "settlement_conflict"),
        (IdempotencyConflict, "settlement_conflict"),
        (StakeCancelled, "stake_cancelled"),
        (AccountNotFound, "wallet_not_found"),
        (InvalidAmount, "invalid_amount"),
        (UnknownCurrency, "currency_not_supported"),
    ],
)
def test_a_refused_bet_is_422_and_the_others_are_settled(
    client: falcon.testing.TestClient, wallet: FakeWallet, cls: type[WalletError], reason: str
) -> None:
    wallet.credit_script[payout(9000002)] = [error(cls, "the core explains")]
    response = post(client, three_bets())
    assert response.status_code == 422
    assert response.json["error"] == "settlement_failed"
    assert response.json["settled"] == [9000001, 9000003]
    assert response.json["failed"] == [{"bet_uid": 9000002, "reason": reason, "message": "the core explains"}]
    assert len([c for c in wallet.credits if c.transaction_id == payout(9000002)]) == 1  # a refusal is not retried


@pytest.mark.parametrize(
    "failure",
    [deadline, lambda: unavailable(connect_failed=False), lambda: unavailable(connect_failed=True),
     lambda: error(TransportError), lambda: error(WalletError)],
)
def test_a_core_that_stays_unavailable_is_503(client: falcon.testing.TestClient, wallet: FakeWallet, failure: Any) -> None:
    wallet.credit_script[payout(9000003)] = [failure() for _ in range(1000)]
    wallet.credit_script[payout(9000002)] = [error(StakeNotFound, "no stake")]
    response = post(client, three_bets())
    assert response.status_code == 503
    assert response.json["settled"] == [9000001]
    assert [(f["bet_uid"], f["reason"]) for f in response.json["failed"]] == [
        (9000002, "unknown_bet"), (9000003, "wallet_unavailable"),
    ]
    assert len([c for c in wallet.credits if c.transaction_id == payout(9000003)]) >= 2  # retried


def test_a_transient_failure_is_retried_and_settles(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    wallet.credit_script[payout(9000001)] = [deadline(), unavailable(connect_failed=True)]
    assert post(client, example("winners")).json == {"status": "ok", "settled": [9000001]}
    assert len(wallet.credits) == 3


@pytest.mark.parametrize("cls", [Unauthenticated, PermissionDenied])
def test_a_refused_core_token_is_503_and_logged_at_error(
    client: falcon.testing.TestClient, wallet: FakeWallet, cls: type[WalletError], caplog: pytest.LogCaptureFixture
) -> None:
    wallet.credit_script[payout(9000001)] = [error(cls, "token")]
    with caplog.at_level(logging.INFO):
        response = post(client, example("winners"))
    assert response.status_code == 503
    assert response.json["failed"][0]["reason"] == "wallet_unavailable"
    assert any(r.levelno == logging.ERROR and "WALLET_CORE_TOKEN" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b["pools"][0]["bets"][0]["bet"].pop("payout"),
        lambda b: b["pools"][0]["bets"][0]["bet"].__setitem__("payout", 37.5),
        lambda b: b["pools"][0]["bets"][0]["user"].__setitem__("uid", True),
        lambda b: b.__setitem__("pools", []),
        lambda b: b["pools"].append(b["pools"][0]),
    ],
)
def test_a_malformed_body_is_400_and_settles_nothing(
    client: falcon.testing.TestClient, wallet: FakeWallet, mutate: Any
) -> None:
    body = three_bets()
    mutate(body)
    response = post(client, body)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert response.json["message"].startswith("$")
    assert wallet.credits == []


@pytest.mark.parametrize("raw", [b"{", b"", b"\xff", b"[" * 100_000])
def test_malformed_json_is_400(client: falcon.testing.TestClient, wallet: FakeWallet, raw: bytes) -> None:
    response = post(client, raw)
    assert (response.status_code, response.json["error"]) == (400, "invalid_request")
    assert wallet.credits == []


def test_credits_run_concurrently_with_a_bound(wallet: FakeWallet) -> None:
    client = falcon.testing.TestClient(create_app(settings(edge_settle_concurrency=4), wallet=wallet))
    in_flight = 0
    peak = 0
    real_credit = wallet.credit

    async def slow_credit(*args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        return await real_credit(*args, **kwargs)

    wallet.credit = slow_credit  # type: ignore[method-assign]
    body = example("winners")
    template = body["pools"][0]["bets"][0]
    body["pools"][0]["bets"] = []
    for uid in range(20):
        entry = json.loads(json.dumps(template))
        entry["bet"]["uid"] = uid
        body["pools"][0]["bets"].append(entry)
    response = post(client, body)
    assert response.json == {"status": "ok", "settled": list(range(20))}
    assert peak == 4


def test_the_log_line_lists_failed_bets(
    client: falcon.testing.TestClient, wallet: FakeWallet, caplog: pytest.LogCaptureFixture
) -> None:
    wallet.credit_script[payout(9000002)] = [error(StakeNotFound, "no stake")]
    with caplog.at_level(logging.INFO, logger="edge_http.callbacks"):
        post(client, three_bets())
    [record] = [r for r in caplog.records if r.name == "edge_http.callbacks"]
    line = json.loads(record.getMessage())
    assert (line["route"], line["status"], line["outcome"]) == ("/winners", 422, "settlement_failed")
    assert line["bet_uids"] == [9000001, 9000002, 9000003] and line["pool_uids"] == [550001, 550002]
    assert line["failed"] == [{"bet_uid": 9000002, "reason": "unknown_bet"}]
    assert metric(client, "betflex_callbacks_total", route="/winners", outcome="settlement_failed") == 1
