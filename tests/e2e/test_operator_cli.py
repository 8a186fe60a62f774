"""The operator's support desk through the `wallet` command (issue 12), as docs/operations.md tells it.

betflex places and settles bets through the edge on a real port; the operator runs `wallet`
as a separate process against the core on a real port, on SQLite and PostgreSQL, with the
token labelled `ops-desk`. Every money-moving command needs `--id` (a rerun replays) and
its `--reason` lands in the audit trail. Each test ends with `wallet reconcile` on the database
(and the core fixture's own reconciliation).
"""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from clients.errors import StakeNotFound
from tests.e2e.test_cli import REFUSED, USAGE, assert_one_line, wallet
from tests.support.betflex import bet, bets, winner, winners
from tests.support.db import dump
from tests.support.servers import TOKENS, Core

ALICE = ("--client", "fanteam", "--user", "1001", "--currency", "EUR")
BOB = ("--client", "fanteam", "--user", "1002", "--currency", "EUR")


@pytest.fixture
def desk(core: Core, tmp_path: Path) -> Any:
    """`desk("tx", ...)`: the `wallet` command as the operator `ops-desk` (a token for every client)."""
    env = {"WALLET_CORE_ADDR": core.target, "WALLET_TOKEN": TOKENS["ops"]}

    def run(*args: str, code: int = 0, token: str | None = None) -> subprocess.CompletedProcess[str]:
        result = wallet(*args, cwd=tmp_path, **{**env, **({"WALLET_TOKEN": token} if token else {})})
        assert result.returncode == code, (args, result.returncode, result.stdout, result.stderr)
        return result

    return run


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


def balance(desk: Any, account: tuple[str, ...]) -> Decimal:
    return Decimal(as_json(desk("balance", *account, "--json"))["balance"])


def system(desk: Any) -> dict[str, Decimal]:
    rows = as_json(desk("system-balances", "--client", "fanteam", "--json"))
    return {r["kind"]: Decimal(r["balance"]) for r in rows if r["currency"] == "EUR"}


def reconciled(db_url: str, tmp_path: Path) -> None:
    result = wallet("reconcile", "--db", db_url, cwd=tmp_path)
    assert result.returncode == 0 and "ledger is consistent" in result.stdout, result.stdout + result.stderr


def place(http: httpx.Client, *entries: dict[str, Any]) -> None:
    answer = http.post("/bets", json=bets(*entries))
    assert answer.status_code == 200, answer.text


def test_find_a_bet_and_correct_its_settlement(desk: Any, http: httpx.Client, db_url: str, tmp_path: Path) -> None:
    desk("deposit", *ALICE, "--amount", "100.00", "--id", "dep-alice")
    place(http, bet(1, "10.00"), bet(2, "5.00"))
    assert http.post("/winners", json=winners(winner(1, "10.00", "30.00"))).status_code == 200
    assert balance(desk, ALICE) == Decimal("115.00")

    # find the bet by its betflex uid: the stake, its payout
    found = as_json(desk("tx", "--client", "fanteam", "--bet", "1", "--json"))
    assert found["transaction"]["transaction_id"] == "betflex:fanteam:bet:1"
    assert found["transaction"]["stake_state"] == "settled"
    assert [(t["purpose"], t["transaction_id"], t["amount"]) for t in found["related"]] == [
        ("payout", "betflex:fanteam:payout:1", "30.00")]
    text = desk("tx", "betflex:fanteam:payout:1", "--client", "fanteam").stdout  # by id, from the payout's side
    assert "betflex:fanteam:bet:1 [settled]" in text and "* " in text and "audit: none" in text

    # the result was corrected: 20.00 instead of 30.00, then voided, then settled at 25.00
    out = desk("resettle", "--client", "fanteam", "--bet", "1", "--amount", "20.00", "--id", "fix-1",
               "--reason", "league corrected the result").stdout
    assert "payout 30.00 -> 20.00 EUR" in out and "balance 105.00" in out
    assert "replayed" in desk("resettle", "--client", "fanteam", "--bet", "1", "--amount", "20.00", "--id", "fix-1",
                              "--reason", "league corrected the result").stdout
    assert balance(desk, ALICE) == Decimal("105.00")  # the rerun moved nothing
    out = desk("unsettle", "--client", "fanteam", "--stake", "betflex:fanteam:bet:1", "--id", "void-1",
               "--reason", "match abandoned").stdout
    assert "payout 20.00 EUR taken back, the stake is open again" in out
    assert balance(desk, ALICE) == Decimal("85.00") and system(desk)["in_play"] == Decimal("15.00")
    out = desk("settle", "--client", "fanteam", "--bet", "1", "--amount", "25.00", "--id", "settle-1",
               "--reason", "replayed match won").stdout
    assert "paid 25.00 EUR to fanteam/1001" in out and "balance 110.00" in out

    # bet 2 is cancelled, and alice gets a goodwill adjustment
    out = desk("cancel", "--client", "fanteam", "--bet", "2", "--reason", "duplicate slip reported by support").stdout
    assert "5.00 EUR back" in out and "(reversed)" in out
    assert "(reversed, replayed)" in desk("cancel", "--client", "fanteam", "--bet", "2", "--reason", "again").stdout
    out = desk("adjust", *ALICE, "--amount", "3.00", "--id", "goodwill-1", "--reason", "outage #42").stdout
    assert "balance 118.00" in out
    assert balance(desk, ALICE) == Decimal("118.00") and system(desk)["in_play"] == 0

    # the whole story of bet 1, and the audit trail: who, when, what, why
    story = as_json(desk("tx", "--client", "fanteam", "--bet", "1", "--json"))
    assert [t["purpose"] for t in story["related"]] == ["payout", "resettle", "unsettle", "payout"]
    assert [(a["actor"], a["action"], a["reason"], a["outcome"]) for a in story["audit"]] == [
        ("ops-desk", "resettle", "league corrected the result", "applied"),
        ("ops-desk", "resettle", "league corrected the result", "replayed"),
        ("ops-desk", "unsettle", "match abandoned", "applied"),
        ("ops-desk", "payout", "replayed match won", "applied")]
    trail = as_json(desk("audit", "--json"))
    assert [(a["action"], a["transaction_id"], a["reason"]) for a in trail] == [
        ("adjustment", "goodwill-1", "outage #42"),
        ("cancel", "betflex:fanteam:bet:2", "again"),
        ("cancel", "betflex:fanteam:bet:2", "duplicate slip reported by support"),
        ("payout", "settle-1", "replayed match won"),
        ("unsettle", "void-1", "match abandoned"),
        ("resettle", "fix-1", "league corrected the result"),
        ("resettle", "fix-1", "league corrected the result"),
        ("deposit", "dep-alice", "")]
    assert {a["actor"] for a in trail} == {"ops-desk"} and all(a["at"] for a in trail)
    text = desk("audit", "--client", "fanteam", "--limit", "1").stdout
    assert "ops-desk  adjustment goodwill-1 on 1001/EUR: applied  why: outage #42" in text
    reconciled(db_url, tmp_path)


def test_a_clawback_the_wallet_cannot_cover(desk: Any, http: httpx.Client, db_url: str, tmp_path: Path) -> None:
    """The default policy refuses and queues it; the operator redoes it as a debt and dismisses the refusal."""
    desk("deposit", *BOB, "--amount", "10.00", "--id", "dep-bob")
    place(http, bet(3, "10.00", user=1002))
    assert http.post("/winners", json=winners(winner(3, "10.00", "50.00", user="1002"))).status_code == 200
    desk("withdraw", *BOB, "--amount", "45.00", "--id", "cash-out-bob", "--reason", "player's request")
    refused = desk("unsettle", "--client", "fanteam", "--bet", "3", "--id", "void-3", "--reason", "void",
                   "--json", code=REFUSED)
    assert json.loads(refused.stderr)["error"] == "INSUFFICIENT_FUNDS" and refused.stdout == ""
    assert balance(desk, BOB) == Decimal("5.00")
    queue = as_json(desk("settlements", "--json"))
    assert [(f["transaction_id"], f["settles_transaction_id"], f["reason"]) for f in queue] == [
        ("void-3", "betflex:fanteam:bet:3", "INSUFFICIENT_FUNDS")]

    out = desk("unsettle", "--client", "fanteam", "--bet", "3", "--id", "void-3-debt", "--reason", "void",
               "--clawback", "debt").stdout
    assert "taken from the balance 5.00, recorded as the player's debt 45.00" in out
    assert balance(desk, BOB) == 0 and system(desk)["receivable"] == Decimal("-45.00")
    out = desk("settlements", "dismiss", "void-3", "--client", "fanteam", "--reason", "redone as void-3-debt").stdout
    assert "dismissed void-3" in out and "by ops-desk" in out
    assert desk("settlements").stdout.strip() == "no failed settlements"

    desk("deposit", *BOB, "--amount", "50.00", "--id", "dep-bob-2")  # pays the debt off first
    assert balance(desk, BOB) == Decimal("5.00") and system(desk)["receivable"] == 0
    text = desk("tx", "--client", "fanteam", "--bet", "3").stdout
    assert "void-3 " in text and "INSUFFICIENT_FUNDS" in text and "[resolved" in text
    assert "dismiss void-3 on betflex:fanteam:bet:3: applied  why: redone as void-3-debt" in text
    reconciled(db_url, tmp_path)


def test_failed_payouts_of_every_client_are_fixed_resolved_or_dismissed(
    desk: Any, core: Core, http: httpx.Client, db_url: str, tmp_path: Path
) -> None:
    from clients import AccountRef, WalletClient

    desk("deposit", *ALICE, "--amount", "100.00", "--id", "dep-alice")
    desk("deposit", "--client", "casino", "--user", "7", "--currency", "EUR", "--amount", "1.00", "--id", "dep-casino")
    place(http, bet(5, "10.00"))
    # betflex pays bet 5 in the wrong currency, and a bet it never placed
    assert http.post("/winners", json=winners(winner(5, "10.00", "20.00", currency="GBP"))).status_code != 200
    assert http.post("/winners", json=winners(winner(4242, "1.00", "2.00"))).status_code == 422
    with WalletClient(core.target, token=TOKENS["admin"], timeout=10) as other_product:  # another client's refusal
        with pytest.raises(StakeNotFound):
            other_product.payout("casino-p1", AccountRef("casino", "7", "EUR"), "1.00", "casino-never-staked")

    everyone = as_json(desk("settlements", "--json"))
    assert sorted((f["client"], f["transaction_id"], f["reason"]) for f in everyone) == [
        ("casino", "casino-p1", "STAKE_NOT_FOUND"),
        ("fanteam", "betflex:fanteam:payout:4242", "STAKE_NOT_FOUND"),
        ("fanteam", "betflex:fanteam:payout:5", "CURRENCY_MISMATCH")]
    fanteam_only = desk("settlements", "--json", token=TOKENS["fanteam"])  # a token sees its own clients only
    assert {f["client"] for f in as_json(fanteam_only)} == {"fanteam"}

    # fix: settle the bet with the queue entry's id; the entry is closed as settled by the ledger
    desk("settle", "--client", "fanteam", "--bet", "5", "--amount", "20.00", "--id", "betflex:fanteam:payout:5",
         "--reason", "betflex confirmed EUR")
    assert balance(desk, ALICE) == Decimal("110.00")
    # betflex's redelivery, now right, replays the operator's payout instead of paying twice
    assert http.post("/winners", json=winners(winner(5, "10.00", "20.00"))).status_code == 200
    assert balance(desk, ALICE) == Decimal("110.00")
    desk("settlements", "resolve", "betflex:fanteam:payout:4242", "--client", "fanteam",
         "--reason", "betflex voided the bet: ticket 99")
    desk("settlements", "dismiss", "casino-p1", "--client", "casino", "--reason", "test call from the casino team")
    assert as_json(desk("settlements", "--json")) == []
    closed = desk("settlements", "--all").stdout
    assert closed.count("[resolved") == 3
    desk("settlements", "dismiss", "nope", "--client", "fanteam", "--reason", "x", code=REFUSED)
    trail = as_json(desk("audit", "--json"))
    assert [(a["client"], a["actor"], a["action"], a["transaction_id"], a["reason"]) for a in trail[:3]] == [
        ("casino", "ops-desk", "dismiss", "casino-p1", "test call from the casino team"),
        ("fanteam", "ops-desk", "resolve", "betflex:fanteam:payout:4242", "betflex voided the bet: ticket 99"),
        ("fanteam", "ops-desk", "payout", "betflex:fanteam:payout:5", "betflex confirmed EUR")]
    reconciled(db_url, tmp_path)


def test_open_stakes_and_system_balances_per_client(desk: Any, http: httpx.Client, db_url: str,
                                                   tmp_path: Path) -> None:
    desk("deposit", *ALICE, "--amount", "100.00", "--id", "dep-alice")
    desk("deposit", *BOB, "--amount", "50.00", "--id", "dep-bob")
    place(http, bet(11, "10.00"), bet(12, "2.50", user=1002), bet(13, "7.00"))
    assert http.post("/winners", json=winners(winner(13, "7.00", "0", result="lost"))).status_code == 200

    found = as_json(desk("stakes", "--open", "--older-than", "0", "--json"))
    assert [(c["client"], [s["stake"]["transaction_id"] for s in c["stakes"]]) for c in found] == [
        ("fanteam", ["betflex:fanteam:bet:11", "betflex:fanteam:bet:12"])]
    assert found[0]["totals"] == [{"currency": "EUR", "count": 2, "amount": "12.50"}]
    assert "total EUR: 2 stakes, 12.50" in desk("stakes", "--client", "fanteam").stdout
    assert as_json(desk("stakes", "--open", "--older-than", "2h", "--json"))[0]["stakes"] == []
    assert "none" in desk("stakes", "--older-than", "1d12h").stdout
    desk("stakes", "--older-than", "two hours", code=USAGE)

    assert system(desk) == {"in_play": Decimal("12.50"), "house": Decimal("7.00"),
                            "cashier": Decimal("-150.00"), "receivable": 0}
    text = desk("system-balances").stdout
    assert "fanteam" in text and "in_play        12.50" in text and "cashier      -150.00" in text
    reconciled(db_url, tmp_path)


def test_money_moves_only_with_an_id_and_a_reason(desk: Any, core: Core, http: httpx.Client, db_url: str,
                                                  tmp_path: Path) -> None:
    """A rerun without --id would move the money twice: the command refuses to run (exit 2)."""
    desk("deposit", *ALICE, "--amount", "100.00", "--id", "dep-alice")
    place(http, bet(21, "10.00"), bet(22, "10.00"))
    assert http.post("/winners", json=winners(winner(21, "10.00", "30.00"))).status_code == 200
    before = dump(core.engine)
    stake = ("--client", "fanteam", "--bet", "21")
    for command in (
        ("deposit", *ALICE, "--amount", "1.00"),
        ("withdraw", *ALICE, "--amount", "1.00"),
        ("adjust", *ALICE, "--amount", "1.00", "--reason", "goodwill"),
        ("adjust", *ALICE, "--amount", "1.00", "--id", "adj"),  # no reason
        ("adjust", *ALICE, "--amount", "1.00", "--id", "adj", "--reason", "  "),
        ("settle", "--client", "fanteam", "--bet", "22", "--amount", "1.00", "--reason", "r"),
        ("resettle", *stake, "--amount", "5.00", "--reason", "r"),
        ("unsettle", *stake, "--reason", "r"),
        ("unsettle", *stake, "--id", "u"),  # no reason
        ("cancel", "--client", "fanteam", "--bet", "22"),  # no reason
        ("cancel", "--client", "fanteam", "--reason", "r"),  # neither --stake nor --bet
        ("cancel", *stake, "--stake", "x", "--reason", "r"),  # both
        ("settlements", "dismiss", "x", "--client", "fanteam"),
    ):
        result = desk(*command, code=USAGE)
        line = assert_one_line(result, USAGE)
        assert "--id" in line or "--reason" in line or "--bet" in line, line
    json_error = desk("withdraw", *ALICE, "--amount", "1.00", "--json", code=USAGE)
    assert json.loads(json_error.stderr)["error"] == "USAGE" and "--id" in json.loads(json_error.stderr)["message"]
    # a cancel of an id that was never used is refused, not tombstoned: an operator's typo blocks nothing
    desk("cancel", "--client", "fanteam", "--bet", "23", "--reason", "typo", code=REFUSED)
    desk("settle", "--client", "fanteam", "--bet", "23", "--amount", "1.00", "--id", "s", "--reason", "typo",
         code=REFUSED)
    assert dump(core.engine) == before, "nothing moved, nothing was recorded"
    out = desk("cancel", "--client", "fanteam", "--bet", "23", "--reason", "betflex voided it", "--tombstone").stdout
    assert "(tombstoned)" in out
    assert http.post("/bets", json=bets(bet(23, "1.00"))).status_code == 402  # the blocked id is refused
    reconciled(db_url, tmp_path)
