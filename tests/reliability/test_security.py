"""Security (issue 5): tenants are separated over gRPC and over HTTP, tokens never reach a log, TLS
for gRPC verifies the server, slow or never-ending requests are cut off, secrets may be configured
as hashes. Real processes and sockets throughout.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clients import AccountRef, DebitItem, Purpose, WalletClient
from clients.errors import PermissionDenied, Unauthenticated, Unavailable, WalletError
from tests.support.db import dump
from tests.support.processes import (
    EDGE_TOKEN,
    CoreProcess,
    EdgeProcess,
    make_certificates,
    running_core_process,
    running_edge,
)
from tests.support.servers import TOKENS, Core, running_core

FANTEAM = AccountRef("fanteam", "1001", "FUN")
OTHER = AccountRef("other", "1001", "FUN")
SECRET_CORE = "core-secret-7f3a9c1e"
SECRET_EDGE = "edge-secret-b81d44e2"


def sha256(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def bets_body(client: str, bet_uid: int) -> dict[str, object]:
    return {"bets": [{"user": {"client": client, "uid": 1001, "ip": "203.0.113.7"},
                      "pool": {"client": client, "currency": "FUN", "game": "betflex", "uid": 1, "overdraw": "2.00"},
                      "bet": {"uid": bet_uid, "amount": "1.00"}}]}


def winners_body(client: str, bet_uid: int) -> dict[str, object]:
    return {"pools": [{"pool": {"uid": 1, "currency": "FUN"}, "bets": [
        {"user": {"client": client, "uid": "1001", "name": "x"},
         "bet": {"uid": bet_uid, "currency": "FUN", "amount": "1.00", "payout": "5.00"}}]}]}


@pytest.fixture
def funded(core: Core) -> Core:
    with WalletClient(core.target, token=TOKENS["admin"], timeout=10) as admin:
        for account in (FANTEAM, OTHER):
            admin.open_account(account)
            admin.deposit(f"fund-{account.client}", account, "20.00")
        admin.debit([DebitItem("other-bet", OTHER, "1.00", Purpose.STAKE)])
    return core


def test_a_token_for_one_client_cannot_move_another_clients_money_in_a_mixed_debit(funded: Core) -> None:
    before = dump(funded.engine)
    with WalletClient(funded.target, token=TOKENS["fanteam"], timeout=10) as fanteam:
        with pytest.raises((PermissionDenied, WalletError)) as refused:
            fanteam.debit([DebitItem("mine", FANTEAM, "1.00", Purpose.STAKE),
                           DebitItem("theirs", OTHER, "1.00", Purpose.STAKE)])
        assert isinstance(refused.value, PermissionDenied) or refused.value.reason == "INVALID_ARGUMENT"
        with pytest.raises(PermissionDenied):
            fanteam.cancel("other", "other-bet")
        with pytest.raises(PermissionDenied):
            fanteam.payout("p", OTHER, "1.00", "other-bet")
    assert dump(funded.engine) == before


def test_over_http_the_edge_moves_only_the_clients_its_core_token_allows(funded: Core, tmp_path: Path) -> None:
    """betflex's edge holds a core token for 'fanteam': a callback naming 'other' moves nothing (402 on
    /bets, an error on /winners), even with a valid edge token."""
    with running_edge(funded.target, TOKENS["fanteam"], tmp_path / "edge.log") as edge:
        headers = {"Authorization": f"Bearer {EDGE_TOKEN}"}
        before = dump(funded.engine)
        bets = httpx.post(f"{edge.url}/bets", json=bets_body("other", 9), headers=headers, timeout=30)
        assert bets.status_code == 402
        winners = httpx.post(f"{edge.url}/winners", json=winners_body("other", 1), headers=headers, timeout=30)
        assert winners.status_code != 200
        assert dump(funded.engine) == before
        ok = httpx.post(f"{edge.url}/bets", json=bets_body("fanteam", 10), headers=headers, timeout=30)
        assert ok.status_code == 200  # the same edge serves its own client


# ---------------------------------------------------------------- hashed secrets, and no token in any log


@pytest.fixture
def hashed_stack(db_url: str, tmp_path: Path) -> Iterator[tuple[CoreProcess, EdgeProcess]]:
    """Core and edge whose configuration holds only hashes of the tokens."""
    spec = f"{sha256(SECRET_CORE)}=fanteam;{sha256('admin-' + SECRET_CORE)}=*"
    with running_core_process(db_url, tmp_path / "core.log", tokens=spec) as core, running_edge(
        core.target, SECRET_CORE, tmp_path / "edge.log", edge_tokens=f"{sha256(SECRET_EDGE)}=fanteam",
    ) as edge:
        yield core, edge


def test_secrets_given_as_hashes_work_and_no_token_is_ever_logged(
    hashed_stack: tuple[CoreProcess, EdgeProcess],
) -> None:
    core, edge = hashed_stack
    with WalletClient(core.target, token=SECRET_CORE, timeout=10) as fanteam:
        fanteam.open_account(FANTEAM)
        fanteam.deposit("fund", FANTEAM, "10.00")
    for wrong in [sha256(SECRET_CORE), sha256(SECRET_CORE).removeprefix("sha256:"), "wrong-" + SECRET_CORE]:
        with WalletClient(core.target, token=wrong, timeout=10) as client, pytest.raises(Unauthenticated):
            client.get_balance(FANTEAM)  # the hash itself is no token
    ok = httpx.post(f"{edge.url}/bets", json=bets_body("fanteam", 1),
                    headers={"Authorization": f"Bearer {SECRET_EDGE}"}, timeout=30)
    assert ok.status_code == 200, ok.text
    for wrong in [sha256(SECRET_EDGE), "wrong-" + SECRET_EDGE]:
        refused = httpx.post(f"{edge.url}/bets", json=bets_body("fanteam", 2),
                             headers={"Authorization": f"Bearer {wrong}"}, timeout=30)
        assert refused.status_code == 401
    bad = httpx.post(f"{edge.url}/bets", content=b"{", headers={"Authorization": f"Bearer {SECRET_EDGE}"}, timeout=30)
    assert bad.status_code == 402
    core.stop()
    edge.stop()
    logs = core.log() + edge.log()
    assert "betflex_callback" in logs  # the logs were written
    for secret in [SECRET_CORE, SECRET_EDGE, "admin-" + SECRET_CORE]:
        assert secret not in logs, "a token reached a log"


# ---------------------------------------------------------------- TLS


def test_grpc_over_tls_verifies_the_server(db_url: str, tmp_path: Path) -> None:
    good = make_certificates(tmp_path / "good", "good")
    rogue = make_certificates(tmp_path / "rogue", "rogue")
    with running_core(db_url, grpc_tls_cert=good.cert, grpc_tls_key=good.key) as core:
        with WalletClient(core.target, token=TOKENS["fanteam"], root_certificates=good.ca.read_bytes(),
                          timeout=10) as client:
            account, _ = client.open_account(FANTEAM)
            assert account.ref == FANTEAM
        # a client that trusts another authority does not talk to this server
        with WalletClient(core.target, token=TOKENS["fanteam"], root_certificates=rogue.ca.read_bytes(),
                          timeout=5, max_attempts=1) as client, pytest.raises(Unavailable):
            client.get_balance(FANTEAM)
        # nor does a plaintext client
        with WalletClient(core.target, token=TOKENS["fanteam"], timeout=5, max_attempts=1) as client, \
                pytest.raises(WalletError):
            client.get_balance(FANTEAM)
        # the edge calls the core over TLS, verifying it against the configured CA
        with running_edge(core.target, TOKENS["fanteam"], tmp_path / "edge.log",
                          WALLET_CORE_TLS="true", WALLET_CORE_TLS_CA=str(good.ca)) as edge:
            ready = httpx.get(f"{edge.url}/readyz", timeout=30)
            assert ready.status_code == 200, ready.text


# ---------------------------------------------------------------- slow and never-ending requests


def _closed_or_answered(sock: socket.socket) -> bytes:
    """What the server sends before closing (b"" if it just closes); bounded by the socket timeout."""
    sock.settimeout(30)  # an upper bound on waiting, far above the configured 1 s
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


def test_slow_or_never_ending_requests_are_cut_off(core: Core, tmp_path: Path) -> None:
    with running_edge(core.target, TOKENS["fanteam"], tmp_path / "edge.log",
                      WALLET_EDGE_HEADER_TIMEOUT="1", WALLET_EDGE_BODY_TIMEOUT="1") as edge:
        before = dump(core.engine)
        auth = f"Authorization: Bearer {EDGE_TOKEN}\r\n".encode()
        # headers that never end
        with socket.create_connection(("127.0.0.1", edge.port)) as sock:
            sock.sendall(b"POST /bets HTTP/1.1\r\nHost: edge\r\n" + auth)
            assert _closed_or_answered(sock) == b""
        # a body that never ends
        with socket.create_connection(("127.0.0.1", edge.port)) as sock:
            sock.sendall(b"POST /bets HTTP/1.1\r\nHost: edge\r\n" + auth
                         + b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"bets\": [")
            answer = _closed_or_answered(sock)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
            assert b"request_timeout" in answer
        # a request, then a byte of the next one and nothing more
        with socket.create_connection(("127.0.0.1", edge.port)) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\nG")
            answer = _closed_or_answered(sock)
            assert answer.startswith(b"HTTP/1.1 200")
        assert httpx.get(f"{edge.url}/healthz", timeout=10).status_code == 200
        assert dump(core.engine) == before
