"""Which clients (tenants) a callback names, and whether the caller's token may act for them.

Each edge token is allowed a set of clients (`WALLET_EDGE_TOKENS`, `clients.tokens`). A callback
is checked whole, after its body is decoded and before anything is asked of the core: every
bet's `user.client` and its pool's `client` must be among the token's clients, else nothing of
the callback is attempted (402 on /bets, 403 on /winners; `edge_http.resources`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from clients.tokens import Grant
from edge_http.schemas import BetsBody, WinnersBody

PERMISSION_DENIED = "permission_denied"


@dataclass(frozen=True)
class Denied:
    """The callback names clients the token may not act for."""

    clients: tuple[str, ...]  # sorted, each once
    bet_uids: tuple[int, ...]  # the bets that name one of them, in body order

    @property
    def message(self) -> str:
        names = ", ".join(repr(c[:64]) for c in self.clients)
        return f"this token may not act for client {names}; nothing of this callback was attempted"


def _check(grant: Grant | None, named: Iterable[tuple[int, Iterable[str | None]]]) -> Denied | None:
    if grant is None:  # unauthenticated dev mode (insecure_no_auth): the core token is the only limit
        return None
    clients: set[str] = set()
    uids: list[int] = []
    for uid, names in named:
        foreign = {name for name in names if name is not None and not grant.allows(name)}
        if foreign:
            clients |= foreign
            uids.append(uid)
    return Denied(tuple(sorted(clients)), tuple(uids)) if clients else None


def check_bets(grant: Grant | None, body: BetsBody) -> Denied | None:
    """None when the token may act for every `user.client` and `pool.client` of the slip."""
    return _check(grant, ((e.bet.uid, (e.user.client, e.pool.client)) for e in body.bets))


def check_winners(grant: Grant | None, body: WinnersBody) -> Denied | None:
    """None when the token may act for every bet's `user.client` and its pool's `client`."""
    return _check(grant, (
        (entry.bet.uid, (entry.user.client, pool.pool.client if pool.pool is not None else None))
        for pool in body.pools for entry in pool.bets
    ))
