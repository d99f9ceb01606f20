"""Seeded synthetic traffic for tests."""

from __future__ import annotations

import numpy as np

from driftbayes.events import EventBatch


def traffic(
    n: int,
    *,
    seed: int = 0,
    t0: float = 0.0,
    span_s: float = 3600.0,
    endpoints=("/api/users/{id}", "/api/orders/{id}", "/api/cart"),
    personas=("premium", "regular"),
    median_ms: float = 120.0,
    sigma: float = 0.5,
    error_rate: float = 0.05,
    n_sessions: int = 50,
) -> EventBatch:
    """``n`` time-ordered events with log-normal latency, a 200/500 mix and sessions."""
    rng = np.random.default_rng(seed)
    ts = t0 + np.sort(rng.uniform(0, span_s, n))
    session = rng.integers(0, n_sessions, n)
    return EventBatch(
        ts=ts,
        method=np.full(n, "GET", dtype=object),
        endpoint=np.asarray(endpoints, dtype=object)[rng.integers(0, len(endpoints), n)],
        status=np.where(rng.random(n) < error_rate, 500, 200),
        latency_ms=np.exp(rng.normal(np.log(median_ms), sigma, n)),
        persona=np.asarray(personas, dtype=object)[session % len(personas)],
        session=np.array([f"s{seed}-{s}" for s in session], dtype=object),
        line=np.arange(1, n + 1),
    )


def concat(*batches: EventBatch) -> EventBatch:
    return EventBatch.concat(list(batches))
