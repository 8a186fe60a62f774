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
        cli, ["bench", "--quick", "--scenarios", "A16", "--pg", postgres_server_url(), "--out", str(tmp_path)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    [report_file] = tmp_path.glob("*.json")
    assert report_file.with_suffix(".png").exists()
    report = json.loads(report_file.read_text())
    assert {"command", "machine", "settings", "points", "core", "reconcile", "targets"} <= report.keys()
    [point] = report["points"]
    assert point["name"] == "A16"
    assert {"throughput", "latency_ms", "errors", "loadgen", "baseline", "ratio", "service_cores"} <= point.keys()
    assert {"p50", "p95", "p99"} <= point["latency_ms"].keys()
    assert {"cores", "cpu_seconds", "processes"} <= point["loadgen"].keys()
    assert {"tps", "latency_ms", "command"} <= point["baseline"].keys()
    assert report["core"]["peak_rss_mb"] > 0
    assert report["reconcile"]["ok"], report["reconcile"]["report"]
    assert "A16" in result.output
