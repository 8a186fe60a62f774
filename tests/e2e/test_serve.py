"""`wallet serve`: core and edge in one command on the embedded SQLite default, with no set-up.

Run as a user would: a fresh directory, the command, the token it prints, its `curl`
example (here with httpx), and the operator commands with that token.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.betflex import example, winner, winners
from tests.support.stack import free_port, spawn, wait_until, wallet_command


@contextmanager
def serving(directory: Path, log_name: str) -> Iterator[tuple[str, str, Path]]:
    grpc_addr, http_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    log = directory / log_name
    process = spawn(["serve", "--grpc", grpc_addr, "--http", http_addr], {}, log)
    try:
        wait_until(lambda: httpx.get(f"http://{http_addr}/readyz").status_code == 200, 60,
                   f"wallet serve did not get ready: {log.read_text() if log.exists() else ''}")
        yield grpc_addr, http_addr, log
    finally:
        process.terminate()
        process.wait(30)


def operator(directory: Path, token: str, grpc_addr: str, *args: str) -> str:
    base = {"WALLET_TOKEN": token, "WALLET_CORE_ADDR": grpc_addr}
    result = subprocess.run([*wallet_command(), *args], env={**_clean_env(), **base}, cwd=directory,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}


ACCOUNT = ("--client", "fanteam", "--user", "1001", "--currency", "EUR")


def test_wallet_serve_runs_everything_on_sqlite_with_a_generated_token(tmp_path: Path) -> None:
    with serving(tmp_path, "first.log") as (grpc_addr, http_addr, log):
        output = log.read_text()
        token = re.search(r"shown only this once\):\n\s+(\S+)", output).group(1)  # type: ignore[union-attr]
        assert (tmp_path / ".wallet" / "token").read_text().strip() == token
        assert (tmp_path / ".wallet" / "token").stat().st_mode & 0o077 == 0, "the token file is private"
        assert f"curl -sS -X POST http://{http_addr}/bets" in output
        assert (tmp_path / "wallet.db").exists()

        assert "balance 100.00" in operator(tmp_path, token, grpc_addr, "deposit", *ACCOUNT, "--amount", "100.00",
                                               "--id", "dep-1")
        headers = {"Authorization": f"Bearer {token}"}
        bets = httpx.post(f"http://{http_addr}/bets", json=example("bets"), headers=headers)
        assert bets.status_code == 200, bets.text
        assert httpx.post(f"http://{http_addr}/bets", json=example("bets")).status_code == 401
        assert "85.00 EUR" in operator(tmp_path, token, grpc_addr, "balance", *ACCOUNT)

        unknown = httpx.post(f"http://{http_addr}/winners", json=winners(winner(4242, "1.00", "2.00")), headers=headers)
        assert unknown.status_code == 422
        failed = operator(tmp_path, token, grpc_addr, "settlements", "--client", "fanteam", "--failed")
        assert "betflex:fanteam:payout:4242" in failed and "STAKE_NOT_FOUND" in failed

        assert httpx.post(f"http://{http_addr}/winners", json=example("winners"), headers=headers).status_code == 200
        history = operator(tmp_path, token, grpc_addr, "history", *ACCOUNT)
        assert [line.split()[2] for line in history.splitlines()] == ["payout", "stake", "deposit"]

    # a second start keeps the same token and does not print it again
    with serving(tmp_path, "second.log") as (grpc_addr, _, log):
        assert token not in log.read_text()
        assert "122.50 EUR" in operator(tmp_path, token, grpc_addr, "balance", *ACCOUNT)

    reconcile = subprocess.run([*wallet_command(), "reconcile", "--db", "sqlite:///wallet.db"], cwd=tmp_path,
                               env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert reconcile.returncode == 0 and "ledger is consistent" in reconcile.stdout
