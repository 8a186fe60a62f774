"""The /bets decision rule as it was before issue 10 (edge_http/placement.py at 11240dd), kept to show
that the simulation catches its four defects. Same code, with two changes only: the backoff's
jitter draws from an injected random source (so that a seed replays), and the answer types are
today's (so that the same oracle reads them).

Its rule: retry the Debit until the deadline; if every attempt failed to connect, answer 402
"nothing was taken"; if any may have been applied, Cancel every bet (which *reverses* a taken
stake) and answer 402 when every Cancel is confirmed; a conflict is a 402 too.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

from clients import CancelOutcome, DebitItem
from clients.errors import StakeCancelled, Unavailable, WalletError
from edge_http import errors
from edge_http.placement import Placed, Placement, Refused, TakenBet, Unresolved, debit_items, format_amount
from edge_http.retry import call_core
from edge_http.schemas import BetsBody, BodyError, decode_bets

CONFIRMED_CANCELS = frozenset({CancelOutcome.REVERSED, CancelOutcome.TOMBSTONED, CancelOutcome.NOT_APPLIED})


class _Backoff:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._next = 0.05

    async def pause(self, remaining: float) -> None:
        delay = min(self._next * self._rng.uniform(0.5, 1.0), max(remaining, 0.0))
        self._next = min(self._next * 2, 0.4)
        if delay > 0:
            await asyncio.sleep(delay)


class LegacyBetPlacer:
    def __init__(self, wallet: Any, *, bets_deadline: float, attempt_timeout: float, cancel_deadline: float,
                 rng: random.Random) -> None:
        self._wallet = wallet
        self._bets_deadline = bets_deadline
        self._attempt_timeout = attempt_timeout
        self._cancel_deadline = cancel_deadline
        self._rng = rng

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def handle(self, raw: bytes) -> tuple[BetsBody | None, Placement]:
        try:
            body = decode_bets(raw)
        except BodyError as error:
            return None, Refused(error.code, error.message)
        return body, await self.place(body)

    async def place(self, body: BetsBody) -> Placement:
        client = body.bets[0].user.client
        items = debit_items(body)
        uids = [entry.bet.uid for entry in body.bets]
        deadline = self._now() + self._bets_deadline
        maybe_applied = False
        last: WalletError | None = None
        backoff = _Backoff(self._rng)
        while (remaining := deadline - self._now()) > 0:
            try:
                result = await call_core(
                    lambda timeout: self._wallet.debit(items, timeout=timeout), min(self._attempt_timeout, remaining)
                )
            except WalletError as error:
                if errors.is_definite(error):
                    return Refused(errors.bets_code(error), errors.message_of(error))
                last = error
                # the old rule: a connection that never opened proved, to it, that nothing was taken
                never_sent = isinstance(error, Unavailable) and bool(getattr(error, "connect_failed", False))
                maybe_applied = maybe_applied or not never_sent
                await backoff.pause(deadline - self._now())
                continue
            return self._taken(uids, result)
        if not maybe_applied:
            reason = f" ({errors.message_of(last)})" if last is not None else ""
            return Refused(errors.WALLET_UNAVAILABLE, f"the wallet could not be reached{reason}; nothing was taken")
        return await self._cancel(client, items)

    def _taken(self, uids: Sequence[int], result: Any) -> Placement:
        transactions = list(result.transactions)
        states = [str(getattr(tx.stake_state, "name", tx.stake_state)).upper() for tx in transactions]
        if any(state.endswith("CANCELLED") for state in states):
            return Refused(errors.BETS_CODES[StakeCancelled], "these bets were cancelled; nothing is taken")
        return Placed([TakenBet(uid, tx.transaction_id, format_amount(tx.balance_after))
                       for uid, tx in zip(uids, transactions, strict=True)], bool(result.replayed))

    async def _cancel(self, client: str, items: Sequence[DebitItem]) -> Placement:
        deadline = self._now() + self._cancel_deadline
        outcomes = await asyncio.gather(*(self._cancel_one(client, item, deadline) for item in items))
        unconfirmed = [i.transaction_id for i, o in zip(items, outcomes, strict=True) if o not in CONFIRMED_CANCELS]
        if not unconfirmed:
            return Refused(errors.WALLET_UNAVAILABLE, "the wallet did not answer in time; the bets were cancelled")
        return Unresolved("outcome unknown; retry this callback", unconfirmed)

    async def _cancel_one(self, client: str, item: DebitItem, deadline: float) -> Any:
        backoff = _Backoff(self._rng)
        while (remaining := deadline - self._now()) > 0:
            try:
                result = await call_core(
                    lambda timeout: self._wallet.cancel(client, item.transaction_id, reference=item.reference,
                                                        timeout=timeout),
                    min(self._attempt_timeout, remaining),
                )
            except WalletError as error:
                if errors.is_definite(error):
                    return None
                await backoff.pause(deadline - self._now())
                continue
            return result.outcome
        return None
