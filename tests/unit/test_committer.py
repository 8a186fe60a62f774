"""The group committer's two kinds of caller: threads (`submit`) and coroutines (`submit_async`).

The batch function is plain Python here (no database): it records the batches it saw, so the
tests check what the committer promises: every call is answered once, with its own result or
refusal, in the order of its batch; coroutines of one loop share a batch; a caller that went
away (a cancelled future) and a loop that closed do not stop the committer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from wallet_core import errors
from wallet_core.committer import Committer


class Recorder:
    """A batch function: doubles each number, refuses negative ones, and keeps every batch it ran."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gate = gate

    def __call__(self, calls: Sequence[int]) -> list[int | errors.WalletError]:
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(list(calls))
        return [errors.InsufficientFunds(f"{n} refused") if n < 0 else 2 * n for n in calls]


def test_coroutines_await_their_own_answers_and_share_batches() -> None:
    gate = threading.Event()
    recorder = Recorder(gate)
    committer: Committer[int, int | errors.WalletError] = Committer(recorder, max_batch=64)

    async def main() -> list[int | errors.WalletError]:
        futures = [committer.submit_async(n) for n in range(-3, 40)]
        gate.set()  # the first batch waited until every call was queued
        return list(await asyncio.gather(*futures))

    try:
        answers = asyncio.run(main())
    finally:
        committer.close()
    assert [a for a in answers if not isinstance(a, errors.WalletError)] == [2 * n for n in range(40)]
    assert [str(a) for a in answers if isinstance(a, errors.WalletError)] == ["-3 refused", "-2 refused", "-1 refused"]
    assert sorted(n for batch in recorder.batches for n in batch) == list(range(-3, 40))
    assert max(len(batch) for batch in recorder.batches) > 1, "calls queued together share a batch"


def test_a_batch_that_fails_fails_every_coroutine_in_it() -> None:
    def broken(calls: Sequence[int]) -> list[int]:
        raise errors.Unavailable("the ledger database is unavailable")

    committer: Committer[int, int] = Committer(broken)

    async def main() -> None:
        with pytest.raises(errors.Unavailable):
            await committer.submit_async(1)

    try:
        asyncio.run(main())
    finally:
        committer.close()


def test_a_cancelled_caller_does_not_stop_the_answers_of_the_others() -> None:
    gate = threading.Event()
    recorder = Recorder(gate)
    committer: Committer[int, int | errors.WalletError] = Committer(recorder)

    async def main() -> int | errors.WalletError:
        gone = committer.submit_async(1)
        stays = committer.submit_async(2)
        gone.cancel()  # its caller's deadline passed: the call is still applied with its batch
        gate.set()
        return await stays

    try:
        assert asyncio.run(main()) == 4
    finally:
        committer.close()
    assert sorted(n for batch in recorder.batches for n in batch) == [1, 2]


def test_answers_for_a_closed_loop_are_dropped_and_the_committer_goes_on() -> None:
    gate = threading.Event()
    recorder = Recorder(gate)
    committer: Committer[int, int | errors.WalletError] = Committer(recorder)
    loop = asyncio.new_event_loop()

    async def queue_one() -> None:
        committer.submit_async(7)  # never awaited: the loop closes before the answer comes

    loop.run_until_complete(queue_one())
    loop.close()
    try:
        gate.set()
        assert committer.submit(5) == 10  # a thread's call after the dropped answer is served
    finally:
        committer.close()
    assert [n for batch in recorder.batches for n in batch] == [7, 5]


def test_a_closed_committer_refuses_new_coroutines() -> None:
    committer: Committer[int, int] = Committer(lambda calls: list(calls))
    committer.close()

    async def main() -> None:
        with pytest.raises(errors.Unavailable):
            committer.submit_async(1)

    asyncio.run(main())
