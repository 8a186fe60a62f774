"""`wallet bench --quick` end to end on one scenario: it runs, cleans up, and writes the report it promises.

No timing is asserted: the figures depend on the machine; only the shape of the report is checked.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.db import postgres_server_url
from wallet_cli.cli import cli

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_quick_bench_writes_the_report(tmp_path: Path) -> None:
    pytest.importorskip("aiohttp")
    pytest.importorskip("matplotlib")
    if shutil.which("pgbench") is None:
        pytest.skip("pgbench is not installed")
    from tests.support.db import postgres_or_skip

    postgres_or_skip().drop()  # skips when the PostgreSQL test server is not there
    result = CliRunner().invoke(
        cli, ["bench", "--quick", "--scenarios", "A16,O250", "--pg", postgres_server_url(), "--out", str(tmp_path)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    [report_file] = tmp_path.glob("*.json")
    assert report_file.with_suffix(".png").exists()
    report = json.loads(report_file.read_text())
    assert {"command", "machine", "settings", "points", "core", "reconcile", "targets"} <= report.keys()
    point, open_loop = report["points"]
    assert point["name"] == "A16"
    assert {"throughput", "latency_ms", "errors", "loadgen", "baseline", "ratio", "service_cores",
            "plain_baseline", "plain_ratio", "service_us_per_call"} <= point.keys()
    assert {"p50", "p95", "p99"} <= point["latency_ms"].keys()
    assert {"cores", "cpu_seconds", "processes"} <= point["loadgen"].keys()
    assert {"tps", "latency_ms", "command"} <= point["baseline"].keys()
    # the second baseline: the hand-written debit, in the same run
    assert {"tps", "latency_ms", "command"} <= point["plain_baseline"].keys()
    assert "plain.sql" in point["plain_baseline"]["command"] and "plain" in report["baseline_scripts"]
    assert set(point["service_us_per_call"]) == {"core"}
    # the open-loop point: /bets offered at 250 per second, the plain debit offered at the same rate
    assert open_loop["name"] == "O250" and open_loop["offered_rate"] == 250.0 and open_loop["calls"] > 0
    assert "-R 250" in open_loop["plain_baseline"]["command"] and open_loop["baseline"] is None
    assert set(open_loop["service_us_per_call"]) == {"core", "edge"}
    assert report["core"]["peak_rss_mb"] > 0 and report["edge"]["peak_rss_mb"] > 0
    assert report["reconcile"]["ok"], report["reconcile"]["report"]
    header, *_ = result.stdout.splitlines()
    assert all(column in header for column in ("core us", "edge us", "pgbench/s", "plain/s"))
    assert "A16 " in result.stdout and "O250 " in result.stdout
    # not a terminal: one line per step, no progress bar frames
    assert "\r" not in result.output
    assert "O250 wallet" in result.stderr and "A16 plain" in result.stderr


def test_quick_bench_of_a_core_of_two_processes(tmp_path: Path) -> None:
    """--core-workers 2: the core is a supervisor and two workers; its CPU is theirs summed, its RSS the largest's."""
    pytest.importorskip("aiohttp")
    pytest.importorskip("matplotlib")
    if shutil.which("pgbench") is None:
        pytest.skip("pgbench is not installed")
    from tests.support.db import postgres_or_skip

    postgres_or_skip().drop()
    result = CliRunner().invoke(
        cli, ["bench", "--quick", "--scenarios", "A16", "--core-workers", "2", "--pg", postgres_server_url(),
              "--out", str(tmp_path)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    [report_file] = tmp_path.glob("*.json")
    report = json.loads(report_file.read_text())
    assert report["settings"]["core_workers"] == 2
    assert report["settings"]["core_env"] == {"WALLET_CORE_WORKERS": "2"}
    assert report["settings"]["edge_env"] == {"WALLET_EDGE_CORE_CHANNELS": "4"}  # 2N connections to the core
    assert report["core"]["processes"] == 3  # the supervisor and its two workers
    assert 0 < report["core"]["peak_rss_mb"] < report["core"]["peak_rss_total_mb"]
    [point] = report["points"]
    assert point["calls"] > 0 and point["errors"] == 0 and point["service_us_per_call"]["core"] > 0
    assert report["reconcile"]["ok"], report["reconcile"]["report"]
    assert "the largest of its 3 processes" in result.stdout


def test_quick_bench_settles_the_bets_it_placed(tmp_path: Path) -> None:
    """D64 posts /winners as betflex does (the pool's `overdraw` included): every callback is answered 200."""
    pytest.importorskip("aiohttp")
    if shutil.which("pgbench") is None:
        pytest.skip("pgbench is not installed")
    from tests.support.db import postgres_or_skip

    postgres_or_skip().drop()
    result = CliRunner().invoke(
        cli, ["bench", "--quick", "--scenarios", "D64", "--pg", postgres_server_url(), "--out", str(tmp_path)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    [report_file] = tmp_path.glob("*.json")
    points = {p["name"]: p for p in json.loads(report_file.read_text())["points"]}
    assert points["C64"]["calls"] > 0 and points["D64"]["calls"] > 0
    assert points["C64"]["errors"] == 0 and points["D64"]["errors"] == 0, points["D64"].get("error_kinds")
