"""The edge as an HTTP server: authentication, the allowlist, body limits, probes, metrics, logs, OpenAPI.

Every refused request must leave the database exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from clients import WalletClient
from tests.e2e.conftest import ALICE
from tests.support.betflex import example
from tests.support.db import dump
from tests.support.processes import EDGE_TOKEN as PROCESS_EDGE_TOKEN
from tests.support.processes import free_port
from tests.support.processes import running_edge as running_edge_process
from tests.support.servers import Core
from tests.support.stack import EDGE_TOKEN, Edge, running_edge


@pytest.fixture
def unchanged(core: Core, funded: WalletClient) -> Iterator[None]:
    before = dump(core.engine)
    yield
    assert dump(core.engine) == before


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {EDGE_TOKEN}"},
                                     {"Authorization": "Bearer"}], ids=["missing", "wrong", "not bearer", "empty"])
@pytest.mark.parametrize("route", ["/bets", "/winners"])
def test_unauthenticated_callbacks_get_401_and_touch_nothing(
    edge: Edge, unchanged: None, headers: dict[str, str], route: str
) -> None:
    response = httpx.post(edge.url + route, json=example("bets"), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_right_token_and_a_hashed_token(core: Core, funded: WalletClient) -> None:
    digest = "sha256:" + hashlib.sha256(b"hashed-secret").hexdigest()
    with running_edge(core.target) as edge:
        with edge.client() as http:
            assert http.post("/bets", json=example("bets")).status_code == 200
    with (running_edge(core.target, edge_tokens=f"other=fanteam;{digest}=fanteam") as edge,
          edge.client("hashed-secret") as http):
        assert http.post("/bets", json=example("bets")).json()["bets"][0]["balance"] == "85.00"


def test_an_address_outside_the_allowlist_gets_403(core: Core, funded: WalletClient) -> None:
    with running_edge(core.target, edge_allow="10.0.0.0/8") as edge, edge.client() as http:
        response = http.post("/bets", json=example("bets"), headers={"X-Forwarded-For": "10.1.2.3"})
        assert response.status_code == 403  # forwarded headers count only from configured proxies
    with running_edge(core.target, edge_allow="10.0.0.0/8", edge_trusted_proxies="127.0.0.1/32") as edge:
        with edge.client() as http:
            assert http.post("/bets", json=example("bets"), headers={"X-Forwarded-For": "192.0.2.1"}).status_code == 403
            assert funded.get_balance(ALICE).balance == Decimal("100.00")
            assert http.post("/bets", json=example("bets"), headers={"X-Forwarded-For": "10.1.2.3"}).status_code == 200
    assert funded.get_balance(ALICE).balance == Decimal("85.00")


def test_oversized_bodies_get_413(core: Core, funded: WalletClient, unchanged: None) -> None:
    with running_edge(core.target, edge_max_body_bytes=1024) as edge, edge.client() as http:
        big = json.dumps({"bets": example("bets")["bets"], "padding": "x" * 2048}).encode()
        assert http.post("/bets", content=big, headers={"Content-Type": "application/json"}).status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: the cap holds while reading
            for _ in range(8):
                yield b" " * 512

        response = http.post("/winners", content=chunks(), headers={"Content-Type": "application/json"})
        assert response.status_code == 413 and response.json()["error"] == "payload_too_large"


@pytest.mark.parametrize(
    ("content", "content_type", "bets_status", "winners_status"),
    [
        (b"{not json", "application/json", 402, 400),
        (b"", "application/json", 402, 400),
        (b"[]", "application/json", 402, 400),
        (b'{"bets": "many"}', "application/json", 402, 400),
        (json.dumps(example("bets")).encode(), "text/plain", 415, 415),
    ],
    ids=["malformed", "empty", "array", "wrong type", "content type"],
)
def test_malformed_bodies(
    http: httpx.Client, unchanged: None, content: bytes, content_type: str, bets_status: int, winners_status: int
) -> None:
    for route, status in (("/bets", bets_status), ("/winners", winners_status)):
        response = http.post(route, content=content, headers={"Content-Type": content_type})
        assert response.status_code == status, (route, response.text)
        assert response.json()["message"]
        if status == 402:
            assert response.json()["error"] == "invalid_request"


def test_probes(edge: Edge) -> None:
    assert httpx.get(edge.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(edge.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_metrics_count_callbacks_by_route_and_outcome(http: httpx.Client, funded: WalletClient) -> None:
    http.post("/bets", json=example("bets"))
    http.post("/bets", json=example("bets") | {"bets": []})
    text = http.get("/metrics").text
    assert 'betflex_callbacks_total{outcome="ok",route="/bets"} 1.0' in text
    assert 'betflex_callbacks_total{outcome="invalid_request",route="/bets"} 1.0' in text
    assert 'betflex_callback_seconds_count{route="/bets"} 2.0' in text


def test_one_structured_log_line_per_callback_without_the_token(
    http: httpx.Client, funded: WalletClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        http.post("/bets", json=example("bets"))
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "edge_http.callbacks"]
    assert len(lines) == 1
    line = lines[0]
    assert (line["route"], line["status"], line["outcome"], line["bet_uids"], line["pool_uids"]) == (
        "/bets", 200, "ok", [9000001], [550001])
    assert EDGE_TOKEN not in caplog.text


def test_the_openapi_document_describes_both_callbacks(edge: Edge) -> None:
    document = httpx.get(edge.url + "/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    for route, statuses in (("/bets", {"200", "402"}), ("/winners", {"200", "422", "503"})):
        assert statuses <= set(document["paths"][route]["post"]["responses"])


def test_insecure_mode_accepts_anyone_and_warns_at_start_and_on_every_request(
    core: Core, funded: WalletClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="edge_http"):
        with running_edge(core.target, edge_tokens="", insecure_no_auth=True) as edge:
            assert "INSECURE" in caplog.text
            caplog.clear()
            assert httpx.post(edge.url + "/bets", json=example("bets")).status_code == 200
            assert "WITHOUT authentication" in caplog.text


def test_other_methods_and_paths_get_json_errors(http: httpx.Client) -> None:
    for method, path, status in (("GET", "/bets", 405), ("POST", "/nowhere", 404), ("DELETE", "/winners", 405)):
        response = http.request(method, path)
        assert response.status_code == status and response.json()["error"]


def test_readyz_reports_a_refused_core_token(core: Core) -> None:
    with running_edge(core.target, core_token="not-a-core-token") as edge:
        ready = httpx.get(edge.url + "/readyz")
        assert ready.status_code == 503 and "WALLET_CORE_TOKEN" in ready.json()["detail"]


def test_an_unreadable_content_length_gets_the_json_error_body(tmp_path: Path) -> None:
    """h11 refuses such a request before Falcon sees it; `wallet edge` answers it with the edge's JSON error
    (no core is needed: nothing reaches it)."""
    with running_edge_process(f"127.0.0.1:{free_port()}", "unused", tmp_path / "edge.log") as edge:
        for length in (b"abc", b"-1", b"1, 2", b"12 34"):
            with socket.create_connection(("127.0.0.1", edge.port), timeout=30) as sock:
                sock.sendall(b"POST /bets HTTP/1.1\r\nHost: edge\r\nAuthorization: Bearer "
                             + PROCESS_EDGE_TOKEN.encode()
                             + b"\r\nContent-Type: application/json\r\nContent-Length: " + length + b"\r\n\r\n{}")
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400"), (length, answer)
            assert b"content-type: application/json" in head.lower()
            assert json.loads(body)["error"] == "invalid_request"
