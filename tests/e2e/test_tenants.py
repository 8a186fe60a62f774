"""DESIGN 4/5: each token is allowed a set of clients and nothing else, in every topology.

betflex holds a token for tenant A (`fanteam`). A callback naming tenant B (`casino`) as the
bet's user or as its pool is refused whole before any core call: 402 on /bets, 403 on
/winners with nothing settled; the database is exactly as it was (every row of every table).
Tenant B has a funded player and an open stake, so a callback that got through would move money.

Topologies, each a real process on real sockets: `wallet serve` as a developer starts it (the
generated token), `wallet serve` with WALLET_EDGE_TOKENS, `wallet serve` with WALLET_CORE_TOKEN,
`wallet core` + `wallet edge`, and docker-compose.yml's own commands and environment.
The core token given to the edge is deliberately wider than betflex's token where the
configuration allows it, so that the edge's own check is what is tested.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from clients import AccountRef, DebitItem, Purpose, WalletClient
from clients.errors import PermissionDenied
from edge_http.betflex import pool_reference, stake_id
from tests.support.compose import environment, run_service
from tests.support.db import SqliteTemplate, assert_reconciled, dump, postgres_or_skip
from tests.support.processes import CoreProcess, EdgeProcess
from tests.support.servers import TOKENS, running_core
from tests.support.stack import free_port, spawn, wait_until, wallet_command
from wallet_core.storage.engine import make_engine
from wallet_core.storage.migrate import upgrade

A, B = "fanteam", "casino"
TOKEN_A, TOKEN_B = "betflex-token-for-fanteam", "betflex-token-for-casino"
CORE_TOKEN = "edge-to-core-token"
STAKE_B, STAKE_A = 9000001, 9000004  # open stakes of casino/1001 and fanteam/1001, 15.00 EUR each


@dataclass
class Stack:
    name: str
    url: str  # the edge
    engine: Engine
    token_a: str
    token_b: str | None  # a betflex token for casino, where the topology has one
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- databases, set up through the core


def _prepare(db_url: str) -> None:
    """Both tenants hold a funded player and an open stake (placed as the edge would have placed it)."""
    with running_core(db_url) as core, WalletClient(core.target, token=TOKENS["admin"], timeout=10) as admin:
        for client, uid in ((B, STAKE_B), (A, STAKE_A)):
            player = AccountRef(client, "1001", "EUR")
            admin.open_account(player)
            admin.deposit(f"fund-{client}", player, "100.00")
            admin.debit([DebitItem(stake_id(client, uid), player, "15.00", Purpose.STAKE, pool_reference(550001))])


def _database(kind: str, directory: Path, template: SqliteTemplate, cleanup: ExitStack) -> str:
    if kind == "sqlite":
        return template.fresh(directory)
    database = postgres_or_skip()
    cleanup.callback(database.drop)
    upgrade(database.url)
    return database.url


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(30)


def _ready(url: str, what: Callable[[], str]) -> None:
    wait_until(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, 60, f"{what()}: not ready")


# ---------------------------------------------------------------- topologies


def _serve(directory: Path, db_url: str, env: dict[str, str], cleanup: ExitStack) -> tuple[str, Path, str]:
    grpc_addr, http_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    log = directory / "serve.log"
    process = spawn(["serve", "--grpc", grpc_addr, "--http", http_addr, "--db", db_url], env, log)
    cleanup.callback(_stop, process)
    url = f"http://{http_addr}"
    _ready(url, lambda: log.read_text())
    return url, log, grpc_addr


def serve_dev(directory: Path, db_url: str, cleanup: ExitStack) -> dict[str, Any]:
    """`wallet serve` with nothing configured: the generated token is betflex's, for fanteam only."""
    url, log, grpc_addr = _serve(directory, db_url, {}, cleanup)
    token = (directory / ".wallet" / "token").read_text().strip()
    return {"url": url, "token_a": token, "token_b": None, "log": log, "extra": {"grpc": grpc_addr}}


def serve_edge_tokens(directory: Path, db_url: str, cleanup: ExitStack) -> dict[str, Any]:
    """`wallet serve` with WALLET_EDGE_TOKENS for two tenants: its generated core token reaches both."""
    url, log, _ = _serve(directory, db_url, {"WALLET_EDGE_TOKENS": f"{TOKEN_A}={A};{TOKEN_B}={B}"}, cleanup)
    return {"url": url, "token_a": TOKEN_A, "token_b": TOKEN_B, "log": log}


def serve_core_token(directory: Path, db_url: str, cleanup: ExitStack) -> dict[str, Any]:
    """`wallet serve` with WALLET_CORE_TOKEN (granted both tenants by WALLET_GRPC_TOKENS), betflex's for fanteam."""
    env = {"WALLET_EDGE_TOKENS": f"{TOKEN_A}={A}", "WALLET_CORE_TOKEN": CORE_TOKEN,
           "WALLET_GRPC_TOKENS": f"{CORE_TOKEN}={A},{B}"}
    url, log, _ = _serve(directory, db_url, env, cleanup)
    return {"url": url, "token_a": TOKEN_A, "token_b": None, "log": log}


def core_and_edge(directory: Path, db_url: str, cleanup: ExitStack) -> dict[str, Any]:
    """`wallet core` and `wallet edge`, each its own process; the edge's core token reaches both tenants."""
    core = CoreProcess(db_url, directory / "core.log", tokens=f"{CORE_TOKEN}={A},{B}")
    core.start()
    cleanup.callback(core.stop)
    edge = EdgeProcess(core.target, CORE_TOKEN, directory / "edge.log", edge_tokens=f"{TOKEN_A}={A};{TOKEN_B}={B}")
    edge.start()
    cleanup.callback(edge.stop)
    _ready(edge.url, edge.log)
    return {"url": edge.url, "token_a": TOKEN_A, "token_b": TOKEN_B, "log": directory / "edge.log"}


def compose(directory: Path, db_url: str, cleanup: ExitStack) -> dict[str, Any]:
    """docker-compose.yml's core and edge commands and environment, BETFLEX_CLIENTS left to its default."""
    grpc_port, http_port = free_port(), free_port()
    substitutions = {
        "WALLET_CORE_TOKEN": CORE_TOKEN, "WALLET_EDGE_TOKEN": TOKEN_A,
        "postgresql://wallet:wallet@postgres:5432/wallet": db_url, "core:50051": f"127.0.0.1:{grpc_port}",
    }
    for service, address in (("core", f"127.0.0.1:{grpc_port}"), ("edge", f"127.0.0.1:{http_port}")):
        process = run_service(service, environment(service, substitutions), address, directory / f"{service}.log")
        cleanup.callback(_stop, process)
    url = f"http://127.0.0.1:{http_port}"
    _ready(url, lambda: (directory / "core.log").read_text() + (directory / "edge.log").read_text())
    return {"url": url, "token_a": TOKEN_A, "token_b": None, "log": directory / "edge.log"}


TOPOLOGIES = {
    "serve-dev-sqlite": (serve_dev, "sqlite"),
    "serve-edge-tokens-sqlite": (serve_edge_tokens, "sqlite"),
    "serve-core-token-postgres": (serve_core_token, "postgres"),
    "core+edge-sqlite": (core_and_edge, "sqlite"),
    "core+edge-postgres": (core_and_edge, "postgres"),
    "compose-postgres": (compose, "postgres"),
}


@pytest.fixture(scope="module", params=[
    pytest.param(name, marks=[pytest.mark.postgres] if kind == "postgres" else [])
    for name, (_, kind) in TOPOLOGIES.items()
])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          sqlite_template: SqliteTemplate) -> Iterator[Stack]:
    start, kind = TOPOLOGIES[request.param]
    directory = tmp_path_factory.mktemp(request.param.replace("+", "-"))
    with ExitStack() as cleanup:
        db_url = _database(kind, directory, sqlite_template, cleanup)
        _prepare(db_url)
        engine = make_engine(db_url, pool_size=1)
        cleanup.callback(engine.dispose)
        with ExitStack() as services:
            yield Stack(request.param, engine=engine, **start(directory, db_url, services))
        assert_reconciled(engine)


# ---------------------------------------------------------------- callbacks naming another tenant


def _bets(user_client: str, pool_client: str, bet_uid: int) -> dict[str, Any]:
    return {"bets": [{
        "user": {"client": user_client, "uid": 1001, "ip": "203.0.113.7"},
        "pool": {"client": pool_client, "currency": "EUR", "game": "betflex", "uid": 550002, "overdraw": "10.00"},
        "bet": {"uid": bet_uid, "amount": "5.00"},
    }]}


def _pool(pool_client: str, *entries: tuple[str, int]) -> dict[str, Any]:
    return {
        "pool": {"client": pool_client, "game": "betflex", "uid": 550001, "currency": "EUR", "overdraw": "37.50",
                 "cost": "15.00", "guaranteed": True},
        "bets": [{
            "user": {"client": client, "uid": "1001", "name": "player"},
            "bet": {"uid": uid, "currency": "EUR", "amount": "15.00", "odds": 2.5, "rake": 0, "payout": "37.50",
                    "base_payout": 37.5, "result": "won", "extra": {}},
        } for client, uid in entries],
    }


CASES = {
    # /bets: a stake of casino's player; a stake of fanteam's player in a casino pool
    "bets-user-of-B": ("/bets", _bets(B, B, 9100001)),
    "bets-pool-of-B": ("/bets", _bets(A, B, 9100002)),
    # /winners: settle casino's open stake; fanteam's stake in a casino pool; a fanteam bet beside a casino one
    "winners-user-of-B": ("/winners", {"pools": [_pool(B, (B, STAKE_B))]}),
    "winners-pool-of-B": ("/winners", {"pools": [_pool(B, (A, STAKE_A))]}),
    "winners-A-beside-B": ("/winners", {"pools": [_pool(A, (A, STAKE_A)), _pool(B, (B, STAKE_B))]}),
}


@pytest.mark.parametrize("case", CASES)
def test_a_token_of_tenant_a_naming_tenant_b_is_refused_and_nothing_changes(stack: Stack, case: str) -> None:
    route, body = CASES[case]
    before = dump(stack.engine)
    response = httpx.post(stack.url + route, json=body, headers={"Authorization": f"Bearer {stack.token_a}"},
                          timeout=30)
    answer = response.json()
    if route == "/bets":
        assert response.status_code == 402, response.text  # the only refusal betflex reads on /bets
    else:
        assert response.status_code == 403, response.text
        uids = [entry["bet"]["uid"] for pool in body["pools"] for entry in pool["bets"]]
        assert answer["settled"] == [] and [f["bet_uid"] for f in answer["failed"]] == uids
        assert {f["reason"] for f in answer["failed"]} == {"permission_denied"}
    assert answer["error"] == "permission_denied" and B in answer["message"]
    assert dump(stack.engine) == before
    # a redelivery is refused the same way and still changes nothing
    again = httpx.post(stack.url + route, json=body, headers={"Authorization": f"Bearer {stack.token_a}"}, timeout=30)
    assert again.status_code == response.status_code
    assert dump(stack.engine) == before


def test_the_same_edge_serves_the_tenants_its_tokens_are_allowed(stack: Stack) -> None:
    """The refusals above are about the tenant, not a broken stack: each token still moves its own money."""
    def post(token: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{stack.url}/bets", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    assert post(stack.token_a, _bets(A, A, 9200001)).status_code == 200
    if stack.token_b is not None:
        assert post(stack.token_b, _bets(B, B, 9200002)).status_code == 200
        assert post(stack.token_b, _bets(A, A, 9200003)).json()["error"] == "permission_denied"


def test_no_token_is_ever_written_to_the_log(stack: Stack) -> None:
    text = stack.log.read_text()
    for secret in (TOKEN_A, TOKEN_B, CORE_TOKEN):
        assert secret not in text
    # the token `wallet serve` generates is shown once, when it is made, as the operator's to keep
    assert text.count(stack.token_a) == (1 if stack.name == "serve-dev-sqlite" else 0)


# ---------------------------------------------------------------- what `wallet serve` says and grants


def test_serve_says_which_clients_each_edge_token_may_touch(stack: Stack) -> None:
    text = stack.log.read_text()
    if stack.name == "serve-dev-sqlite":
        assert "betflex's token is the generated access token; it may act for clients: fanteam" in text
        assert "the edge reaches the core with a generated token for clients: fanteam" in text
    elif stack.name == "serve-edge-tokens-sqlite":
        assert "edge token #1 may act for clients: fanteam (WALLET_EDGE_TOKENS)" in text
        assert "edge token #2 may act for clients: casino (WALLET_EDGE_TOKENS)" in text
        assert "the edge reaches the core with a generated token for clients: casino, fanteam" in text
    elif stack.name == "serve-core-token-postgres":
        assert "edge token #1 may act for clients: fanteam (WALLET_EDGE_TOKENS)" in text
        assert "the edge reaches the core with WALLET_CORE_TOKEN" in text
    else:
        assert "edge token #1 may act for clients: fanteam" in text  # `wallet edge` logs the same at start-up
    assert "every client" not in text


def test_the_token_serve_generates_is_not_an_all_tenant_token(stack: Stack) -> None:
    if stack.name != "serve-dev-sqlite":
        pytest.skip("only `wallet serve` generates an access token")
    grpc_addr = stack.extra["grpc"]
    with WalletClient(grpc_addr, token=stack.token_a, timeout=10) as wallet:
        assert wallet.get_balance(AccountRef(A, "1001", "EUR")).balance > 0
        with pytest.raises(PermissionDenied):
            wallet.get_balance(AccountRef(B, "1001", "EUR"))
    result = subprocess.run([*wallet_command(), "balance", "--client", B, "--user", "1001", "--currency", "EUR",
                             "--grpc", grpc_addr, "--token", stack.token_a], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "100" not in result.stdout


# ---------------------------------------------------------------- the old format: refused, not guessed


@pytest.mark.parametrize("command", [["edge"], ["serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"]])
def test_edge_tokens_without_their_clients_are_refused_at_start_up(command: list[str], tmp_path: Path) -> None:
    """The old `WALLET_EDGE_TOKENS=tok1,tok2` names no client: refused with the new format, never read as `*`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
    env["WALLET_EDGE_TOKENS"] = "first-old-secret,second-old-secret"
    result = subprocess.run([*wallet_command(), *command], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "WALLET_EDGE_TOKENS" in result.stderr or "edge_tokens" in result.stderr
    assert "token=fanteam" in result.stderr
    assert "old-secret" not in result.stdout + result.stderr
    assert not (tmp_path / "wallet.db").exists(), "nothing was started"


def test_serve_reaches_the_core_with_the_configured_core_token(tmp_path: Path, sqlite_template: SqliteTemplate) -> None:
    """WALLET_CORE_TOKEN is honoured, not replaced by an all-tenant token: with betflex's token configured for
    every client but the core token granted fanteam only, a casino bet moves nothing."""
    db_url = sqlite_template.fresh(tmp_path)
    _prepare(db_url)
    env = {"WALLET_EDGE_TOKENS": f"{TOKEN_A}=*", "WALLET_CORE_TOKEN": CORE_TOKEN,
           "WALLET_GRPC_TOKENS": f"{CORE_TOKEN}={A}"}
    engine = make_engine(db_url, pool_size=1)
    try:
        with ExitStack() as cleanup:
            url, log, _ = _serve(tmp_path, db_url, env, cleanup)
            assert "warning: WALLET_CORE_TOKEN may not act for every client, which an edge token may" in log.read_text()
            before = dump(engine)
            headers = {"Authorization": f"Bearer {TOKEN_A}"}
            refused = httpx.post(f"{url}/bets", json=_bets(B, B, 9300001), headers=headers, timeout=30)
            assert refused.status_code != 200, refused.text
            settled = httpx.post(f"{url}/winners", json={"pools": [_pool(B, (B, STAKE_B))]}, headers=headers,
                                 timeout=30)
            assert settled.status_code != 200, settled.text
            assert dump(engine) == before
            assert httpx.post(f"{url}/bets", json=_bets(A, A, 9300002), headers=headers, timeout=30).status_code == 200
        assert_reconciled(engine)
    finally:
        engine.dispose()


def test_serve_refuses_a_core_token_the_core_does_not_grant(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
    env |= {"WALLET_EDGE_TOKENS": f"{TOKEN_A}={A}", "WALLET_CORE_TOKEN": CORE_TOKEN, "WALLET_GRPC_TOKENS": f"other={A}"}
    result = subprocess.run([*wallet_command(), "serve", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "WALLET_GRPC_TOKENS does not grant it" in result.stderr
    assert CORE_TOKEN not in result.stdout + result.stderr
