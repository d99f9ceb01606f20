"""A kind is one module plus one registry line: the test suite's response-size kind
(``tests/extra_kind.py``) learns, gates, saves, loads and samples, checked against the
conjugate posterior computed from the raw data, and leaves the built-in kinds unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftbayes import conjugate as cj
from driftbayes.config import Config
from driftbayes.events import EventBatch
from driftbayes.kinds import REGISTRY, register, unregister
from driftbayes.learner import DriftLearner
from driftbayes.patterns import patterns
from driftbayes.sampling import sample
from driftbayes.state import load_state, save_state, to_dataset
from tests import extra_kind

MEDIANS = {"/api/a": 500.0, "/api/b": 40_000.0}  # bytes, per endpoint
SIGMA = 0.6


def events(n: int, seed: int) -> EventBatch:
    rng = np.random.default_rng(seed)
    endpoint = np.asarray(list(MEDIANS), dtype=object)[rng.integers(0, 2, n)]
    median = np.array([MEDIANS[e] for e in endpoint])
    return EventBatch(
        ts=1.7e9 + np.sort(rng.uniform(0, 3600, n)), method=np.full(n, "GET", dtype=object),
        endpoint=endpoint, status=np.full(n, 200), latency_ms=rng.lognormal(np.log(50), 0.3, n),
        persona=np.full(n, "web", dtype=object), session=np.full(n, "", dtype=object),
        line=np.arange(n),
        extra={"response_bytes": np.round(rng.lognormal(np.log(median), SIGMA))})


@pytest.fixture
def response_size():
    register(extra_kind.KIND)
    yield extra_kind.KIND
    unregister(extra_kind.KIND.name)


CFG = dict(decay=0.0, min_samples=10, confidence_threshold=0.3)


def test_learns_the_conjugate_posterior_of_the_raw_data(response_size):
    batch = events(3000, seed=1)
    snap = DriftLearner(Config(**CFG)).learn_many(batch).snapshot()
    post = snap.layer("posterior")["response_size"].nig
    strength = snap.config.synthetic.prior_strength
    for name in MEDIANS:
        e, p = snap.resolve_endpoint(name), snap.resolve_persona("web")
        x = np.log(batch.extra["response_bytes"][batch.endpoint == name].astype(float))
        # the NIG update written out from the data (batch, not incremental)
        # the prior keeps the share prior_weight of its pseudo-observations (it fades)
        k0 = strength * cj.prior_weight(len(x), strength=strength, fade=snap.config.prior_fade)
        mu0 = np.log(extra_kind.PRIOR_MEDIAN_BYTES)
        kappa = k0 + len(x)
        mu = (k0 * mu0 + x.sum()) / kappa
        np.testing.assert_allclose([post.mu[e, p], post.kappa[e, p]], [mu, kappa], rtol=1e-9)
        # and the median it implies is the data's, within the posterior's own interval
        t = stats.t(2 * post.alpha[e, p], loc=post.mu[e, p],
                    scale=np.sqrt(post.beta[e, p] / (post.alpha[e, p] * kappa)))
        lo, hi = t.ppf([0.0005, 0.9995])
        assert lo <= np.log(MEDIANS[name]) <= hi


def test_gates_saves_loads_and_is_listed(response_size, tmp_path):
    learner = DriftLearner(Config(**CFG)).learn_many(events(3000, seed=2))
    assert learner.gate_["response_size"].all()  # ~1,500 sizes per cell: confident
    rows = [r for r in patterns(learner, "applied") if r["kind"] == "response_size"]
    assert {r["endpoint"] for r in rows} == set(MEDIANS)
    for r in rows:
        assert r["unit"] == "bytes" and r["applied"]
        assert r["interval"]["lower"] < r["estimate"] < r["interval"]["upper"]
        assert abs(np.log(r["estimate"] / MEDIANS[r["endpoint"]])) < 0.1
    assert to_dataset(learner)["size_n"].dims == ("store", "endpoint", "persona")
    path = save_state(learner, tmp_path / "state.nc")
    again = load_state(path)
    assert again.evidence_.equals(learner.evidence_)
    np.testing.assert_array_equal(again.gate_["response_size"], learner.gate_["response_size"])
    assert patterns(again, "applied") == patterns(learner, "applied")


def test_thin_cells_stay_on_the_prior(response_size):
    learner = DriftLearner(Config(**CFG)).learn_many(events(8, seed=3))
    assert not learner.gate_["response_size"].any()


def test_samples_from_its_predictive(response_size):
    learner = DriftLearner(Config(**CFG)).learn_many(events(3000, seed=4))
    n = 4000
    draws = sample(learner, n, endpoint="/api/b", layer="posterior", seed=5)
    size = draws["response_bytes"]
    assert size.shape == (n,) and np.all(size > 0)
    snap = learner.snapshot()
    nig = snap.layer("posterior")["response_size"].nig
    e, p = snap.resolve_endpoint("/api/b"), snap.resolve_persona("web")
    df, loc, scale = cj.normal_nig_predictive(mu=nig.mu[e, p], kappa=nig.kappa[e, p],
                                              alpha=nig.alpha[e, p], beta=nig.beta[e, p])
    # the share of draws below the predictive median is 1/2 within 4 binomial SE
    below = np.mean(np.log(size) < loc)
    assert abs(below - 0.5) <= 4 * np.sqrt(0.25 / n)


def test_the_built_in_kinds_are_unchanged_by_it(response_size):
    batch = events(2000, seed=6)
    with_it = patterns(DriftLearner(Config(**CFG)).learn_many(batch), "applied")
    unregister(extra_kind.KIND.name)
    try:
        without = patterns(DriftLearner(Config(**CFG)).learn_many(batch), "applied")
    finally:
        register(extra_kind.KIND)
    assert [r for r in with_it if r["kind"] != "response_size"] == without


def test_a_state_saved_without_it_loads_with_it_empty(tmp_path):
    learner = DriftLearner(Config(**CFG)).learn_many(events(500, seed=7))
    path = save_state(learner, tmp_path / "state.nc")
    register(extra_kind.KIND)
    try:
        again = load_state(path)
        assert not again.evidence_["size_n"].any()
        assert not again.gate_["response_size"].any()
        assert "response_size" in REGISTRY
    finally:
        unregister(extra_kind.KIND.name)
    assert "response_size" not in REGISTRY


def test_registering_a_name_twice_is_refused(response_size):
    with pytest.raises(ValueError, match="already registered"):
        register(extra_kind.KIND)


@pytest.mark.parametrize("size,n", [(100, 1000), (200_000, 50), (4_340_000, 300)])
def test_add_bincount_equals_a_dense_bincount(size, n):
    from driftbayes.kinds.base import add_bincount

    rng = np.random.default_rng(size)
    idx, w = rng.integers(0, size, n), rng.normal(size=n)
    for weights in (w, None):
        got = {"x": np.ones(size)}
        add_bincount(got, "x", idx, weights)
        np.testing.assert_array_equal(got["x"], 1 + np.bincount(idx, weights, minlength=size))
