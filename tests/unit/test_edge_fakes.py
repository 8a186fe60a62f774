"""A unit-test double of `clients.AsyncWalletClient` for the edge's tests, and the helpers they share.

The double answers from a script (one entry per call: a result, an error to raise, or
"hang"), records every call, and keeps just enough state to replay like the core: a Debit
whose ids were cancelled returns its stakes as CANCELLED. End-to-end tests with a real core
and real sockets live elsewhere; this file only stands in for the network client.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import falcon.testing
import pytest
from prometheus_client.parser import text_string_to_metric_families

from clients import CancelOutcome, StakeState
from clients.errors import DeadlineExceeded, Unavailable, WalletError
from edge_http.app import create_app
from edge_http.config import EdgeSettings

# The two bodies of ../shared/betflex/examples/ (checked against the files when they are there).
EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "betflex" / "examples"
BETS_EXAMPLE: dict[str, Any] = {
    "bets": [
        {
            "user": {"client": "fanteam", "uid": 1001, "ip": "203.0.113.7"},
            "pool": {"client": "fanteam", "currency": "EUR", "game": "betflex", "uid": 550001, "overdraw": "37.50"},
            "bet": {"uid": 9000001, "amount": "15.00"},
        }
    ]
}
WINNERS_EXAMPLE: dict[str, Any] = {
    "pools": [
        {
            "pool": {"client": "fanteam", "game": "betflex", "uid": 550001, "currency": "EUR",
                     "overdraw": "37.50", "cost": "15.00", "guaranteed": True},
            "bets": [
                {
                    "user": {"client": "fanteam", "uid": "1001", "name": "alice"},
                    "bet": {"uid": 9000001, "currency": "EUR", "amount": "15.00", "odds": 2.5, "rake": 0,
                            "payout": "37.50", "base_payout": 37.5, "result": "won",
                            "extra": {"selections": [{"event": "A v B", "market": "1X2", "pick": "1"}]}},
                }
            ],
        }
    ]
}
TOKEN = "s3cret-betflex-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def example(name: str) -> dict[str, Any]:
    """A fresh copy of betflex's example body ("bets" or "winners")."""
    return copy.deepcopy({"bets": BETS_EXAMPLE, "winners": WINNERS_EXAMPLE}[name])


def error(cls: type[WalletError], message: str = "refused", **attributes: Any) -> WalletError:
    """An instance of a client error class, whatever its constructor wants."""
    try:
        instance = cls(message, **attributes)
    except TypeError:
        try:
            instance = cls(message)
        except TypeError:
            instance = cls.__new__(cls)
            Exception.__init__(instance, message)
    for name, value in {"message": message, **attributes}.items():
        try:
            setattr(instance, name, value)
        except AttributeError:
            pass
    return instance


def unavailable(connect_failed: bool) -> WalletError:
    return error(Unavailable, "unavailable", connect_failed=connect_failed)


def deadline() -> WalletError:
    return error(DeadlineExceeded, "deadline exceeded")


Outcome = Any  # a result object, an exception to raise, "hang", "hang-forever", or a callable() -> Outcome


class FakeWallet:
    """Scripted stand-in for AsyncWalletClient: `debits`, `credits`, `cancels` record the calls."""

    def __init__(self) -> None:
        self.debit_script: list[Outcome] = []
        self.credit_script: dict[str, list[Outcome]] = {}
        self.cancel_script: dict[str, list[Outcome]] = {}
        self.balance_script: list[Outcome] = []
        self.debits: list[SimpleNamespace] = []
        self.credits: list[SimpleNamespace] = []
        self.cancels: list[SimpleNamespace] = []
        self.cancelled: set[str] = set()
        self.balance_after = Decimal("85.00")
        self.closed = 0

    async def _play(self, outcome: Outcome, timeout: float | None, default: Callable[[], Any]) -> Any:
        if callable(outcome) and not isinstance(outcome, type):
            outcome = outcome()
        if outcome == "hang":  # a well-behaved client: gives up at its timeout
            await asyncio.sleep(timeout or 0)
            raise deadline()
        if outcome == "hang-forever":  # a client that ignores its timeout
            await asyncio.sleep(3600)
        if isinstance(outcome, BaseException):
            raise outcome
        return default() if outcome is None else outcome

    async def debit(self, items: Iterable[Any], *, timeout: float | None = None) -> Any:
        items = list(items)
        self.debits.append(SimpleNamespace(items=items, timeout=timeout))
        outcome = self.debit_script.pop(0) if self.debit_script else None

        def taken() -> Any:
            state = StakeState.CANCELLED if any(i.transaction_id in self.cancelled for i in items) else StakeState.OPEN
            return SimpleNamespace(
                transactions=[
                    SimpleNamespace(transaction_id=i.transaction_id, balance_after=self.balance_after, stake_state=state)
                    for i in items
                ],
                replayed=False,
            )

        return await self._play(outcome, timeout, taken)

    async def credit(self, transaction_id: str, account: Any, amount: str, purpose: Any, *,
                     settles_transaction_id: str = "", reference: str = "", timeout: float | None = None) -> Any:
        self.credits.append(SimpleNamespace(
            transaction_id=transaction_id, account=account, amount=amount, purpose=purpose,
            settles_transaction_id=settles_transaction_id, reference=reference, timeout=timeout,
        ))
        script = self.credit_script.get(transaction_id, [])
        outcome = script.pop(0) if script else None
        return await self._play(outcome, timeout, lambda: SimpleNamespace(
            transaction=SimpleNamespace(transaction_id=transaction_id, balance_after=Decimal("122.50")), replayed=False,
        ))

    async def cancel(self, client: str, transaction_id: str, reference: str = "", *, timeout: float | None = None) -> Any:
        self.cancels.append(SimpleNamespace(client=client, transaction_id=transaction_id, reference=reference, timeout=timeout))
        script = self.cancel_script.get(transaction_id, [])
        outcome = script.pop(0) if script else None
        result = await self._play(
            outcome, timeout, lambda: SimpleNamespace(outcome=CancelOutcome.TOMBSTONED, transaction=None, replayed=False)
        )
        self.cancelled.add(transaction_id)
        return result

    async def get_balance(self, account: Any, *, timeout: float | None = None) -> Any:
        outcome = self.balance_script.pop(0) if self.balance_script else None
        return await self._play(outcome, timeout, lambda: SimpleNamespace(balance=Decimal("0")))

    async def close(self) -> None:
        self.closed += 1


def metric(client: falcon.testing.TestClient, name: str, **labels: str) -> float:
    """The value of one sample of the app's /metrics (0 when absent)."""
    for family in text_string_to_metric_families(client.simulate_get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def settings(**overrides: Any) -> EdgeSettings:
    values: dict[str, Any] = {
        "edge_tokens": TOKEN,
        "edge_bets_deadline": 0.3,
        "edge_core_attempt_timeout": 0.1,
        "edge_cancel_deadline": 0.3,
        "edge_winners_deadline": 0.3,
    }
    values.update(overrides)
    return EdgeSettings(**values)


@pytest.fixture
def wallet() -> FakeWallet:
    return FakeWallet()


@pytest.fixture
def client(wallet: FakeWallet) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(settings(), wallet=wallet))


def test_the_double_replays_cancelled_stakes_as_cancelled(wallet: FakeWallet) -> None:
    async def scenario() -> Any:
        item = SimpleNamespace(transaction_id="t1")
        await wallet.cancel("fanteam", "t1")
        return await wallet.debit([item])

    result = asyncio.run(scenario())
    assert result.transactions[0].stake_state == StakeState.CANCELLED


@pytest.mark.parametrize("name", ["bets", "winners"])
def test_the_embedded_examples_are_betflex_examples(name: str) -> None:
    path = EXAMPLES / f"{name}.json"
    if not path.exists():
        pytest.skip(f"{path} is not there (outside the development workspace)")
    assert json.loads(path.read_text()) == example(name)
