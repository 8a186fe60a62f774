"""Operability: the core is observed like the edge (docs/observability.md).

- `wallet core --metrics H:P` serves Prometheus metrics: the usual gRPC server metrics per
  method and code, the group committer, database retries, process metrics;
- every RPC leaves one JSON access line (method, client, transaction ids, code, reason,
  duration, request id, peer) and never a token;
- the edge sends its callback's request id (betflex's X-Request-ID, echoed back) to the core,
  so one callback can be followed across both logs;
- `WALLET_LOG_LEVEL` and `WALLET_LOG_FORMAT` are honoured by `wallet core` and `wallet edge`.
"""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from clients import AccountStatus, DebitItem, Purpose, WalletClient
from clients.errors import InsufficientFunds, StakeNotFound, Unauthenticated
from edge_http.betflex import stake_id
from tests.e2e.conftest import ALICE
from tests.support.betflex import example
from tests.support.servers import TOKENS
from tests.support.stack import Edge, free_port, spawn, wait_until

CORE_TOKEN = "core-secret-never-logged"


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for raw in text.splitlines():
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


@contextmanager
def core_process(tmp_path: Path, **env: str) -> Iterator[tuple[str, str, Path]]:
    """`wallet core --metrics` as its own process on SQLite: (gRPC target, metrics URL, log file)."""
    grpc_addr, metrics_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    log = tmp_path / "core.log"
    process = spawn(
        ["core", "--grpc", grpc_addr, "--metrics", metrics_addr, "--migrate", "--db", f"sqlite:///{tmp_path}/w.db"],
        {"WALLET_GRPC_TOKENS": f"{CORE_TOKEN}=*", "WALLET_CURRENCIES": "FUN=2", **env}, log,
    )
    try:
        url = f"http://{metrics_addr}/metrics"
        wait_until(lambda: httpx.get(url).status_code == 200, 60, f"the core did not start: {log.read_text()}")
        yield grpc_addr, url, log
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()


def test_the_core_logs_one_json_line_per_rpc_and_never_the_token(tmp_path: Path) -> None:
    with core_process(tmp_path, WALLET_LOG_FORMAT="json") as (target, _, log):
        with WalletClient(target, token=CORE_TOKEN) as wallet:
            wallet.open_account(ALICE)
            wallet.deposit("dep-1", ALICE, "10.00")
            wallet.set_account_status(ALICE, AccountStatus.BLOCKED)
            wallet.set_account_status(ALICE, AccountStatus.ACTIVE)
            with pytest.raises(InsufficientFunds):
                wallet.debit([DebitItem("stake-1", ALICE, "50.00", Purpose.STAKE)])
        with WalletClient(target, token="not-the-token") as intruder:
            with pytest.raises(Unauthenticated):
                intruder.get_balance(ALICE)
    text = log.read_text()
    assert CORE_TOKEN not in text and "not-the-token" not in text
    access = [line for line in json_lines(text) if line.get("event") == "rpc"]
    assert [line["method"] for line in access] == [
        f"wallet.v1.Wallet/{m}" for m in
        ("OpenAccount", "Credit", "SetAccountStatus", "SetAccountStatus", "Debit", "GetBalance")
    ]
    for line in access:
        assert line["logger"] == "wallet_core.access" and line["level"] in {"INFO", "WARNING"}
        assert line["client"] == "fanteam" and line["peer"].startswith("ipv4:127.0.0.1:")
        assert isinstance(line["duration_ms"], float) and line["request_id"]
        assert "authorization" not in json.dumps(line).lower()
    deposit, block, unblock, refused, intruded = access[1:]
    assert (deposit["code"], deposit["reason"], deposit["transaction_ids"]) == ("OK", None, ["dep-1"])
    assert block["code"] == unblock["code"] == "OK"
    assert (refused["code"], refused["reason"], refused["transaction_ids"]) == (
        "FAILED_PRECONDITION", "INSUFFICIENT_FUNDS", ["stake-1"])
    assert (intruded["code"], intruded["reason"]) == ("UNAUTHENTICATED", "UNAUTHENTICATED")
    assert len({line["request_id"] for line in access}) == len(access), "a new id for a call that brings none"


def test_the_core_serves_prometheus_metrics_on_its_own_port(tmp_path: Path) -> None:
    with core_process(tmp_path) as (target, url, _):
        with WalletClient(target, token=CORE_TOKEN) as wallet:
            wallet.open_account(ALICE)
            wallet.deposit("dep-1", ALICE, "10.00")
            with pytest.raises(InsufficientFunds):
                wallet.debit([DebitItem("stake-1", ALICE, "50.00", Purpose.STAKE)])
        text = httpx.get(url).text
    found = samples(text)

    def value(name: str, **labels: str) -> float:
        return found.get((name, frozenset(labels.items())), 0.0)

    unary = {"grpc_type": "unary", "grpc_service": "wallet.v1.Wallet"}
    assert value("grpc_server_started_total", **unary, grpc_method="Credit") == 1
    assert value("grpc_server_handled_total", **unary, grpc_method="Credit", grpc_code="OK") == 1
    assert value("grpc_server_handled_total", **unary, grpc_method="Debit", grpc_code="FAILED_PRECONDITION") == 1
    assert value("grpc_server_handling_seconds_count", **unary, grpc_method="Debit") == 1
    assert value("grpc_server_handling_seconds_bucket", **unary, grpc_method="Debit", le="+Inf") == 1
    assert value("wallet_commit_batch_size_count") == 2  # the deposit and the refused debit
    assert value("wallet_commit_seconds_count") == 2
    assert ("wallet_commit_queue_depth", frozenset()) in found
    assert "wallet_db_retries_total" in text and "wallet_settlement_failures_total" in text
    assert value("process_resident_memory_bytes") > 0 and value("process_start_time_seconds") > 0


def test_a_refused_payout_counts_as_a_settlement_failure(tmp_path: Path) -> None:
    with core_process(tmp_path) as (target, url, _):
        with WalletClient(target, token=CORE_TOKEN) as wallet:
            wallet.open_account(ALICE)
            with pytest.raises(StakeNotFound):
                wallet.payout("payout-1", ALICE, "5.00", "no-such-stake")
        found = samples(httpx.get(url).text)
    assert found[("wallet_settlement_failures_total", frozenset())] == 1


def test_one_callback_is_followed_across_the_edge_and_the_core(
    funded: WalletClient, edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    headers = {"Authorization": "Bearer tok-betflex-edge"}
    with httpx.Client(base_url=edge.url, headers=headers, timeout=30) as http:
        given = http.post("/bets", json=example("bets"), headers={"X-Request-ID": "betflex-req-42"})
        made_up = http.post("/winners", json=example("winners"))
    assert given.status_code == made_up.status_code == 200
    assert given.headers["X-Request-ID"] == "betflex-req-42"
    request_id = made_up.headers["X-Request-ID"]
    assert request_id and request_id != "betflex-req-42"

    def lines(logger: str) -> list[dict[str, Any]]:
        return [json.loads(r.getMessage()) for r in caplog.records if r.name == logger]

    callbacks = {line["route"]: line for line in lines("edge_http.callbacks")}
    assert callbacks["/bets"]["request_id"] == "betflex-req-42"
    assert callbacks["/winners"]["request_id"] == request_id
    by_id = {line["request_id"]: line for line in lines("wallet_core.access")}
    assert by_id["betflex-req-42"]["method"] == "wallet.v1.Wallet/Debit"
    assert by_id["betflex-req-42"]["transaction_ids"] == [stake_id("fanteam", 9000001)]
    assert by_id[request_id]["method"] == "wallet.v1.Wallet/SettleBatch"  # /winners settles in batches
    assert TOKENS["fanteam"] not in caplog.text


def test_wallet_edge_honours_the_log_level_and_format(tmp_path: Path) -> None:
    http_addr = f"127.0.0.1:{free_port()}"
    log = tmp_path / "edge.log"
    process = spawn(["edge", "--http", http_addr, "--insecure-no-auth"],
                    {"WALLET_LOG_LEVEL": "warning", "WALLET_LOG_FORMAT": "json"}, log)
    try:
        wait_until(lambda: httpx.get(f"http://{http_addr}/healthz").status_code == 200, 60,
                   f"the edge did not start: {log.read_text() if log.exists() else ''}")
    finally:
        process.terminate()
        process.wait(30)
    records = json_lines(log.read_text())
    assert records, log.read_text()
    assert {r["level"] for r in records} <= {"WARNING", "ERROR", "CRITICAL"}, "INFO lines at level WARNING"
    assert any("INSECURE" in r.get("message", "") for r in records)


def test_wallet_serve_serves_the_cores_metrics_too(tmp_path: Path) -> None:
    grpc_addr, http_addr, metrics_addr = (f"127.0.0.1:{free_port()}" for _ in range(3))
    log = tmp_path / "serve.log"
    process = spawn(["serve", "--grpc", grpc_addr, "--http", http_addr, "--metrics", metrics_addr], {}, log)
    try:
        # the edge's readiness probe is a GetBalance on the core: one handled call to count
        wait_until(lambda: httpx.get(f"http://{http_addr}/readyz").status_code == 200, 60,
                   f"wallet serve did not get ready: {log.read_text() if log.exists() else ''}")
        text = httpx.get(f"http://{metrics_addr}/metrics").text
    finally:
        process.terminate()
        process.wait(30)
    assert 'grpc_method="GetBalance"' in text and "grpc_server_handled_total" in text
