"""Run one seeded scenario: betflex, the real edge logic, the simulated network, the real ledger rules.

    python -m tests.sim.runner --seed 42            # replay one seed, print its trace
    python -m tests.sim.runner --seeds 0:2000       # many seeds, a line of figures
    python -m tests.sim.runner --seeds 0:200 --legacy   # the pre-fix edge: which seeds it fails

A run is a pure function of its scenario: the same seed gives the same trace, byte for byte.
A failing scenario is shrunk (slips removed, then faults switched off one at a time, as long as
it still fails) and printed with its trace.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge_http.betflex import stake_id
from edge_http.metrics import EdgeMetrics
from edge_http.placement import BetPlacer, http_status
from edge_http.retry import CallPolicy
from tests.sim import vloop
from tests.sim.ledgers import MemoryLedger, SqlLedger, sim_clock
from tests.sim.legacy import LegacyBetPlacer
from tests.sim.network import DELIVERY, SimCore
from tests.sim.oracle import Answer, Oracle
from tests.sim.workload import CLIENT, Scenario, Slip, generate
from wallet_core.currencies import CurrencyRegistry
from wallet_core.domain import AccountKey, CreditCommand, Purpose
from wallet_core.errors import WalletError

CURRENCIES = CurrencyRegistry()
METRICS = EdgeMetrics()
QUIESCENCE = 30.0  # simulated seconds after the last fault window for every late call to land
CONVERGENCE_ROUNDS = 3
CALL_KEY = re.compile(r"s\d+d\d+:\w+:\d+")


@dataclass
class Result:
    seed: int
    violations: list[str]
    trace: list[str]
    answers: Counter[int] = field(default_factory=Counter)
    deliveries: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    simulated_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations


LedgerFactory = Callable[[Callable[[], float]], Any]


def memory_ledger(now: Callable[[], float]) -> MemoryLedger:
    return MemoryLedger(CURRENCIES, sim_clock(now))


def sqlite_ledger(template: Path, directory: Path) -> LedgerFactory:
    """A factory of real Ledgers, each on a fresh copy of a migrated SQLite file in `directory`."""
    import shutil

    from wallet_core.storage.engine import make_engine

    counter = iter(range(10**9))

    def make(now: Callable[[], float]) -> SqlLedger:
        path = directory / f"sim-{next(counter)}.db"
        shutil.copyfile(template, path)
        return SqlLedger(make_engine(f"sqlite:///{path}", pool_size=1), CURRENCIES, sim_clock(now))

    return make


async def _simulate(scenario: Scenario, make_ledger: LedgerFactory, legacy: bool, result: Result) -> None:
    loop = asyncio.get_running_loop()
    trace = result.trace

    def note(line: str) -> None:
        trace.append(f"t={loop.time():9.3f} {line}")

    ledger = make_ledger(loop.time)
    for user, deposit in sorted(scenario.deposits.items()):
        key = AccountKey(CLIENT, user, "EUR")
        ledger.open_wallet(key)
        if deposit != "0.00":
            ledger.credit(CreditCommand(f"deposit-{user}", key, deposit, Purpose.DEPOSIT))
    core = SimCore(ledger, scenario.faults, note)
    edge = scenario.edge
    rng = random.Random(f"{scenario.seed}:edge")
    placer: Any
    if legacy:
        placer = LegacyBetPlacer(core, bets_deadline=edge.bets_deadline, attempt_timeout=edge.attempt_timeout,
                                 cancel_deadline=edge.fence_deadline, rng=rng)
    else:
        placer = BetPlacer(core, METRICS, bets_deadline=edge.bets_deadline, fence_deadline=edge.fence_deadline,
                           calls=CallPolicy(attempt_timeout=edge.attempt_timeout, rng=rng))
    oracle = Oracle(scenario, ledger)
    numbers: Counter[int] = Counter()

    async def deliver(slip: Slip) -> int | None:
        numbers[slip.key] += 1
        n = numbers[slip.key]
        DELIVERY.set(f"s{slip.key}d{n}")
        note(f"betflex delivers slip {slip.key} (#{n}): "
             + ", ".join(f"{b.uid}:{b.user}:{b.amount}:{b.currency}:pool{b.pool}" for b in slip.bets))
        _, placement = await placer.handle(slip.body())
        status = http_status(placement)
        lost = (not scenario.faults.quiet
                and random.Random(f"{scenario.seed}:lost:{slip.key}:{n}").random() < scenario.answer_loss)
        received = not lost
        answer = Answer(loop.time(), slip.key, n, status, getattr(placement, "code", ""), received)
        note(f"edge answers {answer}")
        result.deliveries += 1
        result.answers[status] += 1
        oracle.record(answer)
        return status if received else None

    async def betflex(slip: Slip) -> None:
        decide = random.Random(f"{scenario.seed}:betflex:{slip.key}")
        await asyncio.sleep(slip.first)
        concurrent = asyncio.ensure_future(_later(decide.uniform(0, 0.5), deliver(slip))) if slip.concurrent else None
        status = None
        for _ in range(scenario.max_deliveries):
            status = await deliver(slip)
            if status in (200, 402, 409):
                break
            await asyncio.sleep(decide.uniform(0.2, 5.0))
        if status == 200 and decide.random() < 0.1:
            # an operator reverses one stake of the slip: an explicit act (Cancel), never the edge's
            await asyncio.sleep(decide.uniform(0.1, 5.0))
            uid = slip.bets[0].uid
            oracle.reversed_by_operator.add(uid)
            try:
                note(f"operator cancels bet {uid}: {ledger.cancel(CLIENT, stake_id(CLIENT, uid), 'operator').outcome}")
            except WalletError as refusal:
                note(f"operator cannot cancel bet {uid}: {refusal.reason}")
        if concurrent is not None:
            await concurrent
        if slip.replay_after is not None and status in (200, 402, 409):
            await asyncio.sleep(slip.replay_after)
            await deliver(slip)

    await asyncio.gather(*(betflex(s) for s in scenario.slips))
    # every call still in flight (late, stalled, delayed) lands before the final checks
    await asyncio.sleep(max(0.0, scenario.end_of_faults - loop.time()) + QUIESCENCE)
    while core.in_flight:
        await asyncio.sleep(1.0)
    # convergence: with the faults over, betflex delivers every slip it has no definite answer for
    scenario.faults.quiet = True
    note("faults over: betflex delivers what it has no definite answer for")
    for _ in range(CONVERGENCE_ROUNDS):
        pending = [s for s in scenario.slips if oracle.unresolved(s)]
        for slip in pending:
            await deliver(slip)
    for slip in scenario.slips:
        if oracle.unresolved(slip):
            oracle.violations.append(
                f"[no convergence] slip {slip.key} still has no definite answer with no fault left")
    result.violations = oracle.violations + oracle.final()
    result.faults.update(scenario.faults.counts)
    result.simulated_seconds = loop.time()


async def _later(delay: float, work: Any) -> Any:
    await asyncio.sleep(delay)
    return await work


def run(scenario: Scenario, make_ledger: LedgerFactory = memory_ledger, *, legacy: bool = False) -> Result:
    scenario = replace(scenario, faults=replace(scenario.faults, counts={}, quiet=False))
    result = Result(scenario.seed, [], [])
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # the edge logs every fault it meets; the trace says it all
    try:
        vloop.run(_simulate(scenario, make_ledger, legacy, result))
    finally:
        logging.disable(previous)
    return result


def shrink(scenario: Scenario, make_ledger: LedgerFactory = memory_ledger, *, legacy: bool = False,
           budget: int = 200) -> tuple[Scenario, Result]:
    """A smaller scenario that still fails: drop slips, then fault windows, then single faults."""
    best = run(scenario, make_ledger, legacy=legacy)
    assert not best.ok, "only a failing scenario can be shrunk"
    tries = 0

    def attempt(candidate: Scenario) -> bool:
        nonlocal best, tries
        tries += 1
        outcome = run(candidate, make_ledger, legacy=legacy)
        if not outcome.ok:
            best = outcome
            return True
        return False

    changed = True
    while changed and tries < budget:
        changed = False
        for slip in list(scenario.slips):
            if len(scenario.slips) > 1 and tries < budget and attempt(candidate := scenario.without_slip(slip.key)):
                scenario, changed = candidate, True
        for name in ("down", "stalls"):
            for window in list(getattr(scenario.faults, name)):
                kept = [w for w in getattr(scenario.faults, name) if w is not window]
                change: dict[str, Any] = {name: kept}
                candidate = replace(scenario, faults=replace(scenario.faults, **change))
                if tries < budget and attempt(candidate):
                    scenario, changed = candidate, True
        if scenario.faults.rate and tries < budget:
            faulted = sorted({m.group(0) for line in best.trace if "fault:" in line
                              for m in [CALL_KEY.search(line)] if m is not None})
            for key in faulted:
                candidate = replace(scenario, faults=replace(
                    scenario.faults, overrides=scenario.faults.overrides | {key}))
                if tries < budget and attempt(candidate):
                    scenario, changed = candidate, True
    return scenario, best


def describe(scenario: Scenario) -> list[str]:
    f, e = scenario.faults, scenario.edge
    lines = [
        f"seed {scenario.seed}: deposits {scenario.deposits}; edge deadlines bets {e.bets_deadline} s, "
        f"attempt {e.attempt_timeout} s, fence {e.fence_deadline} s; answer loss {scenario.answer_loss}",
        f"faults: rate {f.rate}, core down {[(round(w.start, 2), round(w.end, 2)) for w in f.down]}, "
        f"database stalls {[(round(w.start, 2), round(w.end, 2)) for w in f.stalls]}, forced ok {sorted(f.overrides)}",
    ]
    for slip in scenario.slips:
        lines.append(f"slip {slip.key} at {slip.first:.2f} s{' +concurrent' if slip.concurrent else ''}"
                     f"{f' +replay after {slip.replay_after:.1f} s' if slip.replay_after else ''}: "
                     + ", ".join(f"{b.uid} user {b.user} {b.amount} {b.currency} pool {b.pool}" for b in slip.bets))
    return lines


def report_failure(scenario: Scenario, make_ledger: LedgerFactory = memory_ledger, *, legacy: bool = False) -> str:
    """The text a failing seed prints: its violations, then the shrunk scenario and its trace."""
    first = run(scenario, make_ledger, legacy=legacy)
    small, shrunk = shrink(scenario, make_ledger, legacy=legacy)
    return "\n".join([
        f"SEED {scenario.seed} FAILS ({len(first.violations)} violations); replay: "
        f"python -m tests.sim.runner --seed {scenario.seed}{' --legacy' if legacy else ''}",
        *first.violations[:10], "", "shrunk to:", *describe(small), *shrunk.violations[:10], "", "trace:",
        *shrunk.trace,
    ])


@dataclass
class Campaign:
    seeds: int = 0
    deliveries: int = 0
    answers: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    failing: list[int] = field(default_factory=list)
    by_category: dict[str, list[int]] = field(default_factory=dict)  # kind of violation -> seeds showing it
    simulated_seconds: float = 0.0
    wall_seconds: float = 0.0

    def add(self, result: Result) -> None:
        self.seeds += 1
        self.deliveries += result.deliveries
        self.answers.update(result.answers)
        self.faults.update(result.faults)
        self.simulated_seconds += result.simulated_seconds
        if not result.ok:
            self.failing.append(result.seed)
            for category in sorted({Oracle.category(v) for v in result.violations}):
                self.by_category.setdefault(category, []).append(result.seed)

    def merge(self, other: Campaign) -> None:
        self.seeds += other.seeds
        self.deliveries += other.deliveries
        self.answers.update(other.answers)
        self.faults.update(other.faults)
        self.simulated_seconds += other.simulated_seconds
        self.failing = sorted(self.failing + other.failing)
        for name, seeds in other.by_category.items():
            self.by_category[name] = sorted(self.by_category.get(name, []) + seeds)

    def render(self) -> str:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(self.answers.items()))
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        return (f"{self.seeds} seeds, {self.deliveries} deliveries ({answers}), faults injected: {faults}; "
                f"{self.simulated_seconds / 3600:.1f} simulated hours in {self.wall_seconds:.1f} s; "
                f"{len(self.failing)} failing seeds{': ' + str(self.failing[:20]) if self.failing else ''}"
                + "".join(f"\n  [{name}] {len(seeds)} seeds, e.g. {seeds[:8]}"
                          for name, seeds in sorted(self.by_category.items())))


def _chunk(args: tuple[int, int, bool]) -> Campaign:
    first, last, legacy = args
    figures = Campaign()
    for seed in range(first, last):
        figures.add(run(generate(seed), legacy=legacy))
    return figures


def campaign(seeds: range, make_ledger: LedgerFactory = memory_ledger, *, legacy: bool = False,
             min_deliveries: int = 0, workers: int = 1, chunk: int = 250) -> Campaign:
    """Run every seed of `seeds`, and more past its end until `min_deliveries` deliveries were simulated.

    With `workers` > 1 the seeds run in that many processes (on the in-memory ledger), in chunks."""
    figures = Campaign()
    started = time.perf_counter()
    if workers <= 1:
        seed = seeds.start
        while seed < seeds.stop or figures.deliveries < min_deliveries:
            figures.add(run(generate(seed), make_ledger, legacy=legacy))
            seed += 1
    else:
        from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

        with ProcessPoolExecutor(workers) as pool:
            next_seed = seeds.start
            running: set[Future[Any]] = set()

            def more() -> bool:
                return next_seed < seeds.stop or figures.deliveries < min_deliveries

            while more() or running:
                while more() and len(running) < 2 * workers:
                    end = min(next_seed + chunk, seeds.stop) if next_seed < seeds.stop else next_seed + chunk
                    running.add(pool.submit(_chunk, (next_seed, end, legacy)))
                    next_seed = end
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    figures.merge(future.result())
    figures.wall_seconds = time.perf_counter() - started
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, help="replay one seed and print its trace")
    parser.add_argument("--seeds", default="0:2000", help="a range FIRST:LAST of seeds (default 0:2000)")
    parser.add_argument("--deliveries", type=int, default=0, help="run seeds until at least this many deliveries")
    parser.add_argument("--legacy", action="store_true", help="the /bets rule as it was before issue 10")
    parser.add_argument("--workers", type=int, default=1, help="processes to run the seeds in")
    args = parser.parse_args(argv)
    if args.seed is not None:
        scenario = generate(args.seed)
        result = run(scenario, legacy=args.legacy)
        print("\n".join(describe(scenario) + result.trace))
        if not result.ok:
            print(report_failure(scenario, legacy=args.legacy))
        return 0 if result.ok else 1
    first, _, last = args.seeds.partition(":")
    figures = campaign(range(int(first), int(last)), legacy=args.legacy, min_deliveries=args.deliveries,
                       workers=args.workers)
    print(figures.render())
    return 0 if not figures.failing else 1


if __name__ == "__main__":
    sys.exit(main())
