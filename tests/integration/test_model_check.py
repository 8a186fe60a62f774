"""Model check (issue 6.1): random sequences of calls against the real core over gRPC and against a
plain in-memory model of the same rules (tests/support/model.py); after every step the answers,
the balances and the ledger invariants must agree.

Steps: deposits, stakes, multi-item debits, payouts (including 0), cancels, tombstones, unsettles
and resettles under both clawback policies (with player debt paid off by later credits), exact
replays of earlier calls, conflicting reuses of ids, and concurrent pairs (two calls at once,
whose answers must match one of the two serial orders). Short by default; `--long` runs many
more and longer sequences and prints the figures.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from clients import AccountRef, ClawbackPolicy, DebitItem, Purpose, WalletClient
from clients.errors import WalletError
from tests.support.db import assert_reconciled
from tests.support.model import Model, Result
from tests.support.servers import TOKENS, Core

USERS = ("u1", "u2", "u3")
AMOUNTS = st.integers(min_value=0, max_value=5000)  # minor units of EUR
STATS = {"examples": 0, "steps": 0, "calls": 0, "concurrent_pairs": 0}


def money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def minor(value: Decimal | None) -> int:
    assert value is not None, "the core always answers a balance here"
    return int(value * 100)


def model_check(core: Core, *, examples: int, steps: int) -> None:
    client = WalletClient(core.target, token=TOKENS["admin"], timeout=20)

    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.ns = uuid.uuid4().hex[:8]  # each example gets its own client: no cross-talk
            self.client_name = f"mc-{self.ns}"
            self.model = Model(USERS)
            self.ids = itertools.count()
            self.used: list[str] = []
            self.stake_ids: list[str] = []
            self.history: list[Callable[[], tuple[Result, Result]]] = []
            STATS["examples"] += 1

        def ref(self, user: str) -> AccountRef:
            return AccountRef(self.client_name, user, "EUR")

        def new_id(self) -> str:
            tid = f"t{next(self.ids)}"
            self.used.append(tid)
            return tid

        @initialize()
        def open_wallets(self) -> None:
            for user in USERS:
                client.open_account(self.ref(user))

        # ---- how one call runs on the core and on the model

        def call(self, kind: str, args: tuple[Any, ...]) -> tuple[Callable[[], Result], Callable[[Model], Result]]:
            if kind == "deposit":
                tid, user, amount = args
                return (lambda: self.real(lambda: minor(client.deposit(tid, self.ref(user), money(amount))
                                                        .transaction.balance_after)),
                        lambda m: m.deposit(tid, user, amount))
            if kind == "debit":
                items = args
                return (lambda: self.real(lambda: minor(client.debit([
                    DebitItem(t, self.ref(u), money(a), Purpose.STAKE, "pool") for t, u, a in items
                ]).transactions[-1].balance_after)), lambda m: m.debit(list(items)))
            if kind == "payout":
                tid, user, amount, stake_id = args
                return (lambda: self.real(lambda: minor(client.payout(tid, self.ref(user), money(amount), stake_id)
                                                        .transaction.balance_after)),
                        lambda m: m.payout(tid, user, amount, stake_id))
            if kind == "correct":
                tid, stake_id, new_payout, policy = args
                clawback = ClawbackPolicy(policy)
                if new_payout is None:
                    return (lambda: self.real(lambda: minor(client.unsettle(
                        self.client_name, tid, stake_id, clawback=clawback).transaction.balance_after)),
                        lambda m: m.correct(tid, stake_id, None, policy))
                return (lambda: self.real(lambda: minor(client.resettle(
                    self.client_name, tid, stake_id, money(new_payout), clawback=clawback).transaction.balance_after)),
                    lambda m: m.correct(tid, stake_id, new_payout, policy))
            tid = args[0]
            return (lambda: self.real(lambda: client.cancel(self.client_name, tid).outcome.value),
                    lambda m: m.cancel(tid))

        def real(self, fn: Callable[[], object]) -> Result:
            STATS["calls"] += 1
            try:
                return ("ok", fn())
            except WalletError as exc:
                return ("error", exc.reason)

        def step(self, kind: str, args: tuple[Any, ...]) -> None:
            STATS["steps"] += 1
            real, modelled = self.call(kind, args)
            got, expected = real(), modelled(self.model)
            assert got == expected, f"{kind}{args}: core answered {got}, the model {expected}"
            self.history.append(lambda: (real(), modelled(self.model)))

        # ---- rules

        @rule(user=st.sampled_from(USERS), amount=AMOUNTS)
        def deposit(self, user: str, amount: int) -> None:
            self.step("deposit", (self.new_id(), user, amount))

        @rule(data=st.data(), n=st.integers(1, 3))
        def stake(self, data: st.DataObject, n: int) -> None:
            items = tuple((self.new_id(), data.draw(st.sampled_from(USERS)), data.draw(AMOUNTS)) for _ in range(n))
            self.stake_ids.extend(t for t, _, _ in items)
            self.step("debit", items)

        @rule(data=st.data(), amount=AMOUNTS)
        def payout(self, data: st.DataObject, amount: int) -> None:
            if not self.stake_ids:
                return
            stake_id = data.draw(st.sampled_from(self.stake_ids))
            owner = self.model.stakes[stake_id].user if stake_id in self.model.stakes else USERS[0]
            user = data.draw(st.sampled_from([owner, owner, *USERS]))  # mostly the right wallet
            self.step("payout", (self.new_id(), user, amount, stake_id))

        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            known = self.stake_ids + self.used
            tid = data.draw(st.sampled_from(known)) if bool(known) and data.draw(st.booleans()) else self.new_id()
            self.step("cancel", (tid,))

        @rule(data=st.data(), policy=st.sampled_from(["refuse", "debt"]))
        def unsettle(self, data: st.DataObject, policy: str) -> None:
            """Reverse a settlement: the payout clawed back (refused or partly as debt), the stake open again."""
            if self.stake_ids:
                self.step("correct", (self.new_id(), data.draw(st.sampled_from(self.stake_ids)), None, policy))

        @rule(data=st.data(), amount=AMOUNTS, policy=st.sampled_from(["refuse", "debt"]))
        def resettle(self, data: st.DataObject, amount: int, policy: str) -> None:
            """Replace a settlement's payout, atomically."""
            if self.stake_ids:
                self.step("correct", (self.new_id(), data.draw(st.sampled_from(self.stake_ids)), amount, policy))

        @rule(data=st.data())
        def replay(self, data: st.DataObject) -> None:
            """Repeat an earlier call exactly; the core must give the model's (first) answer."""
            if self.history:
                got, expected = data.draw(st.sampled_from(self.history))()
                STATS["steps"] += 1
                assert got == expected, f"replay: core answered {got}, the model {expected}"

        @rule(data=st.data(), amount=AMOUNTS, user=st.sampled_from(USERS))
        def reuse_id(self, data: st.DataObject, amount: int, user: str) -> None:
            """Use an id already taken for something else (usually a conflict)."""
            if self.used:
                tid = data.draw(st.sampled_from(self.used))
                kind = data.draw(st.sampled_from(["deposit", "debit"]))
                self.step(kind, (tid, user, amount) if kind == "deposit" else ((tid, user, amount),))

        @rule(data=st.data())
        def concurrent_pair(self, data: st.DataObject) -> None:
            """Two calls at once: the answers must be those of one of the two serial orders."""
            calls = []
            for _ in range(2):
                kind = data.draw(st.sampled_from(["deposit", "debit", "cancel", "payout"]))
                user, amount = data.draw(st.sampled_from(USERS)), data.draw(AMOUNTS)
                if kind == "deposit":
                    args: tuple[Any, ...] = (self.new_id(), user, amount)
                elif kind == "debit":
                    args = ((self.new_id(), user, amount),)
                    self.stake_ids.append(args[0][0])
                elif kind == "payout" and self.stake_ids:
                    stake_id = data.draw(st.sampled_from(self.stake_ids))
                    owner = self.model.stakes[stake_id].user if stake_id in self.model.stakes else user
                    args = (self.new_id(), owner, amount, stake_id)
                else:
                    kind = "cancel"
                    args = (data.draw(st.sampled_from(self.stake_ids)) if self.stake_ids else self.new_id(),)
                calls.append(self.call(kind, args))
            results: list[Result | None] = [None, None]
            barrier = threading.Barrier(2)

            def run(i: int) -> None:
                barrier.wait()
                results[i] = calls[i][0]()

            threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            STATS["steps"] += 1
            STATS["concurrent_pairs"] += 1
            for order in ((0, 1), (1, 0)):
                candidate = self.model.copy()
                expected: list[object] = [None, None]
                for i in order:
                    expected[i] = calls[i][1](candidate)
                if expected == results:
                    self.model = candidate
                    return
            raise AssertionError(f"concurrent pair answered {results}, matching neither serial order")

        # ---- after every step

        @invariant()
        def balances_agree(self) -> None:
            for user in USERS:
                got = minor(client.get_balance(self.ref(user)).balance)
                assert got == self.model.balances[user], f"{user}: core {got}, model {self.model.balances[user]}"

        @invariant()
        def debts_agree(self) -> None:
            receivable = [b.balance for b in client.system_balances(self.client_name) if b.kind == "receivable"]
            assert [-minor(b) for b in receivable] == [self.model.total_debt()]

        @invariant()
        def ledger_invariants_hold(self) -> None:
            assert_reconciled(core.engine)

    try:
        run_state_machine_as_test(
            LedgerMachine,
            settings=settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                              suppress_health_check=list(HealthCheck)),
        )
    finally:
        client.close()


def test_core_agrees_with_the_model(core: Core, long_mode: bool) -> None:
    before = dict(STATS)
    model_check(core, examples=150 if long_mode else 8, steps=60 if long_mode else 25)
    if long_mode:
        print("\nmodel check: " + ", ".join(f"{k} {STATS[k] - before[k]}" for k in STATS))
