"""An asyncio event loop on simulated time: the whole simulation runs in one thread, in no time.

Nothing here ever waits for real: when no callback is ready, the loop jumps its clock straight to
the next timer. With no real I/O and no threads, the order of every callback is decided by the
program and its seeds alone, so a run replays exactly (TigerBeetle's VOPR and FoundationDB's
simulator work the same way).
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlock(RuntimeError):
    """Nothing is ready and nothing is scheduled, yet the simulation is not finished."""


class _TimeSelector(selectors.BaseSelector):
    """Never reports a ready file; `select(timeout)` only moves the simulated clock forward."""

    def __init__(self, clock: list[float]) -> None:
        self._clock = clock
        self._keys: dict[int, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        return self._keys.pop(fd)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise Deadlock("no callback is ready and no timer is set")
        if timeout > 0:
            self._clock[0] += timeout
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._keys

    def close(self) -> None:
        self._keys.clear()


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._now = [0.0]
        super().__init__(selector=_TimeSelector(self._now))

    def time(self) -> float:
        return self._now[0]


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a fresh VirtualLoop (simulated time starts at 0)."""
    loop = VirtualLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()
