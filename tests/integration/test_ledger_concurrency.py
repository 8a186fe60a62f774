"""DESIGN section 3: no lost update, no overdraft, under any interleaving (the Ledger in-process, many threads)."""

from __future__ import annotations

import pytest

from tests.support.hammer import Outcomes, mixed_plan, race
from wallet_core import errors
from wallet_core.domain import AccountKey, CreditCommand, DebitItem, Purpose
from wallet_core.service import Ledger

both_modes = pytest.mark.parametrize("ledger", [True, False], indirect=True, ids=["group-commit", "per-call"])


@both_modes
def test_32_threads_cannot_overdraw_one_wallet(ledger: Ledger) -> None:
    key = AccountKey("fanteam", "hot", "EUR")
    ledger.open_account(key)
    ledger.credit(CreditCommand("fund", key, "100.00", Purpose.DEPOSIT))  # exactly 100 debits of 1.00
    outcomes = Outcomes()

    def debit(n: int, i: int) -> None:
        try:
            ledger.debit([DebitItem(f"t{n}-{i}", key, "1.00", Purpose.STAKE)])
            outcomes.record_ok("debit", key.user_id, 100)
        except errors.InsufficientFunds as e:
            outcomes.record_refusal(e.reason)

    race(32, 20, debit)
    assert outcomes.count("debit") == 100
    assert outcomes.refused == {"INSUFFICIENT_FUNDS": 540}
    assert ledger.get_balance(key).balance == "0.00"


@both_modes
def test_mixed_deposits_and_debits_across_ten_wallets_add_up(ledger: Ledger) -> None:
    wallets = [f"u{n}" for n in range(10)]
    for w in wallets:
        ledger.open_account(AccountKey("fanteam", w, "EUR"))
    plan = mixed_plan(seed=7, wallets=wallets, threads=16, per_thread=25)
    outcomes = Outcomes()

    def operate(n: int, i: int) -> None:
        kind, wallet, minor = plan[n][i]
        key = AccountKey("fanteam", wallet, "EUR")
        amount = f"{minor // 100}.{minor % 100:02d}"
        try:
            if kind == "deposit":
                ledger.credit(CreditCommand(f"d{n}-{i}", key, amount, Purpose.DEPOSIT))
            else:
                ledger.debit([DebitItem(f"s{n}-{i}", key, amount, Purpose.STAKE)])
            outcomes.record_ok(kind, wallet, minor)
        except errors.InsufficientFunds as e:
            outcomes.record_refusal(e.reason)

    race(16, 25, operate)
    for w in wallets:
        expected = outcomes.net(w)
        assert ledger.get_balance(AccountKey("fanteam", w, "EUR")).balance == f"{expected // 100}.{expected % 100:02d}"
