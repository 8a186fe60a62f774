"""POST /winners as a use case: settle each bet on its own, many bets per core call.

The callback's bets go to the core in SettleBatch calls of at most `chunk` payouts (one client
each, a pool's bets kept in one call where they fit), several calls at a time. Each payout is
judged on its own by the core, in one database transaction per call: the transaction id comes
from the client and the bet uid, it settles the stake /bets took, it names the stake betflex
says it took (`amount`: another amount is `stake_mismatch`) and its pool's `overdraw` as the cap
of the pool's payouts (`overdraw_exceeded`). A bet counts as settled when its payout is applied
now or is a replay of one applied earlier: a redelivery replays what earlier ones settled at
the cost of one read per bet, so every delivery makes progress on the rest. Failures are
reported per bet; the core itself keeps every refused payout for operators, so the edge
stores nothing.

Calls that fail on the way to the core (timeout, unreachable) are repeated, SettleBatch being
idempotent item by item, until `deadline` (for the whole callback) runs out (`CallPolicy.until`,
the edge's one retry loop); the bets of a call that could not start before the deadline are
reported `wallet_unavailable` without a call.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from clients import AccountRef, SettleItem, SettleResult
from clients.errors import WalletError
from edge_http import errors
from edge_http.betflex import payout_id, pool_reference, resettle_id, stake_id
from edge_http.metrics import EdgeMetrics
from edge_http.port import WalletPort
from edge_http.retry import CallPolicy
from edge_http.schemas import WinnersBody, user_id

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


# Payouts per SettleBatch call: the core takes at most 500; 250: few calls per callback, each a short transaction.
CHUNK = 250


@dataclass(frozen=True)
class Payout:
    bet_uid: int
    item: SettleItem


class Settler:
    def __init__(
        self, wallet: WalletPort, metrics: EdgeMetrics, *, deadline: float, calls: CallPolicy, concurrency: int = 16,
        chunk: int = CHUNK, auto_resettle: frozenset[str] = frozenset(),
    ) -> None:
        self._wallet = wallet
        self._metrics = metrics
        self._deadline = deadline
        self._calls = calls
        self._concurrency = concurrency
        self._chunk = chunk
        self._auto_resettle = auto_resettle

    async def settle(self, body: WinnersBody) -> Settlement:
        deadline = self._calls.now() + self._deadline
        gate = asyncio.Semaphore(self._concurrency)

        async def bounded(chunk: list[Payout]) -> list[FailedBet | None]:
            async with gate:
                return await self._settle_chunk(chunk, deadline)

        chunks = self.chunks(body)
        # the calls start in a different order on each delivery: even if replaying what earlier
        # deliveries settled were slow, no delivery spends its time on the same prefix again
        order = list(range(len(chunks)))
        self._calls.rng.shuffle(order)
        started = await asyncio.gather(*(bounded(chunks[n]) for n in order))
        results = [started[order.index(n)] for n in range(len(chunks))]
        settled: list[int] = []
        failed: list[FailedBet] = []
        for chunk, outcomes in zip(chunks, results, strict=True):
            for payout, failure in zip(chunk, outcomes, strict=True):
                if failure is None:
                    settled.append(payout.bet_uid)
                else:
                    failed.append(failure)
        return Settlement(settled, failed)

    def chunks(self, body: WinnersBody) -> list[list[Payout]]:
        """The callback's payouts, in body order, cut into calls of one client and at most `chunk` items;
        a pool's payouts of one client stay in one call unless the pool alone is larger than a call."""
        open_chunks: dict[str, list[Payout]] = {}
        done: list[list[Payout]] = []
        for pool in body.pools:
            uid = pool.pool.uid if pool.pool is not None else None
            reference = pool_reference(uid)
            cap = pool.pool.overdraw if pool.pool is not None and reference else ""
            by_client: dict[str, list[Payout]] = {}
            for entry in pool.bets:
                client, bet_uid = entry.user.client, entry.bet.uid
                item = SettleItem(
                    payout_id(client, bet_uid),
                    AccountRef(client, user_id(entry.user.uid, "user.uid"), entry.bet.currency),
                    entry.bet.payout, stake_id(client, bet_uid), reference,
                    stake_amount=entry.bet.amount, payout_cap=cap,
                )
                by_client.setdefault(client, []).append(Payout(bet_uid, item))
            for client, payouts in by_client.items():
                current = open_chunks.setdefault(client, [])
                if current and len(current) + len(payouts) > self._chunk:
                    done.append(current)
                    current = open_chunks[client] = []
                for payout in payouts:
                    if len(current) == self._chunk:
                        done.append(current)
                        current = open_chunks[client] = []
                    current.append(payout)
        done.extend(chunk for chunk in open_chunks.values() if chunk)
        return done

    async def _settle_chunk(self, chunk: list[Payout], deadline: float) -> list[FailedBet | None]:
        if self._calls.now() >= deadline:
            message = "not attempted: the callback's time ran out first; retry"
            return [FailedBet(p.bet_uid, errors.WALLET_UNAVAILABLE, message) for p in chunk]
        items = [p.item for p in chunk]
        try:
            results: list[SettleResult] = await self._calls.until(
                deadline, lambda timeout: self._wallet.settle_batch(items, timeout=timeout))
        except WalletError as error:
            errors.note_core_error(self._metrics, error, "SettleBatch", f"{len(chunk)} bets")
            reason, message = errors.winners_reason(error), errors.message_of(error)
            return [FailedBet(p.bet_uid, reason, message) for p in chunk]
        if len(results) != len(chunk):  # a core that answers another number of items cannot be believed
            return [FailedBet(p.bet_uid, errors.WALLET_UNAVAILABLE, "the core's answer does not match the call; retry")
                    for p in chunk]
        outcomes: list[FailedBet | None] = []
        for payout, result in zip(chunk, results, strict=True):
            if result.error is None:
                outcomes.append(None)
                continue
            if errors.winners_reason(result.error) == errors.SETTLEMENT_CONFLICT and self._resettles(payout):
                outcomes.append(await self._resettle(payout, deadline))
                continue
            errors.note_core_error(self._metrics, result.error, "SettleBatch", f"bet {payout.bet_uid}")
            outcomes.append(FailedBet(payout.bet_uid, errors.winners_reason(result.error),
                                      errors.message_of(result.error)))
        return outcomes

    def _resettles(self, payout: Payout) -> bool:
        client = payout.item.account.client
        return client in self._auto_resettle or "*" in self._auto_resettle

    async def _resettle(self, payout: Payout, deadline: float) -> FailedBet | None:
        """The bet is settled with another payout and its client lets betflex correct it: resettle to this one."""
        item = payout.item
        client = item.account.client
        try:
            await self._calls.until(deadline, lambda timeout: self._wallet.resettle(
                client, resettle_id(client, payout.bet_uid, str(item.amount)), item.settles_transaction_id,
                item.amount, reason="betflex /winners with another payout (WALLET_EDGE_AUTO_RESETTLE)",
                reference=item.reference, timeout=timeout,
            ))
        except WalletError as error:
            errors.note_core_error(self._metrics, error, "Resettle", f"bet {payout.bet_uid}")
            return FailedBet(payout.bet_uid, errors.winners_reason(error), errors.message_of(error))
        log.info("bet %s of client %r resettled to %s (WALLET_EDGE_AUTO_RESETTLE)", payout.bet_uid, client, item.amount)
        return None
