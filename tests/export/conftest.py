"""Shared pieces of the export tests: a learned state, real runtimes from npm, a load probe.

Tolerances. ``n`` requests to a route whose served latency has CDF ``F``: the count of
latencies ≤ ``x_q`` (the exported ``q``-quantile) is Binomial(n, q), so the empirical CDF at
``x_q`` is within ``4·sqrt(q(1-q)/n)`` of ``q`` except with probability ~6e-5. A runtime adds
its own overhead (loopback, parsing, JIT) to every delay; it is measured in the same run on a
route without delay and the exported quantile is shifted by the overhead's median and widened
by its spread (:func:`check_quantile`). A status share with exported probability ``p`` is
within ``4·sqrt(p(1-p)/n)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from driftbayes.config import Config
from driftbayes.export import runtimes
from driftbayes.export.runtimes import free_port, hammer, running, wait_http  # noqa: F401
from driftbayes.learner import DriftLearner


@pytest.fixture(scope="session")
def learned() -> DriftLearner:
    """The steady shop scenario, 4 h: 6 endpoints × 3 personas (web, mobile, partner)."""
    from driftbayes.bench.suite import scenario_stream

    stream = scenario_stream("steady", hours=4)
    cfg = Config.from_dict({"update_interval": 300, "sensitivity": 1.0}, warn=False)
    return DriftLearner(cfg).learn_many(stream.events)


@pytest.fixture(scope="session")
def model(learned):
    from driftbayes.export.model import export_model

    return export_model(learned)


def npm_package(package: str, version: str) -> Path:
    """``node_modules`` with ``package@version`` (cached); skips when npm/node are absent."""
    try:
        return runtimes.npm_install(package, version)
    except runtimes.RuntimeUnavailable as exc:
        pytest.skip(f"{exc}: the real runtime cannot be started")


def check_quantile(latency_ms: np.ndarray, x_q: float, q: float,
                   overhead_ms: np.ndarray | None = None) -> None:
    """The empirical CDF at the exported quantile ``x_q`` (shifted by the runtime's median
    overhead) is within 4 binomial SE of ``q``; the overhead's own spread (its 10–90% range)
    widens the bracket on the latency scale."""
    n = len(latency_ms)
    se = np.sqrt(q * (1 - q) / n)
    shift = spread_lo = spread_hi = 0.0
    if overhead_ms is not None and len(overhead_ms):
        shift = float(np.median(overhead_ms))
        spread_lo = shift - float(np.quantile(overhead_ms, 0.1))
        spread_hi = float(np.quantile(overhead_ms, 0.9)) - shift
    upper = float(np.mean(latency_ms <= x_q + shift + spread_hi))
    lower = float(np.mean(latency_ms <= x_q + shift - spread_lo))
    assert lower - 4 * se <= q <= upper + 4 * se, (
        f"q={q}: exported {x_q:.1f} ms (+{shift:.1f} overhead): observed CDF there in "
        f"[{lower:.3f}, {upper:.3f}] ± {4 * se:.3f}; observed quantile "
        f"{np.quantile(latency_ms, q):.1f} ms")


def check_share(statuses: np.ndarray, code: int, p: float) -> None:
    n = len(statuses)
    observed = float(np.mean(statuses == code))
    se = np.sqrt(max(p * (1 - p), 1e-12) / n)
    assert abs(observed - p) <= 4 * se + 1e-12, (code, observed, p, se)
