"""The second reading of a callback body (`schemas.ambiguity`), where it cannot stall the event loop.

msgspec decodes a body in about a millisecond whatever it holds, because it skips the fields the
edge does not declare. The check for duplicate keys and unreadable ignored content cannot skip
anything: jiter builds every value of the body, which for the worst 1 MiB body (96,000 keys in
one object, 350,000 empty objects) takes tens of milliseconds, and holds the GIL all along, so
a thread would not help. A body up to `INLINE_BYTES` is checked in place (at most a few milliseconds); a larger
one is sent to one worker process, so the event loop keeps serving /healthz and every other
callback meanwhile. Hostile large bodies queue for that one worker: they slow each other, not
the rest. The worker is started on first use and stopped at ASGI lifespan shutdown (this object
is a Falcon middleware with only lifespan hooks).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from edge_http.schemas import BodyError, ambiguity

log = logging.getLogger("edge_http")

INLINE_BYTES = 64 * 1024


class JsonCheck:
    def __init__(self, inline_bytes: int = INLINE_BYTES) -> None:
        self._inline_bytes = inline_bytes
        self._pool: ProcessPoolExecutor | None = None

    async def refuse_ambiguous(self, body: bytes) -> None:
        """Raise `BodyError` (invalid_request) when `schemas.ambiguity` finds a problem in `body`."""
        problem = ambiguity(body) if len(body) <= self._inline_bytes else await self._elsewhere(body)
        if problem is not None:
            raise BodyError("invalid_request", problem)

    async def _elsewhere(self, body: bytes) -> str | None:
        loop = asyncio.get_running_loop()
        for _ in range(2):
            try:
                return await loop.run_in_executor(self._worker(), ambiguity, body)
            except BrokenProcessPool:  # the worker died (killed, out of memory): a new one, once
                log.warning("the JSON check worker died; starting another")
                self._stop()
        log.error("the JSON check worker keeps dying; checking a %d-byte body on the event loop", len(body))
        return ambiguity(body)

    def _worker(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a fresh interpreter, nothing inherited from this one (gRPC channels, the event loop)
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def _stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def process_startup(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        return None

    async def process_shutdown(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        self._stop()
