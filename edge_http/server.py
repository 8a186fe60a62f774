"""The HTTP protocol the edge serves with: uvicorn's httptools protocol, plus a deadline for reading a request.

httptools (the llhttp parser, in C) parses the requests and uvloop runs the event loop
(`edge_http.app.run`); both are several times cheaper per request than the pure-Python h11
parser and asyncio's default loop.

uvicorn closes a connection that stays idle after a response (keep-alive timeout), but not one
that opens and never completes its request headers, nor one that sends a byte of the next
request and stops (its first byte cancels the keep-alive timer). Such connections would be
held open forever (slowloris). Here a connection that is not serving a request must deliver
complete request headers within `header_timeout` seconds of starting to wait for them, or it
is closed. A body that never ends is cut off by the resources (`edge_http.resources.read_body`).

A request the parser cannot read (an unreadable `Content-Length`, a malformed request line or
header) never reaches Falcon: uvicorn answers it itself, in plain text. Here that answer is the
edge's JSON error body, 400 `{"error": "invalid_request", "message": ...}`, like every other.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MALFORMED = json.dumps({
    "error": "invalid_request",
    "message": "the request is not valid HTTP/1.1 (e.g. an unreadable Content-Length header)",
}).encode()


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
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
        """uvicorn's answer to a request the parser refused, with the edge's JSON error body instead of text."""
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [b"content-type: application/json\r\n", b"content-length: ", str(len(MALFORMED)).encode(), b"\r\n",
                 b"connection: close\r\n\r\n", MALFORMED]
        self.transport.write(b"".join(head))
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


def protocol_with_deadline(header_timeout: float) -> type[DeadlineHttpToolsProtocol]:
    return type("EdgeHttpProtocol", (DeadlineHttpToolsProtocol,), {"header_timeout": header_timeout})
