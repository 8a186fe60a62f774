"""Group commit: calls that arrive together are applied in one database transaction.

Callers hand their validated call to `submit` (a thread, which waits) or `submit_async` (a
coroutine, which awaits: no thread per call). One committer thread takes whatever has queued
up, at most `max_batch` calls, waiting at most `max_wait` seconds for more once it has one (0 =
never wait: under load, the calls that arrived while the previous batch was committing form the
next batch; an idle service adds no latency).
The batch runs as one transaction with one COMMIT, so many calls share one fsync, and a hot
wallet's calls are serialised here in memory instead of queueing on a database row lock.
A call's refusal is its own: the rules are applied call by call (wallet_core.book), so a
refused call neither fails nor holds up the rest of its batch.

An async caller's result comes back to its event loop once per batch (one
`call_soon_threadsafe` for every waiter of that loop), not once per call.

Observing it: `on_batch(size, seconds)` is called after every batch (for metrics), `depth()`
tells how many calls wait. A batch of one runs in its caller's context (contextvars), so the
caller's trace and request id reach the database work; a shared batch runs in its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from wallet_core import errors

log = logging.getLogger(__name__)

C = TypeVar("C")
R = TypeVar("R")

_STOP = object()
Waiter = Future[Any] | asyncio.Future[Any]  # a thread's (concurrent) or a coroutine's (asyncio) future


class Committer(Generic[C, R]):
    def __init__(
        self,
        run_batch: Callable[[Sequence[C]], list[R]],
        *,
        max_batch: int = 128,
        max_wait: float = 0.0,
        name: str = "wallet-committer",
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.on_batch = on_batch
        self._queue: queue.SimpleQueue[tuple[C, Waiter, contextvars.Context] | object] = queue.SimpleQueue()
        self._closed = False
        self.batches = 0
        self.calls = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, call: C, timeout: float | None = None) -> R:
        if self._closed:
            raise errors.Unavailable("the ledger is shutting down; retry on another instance")
        future: Future[R] = Future()
        self._queue.put((call, future, contextvars.copy_context()))
        return future.result(timeout)

    def submit_async(self, call: C) -> asyncio.Future[R]:
        """Queue `call` from a coroutine; await the returned future for its result (or refusal).

        Cancelling the future does not withdraw the call: once queued it is applied or refused
        with its batch, like a call whose caller went away."""
        if self._closed:
            raise errors.Unavailable("the ledger is shutting down; retry on another instance")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put((call, future, contextvars.copy_context()))
        return future

    def depth(self) -> int:
        """Calls waiting for a batch (approximate, as any queue size read by another thread)."""
        return self._queue.qsize()

    def close(self) -> None:
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait
            stop = False
            while len(batch) < self.max_batch:
                try:
                    remaining = deadline - time.monotonic()
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._run(batch)  # type: ignore[arg-type]
            if stop:
                return

    def _run(self, batch: list[tuple[C, Waiter, contextvars.Context]]) -> None:
        self.batches += 1
        self.calls += len(batch)
        calls = [call for call, _, _ in batch]
        started = time.perf_counter()
        try:
            if len(batch) == 1:
                results = batch[0][2].run(self._run_batch, calls)
            else:
                results = self._run_batch(calls)
        except BaseException as exc:  # the whole batch failed: every caller gets the error
            if not isinstance(exc, errors.WalletError):
                log.exception("a batch of %d calls failed", len(batch))
            _deliver([(waiter, exc, True) for _, waiter, _ in batch])
            return
        finally:
            if self.on_batch is not None:
                self.on_batch(len(batch), time.perf_counter() - started)
        _deliver([(waiter, result, False) for (_, waiter, _), result in zip(batch, results, strict=True)])


def _deliver(answers: list[tuple[Waiter, object, bool]]) -> None:
    """Give each waiter its result (or, if the flag is set, its exception); a thread's at once,
    a coroutine's on its own loop, with one wake-up per loop for the whole batch."""
    loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[object], object, bool]]] = {}
    for waiter, answer, failed in answers:
        if isinstance(waiter, asyncio.Future):
            loops.setdefault(waiter.get_loop(), []).append((waiter, answer, failed))
        elif failed:
            waiter.set_exception(answer)  # type: ignore[arg-type]
        else:
            waiter.set_result(answer)
    for loop, items in loops.items():
        try:
            loop.call_soon_threadsafe(_settle, items)
        except RuntimeError:  # the loop is closed: its server stopped, nobody waits for these answers
            log.debug("%d answers for a closed event loop dropped", len(items))


def _settle(items: list[tuple[asyncio.Future[object], object, bool]]) -> None:
    for future, answer, failed in items:
        if future.done():  # cancelled: the caller went away (deadline, disconnect)
            continue
        if failed:
            future.set_exception(answer)  # type: ignore[arg-type]
        else:
            future.set_result(answer)
