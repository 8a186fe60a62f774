"""Pauses between attempts of an idempotent call to the core."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from clients.errors import WalletError

from edge_http.errors import EdgeCallFailed

T = TypeVar("T")
log = logging.getLogger("edge_http.core")

# How long past its own timeout a call may run before the edge gives up on it.
GRACE = 0.25


async def call_core(make: Callable[[float], Awaitable[T]], timeout: float) -> T:
    """`make(timeout)`, bounded by `timeout + GRACE` whatever the client does; any failure is a WalletError."""
    try:
        return await asyncio.wait_for(make(timeout), timeout + GRACE)
    except WalletError:
        raise
    except asyncio.TimeoutError:
        raise EdgeCallFailed(f"the core call did not end within {timeout + GRACE:.2f} s") from None
    except Exception as exc:  # noqa: BLE001 - a client bug must not turn into a wrong answer about money
        log.exception("the wallet client failed unexpectedly")
        raise EdgeCallFailed(f"the wallet client failed: {type(exc).__name__}") from exc


class Backoff:
    """50 ms doubling to 400 ms, with jitter, never past the time left."""

    def __init__(self, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self._sleep = sleep
        self._next = 0.05

    async def pause(self, remaining: float) -> None:
        delay = min(self._next * random.uniform(0.5, 1.0), max(remaining, 0.0))
        self._next = min(self._next * 2, 0.4)
        if delay > 0:
            await self._sleep(delay)
