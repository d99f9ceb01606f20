"""Prequential scoring: in every window, what each mock *would serve* against what traffic did.

For window ``w`` = 1, 2, … each mock first serves (having learned windows ``< w``), is scored on
window ``w``'s events, then learns window ``w``. A :class:`Stream` is a scenario with known truth
or a real recording (then the truth is what the next window shows).

Scores are per request served: latency and error metrics average over each window's requests
(a busy cell weighs more than a rare one), flows over transitions and ended sessions, the request
rate is a weighted absolute percentage error over cells. Mocks only ever see what was knowable at
the end of a window: a session's END arrives once its inactivity gap has passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from driftbayes.bench import metrics as M
from driftbayes.bench.mocks import MOCKS, Mock, Served, Vocabulary, WindowData
from driftbayes.config import Config
from driftbayes.events import EventBatch

_LEVELS = np.asarray(M.QUANTILE_LEVELS, dtype=float)
MockFactory = Callable[[Vocabulary, Config], Mock]
_MIN_OBS = 20  # observations a cell needs in a window before its p50/p99 count as truth
NEVER_ADAPTED = 100.0  # adaptation lag (windows) charged when a mock never adapts

#: metric → (better, target): how :func:`driftbayes.bench.metrics.rank_table` ranks it.
METRICS = {
    "latency_crps": ("lower", None),
    "latency_w1": ("lower", None),
    "p50_rel_err": ("lower", None),
    "p99_rel_err": ("lower", None),
    "coverage90": ("target", 0.9),
    "error_abs": ("lower", None),
    "error_brier": ("lower", None),
    "trans_kl": ("lower", None),
    "session_len_w1": ("lower", None),
    "think_w1": ("lower", None),
    "rate_rel_err": ("lower", None),
    "adaptation_lag": ("lower", None),
    "false_adaptation": ("lower", None),
}


@dataclass
class Change:
    """A known change point (scenarios only)."""

    t: float
    kind: str
    endpoint: str | None = None
    persona: str | None = None
    description: str = ""


@dataclass
class Stream:
    """Events to score on, cut into windows, with the truth when it is known."""

    name: str
    events: EventBatch
    window_s: float
    t0: float
    n_windows: int
    truth: pd.DataFrame | None = None  # window, endpoint key, persona, p50_ms, p99_ms, …
    changes: list = field(default_factory=list)
    steady: list = field(default_factory=list)  # [t_a, t_b) segments without change
    description: str = ""

    @classmethod
    def from_events(cls, name: str, events: EventBatch, window_s: float,
                    description: str = "") -> Stream:
        """A real recording: windows from its first event; the truth is the next window."""
        events = events.take(np.argsort(events.ts, kind="stable"))
        t0 = float(np.floor(events.ts[0] / window_s) * window_s)
        n = int(np.floor((events.ts[-1] - t0) / window_s)) + 1
        return cls(name, events, window_s, t0, n, description=description)


def endpoint_keys(b: EventBatch) -> np.ndarray:
    """``"METHOD /template"`` per event (the learner's endpoint key)."""
    return (pd.Series(b.method, dtype=object) + " " + pd.Series(b.endpoint, dtype=object)
            ).to_numpy(dtype=object)


def cut_windows(stream: Stream, vocab: Vocabulary, session_gap: float) -> list[WindowData]:
    """Per window: coded events, think gaps and transition counts (sessions cut at
    ``session_gap``; a session's END counts in the window where its gap runs out)."""
    b = stream.events
    E, P = vocab.shape
    e = pd.Index(vocab.endpoints).get_indexer(endpoint_keys(b))
    p = pd.Index(vocab.personas).get_indexer(b.persona)
    win = np.floor((b.ts - stream.t0) / stream.window_s).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lat = np.where(b.latency_ms > 0, np.log(np.maximum(b.latency_ms, 1e-3)), np.nan)
    # previous request of the same session
    order = np.lexsort((b.ts, pd.factorize(b.session)[0]))
    sid = pd.factorize(b.session)[0][order]
    ts_o = b.ts[order]
    same = np.r_[False, sid[1:] == sid[:-1]]
    gap = np.r_[np.inf, np.diff(ts_o)]
    cont = same & (gap <= session_gap) & (b.session[order] != "")
    src = np.where(cont, np.r_[-1, e[order][:-1]], E)
    ends = np.r_[~cont[1:], True]  # the next request starts a new session (or none)
    trans_flat = np.zeros((stream.n_windows, P, E + 1, E + 1))
    w_o, p_o, e_o = win[order], p[order], e[order]
    np.add.at(trans_flat, (w_o, p_o, src, e_o), 1.0)
    # a session's END is knowable only once its inactivity gap has passed: it counts in that
    # window (as in the learner), not in the window of its last request (that would let a mock
    # learn from the future)
    w_end = np.floor((ts_o[ends] + session_gap - stream.t0) / stream.window_s).astype(np.int64)
    known = w_end < stream.n_windows
    np.add.at(trans_flat, (w_end[known], p_o[ends][known], e_o[ends][known], E), 1.0)
    think_ms = gap * 1000.0
    out = []
    bounds = np.searchsorted(win, np.arange(stream.n_windows + 1))  # events are sorted by ts
    for w in range(stream.n_windows):
        sl = slice(bounds[w], bounds[w + 1])
        tm = cont & (w_o == w)
        out.append(WindowData(
            t_start=stream.t0 + w * stream.window_s, t_end=stream.t0 + (w + 1) * stream.window_s,
            e=e[sl], p=p[sl], log_latency=log_lat[sl], status=b.status[sl],
            think_src=src[tm], think_p=p_o[tm], log_think=np.log(np.maximum(think_ms[tm], 1.0)),
            trans=trans_flat[w], batch=b.take(np.arange(bounds[w], bounds[w + 1])),
        ))
    return out


@dataclass
class Results:
    """Scores (long table) and per-window served vs observed series of one stream."""

    scores: pd.DataFrame
    series: pd.DataFrame


def score_stream(stream: Stream, mocks: dict[str, MockFactory], *,
                 config: Config | None = None, progress: Callable[[int], None] | None = None
                 ) -> Results:
    """Score every mock on ``stream`` prequentially (see the module docstring).

    ``config`` (default: the defaults) gives the synthetic defaults and the session gap; its
    ``update_interval`` is set to the stream's window for every mock.
    """
    cfg = (config or Config()).replace(update_interval=stream.window_s)
    b = stream.events
    keys = endpoint_keys(b)
    vocab = Vocabulary(list(pd.unique(keys)), list(pd.unique(b.persona)))
    E, P = vocab.shape
    windows = cut_windows(stream, vocab, float(cfg.session_gap))
    lengths = _session_lengths_by_window(stream, vocab, float(cfg.session_gap))
    truth = _truth_lookup(stream, vocab)
    sums = {name: _Accumulator() for name in mocks}
    rows = []
    instances = {name: make(vocab, cfg) for name, make in mocks.items()}
    for w, win in enumerate(windows):
        if w > 0:
            for name, mock in instances.items():
                served = mock.serve()
                rows += _score_window(sums[name], name, served, win, w, truth, lengths[w], stream)
        for mock in instances.values():
            mock.learn(win)
        if progress is not None:
            progress(1)
    series = pd.DataFrame(rows)
    if not series.empty:
        series["endpoint_name"] = np.asarray(vocab.endpoints, dtype=object)[series.endpoint]
        series["persona_name"] = np.asarray(vocab.personas, dtype=object)[series.persona]
    scores = []
    for name, acc in sums.items():
        values = acc.finish()
        values.update(_change_metrics(series[series.learner == name], stream, truth, vocab))
        for metric, value in values.items():
            better, target = METRICS[metric]
            scores.append({"stream": stream.name, "metric": metric, "learner": name,
                           "value": value, "better": better, "target": target})
    return Results(pd.DataFrame(scores), series)


class _Accumulator:
    """Running sums behind each aggregate metric."""

    def __init__(self):
        self.s: dict[str, float] = {}
        self.n: dict[str, float] = {}

    def add(self, metric: str, value: float, weight: float = 1.0) -> None:
        if np.isfinite(value) and weight > 0:
            self.s[metric] = self.s.get(metric, 0.0) + value * weight
            self.n[metric] = self.n.get(metric, 0.0) + weight

    def finish(self) -> dict[str, float]:
        out = {m: np.nan for m in METRICS}
        out.update({m: self.s[m] / self.n[m] for m in self.s})
        return out


def _in_steady(stream: Stream, t: float) -> bool:
    return any(a <= t < b for a, b in stream.steady)


def _score_window(acc: _Accumulator, name: str, served: Served, win: WindowData, w: int,
                  truth, lengths: dict, stream: Stream) -> list[dict]:
    E, P = served.error_rate.shape
    rows = []
    cell = win.e * P + win.p
    steady = _in_steady(stream, win.t_start) and _in_steady(stream, win.t_end - 1e-9)
    for c in np.unique(cell):
        i, j = divmod(int(c), P)
        m = cell == c
        q = served.latency_q[i, j]
        lat = win.log_latency[m]
        lat = lat[np.isfinite(lat)]
        row = {"learner": name, "window": w, "t": win.t_end, "endpoint": i, "persona": j,
               "n": int(m.sum()), "served_p50": float(np.exp(M.quantile_at(_LEVELS, q, 0.5))),
               "served_p99": float(np.exp(M.quantile_at(_LEVELS, q, 0.99))),
               "served_err": float(served.error_rate[i, j]),
               "served_rate": float(served.rate[i, j])}
        if served.p50_band is not None:
            row["band_lo"], row["band_hi"] = map(float, served.p50_band[i, j])
        t_row = truth(w, i, j)
        if len(lat):
            acc.add("latency_crps", M.crps_from_quantiles(_LEVELS, q, lat), len(lat))
            acc.add("latency_w1", M.wasserstein1_from_quantiles(_LEVELS, q, lat), len(lat))
            lo, hi = M.quantile_at(_LEVELS, q, 0.05), M.quantile_at(_LEVELS, q, 0.95)
            cov = M.interval_coverage(lo, hi, lat)
            if stream.truth is None or steady:
                acc.add("coverage90", cov, len(lat))
            row["obs_p50"] = float(np.exp(np.quantile(lat, 0.5)))
            row["obs_p99"] = float(np.exp(np.quantile(lat, 0.99)))
            t50, t99 = (t_row["p50_ms"], t_row["p99_ms"]) if t_row is not None else (
                (row["obs_p50"], row["obs_p99"]) if len(lat) >= _MIN_OBS else (np.nan, np.nan))
            # per request served: a busy cell's error matters more than a rare one's
            acc.add("p50_rel_err", M.relative_error(row["served_p50"], t50), len(lat))
            acc.add("p99_rel_err", M.relative_error(row["served_p99"], t99), len(lat))
            row["truth_p50"], row["truth_p99"] = t50, t99
        st = win.status[m]
        st = st[st > 0]
        if len(st):
            is5 = (st >= 500).astype(float)
            acc.add("error_brier", M.brier(served.error_rate[i, j], is5), len(st))
            t_err = t_row["error_rate"] if t_row is not None else (
                is5.mean() if len(st) >= _MIN_OBS else np.nan)
            acc.add("error_abs", M.absolute_error(served.error_rate[i, j], t_err), len(st))
            row["obs_err"] = float(is5.mean())
            row["truth_err"] = t_err
        rows.append(row)
    # request rate: weighted absolute percentage error over the window's cells (the true rates
    # of every cell, or the observed ones); a per-cell relative error would be dominated by
    # cells whose rate is near zero, for every mock
    if truth.rates is not None:
        cells = truth.rates.get(w)
        if cells is not None:
            i, j, true_rate = cells
            den = true_rate.sum()
            acc.add("rate_rel_err", np.abs(served.rate[i, j] - true_rate).sum() / den, den)
    else:
        counts = np.bincount(cell, minlength=E * P).reshape(E, P)
        i, j = np.nonzero(counts)
        obs = counts[i, j] / (win.t_end - win.t_start)
        if obs.sum() > 0:
            acc.add("rate_rel_err", np.abs(served.rate[i, j] - obs).sum() / obs.sum(),
                    obs.sum())
    tcell = win.think_src * P + win.think_p
    for c in np.unique(tcell):
        i, j = divmod(int(c), P)
        y = win.log_think[tcell == c]
        if len(y) >= 5:
            acc.add("think_w1", M.wasserstein1_from_quantiles(_LEVELS, served.think_q[i, j], y),
                    len(y))
    for j in range(P):
        counts = win.trans[j]
        total = counts.sum()
        if total >= 5:
            acc.add("trans_kl", M.markov_kl_rate(counts, served.trans[j]), total)
        obs = lengths.get(j)
        if obs is not None and len(obs) >= 5:
            pmf = M.session_length_pmf(served.trans[j], start_row=E, end_col=E)
            acc.add("session_len_w1", M.session_length_w1(obs, pmf), len(obs))
    return rows


def _session_lengths_by_window(stream: Stream, vocab: Vocabulary, gap: float
                               ) -> list[dict[int, np.ndarray]]:
    """Per window, per persona index: lengths of the sessions whose last request is in it."""
    b = stream.events
    has = b.session != ""
    sid = pd.factorize(b.session)[0]
    order = np.lexsort((b.ts, sid))
    s, t = sid[order], b.ts[order]
    new = np.r_[True, (s[1:] != s[:-1]) | (np.diff(t) > gap)] | ~has[order]
    run = np.cumsum(new) - 1
    length = np.bincount(run)
    last = np.r_[np.flatnonzero(new)[1:] - 1, len(run) - 1]
    w_last = np.floor((t[last] - stream.t0) / stream.window_s).astype(int)
    p_idx = pd.Index(vocab.personas).get_indexer(b.persona[order][last])
    keep = has[order][last]
    out: list[dict[int, np.ndarray]] = [dict() for _ in range(stream.n_windows)]
    frame = pd.DataFrame({"w": w_last[keep], "p": p_idx[keep], "n": length[keep]})
    for (w, p), g in frame.groupby(["w", "p"]):
        out[int(w)][int(p)] = g["n"].to_numpy()
    return out


class _Truth:
    """``truth(window, e, p)`` → the scenario's truth row (dict) or None; ``rates[window]`` →
    (e, p, true rate) arrays of every cell (None for a real recording)."""

    def __init__(self, stream: Stream, vocab: Vocabulary):
        self.table: dict = {}
        self.rates: dict | None = None
        if stream.truth is None:
            return
        t = stream.truth
        key = (t["method"] + " " + t["endpoint"]) if "method" in t else t["endpoint"]
        e = pd.Index(vocab.endpoints).get_indexer(key)
        p = pd.Index(vocab.personas).get_indexer(t["persona"])
        ok = (e >= 0) & (p >= 0)
        self.table = {(int(w), int(i), int(j)): r for w, i, j, r, k in
                      zip(t["window"], e, p, t.to_dict("records"), ok, strict=True) if k}
        frame = pd.DataFrame({"w": t["window"].to_numpy()[ok], "e": e[ok], "p": p[ok],
                              "r": t["rate_per_s"].to_numpy()[ok]})
        self.rates = {int(w): (g.e.to_numpy(), g.p.to_numpy(), g.r.to_numpy())
                      for w, g in frame.groupby("w")}

    def __call__(self, w: int, i: int, j: int):
        return self.table.get((w, i, j))


def _truth_lookup(stream: Stream, vocab: Vocabulary) -> _Truth:
    return _Truth(stream, vocab)


def _change_metrics(series: pd.DataFrame, stream: Stream, truth, vocab: Vocabulary) -> dict:
    """Adaptation lag after each latency/error change, false adaptation in steady segments."""
    out = {}
    if stream.truth is None or series.empty:
        return out
    lags = []
    for ch in stream.changes:
        if ch.kind not in ("latency", "errors") or ch.endpoint is None:
            continue
        i = _endpoint_index(vocab, ch.endpoint)
        js = [vocab.personas.index(ch.persona)] if ch.persona in vocab.personas else range(
            len(vocab.personas))
        for j in js:
            s = series[(series.endpoint == i) & (series.persona == j)].sort_values("window")
            col, tcol = ("served_p50", "p50_ms") if ch.kind == "latency" else (
                "served_err", "error_rate")
            # the new regime lasts until the endpoint's next change: its truth is the target
            # (2 h in at most, for a ramp), and adapting after it ended does not count
            t_next = min([c.t for c in stream.changes if c.t > ch.t and c.endpoint == ch.endpoint],
                         default=np.inf)
            seg = s[s.t <= t_next]
            after = seg[seg.t > ch.t]
            if after.empty:
                continue
            w_after = int(after.window.iloc[min(len(after) - 1, 24)])
            t_row = truth(w_after, i, j)
            if t_row is None:
                continue
            lags.append(M.adaptation_lag(seg.t.to_numpy(), seg[col].to_numpy(), t_row[tcol],
                                         ch.t, tol=0.2 if ch.kind == "latency" else 0.5))
    lags = [x for x in lags if not np.isnan(x)]  # NaN: the truth after the change is 0
    if lags:
        # never adapted within the stream: counted as NEVER_ADAPTED windows
        out["adaptation_lag"] = float(np.mean(np.minimum(lags, NEVER_ADAPTED)))
    steady = series[[_in_steady(stream, t - stream.window_s) and _in_steady(stream, t - 1e-9)
                     for t in series.t]]
    if not steady.empty and "truth_p50" in steady:
        ok = steady.dropna(subset=["truth_p50"])
        if not ok.empty:  # share of requests served a p50 more than 20% off the truth
            off = [M.false_adaptation([a], [b], tol=0.2) for a, b in
                   zip(ok.served_p50, ok.truth_p50, strict=True)]
            out["false_adaptation"] = float(np.average(off, weights=ok.n))
    return out


def _endpoint_index(vocab: Vocabulary, endpoint: str) -> int:
    if endpoint in vocab.endpoints:
        return vocab.endpoints.index(endpoint)
    hits = [k for k in vocab.endpoints if k.split(" ", 1)[1] == endpoint]
    return vocab.endpoints.index(hits[0]) if hits else -1


def default_mocks(tuned: dict | None = None) -> dict[str, MockFactory]:
    """The compared mocks; ``driftbayes-tuned`` (driftbayes with the ``tuned`` knob values over
    the benchmark's config) when ``tuned`` is given."""
    from driftbayes.bench.mocks import DriftBayesMock

    out: dict[str, MockFactory] = {name: cls for name, cls in MOCKS.items()}
    if tuned:
        out["driftbayes-tuned"] = lambda v, cfg: DriftBayesMock(
            v, with_knobs(cfg, tuned), name="driftbayes-tuned")
    return out


def with_knobs(cfg: Config, knobs: dict) -> Config:
    """``cfg`` with ``knobs`` replaced; ``{"synthetic": {...}}`` replaces synthetic-prior knobs."""
    knobs = dict(knobs)
    synthetic = knobs.pop("synthetic", None)
    if synthetic:
        knobs["synthetic"] = cfg.synthetic.replace(**synthetic)
    return cfg.replace(**knobs)
