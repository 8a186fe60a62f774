"""betflex callback bodies: the examples in examples/betflex/, and builders like them."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "betflex"  # the bodies the README's curls send


def example(name: str) -> dict[str, Any]:
    """examples/betflex/<name>.json: a bet (`bets`) and its settlement as won (`winners`)."""
    return json.loads((EXAMPLES / f"{name}.json").read_text())  # type: ignore[no-any-return]


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


def winners(*entries: dict[str, Any], pool: int = 550001, overdraw: str | None = None) -> dict[str, Any]:
    """One pool of these bets; its `overdraw` (the pool's total payout) is the sum of their payouts unless given."""
    if overdraw is None:
        overdraw = str(sum((Decimal(e["bet"]["payout"]) for e in entries), Decimal(0)))
    return {"pools": [{
        "pool": {"client": "fanteam", "game": "betflex", "uid": pool, "currency": "EUR", "overdraw": overdraw,
                 "cost": "0", "guaranteed": True},
        "bets": list(entries),
    }]}
