"""Concurrency torture (issue 2): several processes of several threads each on a few wallets, mixed
calls (deposits, withdrawals, one- and two-item stakes, payouts, cancels), some scripts delivered
twice at once or raced by a rival (pay out vs cancel the same stake). Every answer is recorded;
at the end every wallet equals its opening balance plus what succeeded, no caller ever saw a
balance below zero, a watcher never saw one in the database, and reconcile is clean.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter

from clients import WalletClient
from tests.support.db import assert_reconciled
from tests.support.servers import TOKENS, Core
from tests.support.torture import LowestBalance, Run, evaluate, make_plan, money, process_worker, ref

OPENING = 5_000  # 50.00 FUN in every wallet: enough refusals for insufficient funds


def test_processes_and_threads_on_few_wallets_add_up(core: Core, long_mode: bool, figures: Counter[str]) -> None:
    processes, threads = (4, 6) if long_mode else (3, 4)
    per_slot = 60 if long_mode else 10
    users = [f"w{n}" for n in range(5)]
    with WalletClient(core.target, token=TOKENS["admin"], timeout=10) as admin:
        for user in users:
            admin.open_account(ref(user))
            admin.deposit(f"opening-{user}", ref(user), money(OPENING))
    plan = make_plan(seed=2024, users=users, slots=processes * threads, scripts_per_slot=per_slot)
    jobs = [(core.target, TOKENS["admin"], plan[p * threads:(p + 1) * threads], 60.0) for p in range(processes)]

    run = Run()
    with LowestBalance(core.engine) as watcher, multiprocessing.get_context("spawn").Pool(processes) as pool:
        for result in pool.starmap(process_worker, jobs):
            run.records.extend(result.records)
            run.calls += result.calls
            run.retries += result.retries
            run.gave_up.extend(result.gave_up)

    with WalletClient(core.target, token=TOKENS["admin"], timeout=10) as admin:
        balances = {u: int(admin.get_balance(ref(u)).balance * 100) for u in users}
    violations = evaluate(run.records, dict.fromkeys(users, OPENING), balances)
    if watcher.lowest is not None and watcher.lowest < 0:
        violations.append(f"the watcher saw a wallet at {watcher.lowest}")
    if run.gave_up:
        violations.append(f"{len(run.gave_up)} calls never got a definite answer: {run.gave_up[:3]}")
    answers = Counter(r.answer for r in run.records)
    figures.update(operations=run.calls, retries=run.retries, violations=len(violations))
    print(f"\ntorture: {processes} processes x {threads} threads, {run.calls} calls, answers {dict(answers)}, "
          f"{watcher.samples} balance samples, {len(violations)} violations")
    assert not violations, "\n".join(violations[:20])
    assert answers["ok"] > 0
    assert_reconciled(core.engine)
