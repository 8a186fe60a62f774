"""betflex callback bodies: the examples in ../shared/betflex/examples/, and builders like them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "betflex" / "examples"

# the two examples as the operator received them (used when ../shared is not next to the repository)
BETS_EXAMPLE: dict[str, Any] = {"bets": [{
    "user": {"client": "fanteam", "uid": 1001, "ip": "203.0.113.7"},
    "pool": {"client": "fanteam", "currency": "EUR", "game": "betflex", "uid": 550001, "overdraw": "37.50"},
    "bet": {"uid": 9000001, "amount": "15.00"},
}]}
WINNERS_EXAMPLE: dict[str, Any] = {"pools": [{
    "pool": {"client": "fanteam", "game": "betflex", "uid": 550001, "currency": "EUR", "overdraw": "37.50",
             "cost": "15.00", "guaranteed": True},
    "bets": [{
        "user": {"client": "fanteam", "uid": "1001", "name": "alice"},
        "bet": {"uid": 9000001, "currency": "EUR", "amount": "15.00", "odds": 2.5, "rake": 0, "payout": "37.50",
                "base_payout": 37.5, "result": "won",
                "extra": {"selections": [{"event": "A v B", "market": "1X2", "pick": "1"}]}},
    }],
}]}


def example(name: str) -> dict[str, Any]:
    path = EXAMPLES / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    return copy.deepcopy({"bets": BETS_EXAMPLE, "winners": WINNERS_EXAMPLE}[name])


def bet(uid: int, amount: str, user: int = 1001, currency: str = "EUR", pool: int = 550001) -> dict[str, Any]:
    return {
        "user": {"client": "fanteam", "uid": user, "ip": "203.0.113.7"},
        "pool": {"client": "fanteam", "currency": currency, "game": "betflex", "uid": pool, "overdraw": "99.00"},
        "bet": {"uid": uid, "amount": amount},
    }


def bets(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"bets": list(entries)}


def winner(uid: int, amount: str, payout: str, user: str = "1001", currency: str = "EUR",
           result: str = "won") -> dict[str, Any]:
    return {
        "user": {"client": "fanteam", "uid": user, "name": "player"},
        "bet": {"uid": uid, "currency": currency, "amount": amount, "odds": 2.0, "rake": 0, "payout": payout,
                "base_payout": float(payout), "result": result, "extra": {}},
    }


def winners(*entries: dict[str, Any], pool: int = 550001) -> dict[str, Any]:
    return {"pools": [{
        "pool": {"client": "fanteam", "game": "betflex", "uid": pool, "currency": "EUR", "overdraw": "0",
                 "cost": "0", "guaranteed": True},
        "bets": list(entries),
    }]}
