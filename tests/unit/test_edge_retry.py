"""The edge's one retry loop (`CallPolicy.until`) on a simulated clock: what it calls, when, and what it raises.

The first attempt runs without tenacity (a fast path, issue 13); these pin the behaviour the
simulation relies on, which must be the same whichever attempt answers.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from clients.errors import InsufficientFunds, Unavailable
from edge_http.retry import CallPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def policy(clock: Clock) -> CallPolicy:
    return CallPolicy(attempt_timeout=1.0, clock=clock, sleep=clock.sleep, rng=random.Random(7))


def run(clock: Clock, deadline: float, outcomes: list[object]) -> tuple[object, list[float]]:
    timeouts: list[float] = []

    async def make(timeout: float) -> object:
        timeouts.append(timeout)
        outcome = outcomes.pop(0)
        clock.now += 0.01
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def main() -> object:
        return await policy(clock).until(deadline, make)

    return asyncio.run(main()), timeouts


def test_the_first_answer_is_returned_without_a_pause() -> None:
    clock = Clock()
    assert run(clock, 103.0, ["ok"]) == ("ok", [1.0])
    assert clock.sleeps == []


def test_failures_of_the_way_are_retried_with_growing_pauses_then_answered() -> None:
    clock = Clock()
    result, timeouts = run(clock, 103.0, [Unavailable("down"), Unavailable("down"), Unavailable("down"), "ok"])
    assert result == "ok" and len(timeouts) == 4
    first, second, third = clock.sleeps
    assert 0.025 <= first <= 0.05 and 0.05 <= second <= 0.1 and 0.1 <= third <= 0.2
    expected = random.Random(7)
    assert clock.sleeps == [min(0.05 * 2 ** n, 0.4) * expected.uniform(0.5, 1.0) for n in range(3)]


def test_a_definite_refusal_is_raised_at_once() -> None:
    clock = Clock()
    with pytest.raises(InsufficientFunds):
        run(clock, 103.0, [InsufficientFunds("no")])
    assert clock.sleeps == []


def test_at_the_deadline_the_last_failure_is_raised_and_no_attempt_outlives_it() -> None:
    clock = Clock()
    failures: list[object] = [Unavailable(f"down {n}") for n in range(100)]
    with pytest.raises(Unavailable) as raised:
        run(clock, 100.5, failures)
    attempts = 100 - len(failures)
    assert attempts > 2 and str(raised.value).endswith(f"down {attempts - 1}")
    assert clock.now <= 100.5 + 0.01 and sum(clock.sleeps) <= 0.5


def test_a_deadline_already_past_still_gets_one_attempt() -> None:
    clock = Clock()
    with pytest.raises(Unavailable):
        run(clock, 99.0, [Unavailable("down"), "never reached"])
    assert clock.sleeps == []
