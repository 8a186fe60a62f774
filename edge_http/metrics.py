"""Prometheus metrics of one app, in its own registry (several apps in one process do not clash).

A registry the app makes itself also carries the standard process metrics (process_*, python_*).
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class EdgeMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = CollectorRegistry(auto_describe=True)
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.registry = registry
        self.callbacks = Counter(
            "betflex_callbacks", "betflex callbacks answered, by route and outcome (ok or the error code).",
            ["route", "outcome"], registry=self.registry,
        )
        self.callback_seconds = Histogram(
            "betflex_callback_seconds", "Time to answer a betflex callback.",
            ["route"], buckets=BUCKETS, registry=self.registry,
        )
        self.core_errors = Counter(
            "betflex_core_errors", "Errors of calls to the wallet core, by reason (every attempt counts).",
            ["reason"], registry=self.registry,
        )
        self.unresolved_bets = Counter(
            "betflex_unresolved_bets",
            "Bets answered 503 because neither the debit nor its cancel could be confirmed: an operator must look.",
            registry=self.registry,
        )

    def observe_callback(self, route: str, outcome: str, seconds: float) -> None:
        self.callbacks.labels(route=route, outcome=outcome).inc()
        self.callback_seconds.labels(route=route).observe(seconds)

    def core_error(self, reason: str) -> None:
        self.core_errors.labels(reason=reason or "UNKNOWN").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
