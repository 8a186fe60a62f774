"""OpenTelemetry tracing: one betflex callback is one trace, from the edge through the core to SQL.

The edge and the core run in this test process (the in-memory exporter has to see both), but
on real sockets: the trace context goes from the edge's gRPC client span to the core's gRPC
server span in the call's metadata (W3C `traceparent`) over TCP, exactly as between two
processes; the core's server span has a *remote* parent, which proves it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the optional extra betflex-wallet-ledger[otel]")

from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from clients import WalletClient, tracing
from tests.e2e.conftest import ALICE
from tests.support.betflex import example
from tests.support.servers import TOKENS, running_core
from tests.support.stack import running_edge, wait_until


@pytest.fixture
def exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    try:
        yield provider, memory
    finally:  # the instrumentors patch grpc.aio and SQLAlchemy process-wide: undo it for the other tests
        GrpcAioInstrumentorClient().uninstrument()
        SQLAlchemyInstrumentor().uninstrument()
        provider.shutdown()


def test_one_callback_is_one_trace_across_edge_core_and_database(
    db_url: str, exporter: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, memory = exporter
    with running_core(db_url, tracer_provider=provider) as core:
        with WalletClient(core.target, token=TOKENS["fanteam"]) as wallet:
            wallet.open_account(ALICE)
            wallet.deposit("fund-alice", ALICE, "100.00")
        memory.clear()
        with running_edge(core.target, tracer_provider=provider) as edge, edge.client() as http:
            assert http.post("/bets", json=example("bets")).status_code == 200

            def edge_span() -> list[ReadableSpan]:
                return [s for s in memory.get_finished_spans() if s.kind == SpanKind.SERVER and "POST" in s.name]

            wait_until(lambda: bool(edge_span()), 10, "the edge's span did not end")
        spans = memory.get_finished_spans()  # before the core stops (and reconciles, untraced)
    (root,) = edge_span()
    debit = "/wallet.v1.Wallet/Debit"
    client = [s for s in spans if s.kind == SpanKind.CLIENT and s.name == debit]
    server = [s for s in spans if s.kind == SpanKind.SERVER and s.name == debit]
    sql = [s for s in spans if s.instrumentation_scope and "sqlalchemy" in s.instrumentation_scope.name]
    assert client and server and sql, [(s.name, s.kind) for s in spans]
    trace_id = root.context.trace_id
    assert root.parent is None, "betflex sent no trace context: the edge starts the trace"
    assert {s.context.trace_id for s in [*client, *server, *sql]} == {trace_id}
    assert server[0].parent is not None and server[0].parent.is_remote, "the context crossed the gRPC socket"
    assert server[0].parent.span_id == client[0].context.span_id
    by_id = {s.context.span_id: s for s in spans}

    def ancestors(span: ReadableSpan) -> list[str]:
        names = []
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            names.append(span.name)
        return names

    assert all(debit in ancestors(s) for s in sql), "the SQL of the Debit runs under its server span"


def test_tracing_is_off_unless_the_otel_variables_ask() -> None:
    assert not tracing.requested({})
    assert not tracing.requested({"OTEL_SERVICE_NAME": "wallet-core"})
    assert not tracing.requested({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317"})
    assert not tracing.requested({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})
    assert tracing.requested({"OTEL_TRACES_EXPORTER": "console"})
    assert tracing.requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})


def test_missing_packages_only_warn(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(tracing, "_configured", {})
    monkeypatch.setitem(__import__("sys").modules, "opentelemetry.sdk.trace", None)  # as if not installed
    with caplog.at_level(logging.WARNING):
        assert tracing.configure("wallet-core", {"OTEL_TRACES_EXPORTER": "console"}) is None
    assert "betflex-wallet-ledger[otel]" in caplog.text
