"""How betflex's identifiers become the wallet's: one place, so /bets and /winners always agree.

betflex numbers a bet slip once (`bet.uid`); the stake it places and the payout that settles
it get transaction ids derived from that number and the client, so every redelivery of a
callback names the same transactions and the core's idempotency makes it harmless.
"""

from __future__ import annotations


def stake_id(client: str, bet_uid: int) -> str:
    return f"betflex:{client}:bet:{bet_uid}"


def payout_id(client: str, bet_uid: int) -> str:
    return f"betflex:{client}:payout:{bet_uid}"


def pool_reference(pool_uid: int | None) -> str:
    return f"pool:{pool_uid}" if pool_uid is not None else ""
