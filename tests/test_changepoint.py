"""Adaptive forgetting: the change tests, the run-length posterior (against a brute-force
sum over segmentations) and what they do to a learner."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import special, stats

from driftbayes import conjugate as cj
from driftbayes.changepoint import N_STATES, RunLengths, shift_silent
from driftbayes.config import Config
from driftbayes.kinds import REGISTRY
from driftbayes.kinds.errors import ErrorParams
from driftbayes.learner import DriftLearner
from driftbayes.patterns import patterns
from driftbayes.stats import Sizes, Stats
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


@pytest.mark.parametrize("how", ["run-length", "z-test", "off"])
def test_learner_follows_a_latency_regression_in_a_few_windows_only_with_it(how):
    kw = dict(endpoints=("/api/cart",), personas=("web",), sigma=0.4, error_rate=0.0)
    before = traffic(6000, seed=5, span_s=6000.0, median_ms=100.0, **kw)
    after = traffic(300, seed=6, t0=6000.0, span_s=300.0, median_ms=300.0, **kw)
    knobs = {"run-length": {}, "z-test": {"changepoint_hazard": 0.0},
             "off": {"changepoint_hazard": 0.0, "changepoint_z": 0.0}}[how]
    cfg = Config.from_dict({"update_interval": 60, "decay": 0.05, **knobs}, warn=False)
    learner = DriftLearner(cfg).learn_many(concat(before, after))
    p50 = _p50(learner)
    if how != "off":  # 5 windows after the change: the evidence is mostly the new regime's
        assert learner.changes_ >= 1
        assert 240 < p50 < 360
    else:  # plain decay keeps 0.95**5 = 77% of the old evidence
        assert learner.changes_ == 0
        assert p50 < 150


def test_steady_traffic_raises_no_alarm_at_the_default():
    b = traffic(30_000, seed=7, span_s=6 * 3600.0, median_ms=80.0, error_rate=0.02)
    z_test = Config.from_dict({"update_interval": 60, "changepoint_hazard": 0.0}, warn=False)
    assert Config().changepoint_z == 5.0
    # 6 cells x 4 kinds x 360 windows at a two-sided 5.7e-7: expected 0.005 false alarms
    assert DriftLearner(z_test).learn_many(b).changes_ == 0
    # run lengths: the hazard (0.003) expects 6.5 changes per kind here a priori; the data
    # keep latency and think time below the threshold, and 5xx clusters (2% errors, 14
    # requests a window) cross it a few times
    learner = DriftLearner(Config.from_dict({"update_interval": 60}, warn=False)).learn_many(b)
    assert learner.changes_ <= 4
    for kind in ("latency", "think_time"):
        assert (learner.change_probability(kind) < 0.5).all()


def _off_target(knobs: dict) -> float:
    """Share of windows whose applied median latency is more than 20% off the truth (80 ms)
    in steady traffic, after the first hour (the benchmark's false adaptation)."""
    b = traffic(30_000, seed=11, span_s=6 * 3600.0, median_ms=80.0, error_rate=0.02)
    cfg = Config.from_dict({"update_interval": 60, **knobs}, warn=False)
    hist = DriftLearner(cfg, track_history=True).learn_many(b).history_frame()
    hist = hist[hist.t > 3600.0]
    return float((np.abs(hist.latency_applied / 80.0 - 1.0) > 0.2).mean())


def test_false_adaptation_on_steady_traffic_does_not_rise():
    # today's forgetting (the z-test, a prior that never fades) against run lengths and fading
    before = _off_target({"changepoint_hazard": 0.0, "prior_fade": 0.0})
    assert _off_target({}) <= before


# --------------------------------------------------------------------------- run lengths


def _error_windows(seed: int, rates, n: int = 12):
    """One cell's windows: ``n`` requests each at the given 5xx rates (0 requests: silent)."""
    rng = np.random.default_rng(seed)
    out = []
    for rate in rates:
        k = rng.binomial(n, rate) if n else 0
        out.append(np.array([[[n - k, k]]], dtype=float))  # (1 endpoint, 1 persona, 2 codes)
    return out


def _brute_force(windows, hazard: float, decay: float, prior, statuses):
    """P(run length = r) after the last window by enumerating every segmentation: changes
    between windows with prior H each, a segment predicted window by window from the prior
    plus its own decayed counts (the Beta-binomial of P(5xx), as the errors kind does)."""
    kind = REGISTRY["errors"]
    T = len(windows)
    post = np.zeros(T + 1)
    e = np.zeros(1, np.int64)
    for cuts in itertools.product([0, 1], repeat=T - 1):
        logp = sum(np.log(hazard) if c else np.log1p(-hazard) for c in cuts)
        start = 0
        for t in range(T):
            if t and cuts[t - 1]:
                start = t
            seg = sum((1 - decay) ** (t - u) * windows[u][0, 0] for u in range(start, t))
            seg = np.zeros(2) + seg
            logp += kind.log_predictive(prior, e, {"status_count": seg[None, None]},
                                        {"status_count": windows[t][0]}, np.ones((1, 1)),
                                        statuses)[0, 0]
        post[T - start] += np.exp(logp)
    return post / post.sum()


def _run_learner_bocpd(windows, hazard: float, decay: float, prior, statuses):
    """The same windows through :class:`RunLengths` (threshold 1: plain decayed evidence)."""
    sizes = Sizes(1, 1, 2)
    runs = RunLengths(["errors"], sizes)
    ev = Stats({"status_count": np.zeros((1, 1, 2))})
    A = np.zeros(1, np.int64)
    for t, x in enumerate(windows):
        ev = Stats({"status_count": ev["status_count"] * (1 - decay)})
        xs = Stats({"status_count": x})
        new = Stats({"status_count": ev["status_count"] + x})
        runs.step(t, A, ev, xs, new, prior={"errors": prior}, strength={"errors": np.array([1.0])},
                  hazard=hazard, threshold=1.0, decay=decay, statuses=statuses)
        runs.push(t, A, xs)
        ev = new
    return runs.w["errors"][0, 0]


@pytest.mark.parametrize("decay", [0.0, 0.1])
def test_run_lengths_equal_the_brute_force_posterior(decay):
    """Small cases (T ≤ 9 windows, below the truncation at 31): the recursion equals the sum
    over all 2^(T−1) segmentations. The learner's long-run state and run length T both hold
    the one segment since the first window (a change "at" the first window is no change)."""
    statuses = [200, 500]
    prior = ErrorParams(np.array([[0.99, 0.01]]))  # Beta(0.01, 0.99): one pseudo-observation
    for seed, rates in ((0, [0.01] * 4 + [0.4] * 5), (1, [0.02] * 7), (2, [0.3, 0.0, 0.3, 0.5])):
        windows = _error_windows(seed, rates)
        T = len(windows)
        brute = _brute_force(windows, 0.05, decay, prior, statuses)
        w = _run_learner_bocpd(windows, 0.05, decay, prior, statuses)
        mine = np.zeros(T + 1)
        mine[1:T] = w[: T - 1]
        mine[T] = w[T - 1] + w[-1]
        np.testing.assert_allclose(mine, brute, rtol=1e-9, atol=1e-12)


def test_silent_windows_only_let_runs_grow_or_restart():
    """A window without data is a window whose every run predicts it with probability 1: the
    closed form equals stepping the recursion through it."""
    statuses = [200, 500]
    prior = ErrorParams(np.array([[0.99, 0.01]]))
    windows = _error_windows(3, [0.01, 0.3, 0.3, 0.0, 0.0, 0.2])
    for t in (3, 4):
        windows[t] = np.zeros((1, 1, 2))  # silent
    brute = _brute_force(windows, 0.1, 0.0, prior, statuses)
    w = _run_learner_bocpd(windows, 0.1, 0.0, prior, statuses)
    T = len(windows)
    np.testing.assert_allclose(np.r_[0.0, w[: T - 1], w[T - 1] + w[-1]], brute, rtol=1e-9)
    # and the closed form itself: k silent windows from a given posterior
    rng = np.random.default_rng(4)
    w0 = rng.dirichlet(np.ones(N_STATES))
    step = w0
    for _ in range(40):
        step = shift_silent(step, 1, 0.02)
    np.testing.assert_allclose(shift_silent(w0, 40, 0.02), step, rtol=1e-12, atol=1e-15)


def test_mixing_weights_each_window_by_the_chance_its_run_covers_it():
    """Above the threshold the evidence is Σ_r P(r)·(last r windows, decayed) plus the long
    run's share of the whole evidence."""
    statuses = [200, 500]
    prior = ErrorParams(np.array([[0.99, 0.01]]))
    windows = _error_windows(5, [0.01] * 6 + [0.5] * 3)
    decay, sizes = 0.1, Sizes(1, 1, 2)
    runs = RunLengths(["errors"], sizes)
    ev = Stats({"status_count": np.zeros((1, 1, 2))})
    A = np.zeros(1, np.int64)
    hist = []
    for t, x in enumerate(windows):
        dec = Stats({"status_count": ev["status_count"] * (1 - decay)})
        new = Stats({"status_count": dec["status_count"] + x})
        plain = new["status_count"].copy()
        _, above = runs.step(t, A, dec, Stats({"status_count": x}), new,
                             prior={"errors": prior}, strength={"errors": np.array([1.0])},
                             hazard=0.05, threshold=0.5, decay=decay, statuses=statuses)
        runs.push(t, A, Stats({"status_count": x}))
        hist.append(x[0, 0])
        if above["errors"].any():
            w = runs.w["errors"][0, 0]
            want = w[-1] * plain[0, 0]
            for r in range(1, N_STATES):  # run r covers windows t-r+1 … t
                if w[r - 1]:
                    want = want + w[r - 1] * sum((1 - decay) ** k * hist[t - k]
                                                 for k in range(min(r, t + 1)))
            np.testing.assert_allclose(new["status_count"][0, 0], want, rtol=1e-9)
            break
        ev = new
    else:
        pytest.fail("the burst of errors never crossed the threshold")


def test_predictives_against_scipy():
    from driftbayes.kinds import lognormal

    # Beta-binomial of P(5xx), up to the binomial coefficient (equal for every hypothesis)
    prior = ErrorParams(np.array([[2.0, 1.0]]))  # Beta(1, 2) on P(5xx)
    before = {"status_count": np.array([[[7.0, 2.0]]])}
    window = {"status_count": np.array([[4.0, 3.0]])}
    lp = REGISTRY["errors"].log_predictive(prior, np.zeros(1, np.int64), before, window,
                                           np.ones((1, 1)), [200, 500])[0, 0]
    want = stats.betabinom.logpmf(3, 7, 1 + 2, 2 + 7) - np.log(special.comb(7, 3))
    assert lp == pytest.approx(want, rel=1e-12)
    # log values: the window's mean under a Normal whose scale is the whole evidence's
    nig = cj.nig_prior(median_ms=np.array([100.0]), sigma=np.array([0.5]),
                       strength=np.array([2.0]))
    x = np.log([90.0, 120.0, 80.0, 110.0])
    b = {"lat_n": np.array([[4.0]]), "lat_sx": np.array([[x.sum()]]),
         "lat_sxx": np.array([[(x**2).sum()]])}
    w = np.log([200.0, 220.0])
    lp = lognormal.log_predictive(nig, np.zeros(1, np.int64), b,
                                  {"lat_n": np.array([2.0]), "lat_sx": np.array([w.sum()]),
                                   "lat_sxx": np.array([(w**2).sum()])},
                                  np.ones((1, 1)), "lat")[0, 0]
    post = cj.normal_nig_posterior(mu0=nig.mu[0], kappa0=2.0, alpha0=1.0, beta0=nig.beta[0],
                                   n=4.0, sx=x.sum(), sxx=(x**2).sum())
    s2 = post.beta / post.alpha
    want = stats.norm.logpdf(w.mean(), post.mu, np.sqrt(s2 * (1 / 2 + 1 / post.kappa)))
    assert lp == pytest.approx(want, rel=1e-12)


def test_evidence_accumulates_across_windows_of_a_sparse_cell():
    """Three requests a window, the median latency up by a factor 1.5 (0.8 log-sd): no single
    window convinces a per-window z-test at 5, but the run since the change predicts every
    later window better, and the change probability crosses 0.5 within 15 windows."""
    kw = dict(endpoints=("/api/cart",), personas=("web",), sigma=0.5, error_rate=0.0)
    before = traffic(3 * 120, seed=8, span_s=120 * 60.0, median_ms=100.0, **kw)
    after = traffic(3 * 15, seed=9, t0=120 * 60.0, span_s=15 * 60.0, median_ms=150.0, **kw)
    b = concat(before, after)
    cfg = Config.from_dict({"update_interval": 60}, warn=False)
    learner = DriftLearner(cfg).learn_many(b).snapshot()
    assert learner.change_probability("latency")[0, 0] > 0.5
    z_only = Config.from_dict({"update_interval": 60, "changepoint_hazard": 0.0}, warn=False)
    assert DriftLearner(z_only).learn_many(b).changes_ == 0


def test_change_probability_is_in_patterns_and_the_posterior():
    kw = dict(endpoints=("/api/cart",), personas=("web",), sigma=0.4, error_rate=0.0)
    b = concat(traffic(3000, seed=5, span_s=3000.0, median_ms=100.0, **kw),
               traffic(300, seed=6, t0=3000.0, span_s=300.0, median_ms=300.0, **kw))
    learner = DriftLearner(Config.from_dict({"update_interval": 60}, warn=False)).learn_many(b)
    ds = learner.posterior()
    assert float(ds["latency_change_p"].sel(endpoint="GET /api/cart", persona="web")) > 0.9
    assert "frequency_change_p" not in ds and "errors_change_p" in ds
    rows = {r["kind"]: r for r in patterns(learner, "posterior")}
    assert rows["latency"]["change_p"] > 0.9 and "change_p" not in rows["frequency"]
    with pytest.raises(ValueError, match="no online changepoint detection"):
        learner.change_probability("frequency")


def test_run_lengths_survive_a_save_and_load(tmp_path):
    from driftbayes.state import load_state, save_state

    kw = dict(endpoints=("/api/cart", "/api/x"), personas=("web", "app"), sigma=0.4,
              error_rate=0.02)
    b = concat(traffic(3000, seed=5, span_s=3000.0, median_ms=100.0, **kw),
               traffic(600, seed=6, t0=3000.0, span_s=600.0, median_ms=300.0, **kw))
    cut = int(np.searchsorted(b.ts, 3200.0))  # mid-change: run lengths hold the new regime
    cfg = Config.from_dict({"update_interval": 60}, warn=False)
    whole = DriftLearner(cfg).learn_many(b)
    first = DriftLearner(cfg).learn_many(b.take(np.arange(cut)))
    assert first.change_probability("latency").max() > 0.5
    again = load_state(save_state(first, tmp_path / "s.nc"))
    again.learn_many(b.take(np.arange(cut, len(b))))
    assert again.changes_ == whole.changes_ - first.changes_  # the count is not saved
    for attr in ("evidence_", "applied_"):
        assert getattr(again, attr).equals(getattr(whole, attr), rtol=1e-9, atol=1e-9), attr
    np.testing.assert_allclose(again.change_probability("latency"),
                               whole.change_probability("latency"), rtol=1e-9)
