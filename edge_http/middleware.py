"""What happens around every callback, before and after its resource runs.

- `CallbackObserver`: times the callback, writes its log line and its metrics.
- `CallbackGuard`: the transport-level checks, before a byte of the body is read, in this
  order: address allowlist (403), bearer token (401), declared size (413), content type (415).
  A refused request is answered here and its resource never runs. An accepted token's grant
  (the clients it may act for) is left in `req.context.grant` for the resource to check.
- `WalletLifecycle`: closes the core client the app built, at ASGI lifespan shutdown.

Only resources with `callback = True` (POST /bets, POST /winners) are guarded and observed;
health, metrics and the OpenAPI document are open.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import falcon
import falcon.asgi

from clients import call_metadata
from edge_http.auth import AddressPolicy, TokenVerifier
from edge_http.logs import CallbackRecord, write
from edge_http.metrics import EdgeMetrics
from edge_http.responses import send_error

log = logging.getLogger("edge_http")


def _is_callback(resource: Any) -> bool:
    return bool(getattr(resource, "callback", False))


def peer_address(req: falcon.asgi.Request) -> str | None:
    """The socket peer as the ASGI server reports it (never a header)."""
    client = req.scope.get("client")
    if not client:
        return None
    client = tuple(client)  # the ASGI spec allows any iterable; keep it readable for Falcon too
    req.scope["client"] = client
    return str(client[0])


REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_SHAPE = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id_of(req: falcon.asgi.Request) -> str:
    """betflex's X-Request-ID when it sends a sane one, else a new id."""
    given = req.get_header(REQUEST_ID_HEADER)
    return given if given is not None and _REQUEST_ID_SHAPE.fullmatch(given) else uuid.uuid4().hex


class CallbackObserver:
    """Times, logs and counts a callback; gives it a request id, echoed in `X-Request-ID` and sent
    to the core (metadata `x-request-id`) with every call made while the callback is handled."""

    def __init__(self, metrics: EdgeMetrics) -> None:
        self._metrics = metrics

    async def process_resource(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        if _is_callback(resource):
            req.context.started = time.perf_counter()
            request_id = request_id_of(req)
            req.context.callback = CallbackRecord(route=resource.route, request_id=request_id)
            resp.set_header(REQUEST_ID_HEADER, request_id)
            req.context.core_metadata = call_metadata(x_request_id=request_id)
            req.context.core_metadata.__enter__()

    async def process_response(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: Any, req_succeeded: bool
    ) -> None:
        record: CallbackRecord | None = getattr(req.context, "callback", None)
        if record is None:
            return
        try:
            req.context.core_metadata.__exit__(None, None, None)
        except ValueError:  # set in another context (cannot happen within one ASGI request)
            pass
        if record.outcome != "request_timeout":  # a body too slow to arrive is not waited for again
            await drain(req)
        seconds = time.perf_counter() - req.context.started
        status = resp.status_code
        if record.outcome == "error":  # no resource decided: an HTTP error raised by Falcon, or a bug
            record.outcome = f"http_{status}"
        write(record, status, seconds * 1000)
        self._metrics.observe_callback(record.route, record.outcome, seconds)


class CallbackGuard:
    def __init__(
        self, tokens: TokenVerifier, addresses: AddressPolicy, *, max_body_bytes: int, insecure_no_auth: bool = False
    ) -> None:
        self._tokens = tokens
        self._addresses = addresses
        self._max_body_bytes = max_body_bytes
        self._insecure = insecure_no_auth

    async def process_resource(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: Any, params: dict[str, Any]
    ) -> None:
        if not _is_callback(resource):
            return
        if self._addresses.enabled:
            forwarded = req.get_header("X-Forwarded-For")
            if not self._addresses.permits(peer_address(req), [forwarded] if forwarded else []):
                return self._refuse(req, resp, 403, "forbidden", "this address may not call the wallet")
        if self._insecure:
            log.warning("%s %s accepted WITHOUT authentication (insecure_no_auth is set)", req.method, req.path)
            req.context.grant = None  # no token, so no per-client check: the core token is the only limit
        else:
            grant = self._tokens.grant(req.get_header("Authorization"))
            if grant is None:
                resp.set_header("WWW-Authenticate", 'Bearer realm="wallet"')
                return self._refuse(req, resp, 401, "unauthorized",
                                    "a valid 'Authorization: Bearer <token>' is required")
            req.context.grant = grant  # the clients this token may act for (edge_http.tenants)
        if req.method != "POST":
            return None  # Falcon answers 405; nothing to check in a body that is not read
        length = req.get_header("Content-Length")
        if length is not None:
            if not length.isascii() or not length.strip().isdigit():
                return self._refuse(req, resp, 400, "invalid_request", "the Content-Length header is not a number")
            if int(length) > self._max_body_bytes:
                return self._refuse(
                    req, resp, 413, "payload_too_large", f"the body may hold at most {self._max_body_bytes} bytes"
                )
        content_type = req.get_header("Content-Type")
        if content_type is not None and not is_json(content_type):
            return self._refuse(req, resp, 415, "unsupported_media_type", "the body must be application/json")
        return None

    @staticmethod
    def _refuse(req: falcon.asgi.Request, resp: falcon.asgi.Response, status: int, code: str, message: str) -> None:
        req.context.callback.outcome = code
        send_error(resp, status, code, message)
        resp.complete = True


DRAIN_BYTES = 16 * 1024 * 1024
DRAIN_SECONDS = 5.0


async def drain(req: falcon.asgi.Request) -> None:
    """Read and drop what is left of a refused body (bounded in bytes and time) before answering.

    A server that answers and closes while the client is still sending makes the kernel reset
    the connection, and the client then sees a broken connection instead of our 401 or 413.
    """

    async def consume() -> None:
        seen = 0
        while not req.stream.eof and seen <= DRAIN_BYTES:
            chunk = await req.stream.read(65536)
            if not chunk:
                return
            seen += len(chunk)

    try:
        await asyncio.wait_for(consume(), DRAIN_SECONDS)
    except (TimeoutError, OSError, RuntimeError):
        pass  # past the bounds the connection is closed as it is


def is_json(content_type: str) -> bool:
    """application/json, with or without parameters (charset); also any `+json` type."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


class WalletLifecycle:
    """Closes the wallet client at shutdown, when the app owns it (it built it from the settings)."""

    def __init__(self, wallet: Any, *, owned: bool) -> None:
        self._wallet = wallet
        self._owned = owned

    async def process_startup(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        return None

    async def process_shutdown(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        if self._owned:
            await self._wallet.close()
