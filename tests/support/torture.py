"""Scripts of wallet calls, run by many threads (and processes), each call's final answer recorded,
and the check that the ledger equals the opening balances plus exactly what succeeded.

A script is a short story on one client's wallets: a deposit, a withdrawal, or a bet (a Debit of
one or two stakes, then a payout or a cancel of each, or nothing). Some scripts are run twice at
once by different workers: as an exact twin (a redelivery) or as a rival (same Debit, then a
Cancel where the other pays out). A call that fails on the way (UNAVAILABLE, deadline, broken
connection) is repeated with the same ids until it gets a definite answer, as a careful client
does; the records hold only definite answers, and `evaluate` checks them against the ledger.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from clients import AccountRef, DebitItem, Purpose, WalletClient
from clients.errors import DeadlineExceeded, TransportError, Unavailable, WalletError

CLIENT = "torture"
CURRENCY = "FUN"
UNCERTAIN = (Unavailable, DeadlineExceeded, TransportError)

Op = tuple[Any, ...]  # ("deposit", tid, user, minor) | ("debit", ((tid, user, minor, purpose), ...))
#                       | ("payout", pid, user, minor, stake_tid) | ("cancel", tid)
Script = list[Op]


def money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def minor_units(value: Decimal | str | None) -> int:
    assert value is not None, "the core always answers a balance here"
    return int(Decimal(value) * 100)


def ref(user: str) -> AccountRef:
    return AccountRef(CLIENT, user, CURRENCY)


# ---------------------------------------------------------------- plans


def make_plan(seed: int, users: Sequence[str], slots: int, scripts_per_slot: int, *, twins: float = 0.3,
              prefix: str = "") -> list[list[Script]]:
    """For each worker slot, its scripts; twins and rivals land on another slot (another process when
    slots are laid out process by process)."""
    rng = random.Random(seed)
    plan: list[list[Script]] = [[] for _ in range(slots)]
    counter = 0

    def new_id(kind: str) -> str:
        nonlocal counter
        counter += 1
        return f"{prefix}{kind}-{seed}-{counter}"

    for n in range(slots * scripts_per_slot):
        slot = n % slots
        kind = rng.choices(["deposit", "withdraw", "bet"], weights=[2, 1, 5])[0]
        rival: Script | None = None
        if kind == "deposit":
            script: Script = [("deposit", new_id("dep"), rng.choice(users), rng.randint(1, 3000))]
        elif kind == "withdraw":
            script = [("debit", ((new_id("wd"), rng.choice(users), rng.randint(1, 3000), "WITHDRAWAL"),))]
        else:
            items = tuple((new_id("bet"), u, rng.randint(1, 4000), "STAKE")
                          for u in rng.sample(list(users), rng.choice([1, 1, 2])))
            script, rival = [("debit", items)], [("debit", items)]
            for tid, user, amount, _ in items:
                ending = rng.choice(["payout", "payout", "cancel", "open"])
                payout: Op = ("payout", new_id("pay"), user, rng.randint(0, 2 * amount), tid)
                if ending == "payout":
                    script.append(payout)
                    rival.append(("cancel", tid))
                elif ending == "cancel":
                    script.append(("cancel", tid))
                    rival.append(payout)
        plan[slot].append(script)
        if rng.random() < twins:
            other = (slot + 1 + rng.randrange(max(slots - 1, 1))) % slots if slots > 1 else slot
            plan[other].append(list(rival) if rival is not None and rng.random() < 0.5 else list(script))
    for scripts in plan:
        rng.shuffle(scripts)
    return plan


# ---------------------------------------------------------------- running


@dataclass
class Record:
    op: Op
    answer: str  # "ok", or the error's reason
    outcome: str = ""  # Cancel: REVERSED / TOMBSTONED / NOT_APPLIED
    balances: list[int] = field(default_factory=list)  # balance_after of each transaction, minor units
    http_status: int = 0


@dataclass
class Run:
    records: list[Record] = field(default_factory=list)
    calls: int = 0
    retries: int = 0
    gave_up: list[Op] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def merge(self, other: Run) -> None:
        with self.lock:
            self.records.extend(other.records)
            self.calls += other.calls
            self.retries += other.retries
            self.gave_up.extend(other.gave_up)


def _call(client: WalletClient, op: Op) -> Record:
    kind = op[0]
    if kind == "deposit":
        _, tid, user, amount = op
        result = client.deposit(tid, ref(user), money(amount))
        return Record(op, "ok", balances=[minor_units(result.transaction.balance_after)])
    if kind == "debit":
        items = [DebitItem(tid, ref(user), money(amount), Purpose[purpose], "torture")
                 for tid, user, amount, purpose in op[1]]
        debit = client.debit(items)
        return Record(op, "ok", balances=[minor_units(t.balance_after) for t in debit.transactions])
    if kind == "payout":
        _, pid, user, amount, stake = op
        credit = client.payout(pid, ref(user), money(amount), stake)
        return Record(op, "ok", balances=[minor_units(credit.transaction.balance_after)])
    cancel = client.cancel(CLIENT, op[1])
    return Record(op, "ok", outcome=cancel.outcome.name)


def run_op(client: WalletClient, op: Op, run: Run, *, give_up_after: float) -> None:
    """One call, repeated with the same ids while its outcome is unknown (bounded by `give_up_after`)."""
    end = time.monotonic() + give_up_after
    pause = 0.02
    while True:
        run.calls += 1
        try:
            record = _call(client, op)
        except UNCERTAIN:
            if time.monotonic() > end:
                run.gave_up.append(op)
                return
            run.retries += 1
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
            continue
        except WalletError as error:
            record = Record(op, error.reason)
        run.records.append(record)
        return


def run_scripts(make_client: Callable[[], WalletClient], scripts_per_thread: Sequence[Sequence[Script]], *,
                give_up_after: float = 60.0, stop: threading.Event | None = None) -> Run:
    """Each thread runs its scripts in order; the threads start together. With `stop`, a thread
    starts no new script once it is set (a script begun is always finished)."""
    total = Run()
    barrier = threading.Barrier(len(scripts_per_thread))

    def worker(scripts: Sequence[Script]) -> None:
        run = Run()
        with make_client() as client:
            barrier.wait(timeout=60)
            for script in scripts:
                if stop is not None and stop.is_set():
                    break
                for op in script:
                    run_op(client, op, run, give_up_after=give_up_after)
        total.merge(run)

    with ThreadPoolExecutor(len(scripts_per_thread)) as pool:
        for future in [pool.submit(worker, s) for s in scripts_per_thread]:
            future.result(timeout=give_up_after * 20)
    return total


def process_worker(target: str, token: str, scripts_per_thread: list[list[Script]], give_up_after: float) -> Run:
    """Entry point of a worker process (multiprocessing, spawn): a Run without its lock, to pickle."""
    run = run_scripts(lambda: WalletClient(target, token=token, timeout=10, max_attempts=1), scripts_per_thread,
                      give_up_after=give_up_after)
    run.lock = None  # type: ignore[assignment]
    return run


# ---------------------------------------------------------------- checking


def evaluate(records: Iterable[Record], opening: dict[str, int], balances: dict[str, int]) -> list[str]:
    """Violations: answers that disagree about one id, money counted twice or lost, a stake both paid
    and cancelled, a negative balance seen by a caller, a wallet that is not opening + what succeeded."""
    violations: list[str] = []
    by_key: dict[tuple[Any, ...], list[Record]] = defaultdict(list)
    for record in records:
        by_key[(record.op[0], record.op[1])].append(record)
        if any(b < 0 for b in record.balances):
            violations.append(f"{record.op}: a balance below zero was reported: {record.balances}")

    expected = dict(opening)
    stake_amount: dict[str, tuple[str, int]] = {}
    debited: set[str] = set()
    paid: set[str] = set()
    reversed_: set[str] = set()
    for (kind, key), group in by_key.items():
        answers = Counter((r.answer, r.outcome if kind != "cancel" else "") for r in group)
        if kind != "cancel" and len(answers) > 1:
            violations.append(f"{kind} {key}: one call, different answers {dict(answers)}")
        first = group[0]
        if kind != "cancel" and len({tuple(r.balances) for r in group}) > 1:
            violations.append(f"{kind} {key}: a replay answered other balances {[r.balances for r in group]}")
        if kind == "deposit" and first.answer == "ok":
            expected[first.op[2]] += first.op[3]
        elif kind == "debit":
            for tid, user, amount, purpose in first.op[1]:
                if purpose == "STAKE":
                    stake_amount[tid] = (user, amount)
                if first.answer == "ok":
                    expected[user] -= amount
                    debited.add(tid)
        elif kind == "payout" and first.answer == "ok":
            expected[first.op[2]] += first.op[3]
            paid.add(first.op[4])
        elif kind == "cancel":
            outcomes = {r.outcome for r in group if r.answer == "ok"}
            if "REVERSED" in outcomes:
                reversed_.add(key)
            if "REVERSED" in outcomes and (outcomes - {"REVERSED"}):
                violations.append(f"cancel {key}: answered both REVERSED and {outcomes - {'REVERSED'}}")
    for tid in reversed_:
        if tid not in debited:
            violations.append(f"cancel {tid} REVERSED a stake whose debit was never taken")
            continue
        user, amount = stake_amount[tid]
        expected[user] += amount
    for tid in paid & reversed_:
        violations.append(f"stake {tid} was both paid out and cancelled")
    for user, value in sorted(expected.items()):
        if balances.get(user) != value:
            violations.append(f"wallet {user}: ledger {balances.get(user)}, opening + what succeeded = {value}")
        if balances.get(user, 0) < 0:
            violations.append(f"wallet {user} is below zero: {balances.get(user)}")
    return violations


class LowestBalance:
    """Watches the lowest user balance in the database while a run goes on (no wallet below zero, ever)."""

    def __init__(self, engine: Any, interval: float = 0.02) -> None:
        from sqlalchemy import text

        self._engine = engine
        self._query = text("SELECT min(balance) FROM accounts WHERE kind = 'user'")
        self._interval = interval
        self._stop = threading.Event()
        self.lowest: int | None = None
        self.samples = 0
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                with self._engine.connect() as conn:
                    value = conn.execute(self._query).scalar()
                if value is not None:
                    self.samples += 1
                    self.lowest = value if self.lowest is None else min(self.lowest, value)
            except Exception:  # noqa: BLE001 - the database may be down on purpose
                pass
            self._stop.wait(self._interval)

    def __enter__(self) -> LowestBalance:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def all_or_nothing(engine: Any, records: Iterable[Record]) -> list[str]:
    """Violations: a Debit of several items whose transactions are not all in one state (half applied)."""
    from sqlalchemy import select

    from wallet_core.storage.schema import transactions

    groups = {tuple(tid for tid, *_ in r.op[1]) for r in records if r.op[0] == "debit" and len(r.op[1]) > 1}
    if not groups:
        return []
    with engine.connect() as conn:
        rows = conn.execute(select(transactions.c.transaction_id, transactions.c.status).where(
            transactions.c.client == CLIENT, transactions.c.purpose == "stake")).all()
    status = dict(rows)
    return [f"debit {ids}: items in states {[status.get(t) for t in ids]}" for ids in groups
            if len({status.get(t) for t in ids}) != 1]
