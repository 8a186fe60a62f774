"""What the core tells its operator: Prometheus metrics and one JSON access-log line per call.

`CoreMetrics` holds the core's metrics in its own registry (several cores in one process, as
in the tests, do not clash): the usual gRPC server metrics, named as go-grpc-prometheus and
py-grpc-prometheus name them (`grpc_server_started_total`, `grpc_server_handled_total`,
`grpc_server_handling_seconds`), the group committer's batches and queue, database retries,
new settlement failures, and the standard process metrics. It is the Ledger's observer.

`ObservingInterceptor` (a grpc.aio interceptor) wraps every RPC: it counts and times it, and writes one line to the
`wallet_core.access` logger: method, client(s), transaction ids, status code, the ErrorInfo
reason, duration, the caller's request id (metadata `x-request-id`, made up when absent) and
the peer. The authorization metadata is never read here, so a token cannot reach the line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

log = logging.getLogger("wallet_core.access")

REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("wallet_request_id", default=None)
_REQUEST_ID_SHAPE = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MAX_LISTED = 100  # transaction ids per line
QUIET_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.")  # probes: access line at DEBUG only
SERVER_FAULTS = {
    grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS, grpc.StatusCode.DEADLINE_EXCEEDED,
}


class CoreMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        labels = ["grpc_type", "grpc_service", "grpc_method"]
        self.started = Counter("grpc_server_started", "RPCs started on the server.", labels, registry=r)
        self.handled = Counter(
            "grpc_server_handled", "RPCs completed on the server, by status code.", [*labels, "grpc_code"], registry=r
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds", "Time to handle an RPC, until its status is sent.",
            labels, buckets=LATENCY_BUCKETS, registry=r,
        )
        self.batch_size = Histogram(
            "wallet_commit_batch_size", "Calls applied per group-commit batch (one database transaction).",
            buckets=BATCH_BUCKETS, registry=r,
        )
        self.commit_seconds = Histogram(
            "wallet_commit_seconds", "Time to apply and commit one group-commit batch, retries included.",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.queue_depth = Gauge("wallet_commit_queue_depth", "Calls waiting for the group committer.", registry=r)
        self.db_retries = Counter(
            "wallet_db_retries",
            "Database transactions retried, by reason: concurrent_change, unique_race, serialization, unavailable.",
            ["reason"], registry=r,
        )
        self.settlement_failure_count = Counter(
            "wallet_settlement_failures",
            "Payouts refused and added to the settlement-failure queue (`wallet settlements`).",
            registry=r,
        )

    # the Ledger's observer (wallet_core.service.LedgerObserver)

    def batch_committed(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.commit_seconds.observe(seconds)

    def database_retry(self, reason: str) -> None:
        self.db_retries.labels(reason=reason).inc()

    def settlement_failures(self, count: int) -> None:
        self.settlement_failure_count.inc(count)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# ---------------------------------------------------------------- the interceptor


def _kind(handler: grpc.RpcMethodHandler[Any, Any]) -> tuple[str, str, Callable[..., Any], Callable[..., Any]]:
    """(grpc_type, attribute of the behavior, the behavior, its factory) of a method handler."""
    if handler.unary_unary is not None:
        return "unary", "unary_unary", handler.unary_unary, grpc.unary_unary_rpc_method_handler
    if handler.unary_stream is not None:
        return "server_stream", "unary_stream", handler.unary_stream, grpc.unary_stream_rpc_method_handler
    if handler.stream_unary is not None:
        return "client_stream", "stream_unary", handler.stream_unary, grpc.stream_unary_rpc_method_handler
    if handler.stream_stream is not None:
        return "bidi_stream", "stream_stream", handler.stream_stream, grpc.stream_stream_rpc_method_handler
    raise ValueError("a method handler without a behavior")


def request_id_of(metadata: Any) -> str:
    """The caller's `x-request-id` when it is a sane token, else a new one."""
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and _REQUEST_ID_SHAPE.fullmatch(value):
            return value
    return uuid.uuid4().hex


def _reason(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The ErrorInfo reason the service put in the rich status, if any."""
    try:
        trailing = context.trailing_metadata() or ()
    except (AttributeError, NotImplementedError):  # a context without the getter (grpc's abstract one)
        return None
    for key, value in trailing:
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    return str(info.reason)
    return None


def _walk(message: Message, clients: set[str], ids: list[str]) -> None:
    for field, value in message.ListFields():
        if field.message_type is not None:
            for item in value if field.is_repeated else [value]:
                _walk(item, clients, ids)
        elif field.name == "client":
            clients.add(value)
        elif field.name.endswith("transaction_id") and len(ids) < MAX_LISTED:
            ids.append(value)


def describe(request: Any) -> dict[str, Any]:
    """The client(s) and transaction ids a request names (any message of the Wallet API)."""
    clients: set[str] = set()
    ids: list[str] = []
    if isinstance(request, Message):
        _walk(request, clients, ids)
    client = sorted(clients)
    return {"client": client[0] if len(client) == 1 else (client or None), "transaction_ids": ids}


class ObservingInterceptor(grpc.aio.ServerInterceptor):
    """Wraps each method's handler once (kept per method), not once per call: the per-call work
    is the caller's request id, the counters and the access line."""

    def __init__(self, metrics: CoreMetrics) -> None:
        self._metrics = metrics
        # method -> (the handler it had, that handler wrapped): one entry per method
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]
        # a handler seen for the first time (another interceptor before this one may make one per call)
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, full: str, handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
        service, _, method = full.lstrip("/").rpartition("/")
        grpc_type, _, behavior, factory = _kind(handler)
        labels = (grpc_type, service, method)
        started_count = self._metrics.started.labels(*labels)
        handling = self._metrics.handling_seconds.labels(*labels)
        handled = self._metrics.handled
        quiet = service.startswith(QUIET_SERVICES)
        streaming_response = grpc_type in ("server_stream", "bidi_stream")
        name = f"{service}/{method}"
        # a unary request is parsed here, so that bytes that are no such message are INVALID_ARGUMENT
        # (grpc.aio would answer UNKNOWN "Unexpected DecodeError"); a request stream keeps grpc's parser
        parse = handler.request_deserializer if grpc_type in ("unary", "server_stream") else None

        async def request_of(raw: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if parse is None:
                return raw
            try:
                return parse(raw)
            except DecodeError:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid {name} request")

        def finish(request: Any, context: grpc.aio.ServicerContext[Any, Any], request_id: str, started: float,
                   raised: bool) -> None:
            seconds = time.perf_counter() - started
            code = _code(context, raised)
            handled.labels(*labels, code.name).inc()
            handling.observe(seconds)
            if quiet and not log.isEnabledFor(logging.DEBUG):
                return
            line: dict[str, Any] = {
                "event": "rpc", "method": name, **describe(request),
                "code": code.name, "reason": _reason(context) if code != grpc.StatusCode.OK else None,
                "duration_ms": round(seconds * 1000, 2), "request_id": request_id, "peer": context.peer(),
            }
            level = logging.DEBUG if quiet else logging.WARNING if code in SERVER_FAULTS else logging.INFO
            log.log(level, json.dumps(line, ensure_ascii=False, separators=(",", ":")), extra={"access": line})

        async def unary_response(raw: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started_count.inc()
            started, raised = time.perf_counter(), True
            request_id = request_id_of(context.invocation_metadata())
            token = REQUEST_ID.set(request_id)
            request = None
            try:
                request = await request_of(raw, context)
                response = await behavior(request, context)
                raised = False
                return response
            finally:
                REQUEST_ID.reset(token)
                finish(request, context, request_id, started, raised)

        async def stream_response(raw: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            started_count.inc()
            started, raised = time.perf_counter(), True
            request_id = request_id_of(context.invocation_metadata())
            token = REQUEST_ID.set(request_id)
            request = None
            try:
                request = await request_of(raw, context)
                result = behavior(request, context)
                if hasattr(result, "__aiter__"):  # an async generator: it yields the responses
                    async for response in result:
                        yield response
                else:  # a coroutine that writes them with `context.write` (the health service's Watch)
                    await result
                raised = False
            finally:
                REQUEST_ID.reset(token)
                finish(request, context, request_id, started, raised)

        return factory(  # type: ignore[no-any-return]
            stream_response if streaming_response else unary_response,
            request_deserializer=None if parse is not None else handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code(context: grpc.aio.ServicerContext[Any, Any], raised: bool) -> grpc.StatusCode:
    try:
        code = context.code()
    except (AttributeError, NotImplementedError):  # a context without the getter (grpc's abstract one)
        code = None
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.UNKNOWN if raised else grpc.StatusCode.OK
