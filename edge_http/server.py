"""The HTTP protocol the edge serves with: uvicorn's h11 protocol, plus a deadline for reading a request.

uvicorn closes a connection that stays idle after a response (keep-alive timeout), but not one
that opens and never completes its request headers, nor one that sends a byte of the next
request and stops (its first byte cancels the keep-alive timer). Such connections would be
held open forever (slowloris). Here a connection that is not serving a request must deliver
complete request headers within `header_timeout` seconds of starting to wait for them, or it
is closed. A body that never ends is cut off by the resources (`edge_http.resources.read_body`).

A request h11 cannot parse (an unreadable `Content-Length`, a malformed request line or header)
never reaches Falcon: uvicorn answers it itself, in plain text. Here that answer is the edge's
JSON error body, 400 `{"error": "invalid_request", "message": ...}`, like every other.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

MALFORMED = json.dumps({
    "error": "invalid_request",
    "message": "the request is not valid HTTP/1.1 (e.g. an unreadable Content-Length header)",
}).encode()


class DeadlineH11Protocol(H11Protocol):
    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is None or self.cycle.response_complete:
            self._arm()  # still (or again) waiting for request headers: the deadline runs on
        else:
            self._disarm()  # a request is being served; its body has a deadline of its own

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request h11 refused, with the edge's JSON error body instead of text."""
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(MALFORMED)).encode()),
                   (b"connection", b"close")]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=MALFORMED),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._disarm()  # idle now: uvicorn's keep-alive timer applies until the next byte arrives

    def _arm(self) -> None:
        if self._header_timer is None and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if self.cycle is None or self.cycle.response_complete:
            self.logger.info("closing a connection that did not send request headers within %g s", self.header_timeout)
            self.transport.close()


def protocol_with_deadline(header_timeout: float) -> type[DeadlineH11Protocol]:
    return type("EdgeH11Protocol", (DeadlineH11Protocol,), {"header_timeout": header_timeout})
