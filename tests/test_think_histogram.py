"""Think time's Dirichlet histogram: its posterior against the counts computed by hand from the
raw gaps, its predictive against the posterior mean, a bimodal stream where it beats the
log-normal summary, and a state round trip."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftbayes import conjugate as cj
from driftbayes.bench.metrics import QUANTILE_LEVELS, think_time_w1
from driftbayes.config import Config
from driftbayes.events import EventBatch
from driftbayes.kinds import REGISTRY
from driftbayes.learner import DriftLearner
from driftbayes.sampling import sample_sessions
from driftbayes.state import load_state, save_state

ENDPOINTS = ("/api/a", "/api/b")
#: two modes: a script's next call (~0.3 s) and a reader's next page (~40 s)
MODES = ((300.0, 0.3, 0.5), (40_000.0, 0.5, 0.5))  # (median ms, sigma, share)
# no decay and no change detection: the evidence is the raw counts
CFG = dict(decay=0.0, changepoint_hazard=0.0, changepoint_z=0.0)


def bimodal_ms(n: int, rng: np.random.Generator) -> np.ndarray:
    mode = rng.random(n) < MODES[0][2]
    med = np.where(mode, MODES[0][0], MODES[1][0])
    sig = np.where(mode, MODES[0][1], MODES[1][1])
    return med * np.exp(sig * rng.standard_normal(n))


def sessions(n_sessions: int, steps: int, seed: int) -> EventBatch:
    """Sessions alternating a → b → a …, bimodal think times between requests."""
    rng = np.random.default_rng(seed)
    start = np.sort(rng.uniform(0, 6 * 3600, n_sessions))
    gaps_s = bimodal_ms(n_sessions * (steps - 1), rng).reshape(n_sessions, steps - 1) / 1000.0
    ts = 1.7e9 + start[:, None] + np.c_[np.zeros(n_sessions), np.cumsum(gaps_s, axis=1)]
    endpoint = np.asarray(ENDPOINTS, dtype=object)[np.arange(steps) % 2]
    sess = np.repeat(np.array([f"s{i}" for i in range(n_sessions)], dtype=object), steps)
    order = np.argsort(ts.ravel(), kind="stable")
    n = ts.size
    return EventBatch(
        ts=ts.ravel()[order], method=np.full(n, "GET", dtype=object),
        endpoint=np.tile(endpoint, n_sessions)[order], status=np.full(n, 200),
        latency_ms=np.full(n, 20.0), persona=np.full(n, "web", dtype=object),
        session=sess[order], line=np.arange(n))


def gaps_after(batch: EventBatch, endpoint: str) -> np.ndarray:
    """The raw think times (ms, floored at 1 ms as the learner does) after ``endpoint``."""
    out = []
    for s in np.unique(batch.session):
        m = batch.session == s
        ts, ep = batch.ts[m], batch.endpoint[m]
        out.append((np.diff(ts) * 1000.0)[ep[:-1] == endpoint])
    return np.maximum(np.concatenate(out), 1.0)


@pytest.fixture(scope="module")
def learned():
    batch = sessions(300, 8, seed=11)
    return batch, DriftLearner(Config(**CFG)).learn_many(batch).snapshot()


def test_posterior_is_the_dirichlet_update_of_the_raw_gaps(learned):
    batch, snap = learned
    alpha = snap.layer("posterior").think_alpha
    syn = snap.config.synthetic
    k = syn.prior_strength
    edges = cj.THINK_EDGES_MS
    assert len(edges) - 1 == alpha.shape[-1] == 104 and edges[0] == 1.0 and edges[-1] > 1.8e6
    for name in ENDPOINTS:
        e, p = snap.resolve_endpoint(name), snap.resolve_persona("web")
        ms = gaps_after(batch, name)
        counts, _ = np.histogram(np.clip(ms, edges[0], edges[-1] * 0.999), bins=edges)
        # the prior: the synthetic log-normal's bin masses (outer bins take the tails), worth
        # prior_strength observations, faded to prior_weight of them by the cell's count
        cdf = stats.norm.cdf(np.log(edges[1:-1]), np.log(syn.think_time_median_ms),
                             syn.think_time_sigma)
        base = np.diff(np.r_[0.0, cdf, 1.0])
        keep = 1.0 / (1.0 + len(ms) / (snap.config.prior_fade * k))
        want = (k * base + 1e-9) * keep + counts
        np.testing.assert_allclose(alpha[e, p], want, rtol=1e-9, atol=1e-12)
        assert counts.sum() == len(ms) == 300 * (4 if name == ENDPOINTS[0] else 3)
    # the NIG summary and its key quantity are still those of the log gaps
    ms = gaps_after(batch, ENDPOINTS[0])
    nig = snap.layer("posterior")["think_time"].nig
    e = snap.resolve_endpoint(ENDPOINTS[0])
    assert abs(nig.mu[e, 0] - np.log(ms).mean()) < 0.05


def test_predictive_draws_follow_the_posterior_mean(learned):
    _, snap = learned
    prm = snap.layer("posterior")["think_time"]
    e = np.full(40_000, snap.resolve_endpoint(ENDPOINTS[1]))
    p = np.zeros_like(e)
    draws = REGISTRY["think_time"].predictive(prm, e, p, np.random.default_rng(3), [])
    mean = cj.dirichlet_mean(prm.alpha[e[0], 0])
    got = np.histogram(np.log(draws), bins=cj.THINK_LOG_EDGES)[0]
    n = len(draws)
    # each bin's count is Binomial(n, mean): within 5 standard deviations (+1 for the tails)
    assert np.all(np.abs(got - n * mean) <= 5 * np.sqrt(n * mean * (1 - mean)) + 1)
    # inside a bin the draws are log-uniform: in the fullest bin, half fall in its lower half
    b = int(np.argmax(mean))
    lo, hi = cj.THINK_LOG_EDGES[b], cj.THINK_LOG_EDGES[b + 1]
    x = np.log(draws[(np.log(draws) >= lo) & (np.log(draws) < hi)])
    assert abs(np.mean(x < (lo + hi) / 2) - 0.5) < 5 * 0.5 / np.sqrt(len(x))


def test_sampled_sessions_draw_think_times_from_the_histogram(learned):
    _, snap = learned
    rows = [r for r in sample_sessions(snap, 4000, seed=5) if r["step"] > 0]
    think = np.array([r["think_ms"] for r in rows])
    src = {"/api/a": "/api/b", "/api/b": "/api/a"}  # sessions alternate
    alpha = snap.layer("applied").think_alpha
    # share of think times below 5 s: the histogram's (about one half), not the log-normal's
    short = 0.0
    for r in rows:
        m = cj.dirichlet_mean(alpha[snap.resolve_endpoint(src[r["endpoint"]]), 0])
        short += m[cj.THINK_EDGES_MS[1:] <= 5000.0].sum()
    want = short / len(rows)
    assert abs(np.mean(think < 5000.0) - want) < 5 * np.sqrt(want * (1 - want) / len(rows))
    assert 0.35 < want < 0.65


def test_bimodal_think_times_the_histogram_beats_the_log_normal(learned):
    _, snap = learned
    prm = snap.layer("posterior")["think_time"]
    y = np.log(bimodal_ms(20_000, np.random.default_rng(99)))
    e = snap.resolve_endpoint(ENDPOINTS[0])
    hist_q = np.log(cj.histogram_quantiles(cj.dirichlet_mean(prm.alpha[e, 0]), QUANTILE_LEVELS,
                                           log_edges=cj.THINK_LOG_EDGES))
    df, loc, scale = cj.normal_nig_predictive(**{f: x[e, 0] for f, x in prm.nig._asdict().items()})
    t_q = stats.t.ppf(QUANTILE_LEVELS, df, loc=loc, scale=scale)
    w_hist, w_t = think_time_w1(QUANTILE_LEVELS, hist_q, y), think_time_w1(QUANTILE_LEVELS, t_q, y)
    # 1,200 gaps and a faded prior worth ~1 observation: the histogram is off by its sampling
    # error and bin width; the single log-normal by the modes it cannot have
    # (seed 11: 0.12 against 1.04)
    assert w_hist < 0.25 and w_hist < 0.3 * w_t


def test_state_round_trip_keeps_the_histogram(learned, tmp_path):
    _, snap = learned
    again = load_state(save_state(snap, tmp_path / "s.nc"))
    for store in ("evidence_", "applied_", "pending_"):
        np.testing.assert_array_equal(getattr(again, store)["think_hist"],
                                      getattr(snap, store)["think_hist"])
    np.testing.assert_array_equal(again.layer("applied").think_alpha,
                                  snap.layer("applied").think_alpha)


def test_persona_pooling_borrows_histogram_and_summary_alike():
    """A thin persona cell borrows the same share of its endpoint's other personas' gaps in
    the histogram as in the log-normal summary (the share is the summary's to decide)."""
    from tests.helpers import traffic

    learner = DriftLearner(Config(pooling_strength=1000.0)).learn_many(
        traffic(3000, seed=8, personas=("web", "batch", "mobile")))
    own, pooled = learner.evidence_, learner.pooled_evidence()
    assert not np.allclose(pooled["think_n"], own["think_n"])  # some cell borrowed
    np.testing.assert_allclose(pooled["think_hist"].sum(-1), pooled["think_n"], rtol=1e-9,
                               atol=1e-9)
