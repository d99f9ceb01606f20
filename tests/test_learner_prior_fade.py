"""Power-prior discounting: the synthetic prior weighs on a cold cell and fades as the cell's
decayed evidence grows, so tails follow the data while thin cells and error rates stay
cautious."""

from __future__ import annotations

import numpy as np
import pytest

from driftbayes import conjugate as cj
from driftbayes.config import Config, SyntheticPrior
from driftbayes.learner import DriftLearner
from tests.helpers import traffic


def test_prior_weight_halves_at_fade_times_strength_and_never_shrinks_the_total():
    k = np.array([1.0, 3.0, 10.0])
    for fade in (1.0, 2.0, 7.5):
        assert cj.prior_weight(fade * k, strength=k, fade=fade) == pytest.approx(0.5)
        n = np.linspace(0.0, 500.0, 20_001)[:, None]
        total = k * cj.prior_weight(n, strength=k, fade=fade) + n
        assert (np.diff(total, axis=0) >= -1e-12).all()  # more data never widens
    assert (cj.prior_weight(np.array([0.0, 1e6]), strength=3.0, fade=0.0) == 1.0).all()


def _cell(learner, layer="posterior"):
    prm = learner.snapshot().layer(layer)
    return prm, learner.resolve_endpoint("/api/cart"), learner.resolve_persona("web")


def test_tails_follow_the_data_once_the_cell_is_well_observed():
    # median 30 ms against a synthetic prior at 100 ms (sigma 0.6): with the prior kept at
    # full weight, its share (10 of ~330 pseudo-observations) sits in the far tail and p99
    # follows it; faded it is worth 0.3 and p99 is the data's
    kw = dict(endpoints=("/api/cart",), personas=("web",), sigma=0.3, error_rate=0.0)
    b = traffic(6000, seed=1, span_s=3 * 3600.0, median_ms=30.0, **kw)
    true_p99 = 30.0 * np.exp(0.3 * 2.3263)
    p99 = {}
    for fade in (0.0, 1.0):
        cfg = Config(update_interval=60.0, prior_fade=fade,
                     synthetic=SyntheticPrior(prior_strength=10.0))
        prm, e, p = _cell(DriftLearner(cfg).learn_many(b))
        p99[fade] = float(cj.histogram_quantiles(cj.dirichlet_mean(prm.lat_alpha[e, p]),
                                                 [0.99])[0])
    assert abs(p99[1.0] / true_p99 - 1) < 0.1
    assert p99[0.0] / true_p99 - 1 > 0.2


def test_thin_cells_and_error_rates_stay_cautious():
    # three requests, none failed: the posterior error rate keeps most of the prior's 1%
    kw = dict(endpoints=("/api/cart",), personas=("web",), sigma=0.3, error_rate=0.0)
    b = traffic(3, seed=2, span_s=30.0, median_ms=30.0, **kw)
    prm, e, p = _cell(DriftLearner(Config()).learn_many(b))
    k = Config().synthetic.prior_strength
    keep = float(cj.prior_weight(3.0, strength=k, fade=1.0))
    assert keep == pytest.approx(0.5)
    alpha = prm.status_alpha[e, p]
    err = alpha[1] / alpha.sum()
    assert err == pytest.approx(0.01 * k * keep / (k * keep + 3.0))
    assert err > 0.003
    # its median latency lies between the prior's 100 ms and the data's 30 ms
    med = cj.histogram_quantiles(cj.dirichlet_mean(prm.lat_alpha[e, p]), [0.5])[0]
    assert 30.0 < med < 100.0
