"""Many threads against few wallets, every outcome recorded: the raw material of the concurrency tests."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


@dataclass
class Outcomes:
    ok: list[tuple[str, str, int]] = field(default_factory=list)  # (kind, wallet, minor)
    refused: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record_ok(self, kind: str, wallet: str, minor: int) -> None:
        with self.lock:
            self.ok.append((kind, wallet, minor))

    def record_refusal(self, reason: str) -> None:
        with self.lock:
            self.refused[reason] += 1

    def count(self, kind: str) -> int:
        return sum(1 for k, _, _ in self.ok if k == kind)

    def net(self, wallet: str) -> int:
        return sum(m if k == "deposit" else -m for k, w, m in self.ok if w == wallet)


def race(threads: int, per_thread: int, operation: Callable[[int, int], None]) -> None:
    """Run operation(thread_no, call_no) from `threads` threads released together by a barrier."""
    barrier = threading.Barrier(threads)

    def worker(n: int) -> None:
        barrier.wait(timeout=30)
        for i in range(per_thread):
            operation(n, i)

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker, n) for n in range(threads)]:
            future.result(timeout=300)


def mixed_plan(seed: int, wallets: list[str], threads: int, per_thread: int) -> list[list[tuple[str, str, int]]]:
    """For each thread, a fixed list of (kind, wallet, minor units): deposits and debits mixed."""
    rng = random.Random(seed)
    return [
        [(rng.choice(["deposit", "debit", "debit"]), rng.choice(wallets), rng.randint(1, 500))
         for _ in range(per_thread)]
        for _ in range(threads)
    ]
