"""`wallet core --workers N`: N core processes on one port and one PostgreSQL database.

Real processes on real sockets of 127.0.0.1 (docs/configuration.md, "Several core processes"):
- two workers share the gRPC port (SO_REUSEPORT); Debits over many fresh connections reach
  both (each worker's own /metrics, on PORT and PORT+1, counts the ones it served), every
  answer is right, no debit is lost between the processes, and the ledger reconciles;
- SIGTERM to the supervisor stops every worker, and it exits 0;
- a worker that dies stops the others, and the supervisor exits non-zero;
- what N processes cannot share (port 0, an SQLite file) is refused in one line, exit 2;
- one asyncio client with several channels, and one edge with several WALLET_EDGE_CORE_CHANNELS,
  reach both workers: their calls take the connections in turn.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from clients import AccountRef, AsyncWalletClient, DebitItem, Purpose, TransactionStatus, WalletClient
from tests.e2e.test_cli import USAGE, assert_one_line, wallet
from tests.support.betflex import bet, bets
from tests.support.db import PostgresDatabase, assert_reconciled, migrated_postgres
from tests.support.servers import TOKEN_SPEC, TOKENS
from tests.support.stack import free_port, running_edge, spawn, wait_until
from wallet_core.storage.engine import make_engine

pytestmark = pytest.mark.postgres

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
FRESH_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]  # a channel of its own: a new TCP connection
WALLETS = [AccountRef("fanteam", f"w{i}", "EUR") for i in range(4)]
FUNDS = Decimal("1000.00")


@pytest.fixture(scope="module")
def database() -> Iterator[PostgresDatabase]:
    with migrated_postgres() as db:
        yield db


def free_port_pair() -> int:
    """A port P of 127.0.0.1 such that P and P+1 are both free (the metrics of two workers)."""
    for _ in range(100):
        port = free_port()
        if port >= 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


@dataclass
class Cores:
    supervisor: subprocess.Popen[bytes]
    target: str
    metrics: list[str]  # each worker's /metrics URL
    log: Path

    def worker_pids(self) -> dict[int, int]:
        """worker index -> pid, from the supervisor's log."""
        found = re.findall(r"worker (\d+) started: pid (\d+)", self.log.read_text())
        return {int(index): int(pid) for index, pid in found}

    def handled(self, method: str, code: str = "OK") -> list[float]:
        """grpc_server_handled_total of `method` with `code`, per worker."""
        counts = []
        for url in self.metrics:
            value = 0.0
            for family in text_string_to_metric_families(httpx.get(url, timeout=5).text):
                for sample in family.samples:
                    if (sample.name == "grpc_server_handled_total" and sample.labels.get("grpc_method") == method
                            and sample.labels.get("grpc_code") == code):
                        value += sample.value
            counts.append(value)
        return counts


@contextmanager
def two_workers(database: PostgresDatabase, tmp_path: Path, *extra: str) -> Iterator[Cores]:
    """`wallet core --workers 2` on a free port, metrics on M and M+1; killed at the end if still running."""
    port, metrics = free_port(), free_port_pair()
    log = tmp_path / "core.log"
    supervisor = spawn(
        ["core", "--workers", "2", "--grpc", f"127.0.0.1:{port}", "--metrics", f"127.0.0.1:{metrics}", *extra],
        {"WALLET_DATABASE_URL": database.url, "WALLET_GRPC_TOKENS": TOKEN_SPEC}, log,
    )
    cores = Cores(supervisor, f"127.0.0.1:{port}", [f"http://127.0.0.1:{metrics + i}/metrics" for i in range(2)], log)
    try:
        def every_worker_serves() -> bool:
            assert supervisor.poll() is None, f"the supervisor exited with {supervisor.returncode}:\n{log.read_text()}"
            return all(httpx.get(url, timeout=1).status_code == 200 for url in cores.metrics)

        wait_until(every_worker_serves, START_TIMEOUT, f"the two workers did not serve: {log.read_text()}")
        yield cores
    finally:
        if supervisor.poll() is None:
            supervisor.kill()  # the workers follow (they are sent SIGTERM when the supervisor dies)
            supervisor.wait(STOP_TIMEOUT)


def gone(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return False


def port_free(target: str) -> bool:
    host, _, port = target.rpartition(":")
    with socket.socket() as probe:
        try:
            probe.bind((host, int(port)))
        except OSError:
            return False
    return True


def test_two_workers_share_the_port_the_database_and_the_work(database: PostgresDatabase, tmp_path: Path) -> None:
    with two_workers(database, tmp_path, "--migrate") as cores:  # the supervisor migrates, once
        assert len(cores.worker_pids()) == 2
        with WalletClient(cores.target, token=TOKENS["fanteam"], timeout=30) as setup:
            for ref in WALLETS:
                setup.open_account(ref)
                setup.deposit(f"fund-{ref.user_id}", ref, FUNDS)

        answers: list[tuple[str, AccountRef, Decimal]] = []  # (id, wallet, balance after)

        def channel(name: str, ref: AccountRef) -> list[tuple[str, AccountRef, Decimal]]:
            """One fresh connection (the kernel picks its worker), four debits of 1.00 on `ref`."""
            seen = []
            with WalletClient(cores.target, token=TOKENS["fanteam"], timeout=30, options=FRESH_CONNECTION) as c:
                for call in range(4):
                    tid = f"{name}-{call}"
                    result = c.debit([DebitItem(tid, ref, "1.00", Purpose.STAKE)])
                    [tx] = result.transactions
                    assert not result.replayed and tx.transaction_id == tid and tx.amount == Decimal("1.00")
                    assert tx.status == TransactionStatus.APPLIED and tx.balance_after is not None
                    seen.append((tid, ref, tx.balance_after))
            return seen

        # rounds of 8 concurrent fresh connections, two per wallet, until both workers have served
        # Debits (connections are spread by a hash: the first round almost always reaches both)
        with ThreadPoolExecutor(max_workers=8) as pool:
            for round_ in range(30):
                jobs = [pool.submit(channel, f"r{round_}-c{k}", WALLETS[k % len(WALLETS)]) for k in range(8)]
                for job in jobs:
                    answers.extend(job.result())
                if all(count > 0 for count in cores.handled("Debit")):
                    break
        per_worker = cores.handled("Debit")
        assert all(count > 0 for count in per_worker), per_worker
        assert sum(per_worker) == len(answers), "every Debit was served by exactly one worker, and counted"
        assert cores.handled("Debit", "FAILED_PRECONDITION") == [0, 0]

        # no lost update across the processes: each wallet's debits saw every balance from 999.00 down, once
        debits = Counter(ref for _, ref, _ in answers)
        with WalletClient(cores.target, token=TOKENS["fanteam"], timeout=30) as check:
            for ref in WALLETS:
                seen = sorted((after for _, r, after in answers if r == ref), reverse=True)
                assert seen == [FUNDS - n for n in range(1, debits[ref] + 1)], ref
                assert check.get_balance(ref).balance == FUNDS - debits[ref]

        pids = cores.worker_pids()
        cores.supervisor.send_signal(signal.SIGTERM)
        assert cores.supervisor.wait(STOP_TIMEOUT) == 0, cores.log.read_text()
    assert all(gone(pid) for pid in pids.values()), "the supervisor exits after its workers"
    assert port_free(cores.target)
    text = cores.log.read_text()
    assert text.count("received SIGTERM: draining calls in flight") == 2 and "Traceback" not in text
    engine = make_engine(database.url, pool_size=1)
    try:
        assert_reconciled(engine)
    finally:
        engine.dispose()


def test_a_worker_that_dies_stops_the_others(database: PostgresDatabase, tmp_path: Path) -> None:
    with two_workers(database, tmp_path) as cores:
        pids = cores.worker_pids()
        with WalletClient(cores.target, token=TOKENS["fanteam"], timeout=30) as c:
            c.open_account(WALLETS[0])  # serving
        os.kill(pids[0], signal.SIGKILL)
        assert cores.supervisor.wait(STOP_TIMEOUT) == 1, cores.log.read_text()
    assert gone(pids[1])
    text = cores.log.read_text()
    assert f"worker 0 (pid {pids[0]}) was killed by SIGKILL without being asked to: stopping the others" in text
    assert f"worker 1 (pid {pids[1]}) stopped" in text


def test_what_several_processes_cannot_share_is_refused_in_one_line(tmp_path: Path) -> None:
    assert_one_line(wallet("core", "--workers", "2", "--grpc", "127.0.0.1:0", cwd=tmp_path), USAGE,
                    "--workers 2 needs a fixed port", "--grpc HOST:PORT")
    assert_one_line(wallet("core", "--grpc", f"127.0.0.1:{free_port()}", cwd=tmp_path, WALLET_CORE_WORKERS="2"),
                    USAGE, "--workers 2 needs PostgreSQL")
    assert list(tmp_path.iterdir()) == []  # nothing was made, no SQLite file


def test_one_asyncio_client_with_several_channels_reaches_both_workers(
    database: PostgresDatabase, tmp_path: Path
) -> None:
    """40 Debits in turn over 8 channels (5 on each connection). The kernel hashes each connection to
    a worker: all 8 on one of the 2 happens 1 time in 128, so a fresh client (8 new connections) is
    tried up to 3 times before the test fails (1 time in 2 million)."""
    ref = AccountRef("fanteam", "async-1", "EUR")
    with two_workers(database, tmp_path) as cores:
        with WalletClient(cores.target, token=TOKENS["fanteam"], timeout=30) as setup:
            setup.open_account(ref)
            setup.deposit("fund-async-1", ref, FUNDS)

        async def debits(client: int) -> list[Decimal | None]:
            async with AsyncWalletClient(cores.target, token=TOKENS["fanteam"], timeout=30, channels=8) as wallet:
                results = [await wallet.debit([DebitItem(f"async-{client}-{n}", ref, "1.00", Purpose.STAKE)])
                           for n in range(40)]
            return [tx.balance_after for result in results for tx in result.transactions]

        seen: list[Decimal | None] = []
        for client in range(3):
            before = cores.handled("Debit")
            seen += asyncio.run(debits(client))
            served = [after - earlier for after, earlier in zip(cores.handled("Debit"), before, strict=True)]
            if all(count > 0 for count in served):
                break
        assert all(count > 0 for count in served), f"one client's 40 Debits per worker: {served}"
        assert sum(cores.handled("Debit")) == len(seen), "every Debit was served by exactly one worker, and counted"
        assert seen == [FUNDS - n for n in range(1, len(seen) + 1)]


def test_an_edge_with_several_core_channels_feeds_both_workers(database: PostgresDatabase, tmp_path: Path) -> None:
    """16 /bets over WALLET_EDGE_CORE_CHANNELS=16: the 16 connections all on one of the 2 workers would
    happen 1 time in 32,768."""
    with two_workers(database, tmp_path) as cores:
        with WalletClient(cores.target, token=TOKENS["fanteam"], timeout=30) as setup:
            ref = AccountRef("fanteam", "2001", "EUR")
            setup.open_account(ref)
            setup.deposit("fund-2001", ref, FUNDS)
        with running_edge(cores.target, edge_core_channels=16) as edge, edge.client() as http:
            for n in range(16):
                response = http.post("/bets", json=bets(bet(7_000_000 + n, "1.00", user=2001)))
                assert response.status_code == 200, response.text
        per_worker = cores.handled("Debit")
        assert all(count > 0 for count in per_worker) and sum(per_worker) == 16, per_worker
