"""The `wallet` command as an operator meets it: real processes, real ports, real databases.

An operator mistake is one line on stderr saying what to do, never a traceback, and an exit
code a script can act on (README "Exit codes"): 1 a check failed, 2 usage, 3 refused by the
ledger, 4 unavailable (retry). Commands that only read a database never create one. The
README's "Using it" block runs here exactly as written.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clients import AccountRef, WalletClient
from clients.errors import StakeNotFound
from tests.support.servers import TOKENS, Core
from tests.support.stack import ROOT, free_port, spawn, wait_until, wallet_command

USAGE, FAILED, REFUSED, UNAVAILABLE = 2, 1, 3, 4
ACCOUNT = ("--client", "fanteam", "--user", "1001")


def wallet(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
    return subprocess.run([*wallet_command(), *args], cwd=cwd, env={**clean, **env}, capture_output=True, text=True,
                          timeout=120)


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *phrases: str) -> str:
    """The command failed with `code` and said so in exactly one line of stderr holding every phrase."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode == code, (result.returncode, result.stderr)
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port of 127.0.0.1 someone else is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_reconcile_and_db_current_never_create_a_database(tmp_path: Path) -> None:
    line = assert_one_line(wallet("reconcile", cwd=tmp_path), USAGE, "no database at", "--db", "WALLET_DATABASE_URL")
    assert str(tmp_path / "wallet.db") in line
    assert_one_line(wallet("db", "current", "--db", "sqlite:///elsewhere/missing.db", cwd=tmp_path), USAGE,
                    "missing.db")
    assert_one_line(wallet("core", "--grpc", "127.0.0.1:0", cwd=tmp_path), USAGE, "no database at")
    assert list(tmp_path.iterdir()) == []  # no file, no directory


def test_db_current_exits_1_until_the_schema_is_upgraded(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "old.db").close()  # an existing database without our schema
    url = f"sqlite:///{tmp_path / 'old.db'}"
    behind = wallet("db", "current", "--db", url, cwd=tmp_path)
    assert behind.returncode == FAILED and "run `wallet db upgrade`" in behind.stdout
    assert_one_line(wallet("reconcile", "--db", url, cwd=tmp_path), USAGE, "wallet db upgrade")
    assert wallet("db", "upgrade", "--db", url, cwd=tmp_path).returncode == 0
    assert wallet("db", "current", "--db", url, cwd=tmp_path).returncode == 0
    assert wallet("reconcile", "--db", url, cwd=tmp_path).returncode == 0


def test_settings_mistakes_are_one_line(tmp_path: Path) -> None:
    assert_one_line(wallet("reconcile", "--config", "nope.toml", cwd=tmp_path), USAGE, "nope.toml", "--config")
    assert_one_line(wallet("reconcile", cwd=tmp_path, WALLET_CONFIG="gone.toml"), USAGE, "gone.toml", "WALLET_CONFIG")
    assert_one_line(wallet("reconcile", "--db", "mysql://u@db/wallet", cwd=tmp_path), USAGE,
                    "unsupported database 'mysql'", "postgresql://")
    assert_one_line(wallet("db", "upgrade", "--db", "not a url", cwd=tmp_path), USAGE, "WALLET_DATABASE_URL")
    assert_one_line(wallet("core", cwd=tmp_path, WALLET_GRPC_WORKERS="many"), USAGE, "WALLET_GRPC_WORKERS")
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_database_is_unavailable(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/wallet"  # nobody listens there
    for command in (["reconcile"], ["db", "current"], ["db", "upgrade"]):
        assert_one_line(wallet(*command, "--db", url, cwd=tmp_path), UNAVAILABLE, "WALLET_DATABASE_URL")


def test_every_postgresql_scheme_means_psycopg_3(tmp_path: Path, postgres_database: object) -> None:
    url: str = postgres_database.url  # type: ignore[attr-defined]
    psycopg2_url = re.sub(r"^postgresql(\+\w+)?://", "postgresql+psycopg2://", url)
    result = wallet("db", "current", "--db", psycopg2_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    missing = re.sub(r"/[^/]+$", "/no_such_database_here", psycopg2_url)
    assert_one_line(wallet("db", "current", "--db", missing, cwd=tmp_path), USAGE, "does not exist")


def test_ports_in_use_and_an_edge_without_a_token(tmp_path: Path, busy_port: int) -> None:
    busy = f"127.0.0.1:{busy_port}"
    assert_one_line(wallet("core", "--grpc", busy, "--migrate", cwd=tmp_path), USAGE, busy,
                    "--grpc or WALLET_GRPC_ADDR")
    assert_one_line(wallet("serve", "--http", busy, "--grpc", "127.0.0.1:0", cwd=tmp_path), USAGE, busy,
                    "--http or WALLET_HTTP_ADDR")
    assert not (tmp_path / ".wallet").exists(), "nothing is generated before the ports are known to be free"
    assert_one_line(wallet("edge", "--http", busy, cwd=tmp_path, WALLET_EDGE_TOKENS="t=fanteam"), USAGE, busy)
    assert_one_line(wallet("edge", "--http", f"127.0.0.1:{free_port()}", cwd=tmp_path), USAGE, "WALLET_EDGE_TOKENS")


def test_a_stopped_core_is_unavailable_and_says_where_it_was_looked_for(tmp_path: Path) -> None:
    target = f"127.0.0.1:{free_port()}"
    line = assert_one_line(wallet("balance", *ACCOUNT, "--currency", "EUR", "--grpc", target, cwd=tmp_path),
                           UNAVAILABLE, target, "WALLET_CORE_ADDR")
    result = wallet("balance", *ACCOUNT, "--currency", "EUR", "--json", cwd=tmp_path, WALLET_CORE_ADDR=target)
    assert_one_line(result, UNAVAILABLE)
    assert json.loads(result.stderr) == {"error": "UNAVAILABLE", "message": line.removeprefix("wallet: UNAVAILABLE: ")}
    assert result.stdout == ""


def test_usage_errors_are_json_with_json(tmp_path: Path) -> None:
    result = wallet("balance", "--client", "fanteam", "--json", cwd=tmp_path)
    assert_one_line(result, USAGE, "--user")
    assert json.loads(result.stderr)["error"] == "USAGE"


@pytest.fixture
def operator(core: Core) -> Iterator[dict[str, str]]:
    """The environment of an operator of the test core, with the token allowed 'fanteam'."""
    yield {"WALLET_CORE_ADDR": core.target, "WALLET_TOKEN": TOKENS["fanteam"]}


def test_refusals_by_the_ledger_exit_3_and_are_json_with_json(operator: dict[str, str], tmp_path: Path) -> None:
    assert wallet("deposit", *ACCOUNT, "--currency", "EUR", "--amount", "10.00", "--id", "d1", cwd=tmp_path,
                  **operator).returncode == 0
    result = wallet("withdraw", *ACCOUNT, "--currency", "EUR", "--amount", "10.01", "--id", "w1", "--json",
                    cwd=tmp_path, **operator)
    assert_one_line(result, REFUSED)
    assert json.loads(result.stderr)["error"] == "INSUFFICIENT_FUNDS" and result.stdout == ""
    assert_one_line(wallet("withdraw", *ACCOUNT, "--currency", "EUR", "--amount", "1.001", "--id", "w2", cwd=tmp_path,
                           **operator), REFUSED, "INVALID_AMOUNT")
    assert_one_line(wallet("balance", *ACCOUNT, "--currency", "GBP", cwd=tmp_path, **operator), REFUSED,
                    "ACCOUNT_NOT_FOUND")


def test_tokens_from_the_option_the_file_or_the_environment(operator: dict[str, str], tmp_path: Path) -> None:
    balance = ("balance", *ACCOUNT, "--currency", "EUR")
    target = operator["WALLET_CORE_ADDR"]
    line = assert_one_line(wallet(*balance, "--grpc", target, cwd=tmp_path), USAGE, "WALLET_TOKEN", "--token-file")
    assert "no token was given" in line
    assert_one_line(wallet(*balance, "--grpc", target, "--token", "wrong", cwd=tmp_path), USAGE, "WALLET_GRPC_TOKENS")
    assert_one_line(wallet(*balance, "--grpc", target, "--token", TOKENS["other"], cwd=tmp_path), USAGE,
                    "WALLET_GRPC_TOKENS")

    assert wallet("open", *ACCOUNT, "--currency", "EUR", cwd=tmp_path, **operator).returncode == 0  # WALLET_TOKEN
    token_file = tmp_path / "token"
    token_file.write_text(TOKENS["fanteam"] + "\n")
    wrong_variable = {**operator, "WALLET_TOKEN": "wrong"}
    assert wallet(*balance, "--token-file", str(token_file), cwd=tmp_path, **wrong_variable).returncode == 0
    assert wallet(*balance, "--token", TOKENS["fanteam"], cwd=tmp_path, **wrong_variable).returncode == 0
    assert_one_line(wallet(*balance, "--token-file", str(tmp_path / "absent"), cwd=tmp_path, **operator), USAGE,
                    "absent")
    assert_one_line(wallet(*balance, "--token-file", str(token_file), "--token", "x", cwd=tmp_path, **operator),
                    USAGE, "not both")


def test_amounts_are_plain_decimals_whatever_the_scale(operator: dict[str, str], tmp_path: Path) -> None:
    btc = (*ACCOUNT, "--currency", "BTC")  # 8 decimals in the test core
    deposited = wallet("deposit", *btc, "--amount", "0.00000001", "--id", "sat", cwd=tmp_path, **operator)
    assert deposited.returncode == 0, deposited.stderr
    texts = [deposited.stdout] + [wallet(*command, *btc, cwd=tmp_path, **operator).stdout
                                  for command in (["balance"], ["history"])]
    as_json = [wallet(*command, *btc, "--json", cwd=tmp_path, **operator).stdout
               for command in (["balance"], ["history"], ["deposit", "--amount", "0.00000001", "--id", "sat"])]
    for output in texts + as_json:
        assert "0.00000001" in output and "E-" not in output, output
    assert json.loads(as_json[0])["balance"] == "0.00000001"
    assert json.loads(as_json[1])[0]["amount"] == "0.00000001"



def test_settlements_follows_the_pages_newest_first(operator: dict[str, str], core: Core, tmp_path: Path) -> None:
    alice = AccountRef("fanteam", "1001", "EUR")
    with WalletClient(core.target, token=TOKENS["fanteam"], timeout=10) as client:
        client.open_account(alice)
        for n in range(130):  # more refused payouts than one page (100)
            with pytest.raises(StakeNotFound):
                client.payout(f"pay-{n:03}", alice, "1.00", f"no-bet-{n}")
    listed = wallet("settlements", "--client", "fanteam", "--limit", "120", "--json", cwd=tmp_path, **operator)
    assert listed.returncode == 0, listed.stderr
    assert [f["transaction_id"] for f in json.loads(listed.stdout)] == [f"pay-{n:03}" for n in range(129, 9, -1)]
    everything = wallet("settlements", "--client", "fanteam", "--limit", "1000", cwd=tmp_path, **operator)
    assert everything.returncode == 0 and len(everything.stdout.splitlines()) == 130, everything.stderr


# ---------------------------------------------------------------- the README, verbatim


def readme_block(title: str) -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section, re.S)[0]  # type: ignore[no-any-return]


def test_the_readmes_using_it_block_runs_verbatim_from_a_fresh_copy(tmp_path: Path) -> None:
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").exists():
        pytest.skip("the README's block activates a virtual environment; these tests run outside one")
    checkout = tmp_path / "wallet"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(venv)  # the quick start's .venv
    tracked = subprocess.run(["git", "ls-files", "examples"], cwd=ROOT, capture_output=True, text=True, check=True)
    for name in tracked.stdout.split():
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_bytes((ROOT / name).read_bytes())

    grpc_addr, http_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    ports = {"WALLET_GRPC_ADDR": grpc_addr, "WALLET_CORE_ADDR": grpc_addr, "WALLET_HTTP_ADDR": http_addr}
    log = checkout / "serve.log"
    serve = spawn(["serve"], ports, log)
    try:
        wait_until(lambda: httpx.get(f"http://{http_addr}/readyz").status_code == 200, 60,
                   f"wallet serve did not get ready: {log.read_text() if log.exists() else ''}")
        clean = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_") and k != "VIRTUAL_ENV"}
        clean["PATH"] = os.pathsep.join(p for p in clean.get("PATH", "").split(os.pathsep)
                                        if not p.startswith(str(venv)))  # `wallet` comes from the block itself
        block = readme_block("Using it")
        result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=checkout,
                                env={**clean, **ports}, capture_output=True, text=True, timeout=120)
    finally:
        serve.terminate()
        serve.wait(30)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "deposited 100.00 EUR to fanteam/1001: balance 100.00" in out
    assert re.search(r'"balance": ?"85.00"', out), out  # the bet, answered by the edge
    assert re.search(r'"settled": ?\[9000001\]', out), out  # its payout
    kinds = [line.split()[2] for line in out.splitlines() if line.startswith("20")]
    assert kinds == ["payout", "stake", "deposit"], out
    assert out.rstrip().endswith("ledger is consistent")
