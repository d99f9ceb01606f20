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


def check_quantile(latency_ms: np.ndarray, x_q: float, q: float) -> None:
    """The empirical CDF at the exported quantile ``x_q`` is within 4 binomial SE of ``q``."""
    n = len(latency_ms)
    se = np.sqrt(q * (1 - q) / n)
    cdf = float(np.mean(latency_ms <= x_q))
    assert abs(cdf - q) <= 4 * se, (
        f"q={q}: exported {x_q:.1f} ms: observed CDF there {cdf:.3f} ± {4 * se:.3f}; observed "
        f"quantile {np.quantile(latency_ms, q):.1f} ms")


def check_not_faster(latency_ms: np.ndarray, x_q: float, q: float) -> None:
    """Latencies a client measured are never faster than the exported delays: the empirical
    CDF at the exported quantile ``x_q`` is at most ``q`` + 4 binomial SE (overhead and load
    only add, so no upper bound on the latencies is checked)."""
    n = len(latency_ms)
    se = np.sqrt(q * (1 - q) / n)
    cdf = float(np.mean(latency_ms <= x_q))
    assert cdf <= q + 4 * se, (
        f"q={q}: exported {x_q:.1f} ms, but {cdf:.3f} of the responses came faster "
        f"(> {q} + {4 * se:.3f}); observed quantile {np.quantile(latency_ms, q):.1f} ms")


def check_share(statuses: np.ndarray, code: int, p: float) -> None:
    n = len(statuses)
    observed = float(np.mean(statuses == code))
    se = np.sqrt(max(p * (1 - p), 1e-12) / n)
    assert abs(observed - p) <= 4 * se + 1e-12, (code, observed, p, se)
