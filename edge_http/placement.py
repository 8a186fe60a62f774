"""POST /bets as a use case: one decision per bet (DESIGN §5).

For every bet uid the ledger decides once, in one commit, whether its stake is taken; every
delivery of every slip that names it is answered consistently with that decision:

| the core says                                              | betflex gets              |
|------------------------------------------------------------|---------------------------|
| the Debit is applied (now, or replayed with this content)  | 200                       |
| a refusal it recorded for every bet (funds, wallet, block) | 402 with its code         |
| after a fence: every bet fenced or refused                 | 402                       |
| after a fence: some bet taken, by other content or another slip | 409 duplicate_bet_conflict |
| after a fence: every bet taken, and our Debit replays      | 200 (the stored result)   |
| nothing it could confirm in time                           | 503: deliver again        |

1. The Debit of all the slip's stakes is sent, and sent again (it is idempotent) until it is
   answered or `bets_deadline` passes (`CallPolicy.until`).
2. Any answer that is not a decision recorded for every bet (a deadline passed, a connection
   failed or broke, a validation refusal, a conflict, a tombstone) is followed by a **Fence** of
   every bet id: the core tombstones the ids it never saw and reports the rest as they stand,
   in one commit, moving no money. From its answer the table above decides. A fence never
   reverses anything, and a failed connect is never taken as proof that nothing was taken.
3. A body that cannot be used but whose bet uids can be read is refused only after those uids
   are fenced too, so that its 402 stays true for every later delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from clients import AccountRef, DebitItem, DebitResult, FencedId, FenceOutcome, FenceResult, Purpose
from clients.errors import BY_REASON, IdempotencyConflict, WalletError
from clients.tokens import Grant
from edge_http import errors
from edge_http.betflex import pool_reference, stake_id
from edge_http.metrics import EdgeMetrics
from edge_http.port import WalletPort
from edge_http.retry import CallPolicy
from edge_http.schemas import BetsBody, BodyError, decode_bets, slip_ids, user_id
from edge_http.tenants import PERMISSION_DENIED, check_bets

log = logging.getLogger("edge_http.bets")

FENCE_REFERENCE = "betflex: /bets outcome unknown or refused; fenced by the edge"
FENCE_CHUNK = 100  # the most ids one Fence takes (protos/wallet/v1/wallet.proto)


@dataclass(frozen=True)
class TakenBet:
    uid: int
    transaction_id: str
    balance: str


@dataclass(frozen=True)
class Placed:
    """Every bet of the slip is taken with this content (HTTP 200)."""

    bets: list[TakenBet]
    replayed: bool


@dataclass(frozen=True)
class Refused:
    """None of the slip's bets is taken and none ever will be, on the core's word (HTTP 402)."""

    code: str
    message: str


@dataclass(frozen=True)
class Conflict:
    """A bet uid of the slip is taken with other content, or the slip mixes taken and new bets (HTTP 409)."""

    message: str
    code: str = "duplicate_bet_conflict"


@dataclass(frozen=True)
class Unresolved:
    """The core could not confirm what happened: deliver again (HTTP 503)."""

    message: str
    unconfirmed: list[str] = field(default_factory=list)


Placement = Placed | Refused | Conflict | Unresolved


def http_status(placement: Placement) -> int:
    """The one mapping from a placement to the status betflex reads."""
    if isinstance(placement, Placed):
        return 200
    if isinstance(placement, Refused):
        return 402
    if isinstance(placement, Conflict):
        return 409
    return 503


def format_amount(value: Decimal | None) -> str:
    """A balance as a plain decimal string ("0.00000000", never "0E-8")."""
    return "" if value is None else format(value, "f")


def debit_items(body: BetsBody) -> list[DebitItem]:
    result = []
    for index, entry in enumerate(body.bets):
        uid = user_id(entry.user.uid, f"$.bets[{index}].user.uid")
        account = AccountRef(entry.user.client, uid, entry.pool.currency)
        result.append(DebitItem(
            stake_id(entry.user.client, entry.bet.uid), account, entry.bet.amount, Purpose.STAKE,
            pool_reference(entry.pool.uid),
        ))
    return result


class BetPlacer:
    def __init__(
        self, wallet: WalletPort, metrics: EdgeMetrics, *, bets_deadline: float, fence_deadline: float,
        calls: CallPolicy,
    ) -> None:
        self._wallet = wallet
        self._metrics = metrics
        self._bets_deadline = bets_deadline
        self._fence_deadline = fence_deadline
        self._calls = calls

    async def handle(
        self, raw: bytes, grant: Grant | None = None, check: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> tuple[BetsBody | None, Placement]:
        """A raw /bets body from a caller whose token has `grant` → (the body if it could be used, the decision).

        A slip naming a client the token may not act for is refused before anything is asked of the
        core (`edge_http.tenants`); `grant` None is the unauthenticated dev mode (no per-client check).
        `check` is the second reading of the body (duplicate keys, unreadable ignored content), which
        the app runs off the event loop for large bodies (`edge_http.jsoncheck`); without it, in place.
        """
        try:
            body = decode_bets(raw, check_json=check is None)
            if check is not None:
                await check(raw)
        except BodyError as error:
            return None, await self.refuse_invalid(raw, error, grant)
        denied = check_bets(grant, body)
        if denied is not None:
            return body, Refused(PERMISSION_DENIED, denied.message)
        return body, await self.place(body)

    async def place(self, body: BetsBody) -> Placement:
        client = body.bets[0].user.client
        items = debit_items(body)
        ids = [item.transaction_id for item in items]
        uids = [entry.bet.uid for entry in body.bets]
        deadline = self._calls.now() + self._bets_deadline
        try:
            result = await self._calls.until(deadline, lambda timeout: self._wallet.debit(items, timeout=timeout))
        except WalletError as error:
            self._core_error(error, "Debit", uids)
            if isinstance(error, errors.RECORDED_REFUSALS + errors.NOT_THIS_EDGE):
                # the ledger recorded this refusal for every bet of the slip, in one commit; or the core
                # will never take these bets from this edge (its token may not act for the client)
                return Refused(errors.bets_code(error), errors.message_of(error))
            if isinstance(error, errors.CONFIGURATION):
                return self._unresolved(client, uids, ids, "the wallet refused the edge's own credentials")
            refusal = error if errors.is_definite(error) else None
            return await self._fence(client, uids, ids, refusal, items)
        return self._taken(uids, result)

    async def refuse_invalid(self, raw: bytes, error: BodyError, grant: Grant | None = None) -> Placement:
        """A body that cannot be used: 402 with its error, once every bet uid it names is fenced."""
        named = slip_ids(raw)
        if not named:
            return Refused(error.code, error.message)
        if grant is not None and not all(grant.allows(client) for client in named):
            return Refused(error.code, error.message)  # another tenant's uids: not this caller's to fence
        outcomes = [
            await self._fence(client, uids, [stake_id(client, uid) for uid in uids], BodyRefusal(error))
            for client, uids in named.items()
        ]
        return _worst(outcomes)

    # ------------------------------------------------------------------ the decision after a fence

    async def _fence(
        self, client: str, uids: list[int], ids: list[str], refusal: WalletError | None,
        items: Sequence[DebitItem] = (),
    ) -> Placement:
        """Fence every id; decide from what the core reports.

        `refusal` is the Debit's definite answer, if it had one; without one the Debit's outcome is
        unknown, and `items` is that Debit, replayed to learn whether the taken bets are this slip's.
        """
        deadline = self._calls.now() + self._fence_deadline
        try:
            fenced = await self._fence_all(client, ids, deadline)
        except WalletError as error:
            self._core_error(error, "Fence", uids)
            if errors.is_definite(error) and not isinstance(error, errors.CONFIGURATION):
                # the core refuses these ids outright (not identifiers it accepts): no Debit can ever take them
                return self._void(uids, FenceResult(()), refusal or error)
            return self._unresolved(client, uids, ids, "the wallet could not confirm the outcome of these bets")
        by_id = {r.transaction_id: r for r in fenced.results}
        if set(by_id) != set(ids):
            log.error("the core's fence answer names other ids than asked: %s", sorted(by_id))
            return self._unresolved(client, uids, ids, "the wallet's answer could not be read")
        applied = [uid for uid, i in zip(uids, ids, strict=True) if by_id[i].outcome == FenceOutcome.APPLIED]
        if not applied:
            return self._void(uids, fenced, refusal)
        if len(applied) < len(ids) or refusal is not None:
            return Conflict(
                f"bets {applied} are already taken with other content or in another slip; nothing more was taken"
            )
        # every bet is taken: by our own Debit (its answer was lost) or by other content; the Debit says which
        assert items, "a Debit of unknown outcome is replayed"
        try:
            result = await self._calls.until(deadline, lambda timeout: self._wallet.debit(items, timeout=timeout))
        except IdempotencyConflict:
            return Conflict(f"bets {uids} are already taken with other content; nothing more was taken")
        except WalletError as error:
            self._core_error(error, "Debit", uids)
            return self._unresolved(client, uids, ids,
                                    "the bets are taken but the wallet could not confirm their content")
        return self._taken(uids, result)

    async def _fence_all(self, client: str, ids: list[str], deadline: float) -> FenceResult:
        """One Fence per FENCE_CHUNK ids (a slip of more bets than one Debit may hold is fenced whole too)."""
        chunks = [ids[n:n + FENCE_CHUNK] for n in range(0, len(ids), FENCE_CHUNK)]
        results: list[FencedId] = []
        for chunk in chunks:
            def fence(timeout: float, chunk: list[str] = chunk) -> Awaitable[FenceResult]:
                return self._wallet.fence(client, chunk, reference=FENCE_REFERENCE, timeout=timeout)

            fenced = await self._calls.until(deadline, fence)
            results.extend(fenced.results)
        return FenceResult(tuple(results))

    def _void(self, uids: list[int], fenced: FenceResult, refusal: WalletError | None) -> Refused:
        """Every bet is fenced or refused: none is taken, none ever will be. The most telling code wins."""
        if isinstance(refusal, BodyRefusal):
            return Refused(refusal.error.code, refusal.error.message)
        if refusal is not None and not isinstance(refusal, errors.SEEN_BEFORE):
            return Refused(errors.bets_code(refusal), errors.message_of(refusal))
        refused = next((r for r in fenced.results if r.outcome == FenceOutcome.REFUSED), None)
        if refused is not None:
            cls = BY_REASON.get(refused.reason, WalletError)
            return Refused(errors.bets_code(cls(refused.reason)), f"the wallet refused these bets ({refused.reason})")
        if refusal is not None:  # fenced by an earlier delivery that could not be confirmed
            return Refused(errors.WALLET_UNAVAILABLE,
                           "these bets were voided earlier; nothing was taken and nothing will be")
        log.warning("the wallet did not take bets %s in time; they are fenced and will never be taken", uids)
        return Refused(
            errors.WALLET_UNAVAILABLE,
            "the wallet did not take these bets in time; nothing was taken and nothing will be",
        )

    def _taken(self, uids: Sequence[int], result: DebitResult) -> Placed:
        bets = [
            TakenBet(uid, tx.transaction_id, format_amount(tx.balance_after))
            for uid, tx in zip(uids, result.transactions, strict=False)
        ]
        return Placed(bets, result.replayed)

    def _unresolved(self, client: str, uids: list[int], ids: list[str], what: str) -> Unresolved:
        self._metrics.unresolved_bets.inc(len(ids))
        log.error(
            "UNRESOLVED bets %s of client %r: %s; answered 503 so that betflex delivers again", uids, client, what,
        )
        return Unresolved(f"{what}; deliver this callback again", ids)

    def _core_error(self, error: WalletError, call: str, uids: Sequence[int]) -> None:
        errors.note_core_error(self._metrics, error, call, f"bets {list(uids)}")


class BodyRefusal(WalletError):
    """The edge's own refusal of an unusable body, carried through the fence decision."""

    reason = "INVALID_REQUEST"

    def __init__(self, error: BodyError) -> None:
        super().__init__(error.message)
        self.error = error


def _worst(outcomes: list[Placement]) -> Placement:
    """Several clients' fences of one unusable body: unknown beats conflict beats refusal."""
    for kind in (Unresolved, Conflict):
        found = next((o for o in outcomes if isinstance(o, kind)), None)
        if found is not None:
            return found
    return outcomes[0]
