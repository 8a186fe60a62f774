"""A database that cannot be reached, and page tokens the service never issued (DESIGN section 4).

An outage answers UNAVAILABLE with the reason UNAVAILABLE (safe to retry), never INTERNAL, and
the health service says NOT_SERVING until the database is back. What "cannot be reached" means:

- PostgreSQL: the server refuses the core's connections (`ALTER DATABASE ... ALLOW_CONNECTIONS
  false`, every backend of the database terminated), on a database of the test's own.
- SQLite: another process holds the database's write lock past the busy timeout and the write
  retry budget. A WAL reader never waits, so reads still answer; every write, and the health
  ping (which takes the write lock), cannot.

The outage is always lifted in a `finally`, and the ledger is reconciled after it.
"""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text
from sqlalchemy.engine import make_url

from clients import AccountRef, DebitItem, Purpose, WalletClient
from clients.errors import InvalidArgument, Unavailable, WalletError
from tests.support.db import PostgresDatabase, SqliteTemplate, migrated_postgres
from tests.support.processes import wait_until
from tests.support.servers import TOKENS, Core, running_core
from tests.support.stack import running_edge

ALICE = AccountRef("fanteam", "alice", "FUN")
SERVICES = ("", "wallet.v1.Wallet")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _token(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        _token(b"v1:99999999999999999999"),  # beyond BIGINT
        _token(b"v1:9223372036854775808"),  # 2**63, one past the largest id
        _token("v1:٣".encode()),  # ARABIC-INDIC DIGIT THREE: str.isdigit(), not an ASCII digit
        _token("v1:１２".encode()),  # fullwidth digits
        _token(b"v1:0"),
        _token(b"v1:-5"),
        _token(b"v1:+5"),
        _token(b"v1: 5"),
        _token(b"v1:5\n"),
        _token(b"v2:5"),
        _token(b"\xff\xfe"),
        "!!!",
    ],
)
def test_a_page_token_the_service_never_issued_is_invalid_argument(wallet: WalletClient, token: str) -> None:
    wallet.open_account(ALICE)
    with pytest.raises(InvalidArgument) as refused:
        wallet.list_transactions(ALICE, page_token=token)
    assert refused.value.reason == "INVALID_ARGUMENT" and refused.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_the_largest_possible_page_token_is_a_valid_empty_position(wallet: WalletClient) -> None:
    wallet.open_account(ALICE)
    wallet.deposit("fund", ALICE, "5.00")
    page = wallet.list_transactions(ALICE, page_token=_token(f"v1:{2**63 - 1}".encode()))
    assert [t.transaction_id for t in page.transactions] == ["fund"]


# ---------------------------------------------------------------------------- outages


def health(core: Core) -> dict[str, int]:
    with grpc.insecure_channel(core.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        # types-grpcio-health-checking declares the stub without its methods
        return {name: stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status  # type: ignore[attr-defined]
                for name in SERVICES}


def wait_for_health(core: Core, status: int) -> None:
    wanted = dict.fromkeys(SERVICES, status)
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    wait_until(lambda: health(core) == wanted, 30, f"health did not turn {name}")


def assert_unavailable(call: object) -> None:
    """The call is refused UNAVAILABLE with the reason UNAVAILABLE, and nothing of the database leaks."""
    assert isinstance(call, WalletError), f"expected UNAVAILABLE, got {call!r}"
    assert isinstance(call, Unavailable) and call.reason == "UNAVAILABLE", repr(call)
    assert call.code == grpc.StatusCode.UNAVAILABLE
    assert "unavailable" in call.message and "psycopg" not in call.message and "sqlite" not in call.message.lower()


def outcome(fn: object, *args: object, **kwargs: object) -> object:
    try:
        return fn(*args, **kwargs)  # type: ignore[operator]
    except WalletError as error:
        return error


@contextmanager
def postgres_refusing(db: PostgresDatabase) -> Iterator[None]:
    """The server refuses every connection to `db` and drops the ones it has; restored on exit."""
    try:
        with db.admin.connect() as admin:
            admin.execute(text(f'ALTER DATABASE "{db.name}" ALLOW_CONNECTIONS false'))
            admin.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ), {"name": db.name})
        yield
    finally:
        with db.admin.connect() as admin:
            admin.execute(text(f'ALTER DATABASE "{db.name}" ALLOW_CONNECTIONS true'))


@contextmanager
def sqlite_held(url: str) -> Iterator[None]:
    """Another connection holds the database's write lock (as a stuck process would); released on exit."""
    path = make_url(url).database
    assert path is not None
    holder = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.fixture
def own_postgres() -> Iterator[PostgresDatabase]:
    """A database of this test's own: an outage here never disturbs the session's database."""
    with migrated_postgres() as db:
        yield db


@pytest.mark.postgres
def test_postgres_unreachable_is_unavailable_and_not_serving_until_it_returns(own_postgres: PostgresDatabase) -> None:
    with running_core(own_postgres.url) as core, WalletClient(
        core.target, token=TOKENS["fanteam"], timeout=30, max_attempts=1
    ) as wallet, running_edge(core.target) as edge:
        wallet.open_account(ALICE)
        wallet.deposit("fund", ALICE, "10.00")
        wait_for_health(core, SERVING)
        assert httpx.get(edge.url + "/readyz", timeout=30).status_code == 200

        with postgres_refusing(own_postgres):
            bob = AccountRef("fanteam", "bob", "FUN")
            stake = DebitItem("stake-1", ALICE, "4.00", Purpose.STAKE)
            for result in (
                outcome(wallet.get_balance, ALICE),  # a read
                outcome(wallet.list_transactions, ALICE),  # a read
                outcome(wallet.open_account, bob),  # a write
                outcome(wallet.debit, [stake]),  # a money write, through the committer
                outcome(wallet.deposit, "fund-2", ALICE, "1.00"),
                outcome(wallet.list_settlement_failures, "fanteam"),
            ):
                assert_unavailable(result)
            wait_for_health(core, NOT_SERVING)
            ready = httpx.get(edge.url + "/readyz", timeout=30)
            assert ready.status_code == 503, ready.text

        wait_for_health(core, SERVING)
        wait_until(lambda: httpx.get(edge.url + "/readyz", timeout=30).status_code == 200, 30, "the edge is not ready")
        assert wallet.debit([stake]).transactions[0].amount == Decimal("4.00")
        assert wallet.get_balance(ALICE).balance == Decimal("6.00")
        assert wallet.open_account(bob)[1] is True
    # running_core reconciled the ledger on the way out


def test_sqlite_locked_past_the_retry_budget_is_unavailable_and_not_serving(
    sqlite_template: SqliteTemplate, tmp_path: Path
) -> None:
    db_url = sqlite_template.fresh(tmp_path)
    with running_core(db_url) as core, WalletClient(
        core.target, token=TOKENS["fanteam"], timeout=30, max_attempts=1
    ) as wallet, running_edge(core.target) as edge:
        wallet.open_account(ALICE)
        wallet.deposit("fund", ALICE, "10.00")
        wait_for_health(core, SERVING)
        assert httpx.get(edge.url + "/readyz", timeout=30).status_code == 200

        stake = DebitItem("stake-1", ALICE, "4.00", Purpose.STAKE)
        with sqlite_held(db_url):
            assert_unavailable(outcome(wallet.debit, [stake]))
            assert_unavailable(outcome(wallet.deposit, "fund-2", ALICE, "1.00"))
            assert_unavailable(outcome(wallet.open_account, AccountRef("fanteam", "bob", "FUN")))
            wait_for_health(core, NOT_SERVING)
            ready = httpx.get(edge.url + "/readyz", timeout=30)
            assert ready.status_code == 503, ready.text
            # a WAL reader does not need the write lock: the balance still answers
            assert wallet.get_balance(ALICE).balance == Decimal("10.00")

        wait_for_health(core, SERVING)
        wait_until(lambda: httpx.get(edge.url + "/readyz", timeout=30).status_code == 200, 30, "the edge is not ready")
        assert wallet.debit([stake]).transactions[0].amount == Decimal("4.00")
        assert wallet.get_balance(ALICE).balance == Decimal("6.00")
