"""betflex's bet uids as the wallet's transaction ids: one definition for the edge and the `wallet` CLI.

betflex numbers a bet slip once (`bet.uid`); the stake the edge places for it and the payout
that settles it get transaction ids derived from that number and the client. The edge
(edge_http/betflex.py) and the operator commands (`wallet tx --bet UID`, ...) both use these,
so an operator finds exactly the transactions the callbacks made.
"""

from __future__ import annotations


def stake_id(client: str, bet_uid: int) -> str:
    """The transaction id of the stake placed for bet `bet_uid` of `client`."""
    return f"betflex:{client}:bet:{bet_uid}"


def payout_id(client: str, bet_uid: int) -> str:
    """The transaction id of the payout `/winners` makes for bet `bet_uid` of `client`."""
    return f"betflex:{client}:payout:{bet_uid}"
