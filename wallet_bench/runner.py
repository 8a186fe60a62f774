"""`wallet bench`: every scenario, its pgbench baselines, and the report (terminal table, JSON, PNG).

Scenarios (each point bounded by `duration` seconds and a call budget, 127.0.0.1 only):

    A1, A16, A64  gRPC Debit of one 1.00 stake on a wallet drawn at random among N funded wallets
    B16, B64      the same, every call on one hot wallet
    C64           HTTP POST /bets, one bet per callback (edge + core + PostgreSQL)
    D64           HTTP POST /winners settling, one by one, the bets C64 placed
    O250, O500    HTTP POST /bets offered open-loop at 250 and 500 per second (Poisson arrivals),
                  latency measured from each call's scheduled send time, so that queueing counts

Each point has two baselines, pgbench on the same database, at the same number of clients, for
the same time (wallet_bench.baseline):
- "pgbench": the core's own SQL for one call per transaction: the random-wallet debit for A and
  C, the hot-wallet debit for B, the payout settlement for D (settling the stakes the C
  baseline placed). ratio = our successful calls/s / its transactions/s. O has none.
- "plain": the debit an operator would hand-write (4 statements, no shared row), on a random
  wallet for A and C, on the hot wallet for B, offered at the same rate (`pgbench -R`, 64
  clients) for O. plain ratio = our successful calls/s / its transactions/s. D has none.
"""

from __future__ import annotations

import json
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from wallet_bench import baseline, database, loadgen, profiles
from wallet_bench.services import RssSampler, Stack, running_stack
from wallet_bench.stats import percentiles

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Point:
    name: str
    scenario: str
    kind: str  # loadgen job kind
    concurrency: int  # callers (closed loop), or HTTP connections (open loop: calls beyond wait for one)
    hot: bool = False
    rate: float | None = None  # open loop: calls offered per second


POINTS = [
    Point("A1", "A", "debit", 1), Point("A16", "A", "debit", 16), Point("A64", "A", "debit", 64),
    Point("B16", "B", "debit", 16, hot=True), Point("B64", "B", "debit", 64, hot=True),
    Point("C64", "C", "bets", 64), Point("D64", "D", "winners", 64),
    Point("O250", "O", "bets", 256, rate=250.0), Point("O500", "O", "bets", 256, rate=500.0),
]
OPEN_LOOP_PLAIN_CLIENTS = 64  # pgbench clients of the open-loop plain baseline (-R spreads the rate over them)
PROFILED = {"A64", "C64", "O500"}
# pgbench transaction id ranges per point (in the ledger's tables, and in plain.transactions)
PG_BASE = {name: (n + 1) * 10**15 for n, name in enumerate(p.name for p in POINTS)}


@dataclass
class Options:
    duration: float = 10.0
    wallets: int = 10_000
    scenarios: str = "A,B,C,D,O"
    processes: int = 2
    server_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    out_dir: Path = RESULTS_DIR
    profile: bool = False
    max_calls: int = 2_000_000
    quick: bool = False
    progress: bool = True
    command: str = ""
    core_workers: int = 1  # core processes (`wallet core --workers N`): CPU summed over them, RSS the largest


def select_points(spec: str) -> list[Point]:
    """"A,B" -> every point of A and B; "A64,C" -> A64 and C64; D brings C (it settles C's bets)."""
    wanted = {s.strip().upper() for s in spec.split(",") if s.strip()}
    unknown = wanted - {p.name for p in POINTS} - {p.scenario for p in POINTS}
    if unknown:
        raise ValueError(f"unknown scenarios {sorted(unknown)}; choose among A, B, C, D, O or "
                         f"{[p.name for p in POINTS]}")
    chosen = [p for p in POINTS if p.name in wanted or p.scenario in wanted]
    if any(p.scenario == "D" for p in chosen) and not any(p.scenario == "C" for p in chosen):
        chosen.insert(next(i for i, p in enumerate(chosen) if p.scenario == "D"),
                      next(p for p in POINTS if p.scenario == "C"))
    return chosen


class Progress:
    """Each step's progress, on stderr: a tqdm bar on a terminal, else one line per step.

    A bar redraws itself with a carriage return several times a second, which fills a log file
    (or CI's output) with thousands of frames; when stderr is not a terminal, each step prints
    one line when it ends instead.
    """

    def __init__(self, enabled: bool, bars: bool | None = None) -> None:
        self.enabled = enabled
        self.bars = bars  # None: bars when stderr is a terminal

    def bar(self, label: str, seconds: float) -> Any:
        stream = sys.stderr
        bars = self.bars if self.bars is not None else stream.isatty()
        if not bars:
            return _LineBar(f"{label:<14}", round(seconds, 1), stream if self.enabled else None)
        from tqdm import tqdm

        return tqdm(total=round(seconds, 1), desc=f"{label:<14}", unit="s", disable=not self.enabled, leave=True,
                    bar_format="{desc} {bar:30} {n:.1f}/{total:.1f} s {postfix}", file=stream)


class _LineBar:
    """What the runner uses of a tqdm bar; prints one line when closed."""

    def __init__(self, desc: str, total: float, stream: Any) -> None:
        self.desc, self.total, self.n, self.postfix, self.stream = desc, total, 0.0, "", stream
        self.started = time.monotonic()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self.stream is not None:
            done = f", {self.postfix}" if self.postfix else ""
            print(f"{self.desc} done in {time.monotonic() - self.started:.1f} s{done}", file=self.stream, flush=True)


def run(options: Options) -> dict[str, Any]:
    points = select_points(options.scenarios)
    progress = Progress(options.progress)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    options.out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "started": started.isoformat(), "command": options.command,
        "machine": _machine(), "settings": {
            "duration_s": options.duration, "wallets": options.wallets, "processes": options.processes,
            "quick": options.quick, "scenarios": [p.name for p in points], "profile": options.profile,
            "core_workers": options.core_workers, "core_env": _core_env(options),
            "edge_env": _edge_env(options),
        },
        "points": [], "core": {}, "edge": {}, "reconcile": {}, "targets": [],
    }
    with tempfile.TemporaryDirectory(prefix="wallet-bench-") as tmp, \
            database.throwaway_database(options.server_url) as db_url:
        work = Path(tmp)
        report["database"] = db_url.rsplit("/", 1)[-1]
        t0 = time.monotonic()
        from wallet_core.storage.migrate import upgrade

        upgrade(db_url)
        seeded = database.seed(db_url, options.wallets)
        database.seed_plain(db_url, options.wallets)
        report["seed_seconds"] = round(time.monotonic() - t0, 2)
        scripts = {"debit": work / "debit.sql", "settle": work / "settle.sql", "plain": work / "plain.sql"}
        scripts["debit"].write_text(baseline.debit_script())
        scripts["settle"].write_text(baseline.settle_script(seeded.system_ids))
        scripts["plain"].write_text(baseline.plain_debit_script())
        report["baseline_scripts"] = {k: v.read_text() for k, v in scripts.items()}
        needs_edge = any(p.kind != "debit" for p in points)
        with running_stack(db_url, work, edge=needs_edge, core_env=_core_env(options),
                           edge_env=_edge_env(options)) as stack:
            sampler = RssSampler(stack)
            sampler.start()
            placed: list[tuple[str, int]] = []
            try:
                for point in points:
                    result, placed = _run_point(point, options, stack, seeded, db_url, scripts, work, placed, progress)
                    report["points"].append(result)
                    stack.core.check_alive()
            finally:
                sampler.stop()
                report["core"] = {"pid": stack.core.pid, "processes": len(stack.core.processes()),
                                  "peak_rss_mb": round(stack.core.peak_rss / 2**20, 1),
                                  "peak_rss_total_mb": round(stack.core.peak_rss_total / 2**20, 1),
                                  "rss_samples_mb": _thin(stack.samples)}
                if stack.edge is not None:
                    report["edge"] = {"pid": stack.edge.pid, "peak_rss_mb": round(stack.edge.peak_rss / 2**20, 1)}
        report["reconcile"] = _reconcile(db_url)
    report["targets"] = evaluate_targets(report)
    report["finished"] = datetime.now(UTC).isoformat()
    json_path = options.out_dir / f"{stamp}.json"
    png_path = options.out_dir / f"{stamp}.png"
    report["files"] = {"json": str(json_path), "png": str(png_path)}
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    from wallet_bench.report import plot

    plot(report, png_path)
    return report


def _run_point(point: Point, options: Options, stack: Stack, seeded: database.Seeded, db_url: str,
               scripts: dict[str, Path], work: Path, placed: list[tuple[str, int]],
               progress: Progress) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    processes = max(1, min(options.processes, point.concurrency))
    run_tag = f"bench:{point.name}:{time.time_ns()}"
    settle_share: list[list[tuple[str, int]]] = [placed[i::processes] for i in range(processes)]
    jobs = []
    for worker in range(processes):
        callers = point.concurrency // processes + (1 if worker < point.concurrency % processes else 0)
        if point.kind == "debit":
            target, token = stack.core.address, stack.core_token
        else:
            assert stack.edge is not None
            target, token = stack.edge.address, stack.edge_token
        budget = options.max_calls // processes
        if point.kind == "winners":
            budget = len(settle_share[worker])
        jobs.append(loadgen.Job(
            kind=point.kind, target=target, token=token, callers=callers, duration=options.duration,
            max_calls=budget, worker=worker, workers=processes, run_tag=run_tag, wallets=seeded.wallets,
            hot_user=seeded.hot_user if point.hot else None, settle=settle_share[worker],
            rate=point.rate / processes if point.rate else None, uid_base=POINTS.index(point) * 10**12,
            # a core of several processes gets one connection per caller, for the kernel to spread
            channels=callers if options.core_workers > 1 else 1,
        ))

    spies = []
    if options.profile and point.name in PROFILED:
        targets = [stack.core] + ([stack.edge] if point.kind != "debit" and stack.edge is not None else [])
        spies = [profiles.start(f"{point.name}-{s.name}", s.busiest_pid(), options.duration, work) for s in targets]

    database.vacuum(db_url)
    since = database.now(db_url)
    services = stack.services()
    cpu_before = {s.name: s.cpu_seconds() for s in services}
    machine_before = psutil.cpu_times()
    bar = progress.bar(f"{point.name} wallet", options.duration)

    def on_progress(elapsed: float, calls: int) -> None:
        bar.n = min(round(elapsed, 1), bar.total)
        bar.set_postfix_str(f"{calls} calls")

    try:
        load = loadgen.run_point(jobs, on_progress=on_progress, timeout=options.duration * 4 + 60)
    finally:
        bar.n = bar.total
        bar.close()
    machine_after = psutil.cpu_times()
    cpu_seconds = {s.name: s.cpu_seconds() - cpu_before[s.name] for s in services}
    cpu = {name: round(seconds / load.seconds, 2) for name, seconds in cpu_seconds.items()}
    prefix = {"debit": run_tag, "bets": "betflex:fanteam:bet:", "winners": "betflex:fanteam:payout:"}[point.kind]
    batches = database.batch_sizes(db_url, prefix, since)
    profile_summaries = {}
    for spy in spies:
        profile_summaries[spy.name] = profiles.finish(spy, options.out_dir)

    # the baselines: the same number of clients on the same database, for the same time
    variables: dict[str, Any] = {
        "client": database.CLIENT, "currency": database.CURRENCY, "in_play": seeded.system_ids["in_play"],
        "house": seeded.system_ids["house"], "hash": "0" * 64, "n": 0, "base": PG_BASE[point.name],
    }
    pg: baseline.PgbenchResult | None = None
    if point.rate is None:
        pg = _core_sql_baseline(point, options, seeded, db_url, scripts, work, variables, progress)
    plain = None
    if point.kind != "winners":
        plain = _plain_baseline(point, options, seeded, scripts, work, db_url, progress)

    throughput = load.calls / load.seconds
    errors = sum(load.errors.values())
    ok_throughput = (load.calls - errors) / load.seconds
    result = {
        "name": point.name, "scenario": point.scenario, "kind": point.kind, "concurrency": point.concurrency,
        "offered_rate": point.rate,
        "calls": load.calls, "seconds": round(load.seconds, 2), "throughput": round(throughput, 1),
        "ok_throughput": round(ok_throughput, 1),
        "latency_ms": percentiles(load.latencies_ms), "errors": errors, "error_kinds": dict(load.errors),
        "loadgen": {
            "processes": processes, "cpu_seconds": round(load.cpu_seconds, 2),
            "cores": round(load.cpu_seconds / load.seconds, 2), "per_process_cores": load.per_process_cores,
        },
        "service_cores": cpu,
        # CPU per call, in microseconds: steadier than calls/s on a shared machine
        "service_us_per_call": {name: round(seconds / load.calls * 1e6) if load.calls else None
                                for name, seconds in cpu_seconds.items() if name == "core" or point.kind != "debit"},
        "core_batches": batches,
        "machine_busy_percent": round(_busy_percent(machine_before, machine_after), 1),
        "baseline": pg.summary() if pg is not None else None,
        "ratio": round(ok_throughput / pg.tps, 2) if pg is not None and pg.tps else None,
        "plain_baseline": plain.summary() if plain is not None else None,
        "plain_ratio": round(ok_throughput / plain.tps, 2) if plain is not None and plain.tps else None,
        "profiles": profile_summaries,
    }
    for key, run_ in (("baseline_error", pg), ("plain_baseline_error", plain)):
        if run_ is not None and run_.aborted:
            result[key] = run_.output_tail
    return result, (load.placed if point.name == "C64" else placed)


def _core_sql_baseline(point: Point, options: Options, seeded: database.Seeded, db_url: str,
                       scripts: dict[str, Path], work: Path, variables: dict[str, Any],
                       progress: Progress) -> baseline.PgbenchResult | None:
    """pgbench running the core's own SQL, one call per transaction, with the point's clients and time."""
    database.vacuum(db_url)
    pg_bar = progress.bar(f"{point.name} pgbench", options.duration)

    def on_tick(elapsed: float) -> None:
        pg_bar.n = min(round(elapsed, 1), pg_bar.total)
        pg_bar.refresh()
    try:
        if point.kind == "winners":
            counts = database.count_by_pgbench_client(db_url, PG_BASE["C64"], baseline.ID_STRIDE)
            per_client = min((counts.get(c, 0) for c in range(point.concurrency)), default=0)
            variables["stake_base"] = PG_BASE["C64"]
            pg = baseline.run_pgbench(
                db_url, scripts["settle"], clients=point.concurrency, variables=variables, log_dir=work,
                transactions=max(per_client, 1), timeout=options.duration * 4 + 60, on_tick=on_tick,
            ) if per_client else None
        else:
            lo, hi = (int(seeded.hot_user), int(seeded.hot_user)) if point.hot else (1, seeded.wallets)
            variables |= {"lo": lo, "hi": hi}
            pg = baseline.run_pgbench(
                db_url, scripts["debit"], clients=point.concurrency, variables=variables, log_dir=work,
                duration=options.duration, timeout=options.duration * 4 + 60, on_tick=on_tick,
            )
    finally:
        pg_bar.n = pg_bar.total
        pg_bar.close()
    return pg


def _plain_baseline(point: Point, options: Options, seeded: database.Seeded, scripts: dict[str, Path],
                    work: Path, db_url: str, progress: Progress) -> baseline.PgbenchResult:
    """pgbench running the hand-written debit: random wallet, or the hot one for B; at the offered rate for O."""
    lo, hi = (int(seeded.hot_user), int(seeded.hot_user)) if point.hot else (1, seeded.wallets)
    variables = {"client": database.CLIENT, "n": 0, "base": PG_BASE[point.name], "lo": lo, "hi": hi}
    clients = OPEN_LOOP_PLAIN_CLIENTS if point.rate else point.concurrency
    database.vacuum(db_url)
    bar = progress.bar(f"{point.name} plain", options.duration)

    def on_tick(elapsed: float) -> None:
        bar.n = min(round(elapsed, 1), bar.total)
        bar.refresh()
    try:
        return baseline.run_pgbench(
            db_url, scripts["plain"], clients=clients, variables=variables, log_dir=work,
            duration=options.duration, timeout=options.duration * 4 + 60, on_tick=on_tick, rate=point.rate,
        )
    finally:
        bar.n = bar.total
        bar.close()


def _core_env(options: Options) -> dict[str, str]:
    """The core's settings for the run beyond the database and the address: none but the number of
    processes asked for (--core-workers), so that the figures are those of a deployment's defaults."""
    return {"WALLET_CORE_WORKERS": str(options.core_workers)} if options.core_workers > 1 else {}


def _edge_env(options: Options) -> dict[str, str]:
    """The edge's settings beyond the addresses and tokens: with a core of N processes, 2N connections to
    it (WALLET_EDGE_CORE_CHANNELS), so that the kernel's hash of connections reaches every process."""
    return {"WALLET_EDGE_CORE_CHANNELS": str(2 * options.core_workers)} if options.core_workers > 1 else {}


def _busy_percent(before: Any, after: Any) -> float:
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0) - getattr(before, "iowait", 0))
    return 100.0 * (total - idle) / total if total else 0.0


def _thin(samples: list[tuple[float, int]], keep: int = 120) -> list[tuple[float, float]]:
    step = max(1, len(samples) // keep)
    return [(t, round(rss / 2**20, 1)) for t, rss in samples[::step]]


def _reconcile(db_url: str) -> dict[str, Any]:
    from wallet_core.reconcile import reconcile
    from wallet_core.storage.engine import make_engine

    engine = make_engine(db_url, pool_size=1)
    try:
        found = reconcile(engine)
    finally:
        engine.dispose()
    return {"ok": found.ok, "report": found.render()}


def _machine() -> dict[str, Any]:
    try:
        version = subprocess.run(["pgbench", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        version = "pgbench not found"
    return {
        "cpus": psutil.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(), "platform": platform.platform(), "pgbench": version,
        "load_average_at_start": [round(x, 2) for x in psutil.getloadavg()],
    }


TARGETS = [
    # (point, what, plain ratio at least, p99 below ms) -- issue 13
    ("A64", "A64 >= 0.5x the plain debit, p99 < 50 ms", 0.5, 50.0),
    ("B64", "B64 >= 1.0x the plain debit on the hot row, p99 < 50 ms", 1.0, 50.0),
    ("C64", "C64 >= 0.25x the plain debit", 0.25, None),
    ("O500", "/bets offered at 500/s (open loop): p99 < 25 ms", None, 25.0),
]
CORE_US_PER_DEBIT = ("A64", 200)  # core CPU per Debit at A64, microseconds
RSS_LIMIT_MB = 300.0  # per process, core and edge


def evaluate_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    by_name = {p["name"]: p for p in report["points"]}
    found = []
    for name, what, ratio, p99 in TARGETS:
        point = by_name.get(name)
        if point is None:
            continue
        got_p99 = point["latency_ms"]["p99"]
        met = point["errors"] == 0
        if ratio is not None:
            met = met and point["plain_ratio"] is not None and point["plain_ratio"] >= ratio
        if p99 is not None:
            met = met and got_p99 is not None and got_p99 < p99
        found.append({"target": what, "point": name, "plain_ratio": point["plain_ratio"], "ratio": point["ratio"],
                      "p99_ms": got_p99, "errors": point["errors"], "met": bool(met)})
    name, limit = CORE_US_PER_DEBIT
    if name in by_name:
        got = by_name[name]["service_us_per_call"].get("core")
        found.append({"target": f"core CPU per Debit at {name} <= {limit} us", "point": name, "core_us": got,
                      "met": got is not None and got <= limit})
    seconds = sum(p["seconds"] for p in report["points"])
    for service in ("core", "edge"):
        peak = report.get(service, {}).get("peak_rss_mb")
        if peak is not None:
            found.append({"target": f"{service} peak RSS < {RSS_LIMIT_MB:g} MB over the run ({seconds:.0f} s of load)",
                          "point": service, "peak_rss_mb": peak, "met": peak < RSS_LIMIT_MB})
    return found


def command_line(argv: list[str]) -> str:
    return "wallet " + " ".join(shlex.quote(a) for a in argv)


