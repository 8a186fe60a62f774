"""OpenTelemetry tracing of a wallet process, off unless the standard `OTEL_*` variables ask for it.

Tracing is on when `OTEL_TRACES_EXPORTER` names an exporter other than `none`, or when an
OTLP endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`;
the exporter is then `otlp`), and `OTEL_SDK_DISABLED` is not `true`. Everything else is the
SDK's own reading of the standard variables: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, the exporter's endpoint, headers and protocol.

The packages are the optional extra `betflex-wallet-ledger[otel]`; when the variables ask for tracing and the
extra is missing, a warning is logged and the process runs untraced (it never fails to start).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger("wallet.tracing")

_configured: dict[str, Any] = {}


def requested(env: Mapping[str, str] = os.environ) -> bool:
    """Do the OTEL_* variables ask for traces?"""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure(service_name: str, env: Mapping[str, str] = os.environ) -> Any | None:
    """The process's TracerProvider (also made the global one), or None when tracing is off.

    Idempotent: the first call decides (e.g. `wallet serve` runs the core and the edge in one
    process, traced by one provider).
    """
    if "provider" in _configured:
        return _configured["provider"]
    provider = _make(service_name, env) if requested(env) else None
    _configured["provider"] = provider
    return provider


def _make(service_name: str, env: Mapping[str, str]) -> Any | None:
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_* variables ask for tracing but OpenTelemetry is not installed "
                    "(pip install 'betflex-wallet-ledger[otel]'): running without traces")
        return None
    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(resource=Resource.create(attributes))
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",") if n.strip()]
    for name in names:
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            log.warning("OTEL_TRACES_EXPORTER names %r, which no installed package provides: ignored", name)
            continue
        exporter = next(iter(found)).load()()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("tracing on: service %s, exporters %s", service_name, ",".join(names))
    return provider
