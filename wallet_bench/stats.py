"""Latency percentiles, in milliseconds, the same way for the load generator and for pgbench."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentiles(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    if len(latencies_ms) == 0:
        return {"p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    values = np.asarray(latencies_ms, dtype=float)
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "p50": round(float(p50), 2), "p95": round(float(p95), 2), "p99": round(float(p99), 2),
        "mean": round(float(values.mean()), 2), "max": round(float(values.max()), 2),
    }
