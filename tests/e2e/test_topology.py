"""The production topology, as docker-compose.yml describes it, run as separate processes.

Docker is not available here, so the compose file is checked against the CLI (every command,
option and variable it uses exists), and the same services (a one-shot `wallet db upgrade`,
`wallet core`, `wallet edge`) run as their own processes on PostgreSQL, with the compose
file's own commands and environment, only the addresses pointed at this machine.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import grpc
import httpx
import pytest
from click.testing import CliRunner
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients import AccountRef, WalletClient
from edge_http.config import EdgeSettings
from tests.support.betflex import example
from tests.support.compose import SERVICES, WALLET_SERVICES, command, environment, run_service
from tests.support.db import postgres_or_skip
from tests.support.stack import ROOT, free_port, wait_until, wallet_command
from wallet_cli.cli import cli
from wallet_core.config import Settings

CLI_VARIABLES = {"WALLET_TOKEN", "WALLET_CORE_ADDR", "WALLET_CONFIG"}  # read by the operator commands
KNOWN_VARIABLES = (
    {f"WALLET_{name.upper()}" for name in Settings.model_fields}
    | {f"WALLET_{name.upper()}" for name in EdgeSettings.model_fields}
    | CLI_VARIABLES
)


# ---------------------------------------------------------------- the compose file against the CLI


@pytest.mark.parametrize("service", WALLET_SERVICES)
def test_every_compose_command_and_option_exists(service: str) -> None:
    words = command(service)
    result = CliRunner().invoke(cli, [*words, "--help"], prog_name="wallet")
    assert result.exit_code == 0, result.output
    for option in (word for word in words if word.startswith("--")):
        assert option in result.output, f"{service}: `wallet {' '.join(words)}` has no option {option}"


@pytest.mark.parametrize("service", WALLET_SERVICES)
def test_every_compose_variable_is_a_setting(service: str) -> None:
    for variable in SERVICES[service].get("environment", {}):
        assert variable in KNOWN_VARIABLES, f"{service}: {variable} is read by nothing"


def test_the_compose_stack_is_ordered_and_checked() -> None:
    assert "healthcheck" in SERVICES["postgres"]
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert SERVICES["core"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\S+", dockerfile, re.M), "the image must not run as root"
    assert "-slim" in dockerfile and re.search(r'^ENTRYPOINT \["wallet"\]', dockerfile, re.M)


@pytest.mark.parametrize("service", ["core", "edge"])
def test_core_and_edge_have_a_healthcheck_and_restart(service: str) -> None:
    definition = SERVICES[service]
    assert definition["restart"] in {"unless-stopped", "always", "on-failure"}
    check = definition["healthcheck"]
    assert check["test"][0] == "CMD" and check["test"][1:4] == ["python", "-m", "wallet_core.probe"]
    assert {"interval", "timeout", "retries"} <= set(check)
    assert SERVICES["edge"]["depends_on"]["core"]["condition"] == "service_healthy"


def test_prometheus_scrapes_the_core_and_the_edge() -> None:
    prometheus = SERVICES["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:") and prometheus["restart"] == "unless-stopped"
    assert any(v.startswith("./deploy/prometheus:") for v in prometheus["volumes"])
    assert set(prometheus["depends_on"]) == {"core", "edge"}
    assert "WALLET_METRICS_ADDR" in SERVICES["core"]["environment"]


def test_the_dockerfile_is_fit_for_production() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in dockerfile.splitlines()]
    assert re.search(r"^USER \d+(:\d+)?$", dockerfile, re.M), "USER must be a numeric uid (runAsNonRoot can check it)"
    user = int(re.search(r"^USER (\d+)", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    assert user != 0
    dependencies = next(i for i, line in enumerate(lines) if "-r requirements.txt" in line)
    code = next(i for i, line in enumerate(lines) if line.startswith("COPY wallet_core"))
    assert dependencies < code, "the dependency layer comes before the code"
    assert re.search(r"^HEALTHCHECK .*\\$", dockerfile, re.M) and "wallet_core.probe" in dockerfile
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    assert cmd[0] == "core" and "serve" not in cmd, "the default command is the production core"
    result = CliRunner().invoke(cli, [*cmd, "--help"], prog_name="wallet")
    assert result.exit_code == 0 and all(o in result.output for o in cmd if o.startswith("--"))


# ---------------------------------------------------------------- the same topology as processes


@pytest.fixture
def pg_url() -> Iterator[str]:
    database = postgres_or_skip()
    try:
        yield database.url
    finally:
        database.drop()


def _health(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        # types-grpcio-health-checking declares the stub without its methods
        reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)  # type: ignore[attr-defined]
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


@pytest.mark.postgres
def test_the_compose_topology_as_separate_processes(pg_url: str, tmp_path: Path) -> None:
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    tokens = {"WALLET_CORE_TOKEN": "core-secret-for-the-test", "WALLET_EDGE_TOKEN": "edge-secret-for-the-test"}
    substitutions = {
        **tokens,
        "postgresql://wallet:wallet@postgres:5432/wallet": pg_url,
        "core:50051": f"127.0.0.1:{grpc_port}",
        "0.0.0.0:9464": f"127.0.0.1:{metrics_port}",
    }
    migrate = run_service("migrate", environment("migrate", substitutions), None, tmp_path / "migrate.log")
    assert migrate.wait(120) == 0, (tmp_path / "migrate.log").read_text()

    processes = [
        run_service("core", environment("core", substitutions), f"127.0.0.1:{grpc_port}", tmp_path / "core.log"),
        run_service("edge", environment("edge", substitutions), f"127.0.0.1:{http_port}", tmp_path / "edge.log"),
    ]
    try:
        wait_until(lambda: _health(f"127.0.0.1:{grpc_port}"), 60, "the core did not start")
        edge = f"http://127.0.0.1:{http_port}"
        wait_until(lambda: httpx.get(edge + "/readyz").status_code == 200, 60, "the edge did not get ready")

        alice = AccountRef("fanteam", "1001", "EUR")
        with WalletClient(f"127.0.0.1:{grpc_port}", token=tokens["WALLET_CORE_TOKEN"]) as wallet:
            wallet.open_account(alice)
            wallet.deposit("fund-alice", alice, "100.00")
            headers = {"Authorization": f"Bearer {tokens['WALLET_EDGE_TOKEN']}"}
            assert httpx.post(edge + "/bets", json=example("bets"), headers=headers).status_code == 200
            assert httpx.post(edge + "/winners", json=example("winners"), headers=headers).status_code == 200
            assert wallet.get_balance(alice).balance == Decimal("122.50")
        # the compose healthchecks, run against these processes
        for service, address in (("core", f"127.0.0.1:{grpc_port}"), ("edge", f"127.0.0.1:{http_port}")):
            test = [word.replace("127.0.0.1:50051", address).replace("127.0.0.1:8080", address)
                    for word in SERVICES[service]["healthcheck"]["test"][1:]]
            assert test[0] == "python"
            check = subprocess.run([sys.executable, *test[1:]], capture_output=True, text=True, timeout=60)
            assert check.returncode == 0, check.stdout + check.stderr
        # what Prometheus scrapes from the core
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="Debit"' in metrics
    finally:
        for process in processes:
            process.terminate()
        # a clean stop on SIGTERM: the core exits 0; uvicorn re-raises the signal once it has drained
        assert [p.wait(30) for p in processes] in ([0, 0], [0, -signal.SIGTERM]), "a service did not stop cleanly"
    assert "Finished server process" in (tmp_path / "edge.log").read_text()
    assert "wallet core stopped" in (tmp_path / "core.log").read_text()

    reconcile = subprocess.run([*wallet_command(), "reconcile", "--db", pg_url], capture_output=True, text=True,
                               timeout=120)
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
    assert "ledger is consistent" in reconcile.stdout
