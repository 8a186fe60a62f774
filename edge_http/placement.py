"""POST /bets as a use case: take every stake of a callback atomically, or prove nothing was taken.

The promise to betflex is that **a 402 means no money moved**. So a refusal is only given
when it is certain:

1. Until `bets_deadline` runs out, the same idempotent Debit is sent again, each attempt
   with `min(attempt_timeout, time left)`. A success or a refusal by the core is definite and
   answered at once.
2. Any attempt that ended in a timeout, a broken connection, or an error nobody knows sets
   `maybe_applied`: the Debit may be sitting in the core.
3. If the deadline runs out and no attempt may have been applied (every connection failed
   to open), the answer is a refusal: nothing reached the ledger.
4. Otherwise every bet's transaction id is Cancelled (retried within `cancel_deadline`):
   a taken stake is reversed, an unknown id is tombstoned so that the Debit, if it arrives
   later, is refused. When every Cancel is confirmed the answer is a refusal; when any is
   not, nobody knows whether money moved, and the answer is **Unresolved** (HTTP 503),
   never a refusal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from clients import AccountRef, CancelOutcome, DebitItem, Purpose
from clients.errors import StakeCancelled, WalletError

from edge_http import errors
from edge_http.betflex import pool_reference, stake_id
from edge_http.metrics import EdgeMetrics
from edge_http.retry import Backoff, call_core
from edge_http.schemas import BetsBody, user_id

log = logging.getLogger("edge_http.bets")

CONFIRMED_CANCELS = frozenset({CancelOutcome.REVERSED, CancelOutcome.TOMBSTONED, CancelOutcome.NOT_APPLIED})


@dataclass(frozen=True)
class TakenBet:
    uid: int
    transaction_id: str
    balance: str


@dataclass(frozen=True)
class Placed:
    bets: list[TakenBet]
    replayed: bool


@dataclass(frozen=True)
class Refused:
    """Nothing was taken; betflex gets 402 with this code."""

    code: str
    message: str


@dataclass(frozen=True)
class Unresolved:
    """Neither the Debit nor its Cancel could be confirmed: money may have moved (HTTP 503)."""

    message: str
    unconfirmed: list[str] = field(default_factory=list)


Placement = Placed | Refused | Unresolved


def format_amount(value: Any) -> str:
    """A balance as a plain decimal string ("0.00000000", never "0E-8")."""
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _state_name(value: Any) -> str:
    name = getattr(value, "name", None)
    return str(name if name is not None else value or "").upper()


def _cancelled(transaction: Any) -> bool:
    """A Debit replayed after its stake was reversed returns the stake, now CANCELLED: not a taken bet."""
    return _state_name(getattr(transaction, "stake_state", "")).endswith("CANCELLED")


class BetPlacer:
    def __init__(
        self,
        wallet: Any,
        metrics: EdgeMetrics,
        *,
        bets_deadline: float,
        attempt_timeout: float,
        cancel_deadline: float,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._wallet = wallet
        self._metrics = metrics
        self._bets_deadline = bets_deadline
        self._attempt_timeout = attempt_timeout
        self._cancel_deadline = cancel_deadline
        self._clock = clock
        self._sleep = sleep

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    @staticmethod
    def items(body: BetsBody) -> list[DebitItem]:
        result = []
        for index, entry in enumerate(body.bets):
            account = AccountRef(entry.user.client, user_id(entry.user.uid, f"$.bets[{index}].user.uid"), entry.pool.currency)
            result.append(DebitItem(
                stake_id(entry.user.client, entry.bet.uid), account, entry.bet.amount, Purpose.STAKE,
                pool_reference(entry.pool.uid),
            ))
        return result

    async def place(self, body: BetsBody) -> Placement:
        client = body.bets[0].user.client
        items = self.items(body)
        uids = [entry.bet.uid for entry in body.bets]
        deadline = self._now() + self._bets_deadline
        maybe_applied = False
        last: WalletError | None = None
        backoff = Backoff(self._sleep)
        while (remaining := deadline - self._now()) > 0:
            try:
                result = await call_core(
                    lambda timeout: self._wallet.debit(items, timeout=timeout), min(self._attempt_timeout, remaining)
                )
            except WalletError as error:
                self._core_error(error, "Debit", uids)
                if errors.is_definite(error):
                    return Refused(errors.bets_code(error), errors.message_of(error))
                last = error
                maybe_applied = maybe_applied or errors.maybe_applied(error)
                await backoff.pause(deadline - self._now())
                continue
            return self._taken(uids, result)

        if not maybe_applied:
            reason = f" ({errors.message_of(last)})" if last is not None else ""
            return Refused(errors.WALLET_UNAVAILABLE, f"the wallet could not be reached{reason}; nothing was taken")
        return await self._cancel(client, items, uids)

    def _taken(self, uids: Sequence[int], result: Any) -> Placement:
        transactions = list(result.transactions)
        if any(_cancelled(tx) for tx in transactions):
            # the stakes were reversed after an earlier delivery could not be confirmed
            return Refused(
                errors.BETS_CODES[StakeCancelled],
                "these bets were cancelled after an earlier delivery could not be confirmed; nothing is taken",
            )
        bets = [
            TakenBet(uid, tx.transaction_id, format_amount(tx.balance_after)) for uid, tx in zip(uids, transactions)
        ]
        return Placed(bets, bool(getattr(result, "replayed", False)))

    async def _cancel(self, client: str, items: Sequence[DebitItem], uids: list[int]) -> Placement:
        deadline = self._now() + self._cancel_deadline
        transaction_ids = [item.transaction_id for item in items]
        outcomes = await asyncio.gather(
            *(self._cancel_one(client, item.transaction_id, item.reference, deadline, uids) for item in items)
        )
        unconfirmed = [t for t, outcome in zip(transaction_ids, outcomes) if outcome not in CONFIRMED_CANCELS]
        if not unconfirmed:
            log.warning(
                "the wallet did not confirm the debit of bets %s in time; cancelled them (%s)",
                uids, ", ".join(_state_name(o) for o in outcomes),
            )
            return Refused(
                errors.WALLET_UNAVAILABLE, "the wallet did not answer in time; the bets were cancelled and nothing was taken"
            )
        self._metrics.unresolved_bets.inc(len(transaction_ids))
        log.error(
            "UNRESOLVED bets %s of client %r: the debit may have been applied and the cancel of %s could not be "
            "confirmed; answered 503 so that betflex retries. Check these transaction ids in the wallet.",
            uids, client, unconfirmed,
        )
        return Unresolved("outcome unknown; retry this callback", unconfirmed)

    async def _cancel_one(self, client: str, transaction_id: str, reference: str, deadline: float, uids: list[int]) -> Any:
        backoff = Backoff(self._sleep)
        while (remaining := deadline - self._now()) > 0:
            try:
                result = await call_core(
                    lambda timeout: self._wallet.cancel(client, transaction_id, reference=reference, timeout=timeout),
                    min(self._attempt_timeout, remaining),
                )
            except WalletError as error:
                self._core_error(error, "Cancel", uids)
                if errors.is_definite(error):
                    log.error("the wallet refused to cancel %r: %s", transaction_id, errors.message_of(error))
                    return None
                await backoff.pause(deadline - self._now())
                continue
            return result.outcome
        return None

    def _core_error(self, error: WalletError, call: str, uids: Sequence[int]) -> None:
        self._metrics.core_error(errors.reason_of(error))
        if isinstance(error, errors.CONFIGURATION):
            log.error(
                "the wallet core refused the edge's own credentials on %s (%s): check WALLET_CORE_TOKEN and the "
                "clients it may touch", call, errors.reason_of(error),
            )
        elif not errors.is_definite(error):
            log.warning("%s for bets %s failed: %s %s", call, list(uids), errors.reason_of(error), errors.message_of(error))

