"""The simulated way from the edge to the core: the real gRPC adapter and the real client conversions,
with a network and a database whose faults a seed decides.

A call travels as it would over gRPC: the client's request message (clients._convert) goes to
the real `WalletService` method (auth, conversion, the Ledger, the one error→status table); its
response message or status comes back through the client's own parsing (`from_rpc_error`). In
between, the `Faults` of the scenario may:

- refuse the connection (the core is down, or a refused connect): nothing reaches the core;
- lose the request on the way: nothing reaches the core, the caller times out;
- delay the request past the caller's deadline: it is applied late, after the caller gave up;
- stall the database: the call waits for the stall to end, and may be applied after the deadline;
- lose the answer after the commit, or break the connection after it: applied, caller never told;
- kill the core while the call waits: never applied.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import grpc

from clients import (
    Account,
    AccountRef,
    CreditResult,
    DebitItem,
    DebitResult,
    FenceResult,
    Purpose,
    SettleItem,
    SettleResult,
)
from clients import _convert as c
from clients.errors import DeadlineExceeded, Unavailable, WalletError, from_rpc_error
from wallet_core.grpc_api.auth import Authenticator, parse_token_spec
from wallet_core.grpc_api.service import WalletService
from wallet_core.service import Ledger

T = TypeVar("T")
TOKEN = "sim-edge-token"
# which delivery a core call belongs to: faults are drawn per (delivery, call), so that removing one
# slip while shrinking does not change the faults another slip meets
DELIVERY: contextvars.ContextVar[str] = contextvars.ContextVar("delivery", default="-")

FAULT_KINDS = ("refuse", "lose_request", "delay", "lose_answer", "reset_after_commit")


@dataclass(frozen=True)
class Window:
    start: float
    end: float

    def covers(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass
class Faults:
    """What the seed decided for the network and the database."""

    seed: int
    rate: float  # probability that one call meets a random fault
    down: list[Window] = field(default_factory=list)  # the core is down: connects refused, calls in flight lost
    stalls: list[Window] = field(default_factory=list)  # the database holds every write until the window ends
    overrides: frozenset[str] = frozenset()  # call keys forced fault-free (set while shrinking)
    quiet: bool = False  # no fault at all (the convergence phase)
    counts: dict[str, int] = field(default_factory=dict)

    def draw(self, key: str) -> tuple[str, float, float]:
        """(fault kind or "ok", latency there, latency back) for the call `key`, from the seed alone."""
        rng = random.Random(f"{self.seed}:{key}")
        there, back = rng.uniform(0.0005, 0.01), rng.uniform(0.0005, 0.01)
        if self.quiet or key in self.overrides or rng.random() >= self.rate:
            return "ok", there, back
        kind = rng.choice(FAULT_KINDS)
        if kind == "delay":
            there += rng.uniform(0.5, 6.0)
        return kind, there, back

    def down_at(self, t: float) -> bool:
        return not self.quiet and any(w.covers(t) for w in self.down)

    def stall_end(self, t: float) -> float | None:
        if self.quiet:
            return None
        ends = [w.end for w in self.stalls if w.covers(t)]
        return max(ends) if ends else None

    def count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1


class Aborted(Exception):
    def __init__(self, status: grpc.Status | _Status) -> None:
        super().__init__(status.details)
        self.status = status


class _Context:
    """The part of grpc.ServicerContext the service uses."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {TOKEN}"),)

    async def abort_with_status(self, status: grpc.Status | _Status) -> None:
        raise Aborted(status)

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(_Status(code, details, ()))


async def _inline(work: Callable[[], T]) -> T:
    """The service's blocking Ledger calls, run at once: the simulation's loop is virtual and has no threads."""
    return work()


@dataclass(frozen=True)
class _Status:
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, bytes], ...]


class _RpcError(grpc.RpcError):
    """A failed call as the client library sees it."""

    def __init__(self, status: grpc.Status | _Status) -> None:
        self._status = status

    def code(self) -> grpc.StatusCode:
        return self._status.code

    def details(self) -> str:
        return self._status.details

    def trailing_metadata(self) -> Any:
        return self._status.trailing_metadata


class SimCore:
    """The edge's `WalletPort`, through the simulated network to the real service and ledger."""

    def __init__(self, ledger: Ledger, faults: Faults, trace: Callable[[str], None], clients: str = "fanteam") -> None:
        auth = Authenticator(parse_token_spec(f"{TOKEN}={clients}"))
        self._service = WalletService(ledger, auth, run_blocking=_inline)
        self._faults = faults
        self._trace = trace
        self._calls: dict[str, int] = {}
        self.in_flight: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ WalletPort

    async def debit(self, items: Sequence[DebitItem], *, timeout: float | None = None) -> DebitResult:
        return await self._rpc(c.debit(items), timeout)

    async def fence(
        self, client: str, transaction_ids: Sequence[str], *, reference: str = "", timeout: float | None = None
    ) -> FenceResult:
        return await self._rpc(c.fence(client, transaction_ids, reference), timeout)

    async def credit(
        self, transaction_id: str, account: AccountRef, amount: str | Decimal | int, purpose: Purpose, *,
        settles_transaction_id: str = "", reference: str = "", timeout: float | None = None,
    ) -> CreditResult:
        spec = c.credit(transaction_id, account, amount, purpose, settles_transaction_id, reference)
        return await self._rpc(spec, timeout)

    async def settle_batch(self, items: Sequence[SettleItem], *, timeout: float | None = None) -> list[SettleResult]:
        return await self._rpc(c.settle_batch(items), timeout)

    async def resettle(
        self, client: str, transaction_id: str, settles_transaction_id: str, amount: str | Decimal | int, *,
        reason: str = "", reference: str = "", timeout: float | None = None,
    ) -> Any:
        spec = c.resettle(client, transaction_id, settles_transaction_id, amount, reason, reference, None)
        return await self._rpc(spec, timeout)

    async def get_balance(self, account: AccountRef, *, timeout: float | None = None) -> Account:
        return await self._rpc(c.get_balance(account), timeout)

    async def serving(self, *, timeout: float | None = None) -> bool:
        """The simulation faults the calls, not the database: the core always reaches its ledger."""
        return True

    async def cancel(
        self, client: str, transaction_id: str, *, reference: str = "", timeout: float | None = None,
    ) -> Any:
        """Only the pre-fix edge (tests/sim/legacy.py) calls this: the new edge never reverses a stake."""
        return await self._rpc(c.cancel(client, transaction_id, reference), timeout)

    # ------------------------------------------------------------------ the network

    async def _rpc(self, spec: c.Spec[T], timeout: float | None) -> T:
        method, request = spec.method, spec.request
        loop = asyncio.get_running_loop()
        delivery = DELIVERY.get()
        n = self._calls[f"{delivery}:{method}"] = self._calls.get(f"{delivery}:{method}", 0) + 1
        key = f"{delivery}:{method}:{n}"
        kind, there, back = self._faults.draw(key)
        if kind != "ok":
            self._faults.count(kind)
            self._trace(f"{key} sent (fault: {kind})")
        if kind == "refuse" or self._faults.down_at(loop.time()):
            self._trace(f"{key} connect refused{'' if kind == 'refuse' else ' (core down)'}")
            await asyncio.sleep(0.001)
            raise Unavailable("failed to connect to all addresses", code=grpc.StatusCode.UNAVAILABLE,
                              connect_failed=True)
        answer: asyncio.Future[tuple[str, Any]] = loop.create_future()
        task = loop.create_task(self._serve(key, kind, method, request, there, back, answer))
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)
        try:
            outcome, value = await asyncio.wait_for(asyncio.shield(answer), timeout)
        except TimeoutError:
            self._trace(f"{key} deadline exceeded after {timeout:g} s")
            raise DeadlineExceeded("Deadline Exceeded", code=grpc.StatusCode.DEADLINE_EXCEEDED) from None
        if outcome == "reset":
            raise Unavailable("Socket closed", code=grpc.StatusCode.UNAVAILABLE)
        if outcome == "error":
            error: WalletError = from_rpc_error(_RpcError(value))
            raise error
        return spec.parse(value)

    async def _serve(
        self, key: str, kind: str, method: str, request: Any, there: float, back: float,
        answer: asyncio.Future[tuple[str, Any]],
    ) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(there)
        if kind == "lose_request" or self._faults.down_at(loop.time()):
            self._trace(f"{key} request lost" + ("" if kind == "lose_request" else " (core down)"))
            return
        while (end := self._faults.stall_end(loop.time())) is not None:
            await asyncio.sleep(end - loop.time() + 0.001)
            if self._faults.down_at(loop.time()):
                self._trace(f"{key} core killed while the call waited: not applied")
                return
        try:
            outcome: tuple[str, Any] = ("ok", await getattr(self._service, method)(request, _Context()))
        except Aborted as aborted:
            outcome = ("error", aborted.status)
        detail = "" if outcome[0] == "ok" else " " + str(outcome[1].details)[:90]
        self._trace(f"{key} applied at the core: {outcome[0]}{detail}")
        await asyncio.sleep(back)
        if kind == "lose_answer" or self._faults.down_at(loop.time()):
            self._trace(f"{key} answer lost after the commit")
            return
        if answer.done():
            return
        answer.set_result(("reset", None) if kind == "reset_after_commit" else outcome)
