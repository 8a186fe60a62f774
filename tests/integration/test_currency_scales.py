"""A currency's scale is part of the data (DESIGN section 1), on SQLite and PostgreSQL.

It is stored with the ledger the first time the currency is used; a process configured with
another scale for it refuses to start, naming the currency and both scales.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.support.db import dump
from tests.support.processes import WALLET, _clean_env, free_port
from tests.support.servers import TOKEN_SPEC
from wallet_core import errors
from wallet_core.currencies import CurrencyRegistry
from wallet_core.domain import AccountKey, CreditCommand, Purpose
from wallet_core.service import Ledger, ScaleMismatch

ALICE = AccountKey("fanteam", "1001", "EUR")
BOB = AccountKey("fanteam", "1002", "EUR")


def scales(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(tuple(r) for r in conn.execute(text("SELECT code, scale FROM currencies")))


@pytest.fixture
def eur_ledger(ledger: Ledger) -> Ledger:
    """Alice holds 100.00 EUR, written by a process with EUR at its ISO scale, 2."""
    ledger.open_account(ALICE)
    ledger.credit(CreditCommand("d1", ALICE, "100.00", Purpose.DEPOSIT))
    return ledger


def test_a_currency_scale_is_recorded_when_the_ledger_first_uses_it(ledger: Ledger) -> None:
    assert scales(ledger.engine) == {}
    ledger.open_account(ALICE)
    ledger.open_account(AccountKey("fanteam", "1001", "BTC"))
    assert scales(ledger.engine) == {"EUR": 2, "BTC": 8}
    ledger.check_currencies()  # the same configuration starts


def test_a_process_configured_with_another_scale_refuses_to_start(eur_ledger: Ledger) -> None:
    other = Ledger(eur_ledger.engine, CurrencyRegistry({"EUR": 3, "FUN": 2, "BTC": 8}), group_commit=False)
    with pytest.raises(ScaleMismatch) as refused:
        other.check_currencies()
    assert "EUR: the ledger keeps it with scale 2, this process is configured with scale 3" in str(refused.value)
    assert scales(eur_ledger.engine) == {"EUR": 2}


def test_a_process_that_started_before_the_first_use_cannot_serve_the_currency_with_another_scale(
    eur_ledger: Ledger,
) -> None:
    other = Ledger(eur_ledger.engine, CurrencyRegistry({"EUR": 3}), group_commit=False)  # no start-up check
    before = dump(eur_ledger.engine)
    with pytest.raises(errors.UnknownCurrency, match="kept with scale 2 in the ledger"):
        other.open_account(BOB)
    with pytest.raises(errors.UnknownCurrency, match="configured with scale 3"):
        other.credit(CreditCommand("w1", ALICE, "1.000", Purpose.ADJUSTMENT))  # 1.000 would be 10.00 to the others
    assert dump(eur_ledger.engine) == before
    assert eur_ledger.get_balance(ALICE).balance == "100.00"


def test_a_ledger_from_before_scales_were_recorded_takes_the_first_configured_scale(eur_ledger: Ledger) -> None:
    with eur_ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM currencies"))  # as the migration leaves an existing ledger
    Ledger(eur_ledger.engine, CurrencyRegistry(), group_commit=False).check_currencies()
    assert scales(eur_ledger.engine) == {"EUR": 2}
    with pytest.raises(ScaleMismatch, match="EUR"):
        Ledger(eur_ledger.engine, CurrencyRegistry({"EUR": 3}), group_commit=False).check_currencies()


def test_wallet_core_refuses_to_start_naming_the_currency_and_both_scales(
    eur_ledger: Ledger, db_url: str, tmp_path: Path
) -> None:
    env = _clean_env({"WALLET_DATABASE_URL": db_url, "WALLET_GRPC_ADDR": f"127.0.0.1:{free_port()}",
                      "WALLET_GRPC_TOKENS": TOKEN_SPEC, "WALLET_CURRENCIES": "EUR=3",
                      "WALLET_DATA_DIR": str(tmp_path)})
    # a core that starts would serve until the timeout: that is the failure this test catches
    done = subprocess.run([WALLET, "core"], env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode != 0
    assert "EUR: the ledger keeps it with scale 2, this process is configured with scale 3" in done.stderr
    assert eur_ledger.get_balance(ALICE).balance == "100.00"
