"""REFERENCE (tests only): the window-by-window learner as it was before cells were advanced
lazily, kept to prove the lazy learner equal. Do not change its maths.

One deliberate change since: a new endpoint, persona or status code joins the vocabulary in the
window of its first event (it used to join when its batch began, so a new cell's exposure
depended on how events were cut into batches; shards could not be exact). And a second: a
spread of log values below 1e-9 of their mean square is rounding noise and counts as zero in
the pooling distance (a cell whose values were all one value got a spread from the last bits of
its sums, which differ between closed-form and step-by-step decay).

Three more rules, added with the library's (issue 15), shared with it where they are maths
(``driftbayes.conjugate.prior_weight``, ``driftbayes.changepoint.RunLengths``,
``driftbayes.open_sessions.censored_end_weights``) so both learners compute them alike:

* the synthetic prior fades as a cell's evidence grows (``prior_fade``): each kind's prior is
  scaled by ``prior_weight`` of the cell's count (errors: of its 5xx; transitions per source
  row, all personas);
* latency, errors and think time detect changes by run length (``changepoint_hazard`` > 0),
  every cell every window: a cell whose change probability exceeds ``changepoint_threshold``
  gets the run-length mixture of its statistics and an applied layer equal to its posterior;
  the z-test of ``changepoint_z`` then covers the request rate only;
* think time keeps a Dirichlet histogram (``think_hist`` on ``cj.THINK_EDGES_MS``) next to its
  log-normal summary, built and faded exactly as latency's (the predictive draws from it);
* a session's END is counted with the decay since its last request (not at full weight in the
  window its gap runs out), and the layers and gate report read the open sessions'
  provisional END mass (``censored_end_weights``) with the evidence.

The online drift learner: windows of event time, decay, gating and the applied layer.

:class:`DriftLearner` is a thin stateful shell over the pure functions in
:mod:`driftbayes.conjugate`. Traffic is cut into ``update_interval`` windows of *event time*
(the timestamps in the traffic), so replaying a recording is deterministic. At each window
boundary, per endpoint × persona cell and per pattern kind:

1. ``evidence ← (1-decay)·evidence + window_stats`` — the posterior is ``prior + evidence``;
2. ``n_eff`` and ``confidence`` (credible-interval contraction against the synthetic prior) are
   computed from the posterior;
3. where ``gate = enabled ∧ n_eff ≥ min_samples ∧ confidence ≥ confidence_threshold``,
   ``applied ← applied + sensitivity·(posterior − applied)``; elsewhere the applied layer fades
   toward the prior at rate ``decay``.

Everything is held as sufficient statistics (:class:`driftbayes.stats.Stats`), so two learners
over the same windows merge with ``+``.
"""

from __future__ import annotations

import copy
import difflib
import math
import warnings
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import pandas as pd

from driftbayes import conjugate as cj
from driftbayes.changepoint import RunLengths, online_kinds
from driftbayes.config import Config, GateUnreachableWarning, gate_reachable
from driftbayes.events import EventBatch
from driftbayes.globs import match_glob
from driftbayes.kinds import REGISTRY
from driftbayes.kinds.base import PriorContext
from driftbayes.open_sessions import censored_end_weights
from driftbayes.stats import Sizes as LibrarySizes
from tests.reference.dense_stats import (
    KIND_STATS,
    KINDS,
    N_HOURS,
    STAT_DIMS,
    Sizes,
    Stats,
    broadcast_gate,
)

LAYERS = ("prior", "posterior", "applied")
START, END = "START", "END"
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT"}
#: Beyond this many consecutive empty windows, evidence is advanced in closed form and only the
#: last ``_EXACT_EMPTY_WINDOWS`` are stepped one by one (gates and applied layer).
_EXACT_EMPTY_WINDOWS = 2000
_MAX_SKIP_WINDOWS = 1_000_000


def split_endpoint(name: str) -> tuple[str, str]:
    """``"GET /api/x"`` → ``("GET", "/api/x")``; a bare template gets method ``""``."""
    head, _, rest = name.partition(" ")
    if rest and head.upper() in _METHODS:
        return head.upper(), rest.strip()
    return "", name.strip()


def hour_seconds_before(t: np.ndarray) -> np.ndarray:
    """Seconds of ``[0, t)`` that fall in each UTC hour of day: shape ``t.shape + (24,)``."""
    t = np.asarray(t, dtype=float)[..., None]
    days = np.floor(t / 86400.0)
    in_day = t - days * 86400.0
    hours = np.arange(N_HOURS) * 3600.0
    return days * 3600.0 + np.clip(in_day - hours, 0.0, 3600.0)


def hour_exposure(t0, t1) -> np.ndarray:
    """Seconds of ``[t0, t1)`` in each UTC hour of day."""
    return hour_seconds_before(t1) - hour_seconds_before(t0)


@dataclass
class CellParams:
    """Conjugate parameters of one layer for every cell (the predictive the mock samples)."""

    lat_alpha: np.ndarray  # (E, P, B) Dirichlet over latency bins
    lat_nig: tuple  # (mu, kappa, alpha, beta), each (E, P), log-latency summary
    status_alpha: np.ndarray  # (E, P, S) Dirichlet over status codes
    think_alpha: np.ndarray  # (E, P, B') Dirichlet over think-time bins
    think_nig: tuple  # (E, P) log think time (ms)
    rate_a: np.ndarray  # (E, P) Gamma shape of the request rate (events/s)
    rate_b: np.ndarray  # (E, P) Gamma rate (exposure seconds)
    trans_alpha: np.ndarray  # (P, E+1, E+1) Dirichlet rows: src (endpoints, START) → dst (…, END)


class DriftLearner:
    """Bayesian drift learning over endpoint × persona cells.

    Parameters
    ----------
    config : Config, optional
        The ``drift_learning`` knobs (defaults when omitted).
    track_history : bool
        Keep per-window estimates (latency median, error rate, gates) for drift plots.

    Examples
    --------
    >>> from driftbayes.events import EventBatch
    >>> learner = DriftLearner()
    >>> batch = EventBatch.from_records(
    ...     [{"ts": 60.0 * i, "path": "/api/users/7", "status": 200, "latency_ms": 80.0}
    ...      for i in range(30)])
    >>> learner.learn_many(batch).endpoints_
    ['GET /api/users/{id}']
    """

    def __init__(self, config: Config | None = None, *, track_history: bool = False):
        self.config = config if config is not None else Config()
        self.track_history = track_history
        self._clear()

    # ------------------------------------------------------------------ state
    def _clear(self) -> None:
        self.endpoints_: list[str] = []
        self.personas_: list[str] = []
        syn = self.config.synthetic
        self.statuses_: list[int] = sorted({int(syn.status), int(syn.error_status)})
        self._endpoint_index: dict[str, int] = {}
        self._persona_index: dict[str, int] = {}
        self._status_index = {s: i for i, s in enumerate(self.statuses_)}
        sizes = self.sizes
        self.evidence_ = Stats.zeros(sizes)
        self.applied_ = Stats.zeros(sizes)
        self.pending_ = Stats.zeros(sizes)
        self.gate_ = self._closed_gates()
        self.window_: int | None = None
        self.t_first_ = math.nan
        self.t_last_ = math.nan
        self.n_events_ = 0
        self.n_late_ = 0
        self.changes_ = 0  # cell x kind changepoints detected (adaptive forgetting)
        self.n_windows_ = 0
        self._open_ids: dict[str, int] = {}
        self._open_e = np.empty(0, dtype=np.int64)
        self._open_p = np.empty(0, dtype=np.int64)
        self._open_ts = np.empty(0, dtype=float)
        self._open_alive = np.empty(0, dtype=bool)
        self.history_: list[tuple] = []
        #: (endpoint key, status) -> (content type, redacted body text), the latest recorded
        self.bodies_: dict[tuple[str, int], tuple[str, str]] = {}
        self._prior_cache: tuple | None = None
        self._warned_cells: set = set()
        self.runs = RunLengths(online_kinds(float(self.config.changepoint_hazard)),
                               self._library_sizes())

    def _library_sizes(self) -> LibrarySizes:
        return LibrarySizes(len(self.endpoints_), len(self.personas_), len(self.statuses_))

    @property
    def sizes(self) -> Sizes:
        return Sizes(len(self.endpoints_), len(self.personas_), len(self.statuses_))

    def _closed_gates(self) -> dict[str, np.ndarray]:
        s = self.sizes
        return {
            k: np.zeros((s.persona, s.endpoint + 1) if k == "transitions" else (s.endpoint, s.persona), bool)
            for k in KINDS
        }

    def _grow(self) -> None:
        sizes = self.sizes
        self.evidence_ = self.evidence_.grown(sizes)
        self.applied_ = self.applied_.grown(sizes)
        self.pending_ = self.pending_.grown(sizes)
        old = self.gate_
        self.gate_ = self._closed_gates()
        for k, g in old.items():
            if k == "transitions":  # src rows: endpoints, then START last
                self.gate_[k][: g.shape[0], : g.shape[1] - 1] = g[:, :-1]
                self.gate_[k][: g.shape[0], -1] = g[:, -1]
            else:
                self.gate_[k][: g.shape[0], : g.shape[1]] = g
        self._prior_cache = None
        self._prior_width_cache = None
        self.runs.grow(self._library_sizes())

    def _index(self, values: np.ndarray, vocab: list, index: dict):
        """Vocabulary codes of ``values`` and the new names with where each first appears
        (:meth:`_join` adds them)."""
        codes, uniq = pd.factorize(values)
        mapped = np.empty(len(uniq), dtype=np.int64)
        new, first = [], np.unique(codes, return_index=True)[1]
        where = []
        for i, u in enumerate(uniq.tolist()):
            j = index.get(u)
            if j is None:
                j = len(vocab) + len(new)
                new.append(u)
                where.append(first[i])
            mapped[i] = j
        return mapped[codes], (vocab, index, new, np.array(where, dtype=np.int64))

    def _join(self, joining, lo: int, hi: int) -> None:
        """Names whose first event is in ``[lo, hi)`` join their vocabularies."""
        grew = False
        for vocab, index, new, where in joining:
            for u, i in zip(new, where):
                if lo <= i < hi:
                    index[u] = len(vocab)
                    vocab.append(u)
                    grew = True
        if grew:
            self._grow()

    def _session_rows(self, sessions: np.ndarray) -> np.ndarray:
        """Rows of the open-session table for each event's session (-1 for no session)."""
        self._compact_sessions()
        codes, uniq = pd.factorize(sessions)
        uniq = uniq.tolist()
        rows = np.fromiter(map(self._open_ids.get, uniq, repeat(-1)), dtype=np.int64,
                           count=len(uniq))
        new = rows < 0
        no_session = uniq.index("") if "" in uniq else -1
        if no_session >= 0:
            new[no_session] = False
        new = np.flatnonzero(new)
        if new.size:
            start = len(self._open_ts)
            rows[new] = np.arange(start, start + new.size)
            self._open_ids.update(zip([uniq[i] for i in new.tolist()], rows[new].tolist()))
            pad = new.size
            self._open_e = np.r_[self._open_e, np.zeros(pad, np.int64)]
            self._open_p = np.r_[self._open_p, np.zeros(pad, np.int64)]
            self._open_ts = np.r_[self._open_ts, np.zeros(pad)]
            self._open_alive = np.r_[self._open_alive, np.zeros(pad, bool)]
        if no_session >= 0:
            rows[no_session] = -1
        return rows[codes]

    def _compact_sessions(self) -> None:
        """Drop ended sessions from the table once they outnumber the open ones."""
        dead = len(self._open_alive) - int(self._open_alive.sum())
        if dead < 10_000 or dead < 2 * (len(self._open_alive) - dead):
            return
        keep = np.flatnonzero(self._open_alive)
        ids = {row: sid for sid, row in self._open_ids.items()}
        self._open_ids = {ids[r]: i for i, r in enumerate(keep)}
        self._open_e, self._open_p = self._open_e[keep], self._open_p[keep]
        self._open_ts, self._open_alive = self._open_ts[keep], self._open_alive[keep]

    # ------------------------------------------------------------------ priors
    def _prior(self):
        """Synthetic pseudo-statistics per endpoint (cached until the vocabulary grows)."""
        if self._prior_cache is not None:
            return self._prior_cache
        cfg = self.config
        E, S = len(self.endpoints_), len(self.statuses_)
        syns = [cfg.synthetic_for(e) for e in self.endpoints_]

        def col(attr):
            return np.array([getattr(s, attr) for s in syns], dtype=float)

        strength = col("prior_strength")
        lat_alpha = cj.dirichlet_prior_alpha(
            median_ms=col("latency_median_ms"), sigma=col("latency_sigma"), strength=strength
        ).reshape(E, cj.N_LATENCY_BINS)
        lat_nig = cj.nig_prior(
            median_ms=col("latency_median_ms"), sigma=col("latency_sigma"), strength=strength
        )
        status = np.zeros((E, S))
        for i, s in enumerate(syns):
            status[i, self._status_index[int(s.status)]] += s.prior_strength * (1 - s.error_rate)
            status[i, self._status_index[int(s.error_status)]] += s.prior_strength * s.error_rate
        status = np.maximum(status, 0.0) + cj._ALPHA_FLOOR  # codes the synthetic mock never serves
        think_nig = cj.nig_prior(
            median_ms=col("think_time_median_ms"), sigma=col("think_time_sigma"), strength=strength
        )
        think_alpha = cj.dirichlet_prior_alpha(
            median_ms=col("think_time_median_ms"), sigma=col("think_time_sigma"),
            strength=strength, log_edges=cj.THINK_LOG_EDGES,
        ).reshape(E, cj.N_THINK_BINS)
        rate_a, rate_b = cj.gamma_prior(rate=col("rate_per_s"), strength=strength)
        # transition rows: endpoint rows end with prob 1/session_length, START rows never end
        g = cfg.synthetic
        trans = np.zeros((E + 1, E + 1))
        if E:
            p_end = 1.0 / col("session_length")
            trans[:E, :E] = (strength * (1 - p_end) / E)[:, None]
            trans[:E, E] = strength * p_end
            trans[E, :E] = g.prior_strength / E
        trans = np.maximum(trans, 0.0) + cj._ALPHA_FLOOR * (trans == 0) * (E > 0)
        trans[E, E] = 0.0  # an empty session is impossible
        self._prior_cache = (lat_alpha, lat_nig, status, (think_alpha, think_nig), rate_a, rate_b,
                             trans)
        self._strength_col = strength
        ctx = PriorContext(syns, cfg.synthetic, self.statuses_, self._status_index)
        self._kind_prior_cache = {name: kind.prior(ctx) for name, kind in REGISTRY.items()
                                  if kind.online_change}
        return self._prior_cache

    def _kind_priors(self) -> dict:
        """The online kinds' priors as the library's kinds build them (run-length predictives)."""
        self._prior()
        return self._kind_prior_cache

    # ------------------------------------------------------------------ learning
    def learn_one(self, event: dict) -> DriftLearner:
        """Learn from one canonical event dict (see :meth:`EventBatch.from_records`)."""
        return self.learn_many(EventBatch.from_records([event]))

    def learn_many(self, batch: EventBatch) -> DriftLearner:
        """Learn from a batch of events in order; windows close as event time passes them."""
        if len(batch) == 0:
            return self
        interval = float(self.config.update_interval)
        mc, mu = pd.factorize(batch.method)
        tc, tu = pd.factorize(batch.endpoint)
        pair, pairs = pd.factorize(mc * len(tu) + tc)
        keys = np.array([f"{mu[k // len(tu)]} {tu[k % len(tu)]}" for k in pairs], dtype=object)
        e, join_e = self._index(keys[pair], self.endpoints_, self._endpoint_index)
        if "response_body" in batch.extra:
            self._remember_bodies(keys[pair], batch)
        p, join_p = self._index(batch.persona, self.personas_, self._persona_index)
        has_status = np.flatnonzero(batch.status > 0)
        s = np.full(len(batch), -1, dtype=np.int64)
        s[has_status], join_s = self._index(batch.status[has_status].astype(np.int64),
                                            self.statuses_, self._status_index)
        join_s = join_s[:3] + (has_status[join_s[3]],)
        rows = self._session_rows(batch.session)
        win = np.floor(batch.ts / interval).astype(np.int64)
        if self.window_ is None:
            self.window_ = int(win[0])
            self.t_first_ = float(batch.ts[0])
        eff = np.maximum.accumulate(np.concatenate([[self.window_], win]))[1:]
        self.n_late_ += int(np.count_nonzero(win < eff))
        cuts = np.flatnonzero(np.diff(eff)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(eff)]):
            if eff[lo] > self.window_:
                self._advance(int(eff[lo]))
            self._join((join_e, join_p, join_s), lo, hi)
            self._accumulate(batch, e, p, s, rows, slice(lo, hi))
        self.n_events_ += len(batch)
        self.t_last_ = float(np.nanmax([self.t_last_, batch.ts.max()]))
        return self

    def _remember_bodies(self, keys: np.ndarray, b: EventBatch) -> None:
        """Keep the latest (already redacted) response body per endpoint × status."""
        body = b.extra["response_body"]
        ctype = b.extra.get("response_content_type")
        for i in np.flatnonzero(pd.notna(body) & (b.status > 0)):
            if isinstance(body[i], str) and body[i]:
                ct = ctype[i] if ctype is not None and isinstance(ctype[i], str) else ""
                self.bodies_[(str(keys[i]), int(b.status[i]))] = (ct or "application/json", body[i])

    def _accumulate(self, b: EventBatch, e, p, s, rows, sl: slice) -> None:
        """Add one window's events to the pending statistics (vectorised)."""
        e, p, s = e[sl], p[sl], s[sl]
        ts, lat = b.ts[sl], b.latency_ms[sl]
        E, P, S = len(self.endpoints_), len(self.personas_), len(self.statuses_)
        B = cj.N_LATENCY_BINS
        pend = self.pending_
        cell = e * P + p
        ok = np.isfinite(lat) & (lat >= 0)
        if ok.any():
            c, x = cell[ok], np.log(np.maximum(lat[ok], 1e-3))
            bins = cj.bin_index(lat[ok])
            pend["lat_hist"] += np.bincount(c * B + bins, minlength=E * P * B).reshape(E, P, B)
            pend["lat_n"] += np.bincount(c, minlength=E * P).reshape(E, P)
            pend["lat_sx"] += np.bincount(c, weights=x, minlength=E * P).reshape(E, P)
            pend["lat_sxx"] += np.bincount(c, weights=x * x, minlength=E * P).reshape(E, P)
        ok = s >= 0
        if ok.any():
            pend["status_count"] += np.bincount(
                cell[ok] * S + s[ok], minlength=E * P * S
            ).reshape(E, P, S)
        hour = (np.floor(ts / 3600.0).astype(np.int64)) % N_HOURS
        pend["freq_count"] += np.bincount(cell * N_HOURS + hour, minlength=E * P * N_HOURS).reshape(
            E, P, N_HOURS
        )
        rows = rows[sl]
        has = rows >= 0
        if has.any():
            self._accumulate_sessions(rows[has], e[has], p[has], ts[has])

    def _accumulate_sessions(self, row, e, p, ts) -> None:
        """Transitions and think times from consecutive requests of each session."""
        E, P = len(self.endpoints_), len(self.personas_)
        gap = float(self.config.session_gap)
        order = np.argsort(row, kind="stable")
        row, e, p, ts = row[order], e[order], p[order], ts[order]
        first = np.r_[True, row[1:] != row[:-1]]
        # previous request of each event: within the window, else the open-session table
        prev_e, prev_p, prev_ts = np.r_[-1, e[:-1]], np.r_[-1, p[:-1]], np.r_[np.nan, ts[:-1]]
        fr = row[first]
        alive = self._open_alive[fr]
        prev_e[first] = np.where(alive, self._open_e[fr], -1)
        prev_p[first] = np.where(alive, self._open_p[fr], -1)
        prev_ts[first] = np.where(alive, self._open_ts[fr], np.nan)
        has_prev = prev_e >= 0
        dt = ts - prev_ts
        cont = has_prev & (dt <= gap)
        broke = has_prev & ~cont
        trans = self.pending_["trans_count"]
        n = (E + 1) * (E + 1)
        src = np.where(cont, prev_e, E)  # START when the session (re)starts here
        flat = p * n + src * (E + 1) + e
        trans += np.bincount(flat, minlength=P * n).reshape(P, E + 1, E + 1)
        if broke.any():  # the previous session ended before this request, at its last one
            flat = prev_p[broke] * n + prev_e[broke] * (E + 1) + E
            trans += np.bincount(flat, weights=self._end_weight(self.window_, prev_ts[broke]),
                                 minlength=P * n).reshape(P, E + 1, E + 1)
        if cont.any():
            c = prev_e[cont] * P + p[cont]
            x = np.log(np.maximum(dt[cont] * 1000.0, 1.0))
            pend = self.pending_
            B = cj.N_THINK_BINS
            bins = cj.bin_index(dt[cont] * 1000.0, cj.THINK_EDGES_MS)
            pend["think_hist"] += np.bincount(c * B + bins, minlength=E * P * B).reshape(E, P, B)
            pend["think_n"] += np.bincount(c, minlength=E * P).reshape(E, P)
            pend["think_sx"] += np.bincount(c, weights=x, minlength=E * P).reshape(E, P)
            pend["think_sxx"] += np.bincount(c, weights=x * x, minlength=E * P).reshape(E, P)
        last = np.r_[np.flatnonzero(first)[1:] - 1, len(row) - 1]
        r = row[last]
        self._open_e[r], self._open_p[r], self._open_ts[r] = e[last], p[last], ts[last]
        self._open_alive[r] = True

    def _expire_sessions(self, window: int, stats: Stats, weight: float = 1.0) -> None:
        """END transitions for sessions whose inactivity gap has passed by the window's end."""
        if not self._open_alive.any():
            return
        end = (window + 1) * float(self.config.update_interval)
        dead = self._open_alive & (self._open_ts + float(self.config.session_gap) < end)
        if not dead.any():
            return
        E, P = len(self.endpoints_), len(self.personas_)
        n = (E + 1) * (E + 1)
        flat = self._open_p[dead] * n + self._open_e[dead] * (E + 1) + E
        w = weight * self._end_weight(window, self._open_ts[dead])
        stats["trans_count"] += np.bincount(flat, weights=w, minlength=P * n).reshape(
            P, E + 1, E + 1)
        self._open_alive &= ~dead

    def _end_weight(self, window: int, ts: np.ndarray) -> np.ndarray:
        """A session END confirmed in ``window`` after a last request at ``ts``: the decay
        since that request's window."""
        T = float(self.config.update_interval)
        age = np.maximum(window - np.floor(np.asarray(ts) / T), 0.0)
        return (1.0 - float(self.config.decay)) ** age

    # ------------------------------------------------------------------ window boundaries
    def _advance(self, target: int) -> None:
        """Close the open window and every empty window before ``target``."""
        assert self.window_ is not None
        self._close(self.window_)
        empty = target - self.window_ - 1
        first_exact = self.window_ + 1
        if empty > _EXACT_EMPTY_WINDOWS:
            skipped = empty - _EXACT_EMPTY_WINDOWS
            self._skip_empty(self.window_ + 1, skipped)
            first_exact += skipped
        for w in range(first_exact, target):
            self._close(w)
        self.window_ = target

    def _skip_empty(self, first: int, count: int) -> None:
        """Advance evidence over ``count`` empty windows in closed form (applied layer fades)."""
        lam = float(self.config.decay)
        T = float(self.config.update_interval)
        keep = (1.0 - lam) ** count
        ev = self.evidence_.scaled(keep)
        if lam == 0.0:
            expo = hour_exposure(first * T, (first + count) * T)
        else:
            m = min(count, _MAX_SKIP_WINDOWS)
            idx = np.arange(first + count - m, first + count)
            w = (1.0 - lam) ** (first + count - 1 - idx)
            expo = (w[:, None] * hour_exposure(idx * T, (idx + 1) * T)).sum(axis=0)
        ev["freq_exposure"] = ev["freq_exposure"] + expo
        if self._open_alive.any():
            # each open session ends in the window where its gap runs out
            wend = np.floor((self._open_ts + float(self.config.session_gap)) / T).astype(np.int64)
            due = self._open_alive & (wend < first + count)
            if due.any():
                E, P = len(self.endpoints_), len(self.personas_)
                n = (E + 1) * (E + 1)
                wt = self._end_weight(first + count - 1, self._open_ts[due])
                flat = self._open_p[due] * n + self._open_e[due] * (E + 1) + E
                ev["trans_count"] += np.bincount(flat, weights=wt, minlength=P * n).reshape(
                    P, E + 1, E + 1
                )
                self._open_alive &= ~due
        self.evidence_ = ev
        self.applied_ = self.applied_.scaled(keep)
        self.n_windows_ += count

    def _close(self, window: int) -> None:
        """Close one window: decay, add its statistics, re-gate, move the applied layer."""
        cfg = self.config
        T = float(cfg.update_interval)
        pend = self.pending_
        self._expire_sessions(window, pend)
        pend["freq_exposure"] += hour_exposure(window * T, (window + 1) * T)[None, None, :]
        lam = float(cfg.decay)
        ev = cj.decay_evidence(self.evidence_, decay=lam)
        online = self.runs.kinds
        if float(cfg.changepoint_z) > 0:
            self.changes_ += self._forget_contradicted(ev, pend, float(cfg.changepoint_z),
                                                       skip=online)
        new = ev + pend
        changed = {}
        if online:
            every = np.arange(len(self.endpoints_))
            n, changed = self.runs.step(
                window, every, ev, pend, new, prior=self._kind_priors(),
                strength={k: self._strength_col for k in online},
                hazard=float(cfg.changepoint_hazard),
                threshold=float(cfg.changepoint_threshold), decay=lam, statuses=self.statuses_)
            self.changes_ += n
            self.runs.push(window, every, pend)
        self.evidence_ = new
        pooled = self.pooled_evidence()
        report = self._gates(pooled)
        s = float(cfg.sensitivity)
        for kind, names in KIND_STATS.items():
            g = report["gate"][kind]
            for name in names:
                gb = broadcast_gate(g, name)
                a = self.applied_[name]
                self.applied_[name] = np.where(gb, a + s * (pooled[name] - a), (1.0 - lam) * a)
                if kind in changed:
                    self.applied_[name] = np.where(broadcast_gate(changed[kind], name),
                                                   pooled[name], self.applied_[name])
        self.gate_ = report["gate"]
        if self.track_history:
            self._record(window, pend, pooled, report)
        self.pending_ = Stats.zeros(self.sizes)
        self.n_windows_ += 1

    def _forget_contradicted(self, ev: Stats, pend: Stats, z: float, skip=()) -> int:
        """Adaptive forgetting: cells whose window contradicts their evidence (latency, think
        time, error rate, request rate) keep :data:`~driftbayes.conjugate.CHANGEPOINT_KEEP` of
        that kind's evidence. Returns how many cell × kind changes were detected."""
        statuses = np.asarray(self.statuses_)
        flags = {
            "latency": cj.mean_shift_changed(ev["lat_n"], ev["lat_sx"], ev["lat_sxx"],
                                             pend["lat_n"], pend["lat_sx"], z=z),
            "think_time": cj.mean_shift_changed(ev["think_n"], ev["think_sx"], ev["think_sxx"],
                                                pend["think_n"], pend["think_sx"], z=z),
            "errors": cj.proportion_changed(
                ev["status_count"][..., statuses >= 500].sum(-1), ev["status_count"].sum(-1),
                pend["status_count"][..., statuses >= 500].sum(-1),
                pend["status_count"].sum(-1), z=z),
            "frequency": cj.rate_changed(
                ev["freq_count"].sum(-1), ev["freq_exposure"].sum(-1),
                pend["freq_count"].sum(-1), pend["freq_exposure"].sum(-1), z=z),
        }
        n = 0
        for kind, changed in flags.items():
            if kind in skip or not changed.any():
                continue
            n += int(changed.sum())
            for name in KIND_STATS[kind]:  # exposure too: the rate estimate stays, its weight drops
                ev[name] = np.where(broadcast_gate(changed, name), ev[name] * cj.CHANGEPOINT_KEEP,
                                    ev[name])
        return n

    # ------------------------------------------------------------------ pooling, confidence, gates
    def pooled_evidence(self, evidence: Stats | None = None) -> Stats:
        """Evidence behind each cell's posterior, relative to the synthetic prior.

        With ``persona_adaptation`` a persona cell with fewer than ``pooling_strength``
        (decayed) observations borrows the difference from its endpoint's other personas, their
        evidence down-weighted to that many pseudo-observations — but never more than its own
        data can vouch for: with ``d`` the distance between its own estimate and the others'
        and ``se`` its own standard error, at most ``own · se / (|d| − se)`` when ``|d| > se``
        (so the borrowed data cannot pull the estimate further than one standard error; see
        :func:`_consistent_borrowing`). A persona with few samples falls back to its endpoint,
        one whose data shows it behaves differently keeps its own. Without it, every persona
        shares the endpoint's all-persona evidence. Request frequency is never pooled.
        """
        ev = self.evidence_ if evidence is None else evidence
        cfg = self.config
        out = ev.copy()
        for kind, names in KIND_STATS.items():
            if kind == "frequency":
                continue
            axis = 0 if kind == "transitions" else 1
            own = _kind_count(ev, kind)
            others = own.sum(axis=axis, keepdims=True) - own
            with np.errstate(divide="ignore", invalid="ignore"):
                borrow = np.minimum(np.maximum(float(cfg.pooling_strength) - own, 0.0),
                                    _consistent_borrowing(ev, kind, axis, self.statuses_))
                w = np.where(others > 0, np.minimum(1.0, borrow / others), 0.0)
            for name in names:
                total = ev[name].sum(axis=axis, keepdims=True)
                if cfg.persona_adaptation:
                    out[name] = ev[name] + broadcast_gate(w, name) * (total - ev[name])
                else:
                    out[name] = np.broadcast_to(total, ev[name].shape).copy()
        return out

    def _enabled(self) -> dict[str, np.ndarray]:
        cfg = self.config
        e_on = np.array([cfg.endpoint_enabled(e) for e in self.endpoints_], dtype=bool)
        p_on = np.array([cfg.persona_enabled(p) for p in self.personas_], dtype=bool)
        out = {}
        for kind in KINDS:
            on = bool(cfg.enabled) and cfg.learns(kind)
            if kind == "transitions":
                src_on = np.r_[e_on, True]
                out[kind] = on & p_on[:, None] & src_on[None, :]
            else:
                out[kind] = on & e_on[:, None] & p_on[None, :]
        return out

    def _gates(self, pooled: Stats) -> dict:
        """n_eff, confidence and the gate, per kind and cell."""
        cfg = self.config
        post = self.params_from(pooled)
        mass = float(cfg.credible_mass)
        prior_w = self._prior_widths(mass)
        conf, n_eff = {}, {}
        lo_q, hi_q = cj.tail_probs(mass)
        lat_q = cj.dirichlet_median_quantiles(post.lat_alpha, [lo_q, 0.5, hi_q])
        for kind in KINDS:
            n_eff[kind] = _kind_count(pooled, kind)
            if kind == "frequency":
                # a rate is learned from exposure as much as from events: n_eff is the number
                # of requests the synthetic rate predicts for the (decayed) exposure seen, so
                # an endpoint that stays quiet for hours is known to be quiet
                rate_a, rate_b = self._prior()[4:6]
                n_eff[kind] = pooled["freq_exposure"].sum(-1) * (rate_a / rate_b)[:, None]
            if kind == "latency":
                w_post, w_prior = np.log(lat_q[..., 2] / lat_q[..., 0]), prior_w[kind]
            elif kind == "transitions":  # the row's most likely next state
                top = np.argmax(post.trans_alpha, axis=-1)[..., None]
                w_post = _component_width(post.trans_alpha, top, mass)
                w_prior = np.take_along_axis(
                    np.broadcast_to(prior_w[kind], post.trans_alpha.shape), top, -1)[..., 0]
            else:
                w_post, w_prior = self._width(kind, post, mass), prior_w[kind]
            conf[kind] = cj.contraction(w_post, w_prior)
        enabled = self._enabled()
        gate = {
            k: enabled[k]
            & (n_eff[k] >= float(cfg.min_samples))
            & (conf[k] >= float(cfg.confidence_threshold))
            for k in KINDS
        }
        return {"gate": gate, "confidence": conf, "n_eff": n_eff, "enabled": enabled,
                "posterior": post, "latency_quantiles": lat_q}

    def gate_report(self) -> dict:
        """The gate report (the read API the patterns table uses today)."""
        return self._gates(self.pooled_evidence(self.read_evidence()))

    def censored_ends(self) -> np.ndarray:
        """``(P, E+1, E+1)`` provisional END mass of the sessions open at the end of the last
        closed window (their last request before it)."""
        E, P = len(self.endpoints_), len(self.personas_)
        out = np.zeros((P, E + 1, E + 1))
        if self.window_ is None:
            return out
        T = float(self.config.update_interval)
        now = self.window_ * T
        known = self._open_alive & (self._open_ts < now)
        if not known.any():
            return out
        post = self.params_from(self.pooled_evidence())
        w = censored_end_weights(self._open_e[known], self._open_p[known], self._open_ts[known],
                                 now=now, think=cj.NIG(*post.think_nig),
                                 p_end=cj.dirichlet_mean(post.trans_alpha)[..., E], interval=T,
                                 decay=float(self.config.decay))
        np.add.at(out, (self._open_p[known], self._open_e[known], E), w)
        return out

    def read_evidence(self, stats: Stats | None = None, gate=None) -> Stats:
        """``stats`` (default: the evidence) plus the censored END mass (rows where ``gate``)."""
        stats = self.evidence_ if stats is None else stats
        ends = self.censored_ends()
        if gate is not None:
            ends = ends * np.asarray(gate, float)[..., None]
        out = Stats(dict(stats.arrays))
        out["trans_count"] = stats["trans_count"] + ends
        return out

    def _prior_widths(self, mass: float) -> dict[str, np.ndarray]:
        """Credible-interval widths under the synthetic prior (cached per vocabulary)."""
        key = (mass, self.sizes.endpoint, self.sizes.persona, self.sizes.status)
        cache = getattr(self, "_prior_width_cache", None)
        if cache is not None and cache[0] == key:
            return cache[1]
        prior = self.params_from(None)
        widths = {k: self._width(k, prior, mass) for k in KINDS if k != "transitions"}
        alpha = prior.trans_alpha[:1]
        widths["transitions"] = cj.beta_width_stabilised(
            alpha, alpha.sum(-1, keepdims=True) - alpha, mass=mass)
        self._prior_width_cache = (key, widths)
        return widths

    def _width(self, kind: str, prm: CellParams, mass: float):
        """Width of the credible interval of a kind's key quantity (log scale for positives)."""
        lo_q, hi_q = cj.tail_probs(mass)
        if kind == "latency":
            q = cj.dirichlet_median_quantiles(prm.lat_alpha, [lo_q, hi_q])
            return np.log(q[..., 1]) - np.log(q[..., 0])
        if kind == "errors":
            a5, rest = _error_split(prm.status_alpha, self.statuses_, 500)
            return cj.beta_width_stabilised(a5, rest, mass=mass)
        if kind == "think_time":
            mu, kappa, alpha, beta = prm.think_nig
            lo, hi = cj.nig_mean_interval(mu=mu, kappa=kappa, alpha=alpha, beta=beta, mass=mass)
            return hi - lo
        if kind == "frequency":
            # on the square-root scale, Poisson's variance-stabilising one: the width shrinks
            # with exposure even when no request arrives (on the log scale it would not)
            lo, hi = cj.gamma_interval(prm.rate_a, prm.rate_b, mass=mass)
            return np.sqrt(hi) - np.sqrt(lo)
        raise ValueError(kind)

    # ------------------------------------------------------------------ layers
    def params_from(self, evidence: Stats | None) -> CellParams:
        """Synthetic prior plus ``evidence`` (relative to it) → conjugate parameters per cell."""
        lat_alpha, lat_nig, status, (think_alpha, think_nig), rate_a, rate_b, trans = self._prior()
        E, P = len(self.endpoints_), len(self.personas_)
        ev = evidence if evidence is not None else Stats.zeros(self.sizes)
        fade = float(self.config.prior_fade) if evidence is not None else 0.0
        k = self._strength_col[:, None]

        def keep(n, strength=k):  # the share of the prior a cell keeps (power-prior fading)
            return cj.prior_weight(n, strength=strength, fade=fade)

        def nig(prior, prefix):
            mu0, k0, a0, b0 = (np.asarray(x)[:, None] for x in prior)
            w = keep(ev[f"{prefix}_n"])
            return cj.normal_nig_posterior(
                mu0=mu0, kappa0=k0 * w, alpha0=a0 * w, beta0=b0 * w,
                n=ev[f"{prefix}_n"], sx=ev[f"{prefix}_sx"], sxx=ev[f"{prefix}_sxx"],
            )

        w_rate = keep(ev["freq_count"].sum(-1))
        a, b = cj.poisson_gamma_posterior(
            a0=rate_a[:, None] * w_rate, b0=rate_b[:, None] * w_rate,
            count=ev["freq_count"].sum(-1), exposure=ev["freq_exposure"].sum(-1),
        )
        row_k = np.r_[self._strength_col, float(self.config.synthetic.prior_strength)]
        w_rows = keep(ev["trans_count"].sum(axis=(0, 2)), row_k)
        return CellParams(
            lat_alpha=lat_alpha[:, None, :] * keep(ev["lat_n"])[..., None] + ev["lat_hist"],
            lat_nig=tuple(np.broadcast_to(x, (E, P)) for x in nig(lat_nig, "lat")),
            status_alpha=(status[:, None, :]
                          * keep(_error_split(ev["status_count"], self.statuses_, 500)[0])[
                              ..., None] + ev["status_count"]),
            think_alpha=think_alpha[:, None, :] * keep(ev["think_n"])[..., None] + ev["think_hist"],
            think_nig=tuple(np.broadcast_to(x, (E, P)) for x in nig(think_nig, "think")),
            rate_a=np.broadcast_to(a, (E, P)),
            rate_b=np.broadcast_to(b, (E, P)),
            trans_alpha=trans[None, :, :] * w_rows[None, :, None] + ev["trans_count"],
        )

    def snapshot(self) -> DriftLearner:
        """A copy with the open window closed, so every event seen so far is in the layers."""
        # the history and the open-session ids (str -> int) need no deep copy
        history, self.history_ = self.history_, []
        open_ids, self._open_ids = self._open_ids, {}
        try:
            snap = copy.deepcopy(self)
        finally:
            self.history_, self._open_ids = history, open_ids
        snap._open_ids = dict(open_ids)
        snap.track_history = False
        if snap.window_ is not None and _has_events(snap.pending_):
            snap._advance(snap.window_ + 1)
        return snap

    def layer(self, name: str) -> CellParams:
        """Conjugate parameters of the ``prior``, ``posterior`` or ``applied`` layer."""
        if name == "prior":
            return self.params_from(None)
        if name == "posterior":
            return self.params_from(self.pooled_evidence(self.read_evidence()))
        if name == "applied":
            return self.params_from(self.read_evidence(self.applied_, self.gate_["transitions"]))
        raise ValueError(f"unknown layer {name!r}; choose one of {', '.join(LAYERS)}")

    # ------------------------------------------------------------------ names
    def resolve_endpoint(self, name: str) -> int:
        """Index of an endpoint named ``/tmpl`` or ``METHOD /tmpl`` (method only disambiguates)."""
        method, tmpl = split_endpoint(name)
        if method:
            key = f"{method} {tmpl}"
            if key in self._endpoint_index:
                return self._endpoint_index[key]
            hits = []
        else:
            hits = [i for i, k in enumerate(self.endpoints_) if split_endpoint(k)[1] == tmpl]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                methods = ", ".join(split_endpoint(self.endpoints_[i])[0] for i in hits)
                raise KeyError(
                    f"endpoint {tmpl!r} has several methods ({methods}); "
                    f"name one, e.g. '{split_endpoint(self.endpoints_[hits[0]])[0]} {tmpl}'"
                )
        close = difflib.get_close_matches(name, self.endpoints_ + [split_endpoint(k)[1] for k in self.endpoints_], n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"unknown endpoint {name!r}{hint}")

    def resolve_persona(self, name: str) -> int:
        if name in self._persona_index:
            return self._persona_index[name]
        known = ", ".join(self.personas_) or "none yet"
        raise KeyError(f"unknown persona {name!r} (known: {known})")

    def match_endpoints(self, pattern: str) -> np.ndarray:
        """Boolean mask of endpoints matching a glob (``/api/users/*`` or ``GET /api/*``)."""
        return np.array([bool(match_glob({pattern: True}, e)) for e in self.endpoints_], dtype=bool)

    # ------------------------------------------------------------------ reset & merge
    def reset(self, endpoint: str | None = None, persona: str | None = None) -> int:
        """Forget learned patterns (evidence, applied, pending) for matching cells.

        Returns the number of endpoint × persona cells reset. With no filter, everything is
        forgotten, vocabulary included.
        """
        if endpoint is None and persona is None:
            n = len(self.endpoints_) * len(self.personas_)
            cfg, track = self.config, self.track_history
            self.__init__(cfg, track_history=track)
            return n
        E, P = len(self.endpoints_), len(self.personas_)
        e_mask = self.match_endpoints(endpoint) if endpoint else np.ones(E, bool)
        p_mask = np.ones(P, bool)
        if persona is not None:
            p_mask = np.zeros(P, bool)
            p_mask[self.resolve_persona(persona)] = True
        cells = e_mask[:, None] & p_mask[None, :]
        rows = np.r_[e_mask, endpoint is None][None, :] & p_mask[:, None]
        for stats in (self.evidence_, self.applied_, self.pending_):
            for name, dims in STAT_DIMS.items():
                mask = rows if dims[0] == "persona" else cells
                stats[name] = np.where(broadcast_gate(mask, name), 0.0, stats[name])
        for kind, g in self.gate_.items():
            g &= ~(rows if kind == "transitions" else cells)
        self.runs.reset_cells(cells)
        if endpoint is not None:
            gone = {self.endpoints_[i] for i in np.flatnonzero(e_mask)}
            self.bodies_ = {k: v for k, v in self.bodies_.items() if k[0] not in gone}
        return int(cells.sum())

    def __add__(self, other: DriftLearner) -> DriftLearner:
        """Merge two learners that saw disjoint traffic (e.g. shards) under the same config.

        Both are first brought to the same open window. Data statistics add; exposure (the
        observed time behind request rates) is shared, so it merges as the elementwise maximum.
        Evidence and pending statistics merge exactly when no shard detected a change
        (``changepoint_z`` = 0, or no window contradicted its evidence: adaptive forgetting
        depends on the data a shard saw); the applied layer is a controller whose path depends
        on the gates, so merged applied statistics are the sum of the shards'.
        """
        if self.config.to_dict() != other.config.to_dict():
            raise ValueError("cannot merge learners with different configs")
        a, b = self.__class__._aligned(self, other)
        out = a
        for attr in ("evidence_", "applied_", "pending_"):
            x, y = getattr(a, attr), getattr(b, attr)
            merged = x + y
            # exposure is observed time, not data: shards watching the same clock share it
            merged["freq_exposure"] = np.maximum(x["freq_exposure"], y["freq_exposure"])
            setattr(out, attr, merged)
        out.gate_ = {k: a.gate_[k] | b.gate_[k] for k in KINDS}
        out.runs.merge(b.runs)
        out.bodies_ = {**other.bodies_, **self.bodies_}
        out.n_events_ += b.n_events_
        out.n_late_ += b.n_late_
        out.t_first_ = float(np.nanmin([a.t_first_, b.t_first_]))
        out.t_last_ = float(np.nanmax([a.t_last_, b.t_last_]))
        for sid, row in b._open_ids.items():
            if b._open_alive[row]:
                mine = out._open_ids.get(sid)
                if mine is None or out._open_ts[mine] < b._open_ts[row] or not out._open_alive[mine]:
                    (r,) = out._session_rows(np.array([sid], dtype=object))
                    out._open_e[r], out._open_p[r] = b._open_e[row], b._open_p[row]
                    out._open_ts[r], out._open_alive[r] = b._open_ts[row], True
        return out

    @staticmethod
    def _aligned(x: DriftLearner, y: DriftLearner) -> tuple[DriftLearner, DriftLearner]:
        a, b = copy.deepcopy(x), copy.deepcopy(y)
        # y's vocabulary indices are remapped into a's (appending new names)
        for vocab_b, vocab_a, index_a in (
            (b.endpoints_, a.endpoints_, a._endpoint_index),
            (b.personas_, a.personas_, a._persona_index),
            (b.statuses_, a.statuses_, a._status_index),
        ):
            for v in vocab_b:
                if v not in index_a:
                    index_a[v] = len(vocab_a)
                    vocab_a.append(v)
        a._grow()
        remapped = DriftLearner(a.config)
        remapped.endpoints_, remapped.personas_, remapped.statuses_ = (
            list(a.endpoints_), list(a.personas_), list(a.statuses_))
        remapped._endpoint_index = dict(a._endpoint_index)
        remapped._persona_index = dict(a._persona_index)
        remapped._status_index = dict(a._status_index)
        ie = np.array([a._endpoint_index[v] for v in b.endpoints_], dtype=np.int64)
        ip = np.array([a._persona_index[v] for v in b.personas_], dtype=np.int64)
        is_ = np.array([a._status_index[v] for v in b.statuses_], dtype=np.int64)
        E = len(a.endpoints_)
        isrc = np.r_[ie, E]
        maps = {"endpoint": ie, "persona": ip, "status": is_, "src": isrc, "dst": isrc}
        for attr in ("evidence_", "applied_", "pending_"):
            src = getattr(b, attr)
            dst = Stats.zeros(remapped.sizes)
            for name, dims in STAT_DIMS.items():
                idx = tuple(maps.get(d, np.arange(src[name].shape[i])) for i, d in enumerate(dims))
                dst[name][np.ix_(*idx)] = src[name]
            setattr(remapped, attr, dst)
        remapped.gate_ = remapped._closed_gates()
        for k, g in b.gate_.items():
            idx = (ip, isrc) if k == "transitions" else (ie, ip)
            remapped.gate_[k][np.ix_(*idx)] = g
        remapped.runs = b.runs.remapped(ie, ip, is_, remapped._library_sizes())
        remapped.window_, remapped.n_events_, remapped.n_late_ = b.window_, b.n_events_, b.n_late_
        remapped.t_first_, remapped.t_last_ = b.t_first_, b.t_last_
        remapped._open_ids = dict(b._open_ids)
        remapped._open_e = ie[b._open_e] if len(b._open_e) else b._open_e.copy()
        remapped._open_p = ip[b._open_p] if len(b._open_p) else b._open_p.copy()
        remapped._open_ts, remapped._open_alive = b._open_ts.copy(), b._open_alive.copy()
        b = remapped
        # bring both to the same open window
        if a.window_ is None:
            a.window_ = b.window_
        if b.window_ is None:
            b.window_ = a.window_
        if a.window_ is not None:
            target = max(a.window_, b.window_)
            for s in (a, b):
                if s.window_ < target:
                    s._advance(target)
        return a, b

    # ------------------------------------------------------------------ history & warnings
    def _record(self, window: int, pend: Stats, pooled: Stats, report: dict) -> None:
        T = float(self.config.update_interval)
        post, lat_q = report["posterior"], report["latency_quantiles"]
        appl = self.params_from(self.applied_)
        mass = float(self.config.credible_mass)
        lat_a = cj.dirichlet_median_quantiles(appl.lat_alpha, [0.5])[..., 0]
        a5, rest = _error_split(post.status_alpha, self.statuses_, 500)
        err_lo, err_hi = cj.beta_interval(a5, rest, mass=mass)
        err_med = a5 / np.maximum(a5 + rest, 1e-300)
        b5, brest = _error_split(appl.status_alpha, self.statuses_, 500)
        err_app = b5 / np.maximum(b5 + brest, 1e-300)
        n_lat = pend["lat_n"]
        obs_lat = cj.histogram_quantiles(pend["lat_hist"] + 1e-300, [0.5])[..., 0]
        n_st = pend["status_count"].sum(-1)
        o5, _ = _error_split(pend["status_count"], self.statuses_, 500)
        n_req = pend["freq_count"].sum(-1)
        change = {k: self.runs.change_p(k, window, float(self.config.changepoint_hazard))
                  for k in self.runs.kinds}
        for ei, pi in zip(*np.nonzero(_kind_count(pooled, "latency") + _kind_count(pooled, "errors") + n_req > 0)):
            self.history_.append((
                (window + 1) * T, self.endpoints_[ei], self.personas_[pi], float(n_req[ei, pi]),
                float(obs_lat[ei, pi]) if n_lat[ei, pi] > 0 else math.nan,
                *map(float, lat_q[ei, pi]), float(lat_a[ei, pi]),
                float(report["confidence"]["latency"][ei, pi]), bool(report["gate"]["latency"][ei, pi]),
                float(o5[ei, pi] / n_st[ei, pi]) if n_st[ei, pi] > 0 else math.nan,
                float(err_lo[ei, pi]), float(err_med[ei, pi]), float(err_hi[ei, pi]),
                float(err_app[ei, pi]),
                float(report["confidence"]["errors"][ei, pi]), bool(report["gate"]["errors"][ei, pi]),
                *(float(change[k][ei, pi]) if k in change else math.nan
                  for k in ("latency", "errors")),
            ))

    HISTORY_COLUMNS = (
        "t", "endpoint", "persona", "n", "observed_latency_ms", "latency_lower", "latency_median",
        "latency_upper", "latency_applied", "latency_confidence", "latency_gate",
        "observed_error_rate", "error_lower", "error_mean", "error_upper", "error_applied",
        "error_confidence", "error_gate", "latency_change_p", "error_change_p",
    )

    def history_frame(self):
        """Per-window history as a pandas DataFrame (needs ``track_history=True``)."""
        import pandas as pd

        df = pd.DataFrame(self.history_, columns=list(self.HISTORY_COLUMNS))
        df["time"] = pd.to_datetime(df["t"], unit="s", utc=True)
        return df

    def unreachable_gates(self) -> list[str]:
        """Reasons for cells whose gate can never open at their observed request rate."""
        reasons = []
        if self.n_windows_ == 0:
            return reasons
        rate = self.evidence_["freq_count"].sum(-1) / np.maximum(
            self.evidence_["freq_exposure"].sum(-1), 1e-300)
        per_window = rate * float(self.config.update_interval)
        for ei, pi in zip(*np.nonzero(per_window > 0)):
            ok, why = gate_reachable(self.config, float(per_window[ei, pi]))
            if not ok:
                reasons.append(f"{self.endpoints_[ei]} × {self.personas_[pi]}: {why}")
        return reasons

    def warn_unreachable(self) -> None:
        for reason in self.unreachable_gates():
            if reason not in self._warned_cells:
                self._warned_cells.add(reason)
                warnings.warn(f"gate can never open for {reason}", GateUnreachableWarning, stacklevel=2)


def _has_events(stats: Stats) -> bool:
    return bool(stats["freq_count"].any())


def _kind_count(stats: Stats, kind: str) -> np.ndarray:
    """Effective (decay-weighted) sample count of a kind, per cell."""
    if kind == "latency":
        return stats["lat_n"]
    if kind == "errors":
        return stats["status_count"].sum(-1)
    if kind == "frequency":
        return stats["freq_count"].sum(-1)
    if kind == "think_time":
        return stats["think_n"]
    return stats["trans_count"].sum(-1)


def _consistent_borrowing(ev: Stats, kind: str, axis: int, statuses: list[int]) -> np.ndarray:
    """Most pseudo-observations a persona cell may borrow from its endpoint's other personas
    without moving its estimate by more than one of its own standard errors.

    Each kind's key quantity: mean log latency / log think time (standard error from the
    cell's own spread), P(5xx), and for transitions the largest difference between the own
    and the others' next-state probabilities. Borrowing ``k`` pseudo-observations moves the
    estimate by ``k / (own + k) · |d|``; that stays within ``se`` for
    ``k ≤ own · se / (|d| − se)``. Unlimited (inf) where ``|d| ≤ se`` or the cell has no data.
    """
    def split(x):
        total = x.sum(axis=axis, keepdims=True)
        return x, total - x

    with np.errstate(divide="ignore", invalid="ignore"):
        if kind in ("latency", "think_time"):
            pre = "lat" if kind == "latency" else "think"
            (n, n_o), (sx, sx_o), (sxx, sxx_o) = (split(ev[f"{pre}_{k}"])
                                                  for k in ("n", "sx", "sxx"))
            mean, mean_o = sx / n, sx_o / n_o
            var, pooled_var = sxx / n - mean**2, (sxx + sxx_o) / (n + n_o) - ((sx + sx_o) / (n + n_o))**2
            # rounding noise is no spread (the second deliberate change, see the top)
            var = np.where(var > 1e-9 * np.abs(sxx / n), var, 0.0)
            pooled_var = np.where(pooled_var > 1e-9 * np.abs((sxx + sxx_o) / (n + n_o)), pooled_var, 0.0)
            # a cell with one or two samples has no spread of its own: use the endpoint's
            var = np.where(n >= 3, var, pooled_var)
            d, se, own = np.abs(mean - mean_o), np.sqrt(var / n), n
        elif kind == "errors":
            err = ev["status_count"][..., np.asarray(statuses) >= 500].sum(-1)
            (e5, e5_o), (n, n_o) = split(err), split(ev["status_count"].sum(-1))
            p, p_o = e5 / n, e5_o / n_o
            p_all = np.clip((e5 + e5_o) / (n + n_o), 1e-3, 1 - 1e-3)
            d, se, own = np.abs(p - p_o), np.sqrt(p_all * (1 - p_all) / n), n
        else:  # transitions (P, src, dst), personas on axis 0
            c, c_o = split(ev["trans_count"])
            n, n_o = c.sum(-1), c_o.sum(-1)
            prob, prob_o = c / n[..., None], c_o / n_o[..., None]
            j = np.nan_to_num(np.abs(prob - prob_o), nan=0.0).argmax(-1)[..., None]
            p_j = np.take_along_axis(np.clip((c + c_o) / (n + n_o)[..., None], 1e-3, 1 - 1e-3),
                                     j, -1)[..., 0]
            d = np.take_along_axis(np.abs(prob - prob_o), j, -1)[..., 0]
            se, own = np.sqrt(p_j * (1 - p_j) / n), n
        k = own * se / (d - se)
    return np.where((own > 0) & np.isfinite(d) & (d > se), k, np.inf)


def _component_width(alpha: np.ndarray, index: np.ndarray, mass: float) -> np.ndarray:
    """Width of the Beta marginal interval of one Dirichlet component per row."""
    a = np.take_along_axis(alpha, index, -1)[..., 0]
    return cj.beta_width_stabilised(a, alpha.sum(-1) - a, mass=mass)


def _error_split(alpha: np.ndarray, statuses: list[int], threshold: int):
    """Dirichlet mass of codes ≥ threshold and of the rest (Beta parameters by aggregation)."""
    codes = np.asarray(statuses)
    err = alpha[..., codes >= threshold].sum(-1)
    return err, alpha.sum(-1) - err
