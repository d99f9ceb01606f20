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
