"""The time of one full /winners delivery of N bets (issue 12), on PostgreSQL and SQLite.

    .venv/bin/python -m wallet_bench.winners_size [--sizes 1,2500,5000] [--server-url postgresql://postgres@127.0.0.1:5432/postgres]

For each database, a fresh ledger, the core and the edge as separate processes (wallet_bench.services),
every stake placed over gRPC first; then, for each size, one /winners callback of that many bets
(pools of 10 bets, 40 users) is delivered until it answers 200. Printed per size: the deliveries
it took, the time of the first delivery, and that time as a ratio of the same run's baseline (a
/winners of 1 bet), and the time of a redelivery (every bet a replay). Ratios, not absolute
times, are what compares across machines.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from clients import AccountRef, DebitItem, Purpose, WalletClient
from wallet_bench import database
from wallet_bench.services import running_stack

USERS = 40
POOL_SIZE = 10


def _winner(uid: int, user: str, payout: str) -> dict[str, Any]:
    return {"user": {"client": "fanteam", "uid": user, "name": "player"},
            "bet": {"uid": uid, "currency": "EUR", "amount": "1.00", "odds": 2.0, "rake": 0, "payout": payout,
                    "base_payout": float(payout), "result": "won" if payout != "0" else "lost", "extra": {}}}


def callback(first: int, count: int) -> tuple[bytes, list[tuple[int, str, int]]]:
    bets = [(uid, str(3001 + uid % USERS), 880000 + (uid - 1) // POOL_SIZE) for uid in range(first, first + count)]
    pools: dict[int, list[dict[str, Any]]] = {}
    for uid, user, pool in bets:
        pools.setdefault(pool, []).append(_winner(uid, user, "2.00" if uid % 2 else "0"))
    body = {"pools": [
        {"pool": {"client": "fanteam", "game": "betflex", "uid": pool, "currency": "EUR",
                  "overdraw": str(sum(Decimal(e["bet"]["payout"]) for e in entries)), "cost": "0", "guaranteed": True},
         "bets": entries}
        for pool, entries in pools.items()
    ]}
    return json.dumps(body, separators=(",", ":")).encode(), bets


def stake(wallet: WalletClient, bets: list[tuple[int, str, int]]) -> None:
    for start in range(0, len(bets), 100):
        wallet.debit([DebitItem(f"betflex:fanteam:bet:{uid}", AccountRef("fanteam", user, "EUR"), "1.00",
                                Purpose.STAKE, f"pool:{pool}") for uid, user, pool in bets[start:start + 100]],
                     timeout=60)


def deliver(http: httpx.Client, body: bytes) -> tuple[int, float, int]:
    started = time.perf_counter()
    response = http.post("/winners", content=body, headers={"Content-Type": "application/json"}, timeout=120)
    elapsed = time.perf_counter() - started
    answer = response.json()
    if response.status_code != 200:
        reasons = Counter(f["reason"] for f in answer.get("failed", []))
        print(f"  {response.status_code}: {len(answer.get('settled', []))} settled, failed {dict(reasons)}"
              f" {answer.get('failed', [{}])[0].get('message', '')[:200]}", flush=True)
    return response.status_code, elapsed, len(answer.get("settled", []))


def run(db_url: str, sizes: list[int], label: str) -> None:
    from wallet_core.storage.migrate import upgrade

    upgrade(db_url)
    with tempfile.TemporaryDirectory() as logs, running_stack(db_url, Path(logs), edge=True) as stack:
        assert stack.edge is not None
        with WalletClient(stack.core.address, token=stack.core_token, timeout=60) as wallet, \
                httpx.Client(base_url=f"http://{stack.edge.address}",
                             headers={"Authorization": f"Bearer {stack.edge_token}"}) as http:
            for n in range(USERS):
                ref = AccountRef("fanteam", str(3001 + n), "EUR")
                wallet.open_account(ref)
                wallet.deposit(f"fund-{ref.user_id}", ref, "1000000.00")
            first = 1
            plan = []
            for size in sizes:
                body, bets = callback(first, size)
                stake(wallet, bets)
                plan.append((size, body))
                first += -(-size // POOL_SIZE) * POOL_SIZE  # each callback its own pools
            baseline: float | None = None
            for size, body in plan:
                statuses: list[int] = []
                times: list[float] = []
                while not statuses or statuses[-1] != 200:
                    status, elapsed, _ = deliver(http, body)
                    statuses.append(status)
                    times.append(elapsed)
                    if len(statuses) >= 10:
                        break
                _, replay, _ = deliver(http, body)
                if baseline is None:
                    baseline = times[0]
                print(f"{label:10} {size:6} bets {len(body) / 1024:7.0f} KiB  deliveries {len(statuses)} {statuses}  "
                      f"first {times[0]:6.2f} s = {times[0] / baseline:6.1f} x baseline  "
                      f"redelivery {replay:6.2f} s = {replay / baseline:6.1f} x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,2500,5000")
    parser.add_argument("--server-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--only", choices=["postgres", "sqlite"])
    options = parser.parse_args()
    sizes = [int(s) for s in options.sizes.split(",")]
    if options.only != "sqlite":
        with database.throwaway_database(options.server_url) as db_url:
            run(db_url, sizes, "postgresql")
    if options.only != "postgres":
        with tempfile.TemporaryDirectory() as tmp:
            run(f"sqlite:///{tmp}/bench.db", sizes, "sqlite")


if __name__ == "__main__":
    main()
