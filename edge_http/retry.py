"""One policy for every call the edge makes to the core: attempts until a deadline, with backoff.

Every wallet call is idempotent by its transaction id, so a call whose outcome is unknown (a
timeout, a broken or refused connection) is simply made again, each attempt bounded by
`min(attempt_timeout, time left)`, until it gets an answer of the core or the deadline passes.
tenacity drives the attempts; the clock, the sleep and the jitter's random source are injected,
so the deterministic simulation (tests/sim) runs this very code on simulated time.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenacity import AsyncRetrying, retry_if_exception

from clients.errors import WalletError
from edge_http.errors import EdgeCallFailed, is_definite

T = TypeVar("T")
log = logging.getLogger("edge_http.core")

# How long past its own timeout a call may run before the edge gives up on it.
GRACE = 0.25
# Pauses between attempts: 50 ms doubling to 400 ms, each drawn in [50 %, 100 %], never past the deadline.
FIRST_PAUSE = 0.05
MAX_PAUSE = 0.4


async def call_core(make: Callable[[float], Awaitable[T]], timeout: float) -> T:
    """`make(timeout)`, bounded by `timeout + GRACE` whatever the client does; any failure is a WalletError."""
    try:
        return await asyncio.wait_for(make(timeout), timeout + GRACE)
    except WalletError:
        raise
    except TimeoutError:
        raise EdgeCallFailed(f"the core call did not end within {timeout + GRACE:.2f} s") from None
    except Exception as exc:  # a client bug must not turn into a wrong answer about money
        log.exception("the wallet client failed unexpectedly")
        raise EdgeCallFailed(f"the wallet client failed: {type(exc).__name__}") from exc


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


@dataclass(frozen=True)
class CallPolicy:
    """How the edge calls the core: `until(deadline, make)` is the one retry loop of the edge."""

    attempt_timeout: float
    clock: Callable[[], float] = _loop_time
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)

    def now(self) -> float:
        return self.clock()

    async def until(self, deadline: float, make: Callable[[float], Awaitable[T]]) -> T:
        """The first answer of the core to `make(timeout)`: its result, or its definite refusal (raised).

        Failures of the way to the core are retried until `deadline`; then the last one is raised.
        At least one attempt is made, however little time is left.
        """

        def attempt_timeout() -> float:
            return max(min(self.attempt_timeout, deadline - self.clock()), 0.001)

        def pause(attempts_made: int) -> float:
            wanted = min(FIRST_PAUSE * 2.0 ** (attempts_made - 1), MAX_PAUSE) * self.rng.uniform(0.5, 1.0)
            return max(0.0, min(wanted, deadline - self.clock()))

        # The first attempt needs no retry machinery (tenacity costs tens of microseconds of CPU
        # per loop, a tenth of the edge's CPU per callback): nearly every call is answered by it.
        try:
            return await call_core(make, attempt_timeout())
        except WalletError as error:
            if is_definite(error) or self.clock() >= deadline:
                raise
        await self.sleep(pause(1))
        retrying = AsyncRetrying(
            stop=lambda _state: self.clock() >= deadline,
            wait=lambda state: pause(state.attempt_number + 1),  # attempt 1 of this loop is the 2nd call
            retry=retry_if_exception(lambda error: isinstance(error, WalletError) and not is_definite(error)),
            sleep=self.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await call_core(make, attempt_timeout())
        raise AssertionError("unreachable: tenacity re-raises the last failure")  # pragma: no cover
