"""The mocks the realism benchmark compares, behind one interface.

Every mock learns window by window (:meth:`Mock.learn` with one window's events) and then says
what it would serve next (:meth:`Mock.serve`): per endpoint × persona a latency and a think-time
predictive (quantiles on log-ms), a 5xx probability, a request rate, and per persona a
transition matrix. The benchmark scores that against the next window's traffic.

=================== ==========================================================================
mock                what it serves
=================== ==========================================================================
``static``          the synthetic defaults, forever (what mocks do today)
``mockforge``       MockForge behavioural cloning: latency Normal(mean, sd) clamped to
                    [min, max] of everything seen, running frequencies, no decay
``window``          the empirical distributions of the last ``windows`` windows
``ema``             empirical distributions with weights ``(1 - alpha) ** age``
``driftbayes``      the applied layer of :class:`~driftbayes.learner.DriftLearner` (latency and
                    think time from their histograms' posterior mean)
=================== ==========================================================================

Cells a mock has no data for get the synthetic defaults (as driftbayes' prior does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from driftbayes import conjugate as cj
from driftbayes.bench.metrics import QUANTILE_LEVELS
from driftbayes.config import Config
from driftbayes.events import EventBatch
from driftbayes.kinds.histogram import THINK
from driftbayes.learner import DriftLearner

_LEVELS = np.asarray(QUANTILE_LEVELS, dtype=float)


@dataclass
class Vocabulary:
    """Endpoint keys (``"GET /a"``) and personas of a whole benchmark stream."""

    endpoints: list[str]
    personas: list[str]

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.endpoints), len(self.personas)


@dataclass
class Served:
    """What a mock would serve for every cell of the vocabulary."""

    latency_q: np.ndarray  # (E, P, K) log-ms quantiles at QUANTILE_LEVELS
    error_rate: np.ndarray  # (E, P) P(status >= 500)
    rate: np.ndarray  # (E, P) requests per second
    think_q: np.ndarray  # (E, P, K) log-ms quantiles of the think time after this endpoint
    trans: np.ndarray  # (P, E + 1, E + 1) rows: endpoints then START; columns: endpoints then END
    p50_band: np.ndarray | None = None  # (E, P, 2) 90% credible interval of the median latency


@dataclass
class WindowData:
    """One window's events, coded against the vocabulary (built once by the benchmark)."""

    t_start: float
    t_end: float
    e: np.ndarray  # endpoint index per event
    p: np.ndarray  # persona index per event
    log_latency: np.ndarray  # log ms, NaN when not recorded
    status: np.ndarray  # 0 when not recorded
    think_src: np.ndarray  # source endpoint of each think gap
    think_p: np.ndarray
    log_think: np.ndarray  # log ms
    trans: np.ndarray  # (P, E + 1, E + 1) transition counts (START row E, END column E)
    batch: EventBatch  # the raw events (for driftbayes)


# ------------------------------------------------------------------------------ defaults


def synthetic_served(config: Config, vocab: Vocabulary) -> Served:
    """The synthetic mock of ``config`` (its per-endpoint synthetic defaults) for every cell."""
    E, P = vocab.shape
    z = special.ndtri(_LEVELS)
    lat = np.empty((E, P, len(_LEVELS)))
    think = np.empty_like(lat)
    err = np.empty((E, P))
    rate = np.empty((E, P))
    trans = np.zeros((P, E + 1, E + 1))
    for i, key in enumerate(vocab.endpoints):
        s = config.synthetic_for(key)
        lat[i] = np.log(s.latency_median_ms) + s.latency_sigma * z
        think[i] = np.log(s.think_time_median_ms) + s.think_time_sigma * z
        err[i] = s.error_rate if s.error_status >= 500 else 0.0
        rate[i] = s.rate_per_s
        p_end = 1.0 / s.session_length
        trans[:, i, :E] = (1.0 - p_end) / E
        trans[:, i, E] = p_end
    trans[:, E, :E] = 1.0 / max(E, 1)
    return Served(lat, err, rate, think, trans)


# ------------------------------------------------------------------------------ the mocks


class Mock:
    """Interface: ``learn`` one window, then ``serve``."""

    name = "mock"

    def __init__(self, vocab: Vocabulary, config: Config | None = None):
        self.vocab = vocab
        self.config = config or Config()
        self.default = synthetic_served(self.config, vocab)

    def learn(self, window: WindowData) -> None:
        """Learn from one window's events."""

    def serve(self) -> Served:
        """What the mock would serve now."""
        return self.default


class StaticMock(Mock):
    """The synthetic defaults, never updated."""

    name = "static"


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted empirical quantiles (inverted CDF) at the benchmark's levels."""
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cdf = np.cumsum(w) / w.sum()
    idx = np.searchsorted(cdf, _LEVELS, side="left")
    return v[np.minimum(idx, len(v) - 1)]


class EmpiricalMock(Mock):
    """Empirical distributions of past windows, each window weighted by its age.

    Subclasses define :meth:`weights` (one weight per learned window, oldest first).
    """

    def __init__(self, vocab: Vocabulary, config: Config | None = None):
        super().__init__(vocab, config)
        self.windows: list[WindowData] = []

    def weights(self) -> np.ndarray:
        raise NotImplementedError

    def learn(self, window: WindowData) -> None:
        self.windows.append(window)

    def _pooled(self):
        """Concatenated events of the windows with non-zero weight, with per-event weights."""
        w = self.weights()
        use = [i for i in range(len(self.windows)) if w[i] > 0]
        wins = [self.windows[i] for i in use]
        ww = [np.full(len(x.e), w[i]) for i, x in zip(use, wins, strict=True)]
        tw = [np.full(len(x.think_src), w[i]) for i, x in zip(use, wins, strict=True)]
        cat = np.concatenate
        ev = (cat([x.e for x in wins]), cat([x.p for x in wins]),
              cat([x.log_latency for x in wins]), cat([x.status for x in wins]), cat(ww))
        th = (cat([x.think_src for x in wins]), cat([x.think_p for x in wins]),
              cat([x.log_think for x in wins]), cat(tw))
        trans = sum(w[i] * x.trans for i, x in zip(use, wins, strict=True))
        expo = sum(w[i] * (x.t_end - x.t_start) for i, x in zip(use, wins, strict=True))
        return ev, th, trans, expo

    def latency_quantiles(self, log_lat: np.ndarray, w: np.ndarray) -> np.ndarray:
        return _weighted_quantiles(log_lat, w)

    def serve(self) -> Served:
        if not self.windows or not np.any(self.weights() > 0):
            return self.default
        (e, p, lat, st, w), (te, tp, tl, tw), trans_counts, expo = self._pooled()
        d = self.default
        E, P = self.vocab.shape
        out = Served(d.latency_q.copy(), d.error_rate.copy(), d.rate.copy(), d.think_q.copy(),
                     d.trans.copy())
        cell = e * P + p
        for c in np.unique(cell):
            i, j = divmod(int(c), P)
            m = cell == c
            ok = m & np.isfinite(lat)
            if ok.any():
                out.latency_q[i, j] = self.latency_quantiles(lat[ok], w[ok])
            has = m & (st > 0)
            if has.any():
                out.error_rate[i, j] = np.average(st[has] >= 500, weights=w[has])
            out.rate[i, j] = w[m].sum() / expo
        tcell = te * P + tp
        for c in np.unique(tcell):
            i, j = divmod(int(c), P)
            m = tcell == c
            out.think_q[i, j] = _weighted_quantiles(tl[m], tw[m])
        rows = trans_counts.sum(-1, keepdims=True)
        known = rows[..., 0] > 0
        out.trans[known] = (trans_counts / np.where(rows > 0, rows, 1.0))[known]
        return out


class MockForgeMock(EmpiricalMock):
    """MockForge behavioural cloning: everything seen, equally weighted (no decay); latency
    drawn Normal(mean, sd) and clamped to [min, max]."""

    name = "mockforge"

    def weights(self) -> np.ndarray:
        return np.ones(len(self.windows))

    def latency_quantiles(self, log_lat: np.ndarray, w: np.ndarray) -> np.ndarray:
        ms = np.exp(log_lat)
        mean, sd = ms.mean(), ms.std()
        lo, hi = ms.min(), ms.max()
        if sd == 0:
            return np.full(len(_LEVELS), np.log(mean))
        # quantiles of the clamped normal: the normal's, clipped (the clamp puts mass at ends)
        q = stats.norm.ppf(_LEVELS, loc=mean, scale=sd)
        return np.log(np.clip(q, lo, hi))


class WindowMock(EmpiricalMock):
    """The last ``windows`` windows, equally weighted."""

    name = "window"

    def __init__(self, vocab: Vocabulary, config: Config | None = None, windows: int = 12):
        super().__init__(vocab, config)
        self.k = windows

    def weights(self) -> np.ndarray:
        n = len(self.windows)
        return (np.arange(n) >= n - self.k).astype(float)


class EmaMock(EmpiricalMock):
    """Exponentially weighted: a window ``age`` windows old weighs ``(1 - alpha) ** age``."""

    name = "ema"

    def __init__(self, vocab: Vocabulary, config: Config | None = None, alpha: float = 0.1):
        super().__init__(vocab, config)
        self.alpha = alpha

    def weights(self) -> np.ndarray:
        age = np.arange(len(self.windows))[::-1]
        return (1.0 - self.alpha) ** age


class DriftBayesMock(Mock):
    """driftbayes: the applied layer of a :class:`DriftLearner` with ``config``."""

    name = "driftbayes"

    def __init__(self, vocab: Vocabulary, config: Config | None = None, name: str | None = None):
        super().__init__(vocab, config)
        self.learner = DriftLearner(self.config)
        if name:
            self.name = name

    def learn(self, window: WindowData) -> None:
        if len(window.batch):
            self.learner.learn_many(window.batch)

    def serve(self) -> Served:
        if not self.learner.endpoints_:
            return self.default
        snap = self.learner.snapshot()
        out = served_from_learner(snap, self.vocab, self.default)
        band = np.full(out.error_rate.shape + (2,), np.nan)
        e_map = [self.vocab.endpoints.index(k) for k in snap.endpoints_]
        p_map = [self.vocab.personas.index(k) for k in snap.personas_]
        band[np.ix_(e_map, p_map)] = cj.dirichlet_median_quantiles(
            snap.layer("posterior").lat_alpha, [0.05, 0.95])
        out.p50_band = band
        return out


def served_from_learner(learner: DriftLearner, vocab: Vocabulary, default: Served,
                        layer: str = "applied") -> Served:
    """A learner's layer as :class:`Served` on the benchmark vocabulary (unknown cells keep
    ``default``)."""
    prm = learner.layer(layer)
    e_map = np.array([vocab.endpoints.index(k) for k in learner.endpoints_])
    p_map = np.array([vocab.personas.index(k) for k in learner.personas_])
    out = Served(default.latency_q.copy(), default.error_rate.copy(), default.rate.copy(),
                 default.think_q.copy(), default.trans.copy())
    ix = np.ix_(e_map, p_map)
    lat_p = cj.dirichlet_mean(prm.lat_alpha)
    out.latency_q[ix] = np.log(cj.histogram_quantiles(lat_p, _LEVELS))
    status_p = cj.dirichlet_mean(prm.status_alpha)
    is5 = np.array([s >= 500 for s in learner.statuses_], dtype=bool)
    out.error_rate[ix] = status_p[..., is5].sum(-1)
    out.rate[ix] = prm.rate_a / prm.rate_b
    out.think_q[ix] = np.log(THINK.quantiles(prm.think_alpha, _LEVELS))
    E = len(vocab.endpoints)
    trans = cj.dirichlet_mean(prm.transitions.dense())  # (P', E'+1, E'+1)
    src = np.r_[e_map, E]
    for j, pj in enumerate(p_map):
        rows = np.zeros((len(src), E + 1))
        rows[:, src] = trans[j]  # endpoints the learner has not seen: probability 0
        out.trans[pj, src] = rows
    return out


MOCKS = {"static": StaticMock, "mockforge": MockForgeMock, "window": WindowMock,
         "ema": EmaMock, "driftbayes": DriftBayesMock}
