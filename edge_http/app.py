"""The betflex edge as a Falcon ASGI app: `create_app(settings)` builds everything; `run(settings)` serves it.

    from edge_http.app import create_app, run
    from edge_http.config import EdgeSettings

    app = create_app(EdgeSettings())          # an ASGI app, e.g. for uvicorn or a test
    run(EdgeSettings())                       # uvicorn on settings.http_addr, until stopped
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import falcon
import falcon.asgi

from edge_http.auth import AddressPolicy, TokenVerifier
from edge_http.config import EdgeSettings
from edge_http.core import LazyWallet, Readiness
from edge_http.jsoncheck import JsonCheck
from edge_http.metrics import EdgeMetrics
from edge_http.middleware import CallbackGuard, CallbackObserver, WalletLifecycle
from edge_http.openapi import openapi_document
from edge_http.placement import BetPlacer
from edge_http.port import WalletPort
from edge_http.resources import (
    BetsResource,
    HealthResource,
    MetricsResource,
    OpenApiResource,
    ReadyResource,
    WinnersResource,
)
from edge_http.responses import send_error
from edge_http.retry import CallPolicy
from edge_http.settlement import Settler

log = logging.getLogger("edge_http")


class EdgeConfigError(ValueError):
    """The settings cannot make a safe edge (e.g. no token and no explicit insecure mode)."""


def create_app(
    settings: EdgeSettings, wallet: WalletPort | None = None
) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
    """Build the edge. `wallet` is an `AsyncWalletClient` (or anything with the `WalletPort` calls); when it is
    not given, the app builds one from the settings and closes it at shutdown. A given client
    stays the caller's to close.
    """
    tokens = TokenVerifier.from_setting(settings.edge_tokens)
    if not tokens and not settings.insecure_no_auth:
        raise EdgeConfigError(
            "the betflex edge has no token: set WALLET_EDGE_TOKENS ('token=client1,client2' entries separated "
            "by ';', a token may be a sha256:<hex> digest), or WALLET_INSECURE_NO_AUTH=true for a local trial "
            "without authentication"
        )
    for line in describe_tokens(tokens):
        log.info("betflex edge: %s", line)
    if settings.insecure_no_auth:
        log.warning(
            "INSECURE: the betflex edge accepts callbacks WITHOUT authentication (insecure_no_auth); "
            "never run it like this with real money"
        )
    addresses = AddressPolicy.from_settings(settings.edge_allow, settings.edge_trusted_proxies)
    owned = wallet is None
    client: Any = LazyWallet(settings) if wallet is None else wallet
    metrics = EdgeMetrics()

    calls = CallPolicy(attempt_timeout=settings.edge_core_attempt_timeout)
    placer = BetPlacer(
        client, metrics,
        bets_deadline=settings.edge_bets_deadline, fence_deadline=settings.edge_fence_deadline, calls=calls,
    )
    settler = Settler(
        client, metrics,
        deadline=settings.edge_winners_deadline, concurrency=settings.edge_settle_concurrency,
        auto_resettle=settings.auto_resettle_clients(),
        # a SettleBatch attempt may use the callback's whole time: cutting it short only makes the
        # core do the same payouts again behind the first attempt (they are idempotent, not free)
        calls=dataclasses.replace(calls, attempt_timeout=max(settings.edge_core_attempt_timeout,
                                                             settings.edge_winners_deadline)),
    )

    json_check = JsonCheck()
    app = falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response](
        middleware=(  # a tuple: mypy checks each component against falcon's middleware protocols
            WalletLifecycle(client, owned=owned),
            json_check,
            CallbackObserver(metrics),
            CallbackGuard(
                tokens, addresses,
                max_body_bytes=settings.edge_max_body_bytes,
                insecure_no_auth=settings.insecure_no_auth,
            ),
        ),
    )
    app.req_options.strip_url_path_trailing_slash = True
    body_limits = (settings.edge_max_body_bytes, settings.edge_body_timeout, json_check)
    app.add_route("/bets", BetsResource(placer, *body_limits))
    app.add_route("/winners", WinnersResource(settler, *body_limits))
    app.add_route("/healthz", HealthResource())
    app.add_route("/readyz", ReadyResource(Readiness(client)))
    app.add_route("/metrics", MetricsResource(metrics))
    app.add_route("/openapi.json", OpenApiResource(openapi_document()))
    app.set_error_serializer(_serialize_http_error)
    app.add_error_handler(Exception, _unexpected)
    return app


def describe_tokens(tokens: TokenVerifier) -> list[str]:
    """One line per configured edge token: its position and the clients it may act for (never the token)."""
    return [f"edge token #{n} may act for clients: {grant.describe()}"
            for n, grant in enumerate(tokens.grants, start=1)]


def _serialize_http_error(req: falcon.Request, resp: falcon.Response, exception: falcon.HTTPError) -> None:
    """Falcon's own errors (404, 405, bad headers) in the edge's shape: {"error", "message"}."""
    code = (exception.title or "error").split(" ", 1)[-1].strip().lower().replace(" ", "_") or "error"
    message = exception.description or exception.title or "error"
    send_error(resp, exception.status_code, code, message)


async def _unexpected(req: falcon.asgi.Request, resp: falcon.asgi.Response, exception: Exception, params: Any) -> None:
    log.exception("unexpected error on %s %s", req.method, req.path)
    record = getattr(req.context, "callback", None)
    if record is not None:
        record.outcome = "internal_error"
    send_error(resp, 500, "internal_error", "the edge failed unexpectedly; the outcome of this callback is unknown")


def run(settings: EdgeSettings, **uvicorn_options: Any) -> None:
    """Serve the edge with uvicorn on `settings.http_addr` until interrupted (the `wallet edge` command).

    uvicorn's own proxy-header handling is off: the edge reads X-Forwarded-For itself, and only
    from the proxies in `edge_trusted_proxies`. A connection that does not complete its request
    headers within `edge_header_timeout` is closed (`edge_http.server`). Requests are parsed by
    httptools on a uvloop event loop.
    """
    import uvicorn

    from clients import tracing
    from edge_http.server import protocol_with_deadline

    provider = tracing.configure("wallet-edge")
    app: Any = create_app(settings)
    if provider is not None:
        from edge_http.tracing import instrument

        app = instrument(app, provider)
    host, port = settings.listen()
    options: dict[str, Any] = {
        "host": host, "port": port, "proxy_headers": False, "server_header": False,
        "lifespan": "on", "log_config": None, "access_log": False,
        "http": protocol_with_deadline(settings.edge_header_timeout), "loop": "uvloop",
    }
    options.update(uvicorn_options)
    uvicorn.run(app, **options)
