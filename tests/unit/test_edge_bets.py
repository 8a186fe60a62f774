"""POST /bets (DESIGN section 5): one atomic debit; a 402 always means that no money moved."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

import falcon.testing
import pytest

from clients import CancelOutcome, Purpose
from clients.errors import (
    AccountBlocked,
    AccountNotFound,
    AlreadySettled,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidArgument,
    PermissionDenied,
    StakeCancelled,
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
    return client.simulate_post("/bets", headers=AUTH, body=body if isinstance(body, bytes) else json.dumps(body))


def two_bets() -> dict[str, Any]:
    body = example("bets")
    second = json.loads(json.dumps(body["bets"][0]))
    second["bet"] = {"uid": 9000002, "amount": "5.50"}
    second["pool"]["uid"] = 550002
    body["bets"].append(second)
    return body


# ---------------------------------------------------------------- taking the stakes


def test_the_example_slip_is_one_stake_debit(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    response = post(client, example("bets"))
    assert response.status_code == 200
    assert response.json == {
        "status": "ok",
        "bets": [{"uid": 9000001, "transaction_id": "betflex:fanteam:bet:9000001", "balance": "85.00"}],
    }
    [call] = wallet.debits
    [item] = call.items
    assert item.transaction_id == "betflex:fanteam:bet:9000001"
    assert (item.account.client, item.account.user_id, item.account.currency) == ("fanteam", "1001", "EUR")
    assert (item.amount, item.purpose, item.reference) == ("15.00", Purpose.STAKE, "pool:550001")
    assert call.timeout == pytest.approx(0.1)


def test_all_bets_of_a_slip_go_in_one_atomic_debit(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    response = post(client, two_bets())
    assert response.status_code == 200
    assert [b["uid"] for b in response.json["bets"]] == [9000001, 9000002]
    [call] = wallet.debits
    assert [i.transaction_id for i in call.items] == ["betflex:fanteam:bet:9000001", "betflex:fanteam:bet:9000002"]
    assert [i.reference for i in call.items] == ["pool:550001", "pool:550002"]


def test_the_balance_is_written_as_plain_decimal(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    wallet.balance_after = Decimal("0E-8")
    assert post(client, example("bets")).json["bets"][0]["balance"] == "0.00000000"


def test_a_user_uid_string_debits_the_same_wallet(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    body = example("bets")
    body["bets"][0]["user"]["uid"] = "1001"
    assert post(client, body).status_code == 200
    assert wallet.debits[0].items[0].account.user_id == "1001"


# ---------------------------------------------------------------- refusals: 402, nothing moved


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (InsufficientFunds, "insufficient_funds"),
        (AccountNotFound, "wallet_not_found"),
        (UnknownCurrency, "currency_not_supported"),
        (AccountBlocked, "account_blocked"),
        (InvalidAmount, "invalid_amount"),
        (InvalidArgument, "invalid_request"),
        (IdempotencyConflict, "duplicate_bet_conflict"),
        (StakeCancelled, "wallet_unavailable"),
        (Unauthenticated, "wallet_unavailable"),
        (PermissionDenied, "wallet_unavailable"),
    ],
)
def test_a_refusal_of_the_core_is_402_with_its_code_at_once(
    client: falcon.testing.TestClient, wallet: FakeWallet, cls: type[WalletError], code: str
) -> None:
    wallet.debit_script = [error(cls, "the core says no")]
    response = post(client, example("bets"))
    assert response.status_code == 402
    assert response.json == {"error": code, "message": "the core says no"}
    assert len(wallet.debits) == 1 and wallet.cancels == []


def test_a_refused_core_token_is_logged_at_error(
    client: falcon.testing.TestClient, wallet: FakeWallet, caplog: pytest.LogCaptureFixture
) -> None:
    wallet.debit_script = [error(Unauthenticated, "unknown token")]
    with caplog.at_level(logging.INFO):
        assert post(client, example("bets")).status_code == 402
    assert any(r.levelno == logging.ERROR and "WALLET_CORE_TOKEN" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: b["bets"][0]["bet"].__setitem__("amount", 15), "invalid_request"),
        (lambda b: b["bets"][0]["bet"].__setitem__("amount", "1e3"), "invalid_amount"),
        (lambda b: b["bets"][0]["pool"].__setitem__("currency", "eur"), "currency_not_supported"),
        (lambda b: b.__setitem__("bets", []), "invalid_request"),
        (lambda b: b["bets"][0]["bet"].pop("uid"), "invalid_request"),
    ],
)
def test_a_bad_body_is_402_and_calls_nothing(
    client: falcon.testing.TestClient, wallet: FakeWallet, mutate: Any, code: str
) -> None:
    body = example("bets")
    mutate(body)
    response = post(client, body)
    assert response.status_code == 402
    assert response.json["error"] == code
    assert wallet.debits == []


def test_the_message_names_the_field(client: falcon.testing.TestClient) -> None:
    body = example("bets")
    body["bets"][0]["bet"]["amount"] = 15
    assert post(client, body).json == {
        "error": "invalid_request", "message": "$.bets[0].bet.amount: Expected `str`, got `int`",
    }


@pytest.mark.parametrize("raw", [b"{", b"", b"[1,2]", b"\xff", b'{"bets": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"])
def test_malformed_json_is_402_invalid_request(client: falcon.testing.TestClient, wallet: FakeWallet, raw: bytes) -> None:
    response = post(client, raw)
    assert (response.status_code, response.json["error"]) == (402, "invalid_request")
    assert wallet.debits == []


# ---------------------------------------------------------------- the deadline and the cancels


def test_a_transient_failure_is_retried_with_the_same_debit(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    wallet.debit_script = [deadline(), unavailable(connect_failed=False), None]
    response = post(client, example("bets"))
    assert response.status_code == 200
    assert len(wallet.debits) == 3
    assert len({tuple(i.transaction_id for i in d.items) for d in wallet.debits}) == 1
    assert wallet.cancels == []


def test_a_refusal_after_a_timeout_is_still_definite(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    """The core recorded the refusal; the retry gets it; nothing moved."""
    wallet.debit_script = [deadline(), error(InsufficientFunds, "holds 5.00")]
    response = post(client, example("bets"))
    assert (response.status_code, response.json["error"]) == (402, "insufficient_funds")
    assert wallet.cancels == []


def test_when_no_attempt_ever_reached_the_core_the_answer_is_402_without_cancels(
    client: falcon.testing.TestClient, wallet: FakeWallet
) -> None:
    wallet.debit_script = [unavailable(connect_failed=True) for _ in range(1000)]
    response = post(client, example("bets"))
    assert (response.status_code, response.json["error"]) == (402, "wallet_unavailable")
    assert len(wallet.debits) >= 2
    assert wallet.cancels == []


@pytest.mark.parametrize(
    "failure", [deadline, lambda: unavailable(connect_failed=False), lambda: error(TransportError), lambda: error(WalletError)]
)
def test_when_the_outcome_stays_unknown_every_bet_is_cancelled_then_402(
    client: falcon.testing.TestClient, wallet: FakeWallet, failure: Any
) -> None:
    wallet.debit_script = [failure()] + [unavailable(connect_failed=True) for _ in range(1000)]
    response = post(client, two_bets())
    assert response.status_code == 402
    assert response.json["error"] == "wallet_unavailable"
    assert sorted(c.transaction_id for c in wallet.cancels) == ["betflex:fanteam:bet:9000001", "betflex:fanteam:bet:9000002"]
    assert {c.client for c in wallet.cancels} == {"fanteam"}


def test_a_debit_that_hangs_is_bounded_by_the_deadline(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    wallet.debit_script = ["hang"] * 100
    response = post(client, example("bets"))
    assert response.status_code == 402
    assert all(d.timeout <= 0.1 + 1e-9 for d in wallet.debits)
    assert len(wallet.debits) >= 2 and len(wallet.cancels) == 1


@pytest.mark.parametrize("failure", ["hang-forever", RuntimeError("a bug in the client")])
def test_a_client_that_misbehaves_counts_as_outcome_unknown(
    client: falcon.testing.TestClient, wallet: FakeWallet, failure: Any
) -> None:
    """A call that outlives its timeout or raises something unexpected may have been applied: cancel first."""
    wallet.debit_script = [failure] * 100
    response = post(client, example("bets"))
    assert (response.status_code, response.json["error"]) == (402, "wallet_unavailable")
    assert len(wallet.cancels) == 1


@pytest.mark.parametrize("outcome", [CancelOutcome.REVERSED, CancelOutcome.TOMBSTONED, CancelOutcome.NOT_APPLIED])
def test_every_confirmed_cancel_outcome_allows_402(
    client: falcon.testing.TestClient, wallet: FakeWallet, outcome: CancelOutcome
) -> None:
    from types import SimpleNamespace

    wallet.debit_script = ["hang"] * 100
    wallet.cancel_script["betflex:fanteam:bet:9000001"] = [SimpleNamespace(outcome=outcome, replayed=False)]
    assert post(client, example("bets")).status_code == 402


def test_a_cancel_that_fails_once_is_retried(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    wallet.debit_script = ["hang"] * 100
    wallet.cancel_script["betflex:fanteam:bet:9000001"] = [deadline(), unavailable(connect_failed=True)]
    assert post(client, example("bets")).status_code == 402
    assert len(wallet.cancels) == 3


@pytest.mark.parametrize(
    "cancel_failure", [lambda: ["hang"] * 100, lambda: [error(AlreadySettled)], lambda: [error(Unauthenticated)]]
)
def test_an_unconfirmed_cancel_is_503_never_402(
    wallet: FakeWallet, cancel_failure: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = falcon.testing.TestClient(create_app(settings(), wallet=wallet))
    wallet.debit_script = ["hang"] * 100
    wallet.cancel_script["betflex:fanteam:bet:9000002"] = cancel_failure()
    with caplog.at_level(logging.INFO):
        response = post(client, two_bets())
    assert response.status_code == 503
    assert response.json == {"error": "wallet_unavailable", "message": "outcome unknown; retry this callback"}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and "UNRESOLVED" in r.getMessage()]
    assert len(errors) == 1 and "9000001" in errors[0] and "9000002" in errors[0]
    assert metric(client, "betflex_unresolved_bets_total") == 2
    assert metric(client, "betflex_callbacks_total", route="/bets", outcome="outcome_unknown") == 1


def test_a_replay_after_the_cancel_is_402_not_200(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    """The first delivery timed out and was cancelled; the lost debit arrived anyway and was
    reversed. The replay returns the stakes, now CANCELLED: the bet is refused, not taken."""
    wallet.debit_script = ["hang"] * 100
    wallet.cancel_script["betflex:fanteam:bet:9000001"] = [
        __import__("types").SimpleNamespace(outcome=CancelOutcome.REVERSED, replayed=False)
    ]
    assert post(client, example("bets")).status_code == 402
    wallet.debit_script = []
    response = post(client, example("bets"))
    assert (response.status_code, response.json["error"]) == (402, "wallet_unavailable")


def test_a_replay_after_a_tombstone_is_402(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    wallet.debit_script = [error(StakeCancelled, "transaction was cancelled before this debit arrived")]
    response = post(client, example("bets"))
    assert (response.status_code, response.json["error"]) == (402, "wallet_unavailable")


# ---------------------------------------------------------------- observability


def test_one_structured_log_line_per_callback(
    client: falcon.testing.TestClient, wallet: FakeWallet, caplog: pytest.LogCaptureFixture
) -> None:
    wallet.debit_script = [error(InsufficientFunds, "holds 5.00")]
    with caplog.at_level(logging.INFO, logger="edge_http.callbacks"):
        post(client, two_bets())
    [record] = [r for r in caplog.records if r.name == "edge_http.callbacks"]
    line = json.loads(record.getMessage())
    assert line["route"] == "/bets" and line["status"] == 402 and line["outcome"] == "insufficient_funds"
    assert line["bet_uids"] == [9000001, 9000002] and line["pool_uids"] == [550001, 550002]
    assert line["client"] == "fanteam" and line["duration_ms"] >= 0
    assert "203.0.113.7" not in record.getMessage() and "Bearer" not in record.getMessage()


def test_metrics_count_callbacks_and_core_errors(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    post(client, example("bets"))
    wallet.debit_script = [deadline(), error(InsufficientFunds)]
    post(client, example("bets"))
    assert metric(client, "betflex_callbacks_total", route="/bets", outcome="ok") == 1
    assert metric(client, "betflex_callbacks_total", route="/bets", outcome="insufficient_funds") == 1
    assert metric(client, "betflex_core_errors_total", reason="INSUFFICIENT_FUNDS") == 1
    assert metric(client, "betflex_callback_seconds_count", route="/bets") == 2
