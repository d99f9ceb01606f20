"""Adaptive forgetting: the change tests and what they do to a learner."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from driftbayes import conjugate as cj
from driftbayes.config import Config
from driftbayes.learner import DriftLearner
from driftbayes.patterns import patterns
from tests.helpers import concat, traffic


def test_mean_shift_false_alarm_rate_is_the_normal_tail():
    """Under no change the statistic is standard normal: at z = 3 the alarm rate is
    2·Φ(−3) = 0.0027; 20,000 seeded trials give a binomial SE of 0.00037 (assert within 4)."""
    rng = np.random.default_rng(0)
    trials, n, n_w = 20_000, 1000, 10
    ev = rng.normal(2.0, 0.7, size=(trials, n))
    w = rng.normal(2.0, 0.7, size=(trials, n_w))
    hit = cj.mean_shift_changed(np.full(trials, n), ev.sum(1), (ev**2).sum(1),
                                np.full(trials, n_w), w.sum(1), z=3.0)
    p = 2 * special.ndtr(-3.0)
    assert abs(hit.mean() - p) < 4 * np.sqrt(p * (1 - p) / trials)


def test_mean_shift_detects_a_tripled_latency_and_needs_data():
    rng = np.random.default_rng(1)
    ev = np.log(rng.lognormal(np.log(100), 0.5, 500))
    new = np.log(rng.lognormal(np.log(300), 0.5, 8))
    args = (500.0, ev.sum(), (ev**2).sum())
    assert cj.mean_shift_changed(*args, 8.0, new.sum(), z=5.0)
    assert not cj.mean_shift_changed(*args, 2.0, new[:2].sum(), z=5.0)  # too few in the window
    assert not cj.mean_shift_changed(4.0, ev[:4].sum(), (ev[:4]**2).sum(), 8.0, new.sum(), z=5.0)


def test_proportion_and_rate_tests_are_the_two_sided_tails():
    z = 3.0
    thr = 2 * special.ndtr(-z)
    # 1 error in 100 before; 5 of 10 now: P(X >= 5 | 10, 1.5/101) is tiny
    p = 1.5 / 101
    assert 2 * stats.binom.sf(4, 10, p) < thr
    assert cj.proportion_changed(1.0, 100.0, 5.0, 10.0, z=z)
    assert not cj.proportion_changed(1.0, 100.0, 0.0, 10.0, z=z)
    assert not cj.proportion_changed(1.0, 100.0, 1.0, 10.0, z=z)
    # 600 requests in 3600 s before; 300 s now expect 50: 90 is far, 60 is not
    assert cj.rate_changed(600.0, 3600.0, 90.0, 300.0, z=z)
    assert not cj.rate_changed(600.0, 3600.0, 60.0, 300.0, z=z)
    assert 2 * stats.poisson.sf(89, 600.5 / 3600 * 300) < thr


def _p50(learner, endpoint="/api/cart"):
    rows = [r for r in patterns(learner.snapshot(), "posterior")
            if r["kind"] == "latency" and r["endpoint"] == endpoint]
    return np.mean([r["estimate"] for r in rows])


@pytest.mark.parametrize("z", [5.0, 0.0])
def test_learner_follows_a_latency_regression_in_a_few_windows_only_with_it(z):
    kw = dict(endpoints=("/api/cart",), personas=("web",), sigma=0.4, error_rate=0.0)
    before = traffic(6000, seed=5, span_s=6000.0, median_ms=100.0, **kw)
    after = traffic(300, seed=6, t0=6000.0, span_s=300.0, median_ms=300.0, **kw)
    cfg = Config.from_dict({"update_interval": 60, "decay": 0.05, "changepoint_z": z},
                           warn=False)
    learner = DriftLearner(cfg).learn_many(concat(before, after))
    p50 = _p50(learner)
    if z:  # 5 windows after the change: the evidence is mostly the new regime's
        assert learner.changes_ >= 1
        assert 240 < p50 < 360
    else:  # plain decay keeps 0.95**5 = 77% of the old evidence
        assert learner.changes_ == 0
        assert p50 < 150


def test_steady_traffic_raises_no_alarm_at_the_default():
    b = traffic(30_000, seed=7, span_s=6 * 3600.0, median_ms=80.0, error_rate=0.02)
    learner = DriftLearner(Config.from_dict({"update_interval": 60}, warn=False)).learn_many(b)
    assert Config().changepoint_z == 5.0
    # 6 cells x 4 kinds x 360 windows at a two-sided 5.7e-7: expected 0.005 false alarms
    assert learner.changes_ == 0
