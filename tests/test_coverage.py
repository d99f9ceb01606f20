"""Calibration: 90% credible intervals of median latency and error rate cover the truth in 90%
of simulated endpoints.

Design: truth drawn FROM THE PRIOR. Bayesian credible intervals have nominal coverage on
average over truths drawn from the prior the model uses (with a fixed truth far from an
informative prior they need not), so each of ``N_ENDPOINTS`` endpoints gets its own synthetic
prior through ``Config.synthetic_endpoints`` (median log-uniform 5-2000 ms, sigma 0.3-1.2,
error rate 0.5-20%, prior strength log-uniform 5-100 pseudo-observations) and its truth is
drawn from that prior:

* latency: bin probabilities ``theta ~ Dirichlet(learner's prior lat_alpha)`` (the synthetic
  log-normal as base measure); requests fall in a bin drawn from ``theta`` and are log-uniform
  inside it (the histogram model the mock samples); the true median is ``theta``'s histogram
  median (:func:`histogram_quantiles`);
* errors: ``P(5xx) ~ Beta(strength·error_rate, strength·(1 - error_rate))``, the status
  Dirichlet's 5xx marginal; each request is a 500 with that probability, else a 200;
* n requests per endpoint uniform on 20..500; ``decay = 0`` and one window.

Intervals are read from ``patterns(learner, layer="posterior")``. Expected coverage 0.90 with
binomial SE ``sqrt(0.9·0.1/N)``; the tests assert ``|coverage - 0.9| < 3.5·SE``.
"""

from __future__ import annotations

import numpy as np
import pytest

from driftbayes import conjugate as cj
from driftbayes.config import Config
from driftbayes.events import EventBatch
from driftbayes.learner import DriftLearner
from driftbayes.patterns import patterns

N_ENDPOINTS = 1000
MASS = 0.9
SE = np.sqrt(MASS * (1 - MASS) / N_ENDPOINTS)  # binomial SE of a coverage proportion
TOL = 3.5 * SE


@pytest.fixture(scope="module")
def simulated():
    rng = np.random.default_rng(20240611)
    E = N_ENDPOINTS
    names = [f"/ep{i}" for i in range(E)]
    median = np.exp(rng.uniform(np.log(5.0), np.log(2000.0), E))
    sigma = rng.uniform(0.3, 1.2, E)
    error_rate = rng.uniform(0.005, 0.2, E)
    strength = np.exp(rng.uniform(np.log(5.0), np.log(100.0), E))
    n = rng.integers(20, 501, E)
    cfg = Config(decay=0.0, update_interval=1e9, credible_mass=MASS, synthetic_endpoints={
        name: {"latency_median_ms": float(m), "latency_sigma": float(s),
               "error_rate": float(r), "prior_strength": float(k)}
        for name, m, s, r, k in zip(names, median, sigma, error_rate, strength)})
    # the learner's own prior pseudo-counts for these endpoints (same formula as the prior layer)
    prior_alpha = cj.dirichlet_prior_alpha(median_ms=median, sigma=sigma, strength=strength)

    true_median, true_p5xx = np.empty(E), np.empty(E)
    lat, status = [], []
    for i in range(E):
        theta = rng.dirichlet(prior_alpha[i])
        true_median[i] = cj.histogram_quantiles(theta, [0.5])[0]
        k = rng.choice(cj.N_LATENCY_BINS, size=n[i], p=theta / theta.sum())
        width = cj.LOG_EDGES[k + 1] - cj.LOG_EDGES[k]
        lat.append(np.exp(cj.LOG_EDGES[k] + rng.random(n[i]) * width))
        true_p5xx[i] = rng.beta(strength[i] * error_rate[i], strength[i] * (1 - error_rate[i]))
        status.append(np.where(rng.random(n[i]) < true_p5xx[i], 500, 200))
    N = int(n.sum())
    batch = EventBatch(
        ts=np.arange(N, dtype=float), method=np.full(N, "GET", dtype=object),
        endpoint=np.repeat(np.array(names, dtype=object), n), status=np.concatenate(status),
        latency_ms=np.concatenate(lat), persona=np.full(N, "default", dtype=object),
        session=np.full(N, "", dtype=object), line=np.arange(1, N + 1))
    learner = DriftLearner(cfg).learn_many(batch)
    rows = patterns(learner, layer="posterior")
    index = {name: i for i, name in enumerate(names)}
    intervals = {kind: np.full((E, 2), np.nan) for kind in ("latency", "errors")}
    for r in rows:
        if r["kind"] in intervals:
            lower, upper = r["interval"]["lower"], r["interval"]["upper"]
            intervals[r["kind"]][index[r["endpoint"]]] = lower, upper
    snap = learner.snapshot()
    order = [snap.resolve_endpoint(x) for x in names]
    post_alpha = np.asarray(snap.layer("posterior").lat_alpha)[order, 0]
    # the pipeline used the prior this simulation drew from
    prior_layer = np.asarray(snap.layer("prior").lat_alpha)[order, 0]
    np.testing.assert_allclose(prior_layer, prior_alpha, rtol=1e-12)
    return {"true_median": true_median, "true_p5xx": true_p5xx, "intervals": intervals,
            "post_alpha": post_alpha, "n": n}


def _report(label, covered):
    cov = float(np.mean(covered))
    print(f"\n{label}: coverage {cov:.3f} over {covered.size} endpoints "
          f"(nominal {MASS}, binomial SE {SE:.4f}, |diff| = {abs(cov - MASS) / SE:.1f} SE)")
    return cov


def test_error_rate_interval_covers_truth(simulated):
    lo, hi = simulated["intervals"]["errors"].T
    assert np.all(np.isfinite(lo) & np.isfinite(hi))
    truth = simulated["true_p5xx"]
    cov = _report("P(5xx) 90% interval", (lo <= truth) & (truth <= hi))
    assert abs(cov - MASS) < TOL


def test_median_latency_interval_covers_truth(simulated):
    lo, hi = simulated["intervals"]["latency"].T
    assert np.all(np.isfinite(lo) & np.isfinite(hi))
    truth = simulated["true_median"]
    cov = _report("median latency 90% interval (patterns / dirichlet_median_quantiles)",
                  (lo <= truth) & (truth <= hi))
    assert abs(cov - MASS) < TOL, (
        f"median-latency 90% intervals cover the truth in {cov:.3f} of {truth.size} endpoints "
        f"({(cov - MASS) / SE:+.1f} SE); the exact-posterior control below is nominal")


def test_simulation_is_calibrated_for_the_exact_posterior_of_the_median(simulated):
    """Control: the same simulation scored with the exact posterior of the median.

    Draw D posterior Dirichlet vectors per endpoint (from the learner's posterior alpha) and take
    each draw's histogram median. If the truth is a draw from the same posterior, its rank among
    the D draws is uniform on 0..D, so the interval between order statistics r1 < r2 covers it
    with probability exactly (r2 - r1)/(D + 1) (no Monte-Carlo approximation). D = 199,
    r1 = 10, r2 = 190 gives exactly 0.90. This separates the simulation (checked here) from the
    interval construction (checked above).
    """
    rng = np.random.default_rng(5)
    D, r1, r2 = 199, 10, 190
    assert (r2 - r1) / (D + 1) == MASS
    alpha = simulated["post_alpha"]
    truth = simulated["true_median"]
    below = np.empty(len(alpha), dtype=np.int64)
    for start in range(0, len(alpha), 100):
        a = alpha[start:start + 100]
        # Dirichlet draws with per-row alphas: independent gammas, normalised
        g = rng.gamma(np.broadcast_to(a, (D,) + a.shape))
        med = cj.histogram_quantiles(g / g.sum(-1, keepdims=True), [0.5])[..., 0]  # (D, rows)
        below[start:start + 100] = (med < truth[start:start + 100]).sum(0)
    # truth within [r1-th, r2-th order statistic] (1-based) <=> r1 <= #draws below < r2
    cov = _report("median latency, exact-posterior order-statistic interval",
                  (below >= r1) & (below < r2))
    assert abs(cov - MASS) < TOL
