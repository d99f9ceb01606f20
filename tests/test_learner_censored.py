"""Censored session ends: an open session silent for t has ended with probability
P(END | silent t) (its row's END probability and the think-time survival); a confirmed END
carries the decay since the session's last request."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftbayes import conjugate as cj
from driftbayes.config import Config
from driftbayes.events import EventBatch
from driftbayes.learner import DriftLearner
from driftbayes.open_sessions import censored_end_weights


def test_end_probability_is_the_odds_of_end_against_a_think_time_that_long():
    think = cj.nig_prior(median_ms=np.array([[2000.0, 500.0]]), sigma=np.array([[0.8, 1.2]]),
                         strength=np.array([[12.0, 3.0]]))
    e, p = np.array([0, 0, 0]), np.array([0, 1, 1])
    ts = np.array([100.0, 110.0, 115.0])
    now, pi = 120.0, np.array([[0.3], [0.1]])  # p_end per (persona, endpoint)
    got = censored_end_weights(e, p, ts, now=now, think=think, p_end=pi, interval=60.0,
                               decay=0.0)
    df, loc, scale = cj.normal_nig_predictive(mu=think.mu[0], kappa=think.kappa[0],
                                              alpha=think.alpha[0], beta=think.beta[0])
    for i in range(3):
        s = stats.t.sf(np.log((now - ts[i]) * 1000.0), df[p[i]], loc[p[i]], scale[p[i]])
        q = pi[p[i], 0] / (pi[p[i], 0] + (1 - pi[p[i], 0]) * s)
        assert got[i] == pytest.approx(q, rel=1e-9)
    # with decay, the weight a confirmed END will have: the windows since the last request
    aged = censored_end_weights(e, p, ts - 120.0, now=now, think=think, p_end=pi,
                                interval=60.0, decay=0.1)
    plain = censored_end_weights(e, p, ts - 120.0, now=now, think=think, p_end=pi,
                                 interval=60.0, decay=0.0)
    np.testing.assert_allclose(aged, plain * 0.9 ** 2)


def _sessions(n: int, *, t0: float = 0.0, think_s: float = 5.0, seed: int = 0):
    """``n`` sessions /a → /b → END, requests ``think_s`` apart, one session a second."""
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        t = t0 + i * 1.0
        recs.append({"ts": t, "path": "/a", "session": f"s{i}", "status": 200,
                     "latency_ms": 20})
        recs.append({"ts": t + think_s * rng.lognormal(0, 0.3), "path": "/b",
                     "session": f"s{i}", "status": 200, "latency_ms": 20})
    recs.sort(key=lambda r: r["ts"])
    return EventBatch.from_records(recs)


def test_rows_learn_end_before_the_gap_runs_out():
    cfg = Config(update_interval=60.0, session_gap=1800.0, decay=0.0)
    learner = DriftLearner(cfg).learn_many(_sessions(50))
    # 5 minutes later (a request elsewhere moves the clock): no gap has run out yet
    learner.learn_one({"ts": 360.0, "path": "/z", "session": "other", "status": 200,
                       "latency_ms": 20})
    snap = learner.snapshot()
    b, E = snap.resolve_endpoint("/b"), len(snap.endpoints_)
    p = snap.resolve_persona("default")
    counted = snap.evidence_["trans_count"].to_dense()[p, b]
    assert counted[E] == 0 and counted.sum() == 0  # the scan has seen no END from /b
    # silent for over 5 minutes: ended, nearly surely, even under the synthetic think time
    # (median 1 s, but a Student-t with 6 degrees of freedom: /b has no think time of its own)
    read = snap.read_evidence()["trans_count"].to_dense()[p, b]
    assert 45.0 < read[E] <= 50.0
    post = snap.layer("posterior").transitions.mean_row(p, b)
    assert post[E] > 0.9
    # without the censored mass the row would be the prior's: END 1/session_length
    assert snap.params_from(snap.pooled_evidence()).transitions.mean_row(p, b)[E] < 0.3


def test_a_session_that_goes_on_takes_its_provisional_end_back():
    cfg = Config(update_interval=60.0, session_gap=1800.0, decay=0.0)
    learner = DriftLearner(cfg).learn_many(_sessions(1, think_s=2.0))
    learner.learn_one({"ts": 200.0, "path": "/z", "session": "other", "status": 200,
                       "latency_ms": 20})
    snap = learner.snapshot()
    b, E = snap.resolve_endpoint("/b"), len(snap.endpoints_)
    assert snap.censored_ends().to_dense()[0, b, E] > 0.5
    learner.learn_one({"ts": 250.0, "path": "/a", "session": "s0", "status": 200,
                       "latency_ms": 20})
    snap = learner.snapshot()
    assert snap.censored_ends().to_dense()[0, b, E] == 0.0
    assert snap.evidence_["trans_count"].to_dense()[0, b, snap.resolve_endpoint("/a")] == 1.0


def test_a_confirmed_end_carries_the_decay_since_the_last_request():
    T, gap, lam = 60.0, 600.0, 0.1
    cfg = Config(update_interval=T, session_gap=gap, decay=lam)
    learner = DriftLearner(cfg).learn_many(_sessions(1, think_s=2.0))
    # the gap runs out at 602 s: the END is confirmed in window 10, 10 windows after /b's
    learner.learn_one({"ts": 11 * T + 1, "path": "/z", "session": "other", "status": 200,
                       "latency_ms": 20})
    snap = learner.snapshot()
    b, E = snap.resolve_endpoint("/b"), len(snap.endpoints_)
    end = snap.evidence_["trans_count"].to_dense()[0, b, E]
    step = snap.evidence_["trans_count"].to_dense()[0, snap.resolve_endpoint("/a"), b]
    # as old as the /a → /b step it follows: both weigh (1-λ)^(windows since window 0)
    assert end == pytest.approx(step, rel=1e-12) and end == pytest.approx((1 - lam) ** 11)


def test_censored_ends_do_not_depend_on_batching():
    events = _sessions(40, seed=3)
    cfg = Config(update_interval=30.0, session_gap=300.0)
    whole = DriftLearner(cfg).learn_many(events)
    parts = DriftLearner(cfg)
    for chunk in np.array_split(np.arange(len(events)), 7):
        parts.learn_many(events.take(chunk))
    a, b = whole.censored_ends(), parts.censored_ends()
    assert len(a) and a.equals(b, rtol=1e-12, atol=1e-12)
    for layer in ("posterior", "applied"):
        np.testing.assert_allclose(whole.layer(layer).transitions.dense(),
                                   parts.layer(layer).transitions.dense(), rtol=1e-12)
