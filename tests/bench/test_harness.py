"""Mocks and the prequential harness of the realism benchmark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from driftbayes import conjugate as cj
from driftbayes.bench.harness import Stream, cut_windows, default_mocks, score_stream
from driftbayes.bench.metrics import QUANTILE_LEVELS
from driftbayes.bench.mocks import (
    DriftBayesMock,
    EmaMock,
    Mock,
    MockForgeMock,
    StaticMock,
    Vocabulary,
    WindowMock,
    _weighted_quantiles,
    synthetic_served,
)
from driftbayes.config import Config
from tests.helpers import traffic

LEVELS = np.asarray(QUANTILE_LEVELS)


def _stream(n=3000, hours=2.0, seed=0, **kw) -> Stream:
    b = traffic(n, seed=seed, span_s=hours * 3600, **kw)
    return Stream.from_events("t", b, 300.0)


def test_weighted_quantiles_equal_weights_are_the_inverted_cdf():
    y = np.random.default_rng(0).normal(size=501)
    got = _weighted_quantiles(y, np.ones_like(y))
    np.testing.assert_array_equal(got, np.quantile(y, LEVELS, method="inverted_cdf"))
    # integer weights = repeating the values
    w = np.random.default_rng(1).integers(1, 4, len(y))
    np.testing.assert_array_equal(_weighted_quantiles(y, w.astype(float)),
                                  np.quantile(np.repeat(y, w), LEVELS, method="inverted_cdf"))


def test_static_mock_serves_the_synthetic_log_normal():
    cfg = Config()
    vocab = Vocabulary(["GET /a", "GET /b"], ["x"])
    s = StaticMock(vocab, cfg).serve()
    syn = cfg.synthetic_for("GET /a")
    expect = stats.lognorm.ppf(LEVELS, s=syn.latency_sigma, scale=syn.latency_median_ms)
    np.testing.assert_allclose(np.exp(s.latency_q[0, 0]), expect, rtol=1e-9)
    np.testing.assert_allclose(s.trans.sum(-1), 1.0)
    assert s.error_rate[0, 0] == pytest.approx(syn.error_rate)


def test_window_and_ema_weights():
    vocab = Vocabulary(["GET /a"], ["x"])
    w = WindowMock(vocab, windows=3)
    e = EmaMock(vocab, alpha=0.5)
    for _ in range(5):
        w.windows.append(None)
        e.windows.append(None)
    assert w.weights().tolist() == [0, 0, 1, 1, 1]
    assert e.weights().tolist() == [0.0625, 0.125, 0.25, 0.5, 1.0]


def test_mockforge_latency_is_a_clamped_normal_of_everything_seen():
    ms = np.array([10.0, 20.0, 30.0, 40.0, 400.0])
    q = MockForgeMock.latency_quantiles(None, np.log(ms), np.ones(5))
    expect = np.clip(stats.norm.ppf(LEVELS, ms.mean(), ms.std()), ms.min(), ms.max())
    np.testing.assert_allclose(np.exp(q), expect)


def test_windows_cover_every_event_and_count_transitions():
    stream = _stream()
    vocab = Vocabulary(sorted(set("GET " + stream.events.endpoint)),
                       sorted(set(stream.events.persona)))
    wins = cut_windows(stream, vocab, session_gap=1800.0)
    assert len(wins) == stream.n_windows
    assert sum(len(w.e) for w in wins) == len(stream.events)
    E = len(vocab.endpoints)
    # every request is one transition into its endpoint; every session ends once
    into = sum(w.trans[..., :E].sum() for w in wins)
    assert into == len(stream.events)
    starts = sum(w.trans[:, E, :].sum() for w in wins)
    ends = sum(w.trans[:, :, E].sum() for w in wins)
    # an END is known once the 30-min gap has passed: sessions ending in the last 30 min of the
    # stream have no END yet
    last = stream.events.ts.max()
    s = pd.DataFrame({"s": stream.events.session, "t": stream.events.ts}).groupby("s").t.max()
    assert ends == starts - int((s + 1800.0 >= stream.t0 + stream.n_windows * 300.0).sum())
    assert last < stream.t0 + stream.n_windows * 300.0
    assert all(np.all(np.diff(w.batch.ts) >= 0) for w in wins)


def test_scoring_is_prequential():
    """Each mock serves window w having learned exactly windows < w."""
    seen: list[tuple[int, int]] = []

    class Spy(Mock):
        name = "spy"

        def __init__(self, vocab, cfg):
            super().__init__(vocab, cfg)
            self.learned = 0

        def learn(self, window):
            self.learned += 1

        def serve(self):
            seen.append(self.learned)
            return self.default

    stream = _stream(n=1000, hours=1.0)
    score_stream(stream, {"spy": Spy})
    assert seen == list(range(1, stream.n_windows))


def test_driftbayes_mock_serves_its_applied_layer():
    stream = _stream(n=4000, hours=2.0, error_rate=0.2)
    vocab = Vocabulary(list(pd.unique("GET " + stream.events.endpoint)),
                       list(pd.unique(stream.events.persona)))
    cfg = Config.from_dict({"update_interval": 300, "sensitivity": 1.0, "min_samples": 1,
                            "confidence_threshold": 0.0}, warn=False)
    mock = DriftBayesMock(vocab, cfg)
    for w in cut_windows(stream, vocab, 1800.0):
        mock.learn(w)
    served = mock.serve()
    snap = mock.learner.snapshot()
    prm = snap.layer("applied")
    i = vocab.endpoints.index(snap.endpoints_[0])
    j = vocab.personas.index(snap.personas_[0])
    is5 = np.array([s >= 500 for s in snap.statuses_])
    assert served.error_rate[i, j] == pytest.approx(
        cj.dirichlet_mean(prm.status_alpha)[0, 0][is5].sum())
    np.testing.assert_allclose(served.trans.sum(-1), 1.0)
    lo, hi = served.p50_band[i, j]
    assert lo < np.exp(np.interp(0.5, LEVELS, served.latency_q[i, j])) * 1.5 and lo < hi


def test_score_stream_table_and_learning_beats_static_on_shifted_traffic():
    """Traffic far from the synthetic defaults: every learning mock beats the static one on
    latency CRPS (a deterministic property of this seeded stream, checked on all mocks)."""
    stream = _stream(n=6000, hours=3.0, median_ms=900.0, sigma=0.3)
    res = score_stream(stream, default_mocks())
    s = res.scores.set_index(["metric", "learner"]).value
    assert set(res.scores.learner) == {"static", "mockforge", "window", "ema", "driftbayes"}
    for name in ("mockforge", "window", "ema", "driftbayes"):
        assert s["latency_crps", name] < s["latency_crps", "static"]
    # a real stream has no truth: adaptation metrics are NaN, coverage is scored
    assert np.isnan(s["adaptation_lag", "driftbayes"])
    assert 0 < s["coverage90", "driftbayes"] <= 1
    assert {"served_p50", "obs_p50", "band_lo"} <= set(res.series.columns)


def test_synthetic_served_shapes():
    vocab = Vocabulary(["GET /a", "POST /b", "GET /c"], ["x", "y"])
    s = synthetic_served(Config(), vocab)
    assert s.latency_q.shape == (3, 2, len(LEVELS)) and s.trans.shape == (2, 4, 4)
    assert np.all(np.diff(s.latency_q, axis=-1) > 0)
