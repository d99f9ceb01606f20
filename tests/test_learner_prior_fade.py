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
    # three requests, none failed: the error rate's prior fades with the 5xx seen, not the
    # requests, so the posterior keeps the prior's whole weight (1% worth 3 requests)
    kw = dict(endpoints=("/api/cart",), personas=("web",), sigma=0.3, error_rate=0.0)
    thin = traffic(3, seed=2, span_s=30.0, median_ms=30.0, **kw)
    prm, e, p = _cell(DriftLearner(Config()).learn_many(thin))
    k = Config().synthetic.prior_strength
    alpha = prm.status_alpha[e, p]
    assert alpha[1] / alpha.sum() == pytest.approx(0.01 * k / (k + 3.0))
    # ... 1,000 requests with 40 errors: the prior is worth k / (1 + 40/k) of them
    b = traffic(1000, seed=3, span_s=300.0, median_ms=30.0,
                **{**kw, "error_rate": 0.04})
    cfg = Config(decay=0.0, update_interval=1e6)
    prm, e, p = _cell(DriftLearner(cfg).learn_many(b))
    alpha = prm.status_alpha[e, p]
    n5 = float((b.status >= 500).sum())
    keep = float(cj.prior_weight(n5, strength=k, fade=1.0))
    assert alpha[1] == pytest.approx(0.01 * k * keep + n5)
    # a thin cell's latency keeps half its prior at n_eff = prior_strength: its median lies
    # between the prior's 100 ms and the data's 30 ms
    assert float(cj.prior_weight(3.0, strength=k, fade=1.0)) == pytest.approx(0.5)
    prm, e, p = _cell(DriftLearner(Config()).learn_many(thin))
    med = cj.histogram_quantiles(cj.dirichlet_mean(prm.lat_alpha[e, p]), [0.5])[0]
    assert 30.0 < med < 100.0
