"""Shared pieces of the export tests: a learned state, real runtimes from npm, a load probe.

Tolerances. ``n`` requests to a route whose served latency has CDF ``F``: the count of
latencies ≤ ``x_q`` (the exported ``q``-quantile) is Binomial(n, q), so the empirical CDF at
``x_q`` is within ``4·sqrt(q(1-q)/n)`` of ``q`` except with probability ~6e-5
(:func:`check_quantile`, for the delays a runtime drew or scheduled). What a client measures is
that delay plus the runtime's and the client's overhead, which grows without bound on a loaded
machine: only its lower side is checked (:func:`check_not_faster`: no response comes before its
delay). A status share with exported probability ``p`` is within ``4·sqrt(p(1-p)/n)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats

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


#: False-alarm rate of every check below: that of a two-sided 4-SE normal test.
ALPHA = float(2 * special.ndtr(-4.0))


def _tails(latency_ms: np.ndarray, x_q: float, q: float) -> tuple[int, int, float, float]:
    """Count at or below ``x_q``, sample size, and the exact binomial tail probabilities
    P(X ≤ k), P(X ≥ k) under the exported quantile level ``q`` (the normal approximation is
    far too tight in the tails when n·q is small: at n = 30, q = 0.1 a "4 SE" rule fires 7
    times as often as it should)."""
    n = len(latency_ms)
    k = int(np.sum(latency_ms <= x_q))
    return k, n, float(stats.binom.cdf(k, n, q)), float(stats.binom.sf(k - 1, n, q))


def check_quantile(latency_ms: np.ndarray, x_q: float, q: float) -> None:
    """The share of latencies at or below the exported quantile ``x_q`` is consistent with
    ``q``: inside the two-sided exact binomial acceptance region at :data:`ALPHA`."""
    k, n, lo, hi = _tails(latency_ms, x_q, q)
    assert min(lo, hi) >= ALPHA / 2, (
        f"q={q}: exported {x_q:.1f} ms: {k}/{n} = {k / n:.3f} observed at or below it "
        f"(tail probability {min(lo, hi):.2g} < {ALPHA / 2:.2g}); observed "
        f"quantile {np.quantile(latency_ms, q):.1f} ms")


def check_not_faster(latency_ms: np.ndarray, x_q: float, q: float) -> None:
    """Latencies a client measured are never faster than the exported delays: the share at or
    below the exported quantile ``x_q`` is not significantly above ``q`` (one-sided exact
    binomial at :data:`ALPHA` / 2; overhead and load only add, so no upper bound on the
    latencies is checked)."""
    k, n, _, hi = _tails(latency_ms, x_q, q)
    assert hi >= ALPHA / 2, (
        f"q={q}: exported {x_q:.1f} ms, but {k}/{n} = {k / n:.3f} of the responses came "
        f"at or below it (P = {hi:.2g}); observed quantile {np.quantile(latency_ms, q):.1f} ms")


def check_share(statuses: np.ndarray, code: int, p: float) -> None:
    n = len(statuses)
    observed = float(np.mean(statuses == code))
    se = np.sqrt(max(p * (1 - p), 1e-12) / n)
    assert abs(observed - p) <= 4 * se + 1e-12, (code, observed, p, se)
