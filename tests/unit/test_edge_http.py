"""The edge's HTTP surface: authentication, allowlist, body cap, content type, health, metrics, OpenAPI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any

import falcon.testing
import pytest

from clients.errors import AccountNotFound, PermissionDenied, Unauthenticated
from edge_http.app import EdgeConfigError, create_app
from edge_http.config import EdgeSettings
from tests.unit.test_edge_fakes import (
    AUTH, TOKEN, FakeWallet, client, deadline, error, example, metric, settings, unavailable, wallet,
)

__all__ = ["client", "wallet"]  # fixtures

BETS = json.dumps(example("bets"))
WINNERS = json.dumps(example("winners"))
ROUTES = [("/bets", BETS), ("/winners", WINNERS)]


def app_client(wallet: FakeWallet, **overrides: Any) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(settings(**overrides), wallet=wallet))


# ---------------------------------------------------------------- authentication


@pytest.mark.parametrize(("route", "body"), ROUTES)
@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"]
)
def test_without_the_right_token_the_answer_is_401_and_nothing_happens(
    wallet: FakeWallet, route: str, body: str, authorization: str | None
) -> None:
    client = app_client(wallet)
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = client.simulate_post(route, headers=headers, body=body)
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert wallet.debits == wallet.credits == wallet.cancels == []


def test_a_token_configured_by_its_digest_is_accepted(wallet: FakeWallet) -> None:
    digest = hashlib.sha256(b"hashed-token").hexdigest()
    client = app_client(wallet, edge_tokens=f"other,sha256:{digest}")
    headers = {"Authorization": "Bearer hashed-token", "Content-Type": "application/json"}
    assert client.simulate_post("/bets", headers=headers, body=BETS).status_code == 200
    headers["Authorization"] = f"Bearer {digest}"
    assert client.simulate_post("/bets", headers=headers, body=BETS).status_code == 401


def test_an_unauthenticated_request_is_refused_before_its_body_is_read(wallet: FakeWallet) -> None:
    """A stream that fails when read shows the body is never touched."""
    app = create_app(settings(), wallet=wallet)
    status, _ = asyncio.run(raw_request(app, "/bets", [b"{", b"never read"], headers=[], explode_on_read=True))
    assert status == 401


def test_no_token_and_no_insecure_flag_refuses_to_build() -> None:
    with pytest.raises(EdgeConfigError, match="WALLET_EDGE_TOKENS"):
        create_app(EdgeSettings(), wallet=FakeWallet())
    with pytest.raises(EdgeConfigError):
        create_app(EdgeSettings(edge_tokens=" , "), wallet=FakeWallet())


def test_insecure_mode_accepts_anyone_and_warns_at_start_and_on_every_request(
    wallet: FakeWallet, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        client = falcon.testing.TestClient(create_app(EdgeSettings(insecure_no_auth=True), wallet=wallet))
        assert any("INSECURE" in r.getMessage() for r in caplog.records)
        caplog.clear()
        for _ in range(2):
            response = client.simulate_post("/bets", body=BETS, headers={"Content-Type": "application/json"})
            assert response.status_code == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "WITHOUT authentication" in r.getMessage()]
    assert len(warnings) == 2


def test_tokens_never_reach_the_log(wallet: FakeWallet, caplog: pytest.LogCaptureFixture) -> None:
    client = app_client(wallet)
    with caplog.at_level(logging.DEBUG):
        client.simulate_post("/bets", headers=AUTH, body=BETS)
        client.simulate_post("/bets", headers={"Authorization": "Bearer guessed-token"}, body=BETS)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert TOKEN not in text and "guessed-token" not in text
    assert TOKEN not in repr(settings())


# ---------------------------------------------------------------- allowlist


def test_the_allowlist_refuses_other_addresses_with_403(wallet: FakeWallet) -> None:
    client = app_client(wallet, edge_allow="203.0.113.0/24")
    assert client.simulate_post("/bets", headers=AUTH, body=BETS, remote_addr="203.0.113.9").status_code == 200
    response = client.simulate_post("/bets", headers=AUTH, body=BETS, remote_addr="198.51.100.1")
    assert (response.status_code, response.json["error"]) == (403, "forbidden")
    assert len(wallet.debits) == 1


def test_forwarded_for_counts_only_from_trusted_proxies(wallet: FakeWallet) -> None:
    client = app_client(wallet, edge_allow="203.0.113.0/24", edge_trusted_proxies="10.0.0.0/8")
    spoof = {**AUTH, "X-Forwarded-For": "203.0.113.9"}
    assert client.simulate_post("/bets", headers=spoof, body=BETS, remote_addr="198.51.100.1").status_code == 403
    assert client.simulate_post("/bets", headers=spoof, body=BETS, remote_addr="10.0.0.2").status_code == 200
    lying = {**AUTH, "X-Forwarded-For": "203.0.113.9, 198.51.100.1"}
    assert client.simulate_post("/bets", headers=lying, body=BETS, remote_addr="10.0.0.2").status_code == 403


def test_the_allowlist_is_checked_before_the_token(wallet: FakeWallet) -> None:
    client = app_client(wallet, edge_allow="203.0.113.0/24")
    response = client.simulate_post("/bets", body=BETS, remote_addr="198.51.100.1")
    assert response.status_code == 403


def test_health_metrics_and_openapi_need_no_token_nor_allowed_address(wallet: FakeWallet) -> None:
    client = app_client(wallet, edge_allow="203.0.113.0/24")
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"]:
        assert client.simulate_get(path, remote_addr="198.51.100.1").status_code == 200, path


# ---------------------------------------------------------------- body cap and content type


@pytest.mark.parametrize(("route", "body"), ROUTES)
def test_a_declared_length_above_the_cap_is_413_before_reading(wallet: FakeWallet, route: str, body: str) -> None:
    client = app_client(wallet, edge_max_body_bytes=64)
    response = client.simulate_post(route, headers=AUTH, body=body)
    assert (response.status_code, response.json["error"]) == (413, "payload_too_large")
    assert wallet.debits == wallet.credits == []


def test_a_body_at_the_cap_is_read(wallet: FakeWallet) -> None:
    client = app_client(wallet, edge_max_body_bytes=len(BETS))
    assert client.simulate_post("/bets", headers=AUTH, body=BETS).status_code == 200


@pytest.mark.parametrize("route", ["/bets", "/winners"])
def test_a_chunked_body_is_cut_at_the_cap(wallet: FakeWallet, route: str) -> None:
    app = create_app(settings(edge_max_body_bytes=1000), wallet=wallet)
    chunks = [b'{"bets": [' + b" " * 400, b" " * 400, b" " * 400, b"]}"]
    status, body = asyncio.run(raw_request(app, route, chunks, headers=[(b"authorization", f"Bearer {TOKEN}".encode())]))
    assert status == 413 and json.loads(body)["error"] == "payload_too_large"
    assert wallet.debits == wallet.credits == []


def test_a_chunked_body_under_the_cap_is_accepted(wallet: FakeWallet) -> None:
    app = create_app(settings(), wallet=wallet)
    data = BETS.encode()
    chunks = [data[:10], data[10:50], data[50:]]
    status, body = asyncio.run(raw_request(app, "/bets", chunks, headers=[(b"authorization", f"Bearer {TOKEN}".encode())]))
    assert status == 200, body


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/xml"])
@pytest.mark.parametrize(("route", "body"), ROUTES)
def test_a_body_that_is_not_json_is_415(wallet: FakeWallet, route: str, body: str, content_type: str) -> None:
    client = app_client(wallet)
    response = client.simulate_post(route, headers={**AUTH, "Content-Type": content_type}, body=body)
    assert (response.status_code, response.json["error"]) == (415, "unsupported_media_type")


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "APPLICATION/JSON", "application/vnd.betflex+json", None])
def test_json_content_types_and_none_are_accepted(wallet: FakeWallet, content_type: str | None) -> None:
    client = app_client(wallet)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if content_type:
        headers["Content-Type"] = content_type
    assert client.simulate_post("/bets", headers=headers, body=BETS).status_code == 200


def test_other_methods_and_paths_get_json_errors(client: falcon.testing.TestClient) -> None:
    response = client.simulate_get("/bets", headers=AUTH)
    assert response.status_code == 405 and "error" in response.json
    response = client.simulate_get("/nothing-here")
    assert response.status_code == 404 and "error" in response.json


# ---------------------------------------------------------------- health, readiness, metrics, openapi


def test_healthz_is_always_200(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    wallet.balance_script = [unavailable(connect_failed=True)]
    assert client.simulate_get("/healthz").json == {"status": "ok"}


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (None, 200),
        (lambda: error(AccountNotFound), 200),
        (lambda: error(PermissionDenied), 200),
        (lambda: error(Unauthenticated), 503),
        (lambda: unavailable(connect_failed=True), 503),
        (deadline, 503),
        ("hang", 503),
    ],
)
def test_readyz_follows_the_core(wallet: FakeWallet, answer: Any, status: int) -> None:
    from edge_http.core import Readiness

    readiness = Readiness(wallet, timeout=0.05)
    if answer == "hang":
        async def hang(*args: Any, **kwargs: Any) -> None:
            await asyncio.sleep(1)

        wallet.get_balance = hang  # type: ignore[method-assign]
    elif answer is not None:
        wallet.balance_script = [answer()]
    ready, detail = asyncio.run(readiness.check())
    assert (200 if ready else 503) == status, detail


def test_readyz_route(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    assert client.simulate_get("/readyz").json["status"] == "ready"
    wallet.balance_script = [unavailable(connect_failed=True)]
    response = client.simulate_get("/readyz")
    assert response.status_code == 503 and response.json["status"] == "unavailable"


def test_each_app_has_its_own_metrics(wallet: FakeWallet) -> None:
    first, second = app_client(wallet), app_client(wallet)
    first.simulate_post("/bets", headers=AUTH, body=BETS)
    assert metric(first, "betflex_callbacks_total", route="/bets", outcome="ok") == 1
    assert metric(second, "betflex_callbacks_total", route="/bets", outcome="ok") == 0


def test_rejected_callbacks_are_counted_and_logged(wallet: FakeWallet, caplog: pytest.LogCaptureFixture) -> None:
    client = app_client(wallet)
    with caplog.at_level(logging.INFO, logger="edge_http.callbacks"):
        client.simulate_post("/winners", body=WINNERS)
    assert metric(client, "betflex_callbacks_total", route="/winners", outcome="unauthorized") == 1
    [line] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "edge_http.callbacks"]
    assert (line["status"], line["outcome"]) == (401, "unauthorized")


def test_metrics_exposes_every_family(client: falcon.testing.TestClient) -> None:
    response = client.simulate_get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    for name in ["betflex_callbacks_total", "betflex_callback_seconds", "betflex_core_errors_total", "betflex_unresolved_bets_total"]:
        assert f"# TYPE {name.removesuffix('_total')}" in response.text, name


def test_openapi_describes_both_callbacks_and_every_answer(client: falcon.testing.TestClient) -> None:
    document = client.simulate_get("/openapi.json").json
    assert document["openapi"].startswith("3.1")
    bets = document["paths"]["/bets"]["post"]["responses"]
    winners = document["paths"]["/winners"]["post"]["responses"]
    assert {"200", "400", "401", "402", "403", "413", "415", "503"} <= set(bets)
    assert {"200", "400", "401", "403", "413", "415", "422", "503"} <= set(winners)
    assert {"/healthz", "/readyz", "/metrics", "/openapi.json"} <= set(document["paths"])
    codes = document["paths"]["/bets"]["post"]["responses"]["402"]["content"]["application/json"]["schema"]["properties"]["error"]["enum"]
    assert "insufficient_funds" in codes and "wallet_unavailable" in codes


# ---------------------------------------------------------------- lifecycle


def test_a_given_client_is_not_closed_by_the_app(client: falcon.testing.TestClient, wallet: FakeWallet) -> None:
    client.simulate_get("/healthz")  # each simulated request runs the ASGI lifespan
    assert wallet.closed == 0


def test_a_client_the_app_built_is_closed_at_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_http.core as core

    built: list[FakeWallet] = []

    def fake_build(settings: EdgeSettings) -> FakeWallet:
        built.append(FakeWallet())
        return built[-1]

    monkeypatch.setattr(core, "build_client", fake_build)
    client = falcon.testing.TestClient(create_app(settings()))
    assert client.simulate_post("/bets", headers=AUTH, body=BETS).status_code == 200
    assert len(built) == 1 and built[0].closed == 1


# ---------------------------------------------------------------- a raw ASGI request (chunked bodies)


async def raw_request(
    app: Any, path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]], explode_on_read: bool = False
) -> tuple[int, bytes]:
    """POST `chunks` as a body without Content-Length (as chunked transfer arrives over ASGI)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080),
    }
    pending = list(chunks)
    sent: list[dict[str, Any]] = []

    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        if explode_on_read and reads > 1:  # the server hands the first chunk over with the request
            raise AssertionError("the body was read")
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body
