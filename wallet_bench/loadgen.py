"""The load generator: several processes, each an asyncio loop running a share of the callers.

A point (scenario at one concurrency) starts `processes` fresh processes (spawn). Each connects,
then waits on a barrier so that every caller starts at once; each caller then makes one call at a
time until the point's deadline or its share of the call budget (closed loop). An open-loop
point (`Job.rate`) instead sends calls at Poisson-distributed times, `rate` per second on
average, whether or not earlier calls have returned, and measures each latency from the call's
scheduled send time: a call that waits because the system (or the generator) is behind counts
that wait, as a sportsbook's SLA would. Every process reports its
latencies, errors, and the CPU it used (getrusage) during the measured window, so the report
can say whether the load generator, rather than the system under test, was the limit.

Calls use the raw stubs (gRPC) and aiohttp (HTTP): the cheapest clients per call, to leave the
CPU to the services.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import queue
import random
import resource
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

CLIENT = "fanteam"
CURRENCY = "EUR"
STAKE = "1.00"
PAYOUT = "2.00"
# a pool's overdraw caps the payouts applied to it over all callbacks (betflex "Total Payout for slip");
# every bench bet of a generator process is in one pool, so it is far above what a run can pay
OVERDRAW = "1000000000.00"


@dataclass(frozen=True)
class Job:
    kind: str  # "debit" | "bets" | "winners"
    target: str  # HOST:PORT of the core (debit) or of the edge (bets, winners)
    token: str
    callers: int
    duration: float
    max_calls: int
    worker: int
    workers: int
    run_tag: str
    wallets: int = 0
    hot_user: str | None = None
    settle: list[tuple[str, int]] = field(default_factory=list)  # (user id, bet uid) for "winners"
    rate: float | None = None  # open loop: calls per second this process offers
    uid_base: int = 0  # bet uids of this point start above it (unique across the points of a run)
    # gRPC connections this process opens to the core, calls spread over them in turn: 1, or more for a
    # core of several processes, which the kernel spreads by connection (SO_REUSEPORT), not by call
    channels: int = 1


@dataclass
class WorkerResult:
    worker: int
    latencies: array[float]  # seconds, one per call
    errors: Counter[str]
    cpu_seconds: float
    started: float  # time.time() of the first call
    finished: float  # time.time() when the last call returned
    placed: list[tuple[str, int]] = field(default_factory=list)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Budget:
    """The calls this process may still start, and the deadline (loop time)."""

    def __init__(self, calls: int, deadline: float) -> None:
        self.calls = calls
        self.deadline = deadline

    def take(self, loop: asyncio.AbstractEventLoop) -> bool:
        if self.calls <= 0 or loop.time() >= self.deadline:
            return False
        self.calls -= 1
        return True


async def _run(job: Job, barrier: Any, progress: Any) -> WorkerResult:
    loop = asyncio.get_running_loop()
    latencies: array[float] = array("d")
    errors: Counter[str] = Counter()
    placed: list[tuple[str, int]] = []
    call, close = await _make_caller(job, errors, placed)
    await loop.run_in_executor(None, barrier.wait)
    cpu0, started = _cpu(), time.time()
    budget = _Budget(job.max_calls, loop.time() + job.duration)
    counter = iter(range(10**12))
    perf = time.perf_counter

    async def caller() -> None:
        while budget.take(loop):
            n = next(counter)
            t0 = perf()
            await call(n)
            latencies.append(perf() - t0)
            progress.value += 1

    if job.rate:
        await _open_loop(job, loop, budget, call, latencies, progress)
    else:
        await asyncio.gather(*(caller() for _ in range(job.callers)))
    finished, cpu = time.time(), _cpu() - cpu0
    await close()
    return WorkerResult(job.worker, latencies, errors, cpu, started, finished, placed)


async def _open_loop(job: Job, loop: asyncio.AbstractEventLoop, budget: _Budget, call: Any, latencies: array[float],
                     progress: Any) -> None:
    """Send a call at each arrival of a Poisson process of `job.rate` per second until the deadline."""
    assert job.rate
    rng = random.Random(f"open-loop:{job.worker}")
    in_flight: set[asyncio.Task[None]] = set()
    scheduled = loop.time()

    async def one(n: int, at: float) -> None:
        await call(n)
        latencies.append(loop.time() - at)  # from the scheduled send time: queueing counts
        progress.value += 1

    n = 0
    while True:
        scheduled += rng.expovariate(job.rate)
        if scheduled >= budget.deadline or not budget.take(loop):
            break
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = loop.create_task(one(n, scheduled))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        n += 1
    if in_flight:
        await asyncio.gather(*in_flight)


async def _make_caller(job: Job, errors: Counter[str], placed: list[tuple[str, int]]) -> Any:
    if job.kind == "debit":
        return await _grpc_debit(job, errors)
    return await _http(job, errors, placed)


async def _grpc_debit(job: Job, errors: Counter[str]) -> Any:
    import grpc

    from clients.wallet.v1 import wallet_pb2, wallet_pb2_grpc

    # a subchannel pool of its own per channel: otherwise channels to one target share one connection
    options = [("grpc.use_local_subchannel_pool", 1)] if job.channels > 1 else []
    channels = [grpc.aio.insecure_channel(job.target, options=options) for _ in range(job.channels)]
    await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), 10)
    stubs = [wallet_pb2_grpc.WalletStub(c) for c in channels]
    metadata = (("authorization", f"Bearer {job.token}"),)
    rng = random.Random(job.worker)

    async def call(n: int) -> None:
        user = job.hot_user or str(rng.randint(1, job.wallets))
        request = wallet_pb2.DebitRequest(items=[wallet_pb2.DebitItem(
            transaction_id=f"{job.run_tag}:{job.worker}:{n}",
            account=wallet_pb2.AccountRef(client=CLIENT, user_id=user, currency=CURRENCY),
            amount=STAKE, purpose=wallet_pb2.PURPOSE_STAKE, reference="bench",
        )])
        try:
            await stubs[n % len(stubs)].Debit(request, metadata=metadata, timeout=5)
        except grpc.aio.AioRpcError as exc:
            errors[exc.code().name] += 1

    async def close() -> None:
        await asyncio.gather(*(c.close() for c in channels))

    return call, close


async def _http(job: Job, errors: Counter[str], placed: list[tuple[str, int]]) -> Any:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=job.callers, force_close=False)
    session = aiohttp.ClientSession(
        base_url=f"http://{job.target}", connector=connector,
        headers={"Authorization": f"Bearer {job.token}", "Content-Type": "application/json"},
        timeout=aiohttp.ClientTimeout(total=10),
    )
    rng = random.Random(job.worker)
    pool = 550000 + job.worker

    async def post(path: str, body: dict[str, Any]) -> bool:
        try:
            async with session.post(path, data=json.dumps(body).encode()) as response:
                await response.read()
                if response.status == 200:
                    return True
                errors[f"HTTP {response.status}"] += 1
        except (TimeoutError, aiohttp.ClientError) as exc:
            errors[type(exc).__name__] += 1
        return False

    async def bet(n: int) -> None:
        user = rng.randint(1, job.wallets)
        uid = job.uid_base + 1 + job.worker + job.workers * n  # unique in this run across processes and points
        body = {"bets": [{
            "user": {"client": CLIENT, "uid": user},
            "pool": {"client": CLIENT, "currency": CURRENCY, "game": "betflex", "uid": pool, "overdraw": OVERDRAW},
            "bet": {"uid": uid, "amount": STAKE},
        }]}
        if await post("/bets", body):
            placed.append((str(user), uid))

    async def winner(n: int) -> None:
        user, uid = job.settle[n]
        body = {"pools": [{
            "pool": {"client": CLIENT, "game": "betflex", "uid": pool, "currency": CURRENCY, "overdraw": OVERDRAW},
            "bets": [{
                "user": {"client": CLIENT, "uid": user},
                "bet": {"uid": uid, "currency": CURRENCY, "amount": STAKE, "payout": PAYOUT, "result": "won"},
            }],
        }]}
        await post("/winners", body)

    async def close() -> None:
        await session.close()

    await session.get("/healthz")  # open one connection before the clock starts
    return (bet if job.kind == "bets" else winner), close


def _worker_main(job: Job, barrier: Any, progress: Any, results: Any) -> None:
    try:
        results.put(("ok", _run_sync(job, barrier, progress)))
    except BaseException as exc:  # noqa: BLE001 - whatever stopped the worker is reported: never hang the parent
        try:
            barrier.abort()
        except Exception:  # noqa: BLE001 - the parent may be gone; the report below matters more
            pass
        results.put(("error", f"worker {job.worker}: {type(exc).__name__}: {exc}"))


def _run_sync(job: Job, barrier: Any, progress: Any) -> WorkerResult:
    return asyncio.run(_run(job, barrier, progress))


@dataclass
class PointLoad:
    latencies_ms: list[float]
    errors: Counter[str]
    calls: int
    seconds: float
    cpu_seconds: float
    per_process_cores: list[float]
    placed: list[tuple[str, int]]


def run_point(jobs: list[Job], *, on_progress: Any = None, timeout: float = 120.0) -> PointLoad:
    """Run the jobs, one process each, started together; gather what they measured."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(jobs) + 1)
    results = ctx.Queue()
    counters = [ctx.Value("q", 0, lock=False) for _ in jobs]
    processes = [
        ctx.Process(target=_worker_main, args=(job, barrier, counter, results), name=f"bench-load-{job.worker}",
                    daemon=True)
        for job, counter in zip(jobs, counters, strict=True)
    ]
    for process in processes:
        process.start()
    try:
        barrier.wait(timeout=60)
        started = time.monotonic()
        gathered: list[WorkerResult] = []
        while len(gathered) < len(jobs):
            if on_progress is not None:
                on_progress(time.monotonic() - started, sum(c.value for c in counters))
            try:
                status, value = results.get(timeout=0.25)
            except queue.Empty:
                if time.monotonic() - started > timeout:
                    raise RuntimeError("the load generator did not finish in time") from None
                continue
            if status != "ok":
                raise RuntimeError(value)
            gathered.append(value)
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
    first = min(r.started for r in gathered)
    last = max(r.finished for r in gathered)
    seconds = max(last - first, 1e-9)
    latencies = [x * 1000.0 for r in gathered for x in r.latencies]
    errors: Counter[str] = Counter()
    for r in gathered:
        errors.update(r.errors)
    return PointLoad(
        latencies_ms=latencies, errors=errors, calls=len(latencies), seconds=seconds,
        cpu_seconds=sum(r.cpu_seconds for r in gathered),
        per_process_cores=[round(r.cpu_seconds / max(r.finished - r.started, 1e-9), 2) for r in gathered],
        placed=[p for r in gathered for p in r.placed],
    )
