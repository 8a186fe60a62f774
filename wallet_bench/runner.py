"""`wallet bench`: every scenario, its pgbench baseline, and the report (terminal table, JSON, PNG).

Scenarios (each point bounded by `duration` seconds and a call budget, 127.0.0.1 only):

    A1, A16, A64  gRPC Debit of one 1.00 stake on a wallet drawn at random among N funded wallets
    B16, B64      the same, every call on one hot wallet
    C64           HTTP POST /bets, one bet per callback (edge + core + PostgreSQL)
    D64           HTTP POST /winners settling, one by one, the bets C64 placed

Each point's baseline is pgbench on the same database, at the same number of clients, for the
same time, running the core's own SQL for one call per transaction (bench.baseline): the
random-wallet debit for A and C, the hot-wallet debit for B, the payout settlement for D
(settling the stakes the C baseline placed). ratio = our calls/s / pgbench transactions/s.
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
    concurrency: int
    hot: bool = False


POINTS = [
    Point("A1", "A", "debit", 1), Point("A16", "A", "debit", 16), Point("A64", "A", "debit", 64),
    Point("B16", "B", "debit", 16, hot=True), Point("B64", "B", "debit", 64, hot=True),
    Point("C64", "C", "bets", 64), Point("D64", "D", "winners", 64),
]
PROFILED = {"A64", "C64"}
PG_BASE = {name: (n + 1) * 10**15 for n, name in enumerate(p.name for p in POINTS)}  # pgbench id ranges


@dataclass
class Options:
    duration: float = 10.0
    wallets: int = 10_000
    scenarios: str = "A,B,C,D"
    processes: int = 2
    server_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    out_dir: Path = RESULTS_DIR
    profile: bool = False
    max_calls: int = 2_000_000
    quick: bool = False
    progress: bool = True
    command: str = ""


def select_points(spec: str) -> list[Point]:
    """"A,B" -> every point of A and B; "A64,C" -> A64 and C64; D brings C (it settles C's bets)."""
    wanted = {s.strip().upper() for s in spec.split(",") if s.strip()}
    unknown = wanted - {p.name for p in POINTS} - {p.scenario for p in POINTS}
    if unknown:
        raise ValueError(f"unknown scenarios {sorted(unknown)}; choose among A, B, C, D or {[p.name for p in POINTS]}")
    chosen = [p for p in POINTS if p.name in wanted or p.scenario in wanted]
    if any(p.scenario == "D" for p in chosen) and not any(p.scenario == "C" for p in chosen):
        chosen.insert(len(chosen) - 1, next(p for p in POINTS if p.scenario == "C"))
    return chosen


class Progress:
    """One tqdm bar per step, advanced by elapsed seconds, showing the calls made so far."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def bar(self, label: str, seconds: float) -> Any:
        from tqdm import tqdm

        return tqdm(total=round(seconds, 1), desc=f"{label:<14}", unit="s", disable=not self.enabled, leave=True,
                    bar_format="{desc} {bar:30} {n:.1f}/{total:.1f} s {postfix}", file=sys.stderr)


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
            "core_env": _core_env(options),
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
        report["seed_seconds"] = round(time.monotonic() - t0, 2)
        scripts = {"debit": work / "debit.sql", "settle": work / "settle.sql"}
        scripts["debit"].write_text(baseline.debit_script())
        scripts["settle"].write_text(baseline.settle_script(seeded.system_ids))
        report["baseline_scripts"] = {k: v.read_text() for k, v in scripts.items()}
        needs_edge = any(p.kind != "debit" for p in points)
        with running_stack(db_url, work, edge=needs_edge, core_env=_core_env(options)) as stack:
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
                report["core"] = {"pid": stack.core.pid, "peak_rss_mb": round(stack.core.peak_rss / 2**20, 1),
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
        ))

    spies = []
    if options.profile and point.name in PROFILED:
        targets = [stack.core] + ([stack.edge] if point.kind != "debit" and stack.edge is not None else [])
        spies = [profiles.start(f"{point.name}-{s.name}", s.pid, options.duration, work) for s in targets]

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
    cpu = {s.name: round((s.cpu_seconds() - cpu_before[s.name]) / load.seconds, 2) for s in services}
    prefix = {"debit": run_tag, "bets": "betflex:fanteam:bet:", "winners": "betflex:fanteam:payout:"}[point.kind]
    batches = database.batch_sizes(db_url, prefix)
    profile_summaries = {}
    for spy in spies:
        profile_summaries[spy.name] = profiles.finish(spy, options.out_dir)

    # the baseline: the same number of clients on the same database, for the same time
    variables: dict[str, Any] = {
        "client": database.CLIENT, "currency": database.CURRENCY, "in_play": seeded.system_ids["in_play"],
        "house": seeded.system_ids["house"], "hash": "0" * 64, "n": 0, "base": PG_BASE[point.name],
    }
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

    throughput = load.calls / load.seconds
    errors = sum(load.errors.values())
    pg_summary = pg.summary() if pg is not None else None
    ok_throughput = (load.calls - errors) / load.seconds
    result = {
        "name": point.name, "scenario": point.scenario, "kind": point.kind, "concurrency": point.concurrency,
        "calls": load.calls, "seconds": round(load.seconds, 2), "throughput": round(throughput, 1),
        "ok_throughput": round(ok_throughput, 1),
        "latency_ms": percentiles(load.latencies_ms), "errors": errors, "error_kinds": dict(load.errors),
        "loadgen": {
            "processes": processes, "cpu_seconds": round(load.cpu_seconds, 2),
            "cores": round(load.cpu_seconds / load.seconds, 2), "per_process_cores": load.per_process_cores,
        },
        "service_cores": cpu,
        "core_batches": batches,
        "machine_busy_percent": round(_busy_percent(machine_before, machine_after), 1),
        "baseline": pg_summary,
        "ratio": round(ok_throughput / pg.tps, 2) if pg is not None and pg.tps else None,
        "profiles": profile_summaries,
    }
    if pg is not None and pg.aborted:
        result["baseline_error"] = pg.output_tail
    return result, (load.placed if point.kind == "bets" else placed)


def _core_env(options: Options) -> dict[str, str]:
    """The core's settings for the run beyond the database and the address: none, so that the
    figures are those of the settings a deployment gets by default."""
    return {}


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
    # (point, what, ratio at least, p99 below ms)
    ("A64", "A at 64 callers >= 1.0x pgbench, p99 < 50 ms", 1.0, 50.0),
    ("B64", "B at 64 callers >= 3x the pgbench hot-row baseline", 3.0, None),
    ("C64", "C >= 0.6x baseline, p99 < 50 ms", 0.6, 50.0),
    ("D64", "D >= 0.6x baseline, p99 < 50 ms", 0.6, 50.0),
]
CORE_RSS_LIMIT_MB = 300.0


def evaluate_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    by_name = {p["name"]: p for p in report["points"]}
    found = []
    for name, what, ratio, p99 in TARGETS:
        point = by_name.get(name)
        if point is None:
            continue
        got_p99 = point["latency_ms"]["p99"]
        met = point["ratio"] is not None and point["ratio"] >= ratio and point["errors"] == 0
        if p99 is not None:
            met = met and got_p99 is not None and got_p99 < p99
        found.append({"target": what, "point": name, "ratio": point["ratio"], "p99_ms": got_p99,
                      "errors": point["errors"], "met": bool(met)})
    peak = report.get("core", {}).get("peak_rss_mb")
    if peak is not None:
        found.append({"target": f"core peak RSS < {CORE_RSS_LIMIT_MB:g} MB over the run "
                                f"({sum(p['seconds'] for p in report['points']):.0f} s of load)",
                      "point": "core", "peak_rss_mb": peak, "met": peak < CORE_RSS_LIMIT_MB})
    return found


def command_line(argv: list[str]) -> str:
    return "wallet " + " ".join(shlex.quote(a) for a in argv)


