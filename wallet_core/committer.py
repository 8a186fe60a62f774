"""Group commit: calls that arrive together are applied in one database transaction.

Callers (gRPC worker threads) hand their validated call to `submit` and wait. One committer
thread takes whatever has queued up, at most `max_batch` calls, waiting at most `max_wait`
seconds for more once it has one (0 = never wait: under load, the calls that arrived while
the previous batch was committing form the next batch; an idle service adds no latency).
The batch runs as one transaction with one COMMIT, so many calls share one fsync, and a hot
wallet's calls are serialised here in memory instead of queueing on a database row lock.
A call's refusal is its own: the rules are applied call by call (wallet_core.book), so a
refused call neither fails nor holds up the rest of its batch.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from wallet_core import errors

log = logging.getLogger(__name__)

C = TypeVar("C")
R = TypeVar("R")

_STOP = object()


class Committer(Generic[C, R]):
    def __init__(
        self,
        run_batch: Callable[[Sequence[C]], list[R]],
        *,
        max_batch: int = 128,
        max_wait: float = 0.0,
        name: str = "wallet-committer",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._queue: queue.SimpleQueue[tuple[C, Future[R]] | object] = queue.SimpleQueue()
        self._closed = False
        self.batches = 0
        self.calls = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, call: C, timeout: float | None = None) -> R:
        if self._closed:
            raise errors.Unavailable("the ledger is shutting down; retry on another instance")
        future: Future[R] = Future()
        self._queue.put((call, future))
        return future.result(timeout)

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

    def _run(self, batch: list[tuple[C, Future[R]]]) -> None:
        self.batches += 1
        self.calls += len(batch)
        try:
            results = self._run_batch([call for call, _ in batch])
        except BaseException as exc:  # the whole batch failed: every caller gets the error
            if not isinstance(exc, errors.WalletError):
                log.exception("a batch of %d calls failed", len(batch))
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
