"""Tracing of the edge (see clients.tracing for when it is on): each HTTP request is a server
span (opentelemetry-instrumentation-asgi) and each call to the core a client span
(opentelemetry-instrumentation-grpc), whose context travels to the core in the call's metadata.
"""

from __future__ import annotations

from typing import Any


def instrument(app: Any, provider: Any) -> Any:
    """`app` wrapped in the ASGI tracing middleware; asyncio gRPC channels made from now on are traced."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient

    instrumentor = GrpcAioInstrumentorClient()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)
    return OpenTelemetryMiddleware(app, tracer_provider=provider, excluded_urls="healthz,readyz,metrics")
