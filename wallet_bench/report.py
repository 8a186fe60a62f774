"""The run's report on the terminal (a table) and as a PNG (throughput and p99 against concurrency).

The open-loop points (O) have no concurrency to plot against; they are in the table and the JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def table(report: dict[str, Any]) -> str:
    header = (f"{'point':<6} {'calls/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7} "
              f"{'gen CPU':>8} {'core CPU':>8} {'edge CPU':>8} {'core us':>8} {'edge us':>8} {'busy%':>6} "
              f"{'pgbench/s':>10} {'pg p99':>7} {'ratio':>6} {'plain/s':>9} {'pl p99':>7} {'plain':>6}")
    lines = [header, "-" * len(header)]
    for p in report["points"]:
        lat, base, plain = p["latency_ms"], p["baseline"] or {}, p.get("plain_baseline") or {}
        cores = p["service_cores"]
        per_call = p.get("service_us_per_call") or {}
        lines.append(
            f"{p['name']:<6} {p['throughput']:>9.1f} {_f(lat['p50'])} {_f(lat['p95'])} {_f(lat['p99'])} "
            f"{p['errors']:>7d} {p['loadgen']['cores']:>7.2f}c {cores.get('core', 0):>7.2f}c "
            f"{_c(cores.get('edge'))} {_u(per_call.get('core'))} {_u(per_call.get('edge'))} "
            f"{p['machine_busy_percent']:>6.0f} "
            f"{_n(base.get('tps')):>10} {_f((base.get('latency_ms') or {}).get('p99'), 7)} {_r(p['ratio'])} "
            f"{_n(plain.get('tps')):>9} {_f((plain.get('latency_ms') or {}).get('p99'), 7)} "
            f"{_r(p.get('plain_ratio'))}"
        )
    lines.append("")
    lines.append("gen CPU: cores used by the load generator's processes (busy% is the whole machine, "
                 f"{report['machine']['cpus']} CPUs); core us, edge us: microseconds of CPU per call")
    lines.append("ratio: successful calls/s / pgbench running the core's own SQL; plain: / pgbench running the "
                 "hand-written 4-statement debit (hot wallet for B)")
    lines.append("O250, O500: /bets offered open-loop at that rate (Poisson); latency from the scheduled send time; "
                 "plain there is pgbench -R at the same rate")
    core = report.get("core", {})
    edge = report.get("edge", {})
    processes = core.get("processes", 1)
    core_rss = f"core peak RSS: {core.get('peak_rss_mb')} MB"
    if processes > 1:
        core_rss += (f" (the largest of its {processes} processes, supervisor and workers; "
                     f"{core.get('peak_rss_total_mb')} MB together; core CPU is their sum)")
    lines.append(core_rss + (f"; edge peak RSS: {edge.get('peak_rss_mb')} MB" if edge else ""))
    rec = report.get("reconcile", {})
    lines.append(f"reconcile after the run: {'clean' if rec.get('ok') else 'VIOLATIONS'}")
    for t in report.get("targets", []):
        lines.append(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: " + ", ".join(
            f"{k}={v}" for k, v in t.items() if k not in {"target", "met", "point"}))
    return "\n".join(lines)


def _f(value: float | None, width: int = 8) -> str:
    return f"{value:>{width}.1f}" if value is not None else f"{'-':>{width}}"


def _n(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def _c(value: float | None) -> str:
    return f"{value:>7.2f}c" if value is not None else f"{'-':>8}"


def _u(value: float | None) -> str:
    return f"{value:>8.0f}" if value is not None else f"{'-':>8}"


def _r(value: float | None) -> str:
    return f"{value:>5.2f}x" if value is not None else f"{'-':>6}"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_tp, ax_p99) = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = {"A": ("tab:blue", "o"), "B": ("tab:red", "s"), "C": ("tab:green", "^"), "D": ("tab:purple", "v")}
    labels = {"A": "A gRPC Debit, random wallet", "B": "B gRPC Debit, hot wallet", "C": "C HTTP /bets",
              "D": "D HTTP /winners"}
    for scenario, (color, marker) in styles.items():
        points = sorted((p for p in report["points"] if p["scenario"] == scenario), key=lambda p: p["concurrency"])
        if not points:
            continue
        x = [p["concurrency"] for p in points]
        ax_tp.plot(x, [p["throughput"] for p in points], marker=marker, color=color, label=labels[scenario])
        base = [(p["concurrency"], p["baseline"]["tps"]) for p in points if p["baseline"]]
        if base:
            ax_tp.plot(*zip(*base, strict=True), marker=marker, color=color, linestyle="--", alpha=0.6,
                       label=f"{scenario} pgbench baseline")
        plain = [(p["concurrency"], p["plain_baseline"]["tps"]) for p in points if p.get("plain_baseline")]
        if plain:
            ax_tp.plot(*zip(*plain, strict=True), marker=marker, color=color, linestyle=":", alpha=0.6,
                       label=f"{scenario} plain debit baseline")
        ax_p99.plot(x, [p["latency_ms"]["p99"] or 0 for p in points], marker=marker, color=color,
                    label=labels[scenario])
    for ax, title, unit in ((ax_tp, "Throughput", "calls/s"), (ax_p99, "p99 latency", "ms")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent callers")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    ax_p99.axhline(50, color="grey", linestyle=":", linewidth=1)
    fig.suptitle(f"wallet bench {report['started'][:19]} ({report['machine']['cpus']} CPUs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
