"""POST /bets end to end: betflex → edge (real port) → core (real port) → database (DESIGN section 5).

"No money moved" is checked on the database itself: a dump of every table before and after.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from clients import AccountRef, StakeState, WalletClient
from tests.e2e.conftest import ALICE, BOB
from tests.support.betflex import bet, bets, example
from tests.support.db import dump
from tests.support.servers import Core


def balance(wallet: WalletClient, ref: AccountRef = ALICE) -> Decimal:
    return wallet.get_balance(ref).balance


def refused(response: httpx.Response, code: str, status: int = 402) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["message"], body


def conflicted(response: httpx.Response) -> None:
    """409: a bet uid of the slip is already taken with other content (DESIGN §5); nothing more is taken."""
    refused(response, "duplicate_bet_conflict", 409)


def test_the_example_body_takes_the_stake(http: httpx.Client, funded: WalletClient) -> None:
    response = http.post("/bets", json=example("bets"))
    assert response.status_code == 200, response.text
    assert response.json()["bets"] == [
        {"uid": 9000001, "transaction_id": "betflex:fanteam:bet:9000001", "balance": "85.00"}
    ]
    (stake,) = funded.list_transactions(ALICE, page_size=1).transactions
    assert (stake.amount, stake.reference, stake.stake_state) == (Decimal("15.00"), "pool:550001", StakeState.OPEN)


def test_a_replayed_callback_returns_the_first_answer(http: httpx.Client, funded: WalletClient, core: Core) -> None:
    first = http.post("/bets", json=example("bets"))
    before = dump(core.engine)
    again = http.post("/bets", json=example("bets"))
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert dump(core.engine) == before and balance(funded) == Decimal("85.00")


def test_a_replayed_refusal_returns_the_first_refusal(http: httpx.Client, funded: WalletClient) -> None:
    slip = bets(bet(1, "150.00"))
    refused(http.post("/bets", json=slip), "insufficient_funds")
    funded.deposit("top-up", ALICE, "100.00")
    refused(http.post("/bets", json=slip), "insufficient_funds")  # the first answer stands
    assert balance(funded) == Decimal("200.00")


@pytest.mark.parametrize("changed", [bet(9000001, "16.00"), bet(9000001, "15.00", user=1002)],
                         ids=["other amount", "other user"])
def test_the_same_bet_uid_with_other_content_is_a_conflict(
    http: httpx.Client, funded: WalletClient, core: Core, changed: dict[str, object]
) -> None:
    assert http.post("/bets", json=example("bets")).status_code == 200
    before = dump(core.engine)
    conflicted(http.post("/bets", json=bets(changed)))
    assert dump(core.engine) == before


def test_a_slip_with_one_bet_that_cannot_be_paid_moves_nothing(
    http: httpx.Client, funded: WalletClient, core: Core
) -> None:
    before = dump(core.engine)
    refused(http.post("/bets", json=bets(bet(1, "50.00"), bet(2, "20.00", user=1002))), "insufficient_funds")
    after = dump(core.engine)
    for table in ("accounts", "entries", "stakes"):
        assert after[table] == before[table], table
    assert (balance(funded), balance(funded, BOB)) == (Decimal("100.00"), Decimal("10.00"))
    # both bets of the slip are taken together when both can be paid
    ok = http.post("/bets", json=bets(bet(3, "50.00"), bet(4, "10.00", user=1002)))
    assert [b["balance"] for b in ok.json()["bets"]] == ["50.00", "0.00"]


def test_insufficient_funds(http: httpx.Client, funded: WalletClient) -> None:
    refused(http.post("/bets", json=bets(bet(1, "100.01"))), "insufficient_funds")
    assert balance(funded) == Decimal("100.00")
    assert http.post("/bets", json=bets(bet(2, "100.00"))).json()["bets"][0]["balance"] == "0.00"


@pytest.mark.parametrize(
    ("slip", "code"),
    [
        (bets(bet(1, "1.00", user=4242)), "wallet_not_found"),
        (bets(bet(1, "1.00", currency="XYZ")), "currency_not_supported"),
        (bets(bet(1, "1.001")), "invalid_amount"),
        (bets(bet(1, "-1.00")), "invalid_amount"),
        (bets(bet(1, "0")), "invalid_amount"),
        (bets(bet(1, "1e3")), "invalid_amount"),
        (bets(bet(1, "1.00"), bet(1, "2.00")), "invalid_request"),
        ({"bets": []}, "invalid_request"),
        ({"bets": [{"user": {"client": "fanteam", "uid": "1001"}, "pool": {}, "bet": {"uid": 1, "amount": "1.00"}}]},
         "invalid_request"),
    ],
    ids=["unknown user", "unknown currency", "over-precise", "negative", "zero", "exponent", "duplicate uid",
         "no bets", "mistyped"],
)
def test_refusals_move_nothing(
    http: httpx.Client, funded: WalletClient, core: Core, slip: dict[str, object], code: str
) -> None:
    before = dump(core.engine)
    refused(http.post("/bets", json=slip), code)
    after = dump(core.engine)
    for table in ("accounts", "entries", "stakes"):
        assert after[table] == before[table], table


def test_a_missing_field_is_named(http: httpx.Client, funded: WalletClient) -> None:
    slip = bets(bet(1, "1.00"))
    del slip["bets"][0]["bet"]["amount"]
    response = http.post("/bets", json=slip)
    refused(response, "invalid_request")
    assert "amount" in response.json()["message"]


def test_a_blocked_wallet(http: httpx.Client, funded: WalletClient) -> None:
    from clients import AccountStatus

    funded.set_account_status(ALICE, AccountStatus.BLOCKED)
    refused(http.post("/bets", json=bets(bet(1, "1.00"))), "account_blocked")
    assert balance(funded) == Decimal("100.00")


def test_a_user_uid_sent_as_a_string_is_the_same_user(http: httpx.Client, funded: WalletClient) -> None:
    slip = bets(bet(1, "5.00"))
    slip["bets"][0]["user"]["uid"] = "1001"
    response = http.post("/bets", json=slip)
    assert response.status_code == 200, response.text
    assert balance(funded) == Decimal("95.00")


def test_unknown_fields_are_ignored(http: httpx.Client, funded: WalletClient) -> None:
    slip = bets(bet(1, "5.00"))
    slip["bets"][0]["bet"]["odds"] = {"nested": [1, 2, 3]}
    slip["campaign"] = "spring"
    assert http.post("/bets", json=slip).status_code == 200


def test_a_slip_too_large_for_one_debit_is_fenced_whole_so_its_402_stays_true(
    http: httpx.Client, funded: WalletClient, core: Core
) -> None:
    """101 bets is more than one Debit holds (invalid_request); each uid is fenced before the 402, so a
    later slip naming one of them cannot take it (one decision per bet, DESIGN §5)."""
    refused(http.post("/bets", json=bets(*(bet(n, "0.10") for n in range(1, 102)))), "invalid_request")
    refused(http.post("/bets", json=bets(bet(7, "0.10"))), "wallet_unavailable")
    assert balance(funded) == Decimal("100.00")
