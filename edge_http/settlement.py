"""POST /winners as a use case: settle each bet on its own with an idempotent PAYOUT credit.

Every bet gets its own Credit (transaction id from the client and the bet uid, settling the
stake /bets took), a few at a time. A bet counts as settled when its Credit succeeds now or
is a replay of one that succeeded earlier. Failures are reported per bet; the core itself
keeps every refused payout for operators, so the edge stores nothing.

Calls that fail on the way to the core (timeout, unreachable) are repeated, the Credit being
idempotent, until `deadline` (for the whole callback) runs out (`CallPolicy.until`, the edge's
one retry loop); a bet whose first attempt could not start before the deadline is reported
`wallet_unavailable` without a call.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from clients import AccountRef, Purpose
from clients.errors import WalletError

from edge_http import errors
from edge_http.betflex import payout_id, pool_reference, stake_id
from edge_http.metrics import EdgeMetrics
from edge_http.port import WalletPort
from edge_http.retry import CallPolicy
from edge_http.schemas import WinnerEntry, WinnersBody, user_id

log = logging.getLogger("edge_http.winners")


@dataclass(frozen=True)
class FailedBet:
    bet_uid: int
    reason: str
    message: str

    @property
    def retryable(self) -> bool:
        """A failure of the way to the core (or of the edge's credentials): a later retry may settle it as is."""
        return self.reason == errors.WALLET_UNAVAILABLE


@dataclass(frozen=True)
class Settlement:
    settled: list[int]
    failed: list[FailedBet]

    @property
    def status(self) -> int:
        if not self.failed:
            return 200
        return 503 if any(f.retryable for f in self.failed) else 422


class Settler:
    def __init__(
        self, wallet: WalletPort, metrics: EdgeMetrics, *, deadline: float, calls: CallPolicy, concurrency: int = 16,
    ) -> None:
        self._wallet = wallet
        self._metrics = metrics
        self._deadline = deadline
        self._calls = calls
        self._concurrency = concurrency

    async def settle(self, body: WinnersBody) -> Settlement:
        deadline = self._calls.now() + self._deadline
        gate = asyncio.Semaphore(self._concurrency)
        work: list[tuple[WinnerEntry, str]] = []
        for pool in body.pools:
            reference = pool_reference(pool.pool.uid if pool.pool is not None else None)
            work.extend((entry, reference) for entry in pool.bets)

        async def bounded(entry: WinnerEntry, reference: str) -> FailedBet | None:
            async with gate:
                return await self._settle_one(entry, reference, deadline)

        results = await asyncio.gather(*(bounded(entry, reference) for entry, reference in work))
        settled = [entry.bet.uid for (entry, _), failure in zip(work, results) if failure is None]
        failed = [failure for failure in results if failure is not None]
        return Settlement(settled, failed)

    async def _settle_one(self, entry: WinnerEntry, reference: str, deadline: float) -> FailedBet | None:
        client, uid = entry.user.client, entry.bet.uid
        account = AccountRef(client, user_id(entry.user.uid, "user.uid"), entry.bet.currency)
        if self._calls.now() >= deadline:
            return FailedBet(uid, errors.WALLET_UNAVAILABLE, "not attempted: the callback's time ran out first; retry")
        try:
            await self._calls.until(deadline, lambda timeout: self._wallet.credit(
                payout_id(client, uid), account, entry.bet.payout, Purpose.PAYOUT,
                settles_transaction_id=stake_id(client, uid), reference=reference, timeout=timeout,
            ))
        except WalletError as error:
            errors.note_core_error(self._metrics, error, "Credit", f"bet {uid}")
            return FailedBet(uid, errors.winners_reason(error), errors.message_of(error))
        return None
