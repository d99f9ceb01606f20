"""The exposure clock's first-order recurrence against SciPy's ``lfilter``."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from driftbayes.windows import first_order


@pytest.mark.parametrize("a", [0.0, 0.01, 0.5, 0.95, 0.999, 1.0])
@pytest.mark.parametrize("n", [1, 7, 5000])
def test_first_order_matches_lfilter(a, n):
    rng = np.random.default_rng(int(n + 1000 * a))
    x = rng.exponential(60.0, (n, 24)) * (rng.random((n, 1)) < 0.7)
    y0 = rng.exponential(100.0, 24)
    want, _ = lfilter([1.0], [1.0, -a], x, axis=0, zi=a * y0[None, :])
    np.testing.assert_allclose(first_order(x, a, y0), want, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("q, r", [(0.8, 0.95), (0.95, 0.8), (0.9, 0.9), (0.5, 0.999)])
def test_follow_sum_matches_the_sum_it_closes(q, r):
    from driftbayes.windows import follow_sum

    for n in (1, 2, 7, 60):
        for offset in (0, 4):
            want = sum(q ** (n - 1 - i) * r ** (offset + i) for i in range(n))
            assert follow_sum(q, r, n, offset) == pytest.approx(want, rel=1e-12)


def test_follow_sum_stays_finite_over_long_silences():
    """A cell silent for thousands of windows with its frequency gate open (the Apache log
    left 131 applied rates NaN): the sum underflows to 0, never 0·inf."""
    from driftbayes.windows import follow_sum

    got = follow_sum(0.8, 0.95, np.array([5_000.0, 1e6]), np.array([0.0, 10.0]))
    assert np.all(np.isfinite(got)) and np.all(got >= 0)


def test_a_long_silence_leaves_the_applied_rate_finite():
    """One endpoint falls silent while another keeps the windows closing for a day (at
    sensitivity 0.6 the old closed form overflowed after ~820 silent windows)."""
    from driftbayes.config import Config
    from driftbayes.learner import DriftLearner
    from tests.helpers import traffic

    learner = DriftLearner(Config(sensitivity=0.6))
    learner.learn_many(traffic(1000, seed=3, span_s=3600.0, endpoints=("/a", "/b")))
    learner.learn_many(traffic(2000, seed=4, t0=3600.0, span_s=86400.0, endpoints=("/b",)))
    prm = learner.snapshot().layer("applied")
    assert np.all(np.isfinite(prm.rate_a)) and np.all(np.isfinite(prm.rate_b))
