"""Tracing of the core (see clients.tracing for when it is on): each RPC is a server span
(opentelemetry-instrumentation-grpc, added by `create_server`) and each SQL statement a child
span (opentelemetry-instrumentation-sqlalchemy). A Debit, Credit or Cancel that forms a batch
of its own runs in its caller's context, so its SQL spans belong to the call's trace; a batch
shared by several calls runs in a trace of its own (one transaction cannot have several parents).
"""

from __future__ import annotations

from typing import Any

from clients import tracing


def start(service_name: str = "wallet-core") -> Any | None:
    """Switch tracing on if the OTEL_* variables ask; call before the engine is made."""
    provider = tracing.configure(service_name)
    if provider is not None:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        SQLAlchemyInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)  # every engine from now on
    return provider


def instrument_engine(engine: Any, provider: Any) -> None:
    """Trace the statements of an engine that already exists."""
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()  # instrument() again to get this engine's tracer
    instrumentor.instrument(engine=engine, tracer_provider=provider, skip_dep_check=True)
