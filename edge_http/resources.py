"""The HTTP resources: read the body, hand it to a use case, write the answer. Nothing else.

Authentication, the allowlist, size and content-type checks happen before these run
(`edge_http.middleware`); a decoded callback naming a client its token may not act for is
refused here before the use case runs (`edge_http.tenants`); the decisions about money live
in `placement` and `settlement`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import falcon
import falcon.asgi

from edge_http.core import Readiness
from edge_http.jsoncheck import JsonCheck
from edge_http.logs import CallbackRecord
from edge_http.metrics import EdgeMetrics
from edge_http.placement import BetPlacer, Conflict, Placed, Refused, Unresolved, http_status
from edge_http.responses import send_error, send_json
from edge_http.schemas import BodyError, decode_winners
from edge_http.settlement import Settler
from edge_http.tenants import PERMISSION_DENIED, check_winners


class BodyTooLarge(Exception):
    pass


class BodyTooSlow(Exception):
    pass


async def read_body(req: falcon.asgi.Request, limit: int, timeout: float | None = None) -> bytes:
    """The whole body, refused as soon as it grows past `limit` bytes (also when sent chunked),
    or when it has not fully arrived within `timeout` seconds (a slow or never-ending body)."""
    chunks = []
    size = 0

    async def read() -> None:
        nonlocal size
        async for chunk in req.stream:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        raise BodyTooSlow from None
    return b"".join(chunks)


class _Callback:
    callback = True
    route = ""
    # the status of a body that cannot be used: 402 on /bets (the only refusal betflex reads there)
    invalid_status = 400

    def __init__(
        self, max_body_bytes: int, body_timeout: float | None = None, json_check: JsonCheck | None = None
    ) -> None:
        self._max_body_bytes = max_body_bytes
        self._body_timeout = body_timeout
        self._json_check = json_check or JsonCheck()

    async def _body(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> bytes | None:
        record: CallbackRecord = req.context.callback
        try:
            return await read_body(req, self._max_body_bytes, self._body_timeout)
        except BodyTooLarge:
            record.outcome = "payload_too_large"
            send_error(resp, 413, "payload_too_large", f"the body may hold at most {self._max_body_bytes} bytes")
        except BodyTooSlow:
            record.outcome = "request_timeout"
            send_error(resp, 408, "request_timeout", f"the body did not arrive within {self._body_timeout:g} s")
        resp.set_header("Connection", "close")  # the rest of the body is not worth waiting for
        return None

    def _invalid(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, error: BodyError) -> None:
        record: CallbackRecord = req.context.callback
        record.outcome = error.code
        record.message = error.message
        send_error(resp, self.invalid_status, error.code, error.message)


class BetsResource(_Callback):
    """POST /bets: take every stake of the callback, atomically."""

    route = "/bets"

    def __init__(
        self, placer: BetPlacer, max_body_bytes: int, body_timeout: float | None = None,
        json_check: JsonCheck | None = None,
    ) -> None:
        super().__init__(max_body_bytes, body_timeout, json_check)
        self._placer = placer

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        record: CallbackRecord = req.context.callback
        raw = await self._body(req, resp)
        if raw is None:
            return
        grant = getattr(req.context, "grant", None)
        body, placement = await self._placer.handle(raw, grant, self._json_check.refuse_ambiguous)
        if body is not None:
            record.client = body.bets[0].user.client
            record.bet_uids = [entry.bet.uid for entry in body.bets]
            record.pool_uids = [entry.pool.uid for entry in body.bets]
        status = http_status(placement)
        if isinstance(placement, Placed):
            record.outcome = "ok"
            send_json(resp, status, {
                "status": "ok",
                "bets": [{"uid": b.uid, "transaction_id": b.transaction_id, "balance": b.balance}
                         for b in placement.bets],
            })
        elif isinstance(placement, (Refused, Conflict)):
            record.outcome = placement.code
            record.message = placement.message
            send_error(resp, status, placement.code, placement.message)
        else:
            assert isinstance(placement, Unresolved)
            record.outcome = "outcome_unknown"
            record.message = placement.message
            send_error(resp, status, "wallet_unavailable", placement.message)


class WinnersResource(_Callback):
    """POST /winners: settle each bet on its own."""

    route = "/winners"

    def __init__(
        self, settler: Settler, max_body_bytes: int, body_timeout: float | None = None,
        json_check: JsonCheck | None = None,
    ) -> None:
        super().__init__(max_body_bytes, body_timeout, json_check)
        self._settler = settler

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        record: CallbackRecord = req.context.callback
        raw = await self._body(req, resp)
        if raw is None:
            return
        try:
            body = decode_winners(raw, check_json=False)
            await self._json_check.refuse_ambiguous(raw)
        except BodyError as error:
            return self._invalid(req, resp, error)
        entries = [entry for pool in body.pools for entry in pool.bets]
        clients = sorted({entry.user.client for entry in entries})
        record.client = ",".join(clients) if clients else None
        record.bet_uids = [entry.bet.uid for entry in entries]
        record.pool_uids = [pool.pool.uid for pool in body.pools if pool.pool is not None and pool.pool.uid is not None]
        denied = check_winners(req.context.grant, body)
        if denied is not None:
            record.outcome = PERMISSION_DENIED
            record.message = denied.message
            named = set(denied.bet_uids)
            failed = [{
                "bet_uid": entry.bet.uid, "reason": PERMISSION_DENIED,
                "message": denied.message if entry.bet.uid in named else (
                    "not attempted: another bet of this callback names a client this token may not act for"),
            } for entry in entries]
            record.failed = [{"bet_uid": f["bet_uid"], "reason": PERMISSION_DENIED} for f in failed]
            return send_error(resp, 403, PERMISSION_DENIED, denied.message, settled=[], failed=failed)

        settlement = await self._settler.settle(body)
        if settlement.status == 200:
            record.outcome = "ok"
            send_json(resp, 200, {"status": "ok", "settled": settlement.settled})
            return
        failed = [{"bet_uid": f.bet_uid, "reason": f.reason, "message": f.message} for f in settlement.failed]
        record.outcome = "settlement_unavailable" if settlement.status == 503 else "settlement_failed"
        record.failed = [{"bet_uid": f.bet_uid, "reason": f.reason} for f in settlement.failed]
        message = (
            f"{len(failed)} of {len(entries)} bets could not be settled"
            + ("; retry later" if settlement.status == 503 else "; a retry needs a correction first")
        )
        send_error(resp, settlement.status, "settlement_failed", message, settled=settlement.settled, failed=failed)


class HealthResource:
    """GET /healthz: the process is running."""

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        send_json(resp, 200, {"status": "ok"})


class ReadyResource:
    """GET /readyz: the wallet core answers this edge."""

    def __init__(self, readiness: Readiness) -> None:
        self._readiness = readiness

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        ready, detail = await self._readiness.check()
        send_json(resp, 200 if ready else 503, {"status": "ready" if ready else "unavailable", "detail": detail})


class MetricsResource:
    """GET /metrics: Prometheus text format."""

    def __init__(self, metrics: EdgeMetrics) -> None:
        self._metrics = metrics

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = self._metrics.content_type
        resp.data = self._metrics.render()


class OpenApiResource:
    """GET /openapi.json: the hand-written description of the routes."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._document = document

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        send_json(resp, 200, self._document)
