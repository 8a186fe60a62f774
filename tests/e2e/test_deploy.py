"""deploy/: the Prometheus configuration, its alert rules and the Grafana dashboard.

The rules pass `promtool check` and their unit tests (`promtool test rules`, input series in
deploy/prometheus/alerts.test.yml), and every metric the rules and the dashboard name is one
that a running core (`--metrics` port) and a running edge (/metrics) really export.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from clients import DebitItem, Purpose, WalletClient
from clients.errors import InsufficientFunds
from tests.e2e.conftest import ALICE
from tests.support.betflex import example
from tests.support.servers import running_core
from tests.support.stack import ROOT, running_edge

PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "wallet.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
            "summary": ("_count", "_sum", "_created"), "gauge": ("",), "info": ("_info",)}
FROM_PROMETHEUS = {"up"}  # made by Prometheus for every target
METRIC = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing (Debian's `prometheus` package; .ci/run installs it)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return found


def run(*args: str) -> str:
    result = subprocess.run([promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_prometheus_configuration_and_rules_are_valid() -> None:
    assert "SUCCESS" in run("check", "config", "prometheus.yml")
    assert "SUCCESS" in run("check", "rules", "alerts.yml")


def test_the_alerts_fire_as_their_unit_tests_say() -> None:
    assert "SUCCESS" in run("test", "rules", "alerts.test.yml")


def test_the_required_alerts_exist() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {
        "WalletCoreDown", "WalletCoreErrorRate", "WalletCoreLatencyP99", "BetflexUnresolvedBets",
        "WalletSettlementFailuresGrowing", "WalletDatabaseUnavailable",
    } <= names
    tested = (PROMETHEUS / "alerts.test.yml").read_text()
    assert all(f"alertname: {name}" in tested for name in names), "every alert has a unit test"


def used_metrics() -> set[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    expressions += [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    return {name for expr in expressions for name in METRIC.findall(expr)}


def exported(text: str) -> set[str]:
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text) for suffix in SUFFIXES.get(family.type, ("",))
    }


def test_the_rules_and_the_dashboard_name_only_metrics_the_code_exports(db_url: str) -> None:
    with running_core(db_url, metrics_addr="127.0.0.1:0") as core, running_edge(core.target) as edge:
        with WalletClient(core.target, token="tok-fanteam") as wallet:
            wallet.open_account(ALICE)
            wallet.deposit("dep-1", ALICE, "100.00")
            with pytest.raises(InsufficientFunds):
                wallet.debit([DebitItem("stake-big", ALICE, "1000.00", Purpose.STAKE)])
        with edge.client() as http:
            assert http.post("/bets", json=example("bets")).status_code == 200
            edge_text = http.get("/metrics").text
        assert core.metrics_port is not None
        core_text = httpx.get(f"http://127.0.0.1:{core.metrics_port}/metrics").text
    names = exported(core_text) | exported(edge_text) | FROM_PROMETHEUS
    used = used_metrics()
    assert {"grpc_server_handled_total", "grpc_server_handling_seconds_bucket", "betflex_callbacks_total"} <= used
    assert used - names == set(), "metrics named in deploy/ that no service exports"


def test_the_dashboard_covers_the_core_and_the_edge() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    rows = [panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"]
    assert rows == ["Wallet core", "betflex edge"]
    used = used_metrics()
    for name in ("wallet_commit_batch_size_bucket", "wallet_commit_seconds_bucket", "wallet_commit_queue_depth",
                 "wallet_db_retries_total", "process_resident_memory_bytes", "betflex_callback_seconds_bucket"):
        assert name in used, f"the dashboard shows no {name}"


def test_compose_prometheus_mounts_this_configuration() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    prometheus = compose["services"]["prometheus"]
    mounts = " ".join(prometheus["volumes"])
    assert "./deploy/prometheus" in mounts
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"]
        for job in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    }
    core_metrics = compose["services"]["core"]["environment"]["WALLET_METRICS_ADDR"]
    assert targets["wallet-core"] == [f"core:{core_metrics.rpartition(':')[2]}"]
    assert targets["wallet-edge"] == ["edge:8080"]
