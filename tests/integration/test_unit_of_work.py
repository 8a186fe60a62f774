"""DESIGN section 3: each call is one transaction, rolled back when it fails, retried as a whole on a lost race
(wallet_core.storage.unit_of_work, as the Ledger uses it), on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Connection

from wallet_core.service import Ledger
from wallet_core.storage import repository
from wallet_core.storage.repository import ConcurrentChange


class Retries:
    """A LedgerObserver that keeps the reasons of the database retries."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def batch_committed(self, size: int, seconds: float) -> None:
        pass

    def database_retry(self, reason: str) -> None:
        self.reasons.append(reason)

    def settlement_failures(self, count: int) -> None:
        pass


def test_a_lost_race_rolls_back_and_runs_again_whole_and_the_ledger_reports_it(ledger: Ledger) -> None:
    retries = Retries()
    ledger.observe(retries)
    attempts: list[int] = []

    def work(conn: Connection) -> str:
        attempts.append(len(attempts) + 1)
        repository.record_scale(conn, ledger.currencies.get("EUR"), ledger.clock())
        if len(attempts) == 1:
            raise ConcurrentChange("someone else moved a row")  # after a write: it must not stay
        return "done"

    assert ledger.uow.write(work) == "done"
    assert attempts == [1, 2]  # the second attempt's insert met no row of the first (else: a unique race)
    assert retries.reasons == ["concurrent_change"]
    with ledger.uow.read() as conn:
        assert repository.recorded_scales(conn) == {"EUR": 2}


def test_a_bug_is_neither_retried_nor_committed(ledger: Ledger) -> None:
    retries = Retries()
    ledger.observe(retries)
    attempts: list[int] = []

    def work(conn: Connection) -> None:
        attempts.append(1)
        repository.record_scale(conn, ledger.currencies.get("EUR"), ledger.clock())
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        ledger.uow.write(work)
    assert attempts == [1] and retries.reasons == []
    with ledger.uow.read() as conn:
        assert repository.recorded_scales(conn) == {}
