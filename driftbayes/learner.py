"""The online drift learner: windows of event time, decay, gating and the applied layer.

:class:`DriftLearner` is a thin stateful shell over the pure functions in
:mod:`driftbayes.conjugate`. Traffic is cut into ``update_interval`` windows of *event time*
(the timestamps in the traffic), so replaying a recording is deterministic. At each window
boundary, per endpoint × persona cell and per pattern kind:

1. ``evidence ← (1-decay)·evidence + window_stats`` — the posterior is the prior (its weight
   fading as the cell's evidence grows, ``prior_fade``) plus the evidence; where the cell's
   run-length posterior makes a change within the last 31 windows more likely than
   ``changepoint_threshold``, its statistics are mixed by run length instead
   (:mod:`driftbayes.changepoint`);
2. ``n_eff`` and ``confidence`` (credible-interval contraction against the synthetic prior) are
   computed from the posterior;
3. where ``gate = enabled ∧ n_eff ≥ min_samples ∧ confidence ≥ confidence_threshold``,
   ``applied ← applied + sensitivity·(posterior − applied)``; elsewhere the applied layer fades
   toward the prior at rate ``decay``; a cell with a detected change serves its posterior at once.

The open sessions' provisional session ends (:meth:`DriftLearner.censored_ends`) are read with
the evidence, never stored.

Everything is held as sufficient statistics (:class:`driftbayes.stats.Stats`), so two learners
over the same windows merge with ``+``.
"""

from __future__ import annotations

import copy
import difflib
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from driftbayes import applied, gating
from driftbayes import conjugate as cj
from driftbayes.changepoint import (
    RunLengths,
    forget_contradicted,
    online_kinds,
    silence_contradicts,
)
from driftbayes.config import Config, GateUnreachableWarning, gate_reachable
from driftbayes.events import EventBatch
from driftbayes.globs import match_glob
from driftbayes.history import HISTORY_COLUMNS, history_frame, window_rows
from driftbayes.kinds import REGISTRY
from driftbayes.kinds.base import EventCells, PriorContext, SessionSteps
from driftbayes.kinds.transitions import TransitionCounts, TransitionParams
from driftbayes.kinds.transitions import prior_widths as transition_prior_widths
from driftbayes.open_sessions import OpenSessions, censored_end_weights
from driftbayes.pooling import kind_count, pool_personas
from driftbayes.stats import KIND_STATS, KINDS, N_HOURS, STAT_DIMS, Sizes, Stats, broadcast_gate
from driftbayes.vocabulary import Vocabulary
from driftbayes.windows import ExposureClock, follow_sum, hour_exposure

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


@dataclass
class CellParams:
    """Conjugate parameters of one layer for every cell (the predictive the mock samples):
    each kind's own typed parameters, by kind name (``params["latency"]``), with the built-in
    kinds' arrays also as attributes."""

    kinds: dict[str, Any]

    def __getitem__(self, kind: str):
        return self.kinds[kind]

    @property
    def lat_alpha(self) -> np.ndarray:
        """(E, P, B) Dirichlet over latency bins."""
        return self.kinds["latency"].alpha

    @property
    def lat_nig(self) -> cj.NIG:
        """(mu, kappa, alpha, beta), each (E, P): the log-latency summary."""
        return self.kinds["latency"].nig

    @property
    def status_alpha(self) -> np.ndarray:
        """(E, P, S) Dirichlet over status codes."""
        return self.kinds["errors"].alpha

    @property
    def think_alpha(self) -> np.ndarray:
        """(E, P, B) Dirichlet over think-time bins after each source endpoint."""
        return self.kinds["think_time"].alpha

    @property
    def think_nig(self) -> cj.NIG:
        """(E, P) log think time (ms) after each source endpoint."""
        return self.kinds["think_time"].nig

    @property
    def rate_a(self) -> np.ndarray:
        """(E, P) Gamma shape of the request rate (events/s)."""
        return self.kinds["frequency"].a

    @property
    def rate_b(self) -> np.ndarray:
        """(E, P) Gamma rate (exposure seconds)."""
        return self.kinds["frequency"].b

    @property
    def transitions(self) -> TransitionParams:
        """Dirichlet rows: src (endpoints, START) → dst (…, END)."""
        return self.kinds["transitions"]


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

    def __init__(self, config: Config | None = None, *, track_history: bool = False,
                 collect_windows: bool = False):
        self.config = config if config is not None else Config()
        self.track_history = track_history
        self.collect_windows = collect_windows
        self._clear()

    @classmethod
    def shard(cls, config: Config | None = None, *, resume: DriftLearner | None = None,
              sessions=None, names: tuple | None = None) -> DriftLearner:
        """A learner that only *maps* events to per-(cell, window) sums: each closed window's
        statistics (with the session ends that fall in it) are kept in ``window_sums_`` rather
        than learned. Shards of one stream split by session key merge exactly with ``+`` in
        any order; :meth:`learn_sums` then runs the sequential scan (decay, change tests,
        gates, applied layer) over the merged sums.

        ``resume`` starts the shard where that learner stands (its open window and
        vocabularies) holding those of its open sessions whose ids are in ``sessions`` (all
        when None), so the shard's events continue them and their session ends fall in the
        right windows. ``names`` (endpoints, personas, statuses) join the shard's
        vocabularies first (after the resumed learner's): shards given the whole run's names
        share one vocabulary, so merging them remaps nothing.
        """
        out = cls(config, collect_windows=True)
        if resume is not None:
            for mine, theirs in ((out.endpoint_vocab, resume.endpoint_vocab),
                                 (out.persona_vocab, resume.persona_vocab),
                                 (out.status_vocab, resume.status_vocab)):
                mine.add(theirs.names)
            out._grow()
            out.window_ = resume.window_
            keep = None if sessions is None else set(sessions)
            out.sessions = OpenSessions.from_open(
                [s for s in resume.sessions.open() if keep is None or s.session in keep])
        if names is not None:
            for vocab, more in zip((out.endpoint_vocab, out.persona_vocab, out.status_vocab),
                                   names):
                vocab.add(more)
            out._grow()
        return out

    # ------------------------------------------------------------------ state
    def _clear(self) -> None:
        syn = self.config.synthetic
        self.endpoint_vocab = Vocabulary()
        self.persona_vocab = Vocabulary()
        self.status_vocab = Vocabulary(sorted({int(syn.status), int(syn.error_status)}))
        sizes = self.sizes
        self._ev = Stats.zeros(sizes)
        self._app = Stats.zeros(sizes)
        self.pending_ = Stats.zeros(sizes)
        self._gate = self._closed_gates()
        self.window_: int | None = None
        self.t_first_ = math.nan
        self.t_last_ = math.nan
        self.n_events_ = 0
        self.n_late_ = 0
        self.changes_ = 0  # cell x kind changepoints detected (adaptive forgetting)
        self.n_windows_ = 0
        self.sessions = OpenSessions()
        self.history_: list[tuple] = []
        #: (endpoint key, status) -> (content type, redacted body text), the latest recorded
        self.bodies_: dict[tuple[str, int], tuple[str, str]] = {}
        #: window → its closed statistics (shards only, see :meth:`shard`)
        self.window_sums_: dict[int, Stats] | None = {} if self.collect_windows else None
        self._prior_cache: tuple | None = None
        #: run-length posteriors and recent window sums (online changepoint detection)
        self.runs = RunLengths(online_kinds(float(self.config.changepoint_hazard)), sizes)
        #: fitted hierarchical priors (:class:`driftbayes.priors.GroupPriors`), None: synthetic
        self.group_priors_ = None
        self._warned_cells: set = set()
        self._lazy_reset()

    # ------------------------------------------------------------------ lazy cells
    # Endpoint units (all personas of one endpoint: latency, errors, think time, frequency)
    # and transition rows (all personas of one source state) are brought up to date lazily:
    # ``_done_e`` / ``_done_r`` hold the last window closed for each. A window close only
    # touches the units that had events in it and the "hot" ones whose silence is not
    # closed-form (an open gate, or a gate that could open, under decay; a request rate that
    # a silent window would contradict). See :meth:`_sync` for the closed forms.
    def _lazy_reset(self) -> None:
        """Mark every cell as up to date with the last closed window (after a load or edit)."""
        self._stale = True

    def _lazy_init(self) -> None:
        if not self._stale or self.window_ is None:
            return
        cfg = self.config
        E = len(self.endpoints_)
        last = self.window_ - 1
        self._clock = ExposureClock(cfg.update_interval, cfg.decay, cfg.sensitivity, last)
        self._done_e = np.full(E, last, dtype=np.int64)
        self._done_r = np.full(E + 1, last, dtype=np.int64)
        # the open window's pending statistics mark the cells it touched so far
        pend = self.pending_
        self._touched_e = np.zeros(E, bool)
        for name, dims in STAT_DIMS.items():
            if dims[0] == "endpoint":
                self._touched_e |= pend[name].any(axis=tuple(range(1, len(dims))))
        self._touched_r = pend["trans_count"].rows_with_data()
        self._hot_e = np.zeros(E, bool)
        self._hot_r = np.zeros(E + 1, bool)
        self._stale = False
        self._update_hot(np.arange(E), np.arange(E + 1))

    @property
    def evidence_(self) -> Stats:
        """Decay-weighted statistics behind the posterior (relative to the prior), up to date."""
        self._sync_all()
        return self._ev

    @evidence_.setter
    def evidence_(self, value: Stats) -> None:
        self._ev = value
        self._lazy_reset()

    @property
    def applied_(self) -> Stats:
        """Statistics of the applied layer (relative to the prior), up to date."""
        self._sync_all()
        return self._app

    @applied_.setter
    def applied_(self, value: Stats) -> None:
        self._app = value
        self._lazy_reset()

    @property
    def gate_(self) -> dict[str, np.ndarray]:
        """Gate per kind: ``(endpoint, persona)``, transitions ``(persona, src)``; up to date."""
        self._sync_all()
        return self._gate

    @gate_.setter
    def gate_(self, value: dict[str, np.ndarray]) -> None:
        self._gate = value
        self._lazy_reset()

    @property
    def endpoints_(self) -> list[str]:
        """Endpoint keys (``"GET /api/x"``) in code order."""
        return self.endpoint_vocab.names

    @endpoints_.setter
    def endpoints_(self, names: list[str]) -> None:
        self.endpoint_vocab = Vocabulary(names)

    @property
    def personas_(self) -> list[str]:
        """Personas in code order."""
        return self.persona_vocab.names

    @personas_.setter
    def personas_(self, names: list[str]) -> None:
        self.persona_vocab = Vocabulary(names)

    @property
    def statuses_(self) -> list[int]:
        """Status codes in code order."""
        return self.status_vocab.names

    @statuses_.setter
    def statuses_(self, codes: list[int]) -> None:
        self.status_vocab = Vocabulary(codes)

    @property
    def endpoint_index(self):
        """Endpoint key → its code in every endpoint dim (read-only view)."""
        return self.endpoint_vocab.codes

    @property
    def persona_index(self):
        """Persona → its code in every persona dim (read-only view)."""
        return self.persona_vocab.codes

    @property
    def sizes(self) -> Sizes:
        return Sizes(len(self.endpoints_), len(self.personas_), len(self.statuses_))

    def _closed_gates(self) -> dict[str, np.ndarray]:
        return gating.closed_gates(self.sizes)

    def _grow(self, *, statuses_grew: bool = False) -> None:
        old_e = len(self._ev["lat_n"])
        sizes = self.sizes
        self._ev = self._ev.grown(sizes)
        self._app = self._app.grown(sizes)
        self.pending_ = self.pending_.grown(sizes)
        old = self._gate
        self._gate = self._closed_gates()
        for k, g in old.items():
            if "src" in REGISTRY[k].cell_dims:  # src rows: endpoints, then START last
                self._gate[k][: g.shape[0], : g.shape[1] - 1] = g[:, :-1]
                self._gate[k][: g.shape[0], -1] = g[:, -1]
            else:
                self._gate[k][: g.shape[0], : g.shape[1]] = g
        self._prior_cache = None
        self._prior_width_cache = None
        self.runs.grow(sizes)
        if self._stale:
            return
        new = sizes.endpoint - old_e
        last = self.window_ - 1

        def grow_rows(a, fill):
            return np.r_[a[:-1], np.full(new, fill, a.dtype), a[-1:]]

        self._done_e = np.r_[self._done_e, np.full(new, last, np.int64)]
        self._touched_e = np.r_[self._touched_e, np.zeros(new, bool)]
        self._hot_e = np.r_[self._hot_e, np.zeros(new, bool)]
        self._done_r = grow_rows(self._done_r, last)
        self._touched_r = grow_rows(self._touched_r, False)
        self._hot_r = grow_rows(self._hot_r, False)
        if float(self.config.decay) == 0.0:
            # without decay a silent cell's gate only changes when its prior does: the
            # transition rows' prior spreads over the endpoints, the status prior over codes
            minimum = float(self.config.min_samples)
            if new:
                self._touched_r |= self._ev["trans_count"].row_totals() >= minimum
            if statuses_grew:
                self._touched_e |= self._ev["status_count"].sum(axis=(1, 2)) >= minimum

    def _register(self, names: list, vocab: Vocabulary) -> None:
        """New names join ``vocab`` now (their cells start in the open window)."""
        if not names:
            return
        if vocab is self.persona_vocab and not self._stale:
            # new persona cells start with no exposure now, not at their endpoint's last update
            self._sync_all()
        vocab.add(names)
        self._grow(statuses_grew=vocab is self.status_vocab)

    # ------------------------------------------------------------------ priors
    def _prior(self) -> dict:
        """Each kind's prior from the synthetic defaults, per endpoint (cached until the
        vocabulary grows); with fitted group priors, the kinds they cover start from their
        endpoint's group instead (:meth:`set_group_priors`)."""
        if self._prior_cache is None:
            base = [self.config.synthetic_for(e) for e in self.endpoints_]
            fitted = ({} if self.group_priors_ is None
                      else self.group_priors_.synthetic(self.endpoints_, base))
            ctx = {name: PriorContext(fitted.get(name, base), self.config.synthetic,
                                      self.statuses_, self.status_vocab.codes)
                   for name in REGISTRY}
            self._prior_cache = {name: kind.prior(ctx[name]) for name, kind in REGISTRY.items()}
            self._strength_cache = {name: c.col("prior_strength") for name, c in ctx.items()}
        return self._prior_cache

    def _strength(self, kind: str) -> np.ndarray:
        """``(E,)`` pseudo-observations each endpoint's prior of ``kind`` is worth (the
        synthetic ``prior_strength``, or its fitted group's weight)."""
        self._prior()
        return self._strength_cache[kind]

    def set_group_priors(self, priors) -> None:
        """Use fitted hierarchical priors (:func:`driftbayes.priors.fit_priors`) as the prior
        of every cell from now on; None goes back to the synthetic defaults. The evidence and
        applied statistics are kept (both are relative to the prior)."""
        self._sync_all()  # silent cells catch up under the prior they had
        self.group_priors_ = priors
        self._prior_cache = None
        self._prior_width_cache = None
        self._prior_latq_cache = None
        self._lazy_reset()

    # ------------------------------------------------------------------ learning
    def learn_one(self, event: dict) -> DriftLearner:
        """Learn from one canonical event dict (see :meth:`EventBatch.from_records`)."""
        return self.learn_many(EventBatch.from_records([event]))

    def learn_many(self, batch: EventBatch, *, windows: np.ndarray | None = None) -> DriftLearner:
        """Learn from a batch of events in order; windows close as event time passes them.

        An event earlier than the open window (a late event) is learned in the open window.
        ``windows`` gives each event's learning window instead (non-decreasing, none before
        the open window): a shard of one stream (:meth:`shard`) takes the windows the whole
        stream gives its events, so late events land where one learner would put them.
        """
        if len(batch) == 0:
            return self
        interval = float(self.config.update_interval)
        mc, mu = pd.factorize(batch.method)
        tc, tu = pd.factorize(batch.endpoint)
        pair, pairs = pd.factorize(mc * len(tu) + tc)
        keys = np.array([f"{mu[k // len(tu)]} {tu[k % len(tu)]}" for k in pairs], dtype=object)
        if "response_body" in batch.extra:
            self.bodies_.update(response_bodies(batch, keys[pair]))
        # codes now; each new name joins the vocabulary in the window of its first event, so a
        # new cell's exposure starts there whatever the batching
        e, new_e, first_e = self.endpoint_vocab.plan(keys[pair])
        p, new_p, first_p = self.persona_vocab.plan(batch.persona)
        has_status = np.flatnonzero(batch.status > 0)
        s = np.full(len(batch), -1, dtype=np.int64)
        s[has_status], new_s, first_s = self.status_vocab.plan(
            batch.status[has_status].astype(np.int64))
        joining = [(self.endpoint_vocab, new_e, first_e), (self.persona_vocab, new_p, first_p),
                   (self.status_vocab, new_s, has_status[first_s])]
        rows = self.sessions.rows(batch.session)
        win = np.floor(batch.ts / interval).astype(np.int64)
        target = win if windows is None else np.asarray(windows, dtype=np.int64)
        if self.window_ is None:
            self.window_ = int(target[0])
            self.t_first_ = float(batch.ts[0])
        self._lazy_init()
        eff = np.maximum.accumulate(np.concatenate([[self.window_], target]))[1:]
        self.n_late_ += int(np.count_nonzero(win < eff))
        cuts = np.flatnonzero(np.diff(eff)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(eff)]):
            if eff[lo] > self.window_:
                self._advance(int(eff[lo]))
            for vocab, names, first in joining:
                self._register([n for n, i in zip(names, first) if lo <= i < hi], vocab)
            self._accumulate(batch, e, p, s, rows, slice(lo, hi))
        self.n_events_ += len(batch)
        self.t_last_ = float(np.nanmax([self.t_last_, batch.ts.max()]))
        return self

    def _accumulate(self, b: EventBatch, e, p, s, rows, sl: slice) -> None:
        """Add one window's events to the pending statistics (vectorised)."""
        e, p = e[sl], p[sl]
        self._touched_e[e] = True
        events = EventCells(e, p, s[sl], b.ts[sl], b.latency_ms[sl],
                            {k: v[sl] for k, v in b.extra.items()}, self.sizes)
        for kind in REGISTRY.values():
            kind.accumulate(self.pending_, events)
        rows = rows[sl]
        has = rows >= 0
        if has.any():
            self._accumulate_sessions(rows[has], e[has], p[has], events.ts[has])

    def _accumulate_sessions(self, row, e, p, ts) -> None:
        """Transitions (START, END and steps) and the kinds' session steps (think time) from
        consecutive requests of each session."""
        E = len(self.endpoints_)
        gap = float(self.config.session_gap)
        order = np.argsort(row, kind="stable")
        row, e, p, ts = row[order], e[order], p[order], ts[order]
        first = np.r_[True, row[1:] != row[:-1]]
        # previous request of each event: within the window, else the open-session table
        prev_e, prev_p, prev_ts = np.r_[-1, e[:-1]], np.r_[-1, p[:-1]], np.r_[np.nan, ts[:-1]]
        prev_e[first], prev_p[first], prev_ts[first] = self.sessions.previous(row[first])
        has_prev = prev_e >= 0
        dt = ts - prev_ts
        cont = has_prev & (dt <= gap)
        broke = has_prev & ~cont
        trans = self.pending_["trans_count"]
        src = np.where(cont, prev_e, E)  # START when the session (re)starts here
        self._touched_r[src] = True
        self._touched_r[prev_e[broke]] = True
        trans.add(p, src, e)  # cost follows the events, not E²
        if broke.any():  # the previous session ended before this request, at its last one
            trans.add(prev_p[broke], prev_e[broke], np.full(int(broke.sum()), E),
                      self._end_weight(self.window_, prev_ts[broke]))
        if cont.any():
            self._touched_e[prev_e[cont]] = True  # a step belongs to its source endpoint
            steps = SessionSteps(prev_e[cont], e[cont], p[cont], dt[cont], self.sizes)
            for kind in REGISTRY.values():
                kind.accumulate_steps(self.pending_, steps)
        last = np.r_[np.flatnonzero(first)[1:] - 1, len(row) - 1]
        r = row[last]
        self.sessions.touch(r, e[last], p[last], ts[last])

    def _expire_sessions(self, window: int, stats: Stats) -> None:
        """END transitions for sessions whose inactivity gap has passed by the window's end."""
        end = (window + 1) * float(self.config.update_interval)
        p, e, ts = self.sessions.end_before(end, float(self.config.session_gap))
        if len(e):
            stats["trans_count"].add(p, e, np.full(len(e), len(self.endpoints_)),
                                     self._end_weight(window, ts))
            self._touched_r[e] = True

    def _end_weight(self, window: int, ts: np.ndarray) -> np.ndarray:
        """Weight, in window ``window``, of session ENDs confirmed now that happened after
        requests at times ``ts``: the decay since those requests' windows. A session's END
        belongs with its last request (as its continuation would have); counting it only when
        ``session_gap`` runs out would leave every row short of END mass by the decay of that
        wait."""
        T = float(self.config.update_interval)
        age = np.maximum(window - np.floor(np.asarray(ts) / T), 0.0)
        return (1.0 - float(self.config.decay)) ** age

    # ------------------------------------------------------------------ window boundaries
    def _advance(self, target: int) -> None:
        """Close the open window and every empty window before ``target``.

        Empty windows cost nothing unless a cell is hot or a session ends in them: the clock
        records their exposure, and silent cells catch up in closed form when next touched.
        """
        assert self.window_ is not None
        self._lazy_init()
        self._close_window(self.window_)
        w = self.window_ + 1
        empty = target - w
        if empty > _EXACT_EMPTY_WINDOWS and self.window_sums_ is None:
            skipped = empty - _EXACT_EMPTY_WINDOWS
            self._sync(np.arange(len(self.endpoints_)), np.arange(len(self.endpoints_) + 1),
                       w - 1)
            self._skip_empty(w, skipped)
            w += skipped
        while w < target:
            if (self.track_history or self._hot_e.any() or self._hot_r.any()
                    or self._touched_r.any()):
                self._close_window(w)
                w += 1
                continue
            expiry = self.sessions.next_due(float(self.config.session_gap),
                                            float(self.config.update_interval))
            stop = target if expiry is None else min(target, max(expiry, w))
            if stop > w:  # nothing happens in windows w … stop-1
                self._clock.extend_to(stop - 1)
                self.n_windows_ += stop - w
                w = stop
            if w < target:
                self._close_window(w)
                w += 1
        self.window_ = target

    def _skip_empty(self, first: int, count: int) -> None:
        """Advance every cell over ``count`` empty windows in closed form, gates held closed
        (the applied layer fades): the cheap path for silences longer than
        :data:`_EXACT_EMPTY_WINDOWS`. Expects every cell up to date with window ``first-1``."""
        lam = float(self.config.decay)
        T = float(self.config.update_interval)
        keep = (1.0 - lam) ** count
        ev = self._ev.scaled(keep)
        if lam == 0.0:
            expo = hour_exposure(first * T, (first + count) * T)
        else:
            # weights below (1-λ)^m underflow to zero: only the last m windows count
            m = min(count, _MAX_SKIP_WINDOWS, int(math.ceil(800.0 / -math.log1p(-lam)))
                    if lam < 1 else 1)
            expo = np.zeros(N_HOURS)
            for lo in range(0, m, 100_000):  # in chunks: bounded memory
                idx = np.arange(first + count - m + lo, first + count - m + min(m, lo + 100_000))
                w = (1.0 - lam) ** (first + count - 1 - idx)
                expo += (w[:, None] * hour_exposure(idx * T, (idx + 1) * T)).sum(axis=0)
        ev["freq_exposure"] = ev["freq_exposure"] + expo
        # each open session ends in the window where its gap runs out
        p, e, ts = self.sessions.end_by_window(first + count - 1,
                                               float(self.config.session_gap), T)
        if len(e):
            ev["trans_count"].add(p, e, np.full(len(e), len(self.endpoints_)),
                                  self._end_weight(first + count - 1, ts))
        self._ev = ev
        self._app = self._app.scaled(keep)
        self.n_windows_ += count
        saved_window, self.window_ = self.window_, first + count
        self._stale = True
        self._lazy_init()  # every cell is now up to date with window first+count-1
        self.window_ = saved_window
        self._touched_r[e] = True  # rows that ended sessions are re-gated at the next window

    def _close_window(self, window: int) -> None:
        """Close one window for the cells it touched and the hot ones: decay, add its
        statistics, test for change, re-gate, move the applied layer."""
        cfg = self.config
        pend = self.pending_
        self._expire_sessions(window, pend)
        if self.window_sums_ is not None:  # a shard keeps the window's sums for the scan
            if pend.has_data():
                self.window_sums_[window] = pend
                self.pending_ = Stats.zeros(self.sizes)
            self._touched_e[:] = False
            self._touched_r[:] = False
            self.n_windows_ += 1
            return
        if self.track_history:
            A, R = np.arange(len(self.endpoints_)), np.arange(len(self.endpoints_) + 1)
        else:
            A = np.flatnonzero(self._touched_e | self._hot_e)
            R = np.flatnonzero(self._touched_r | self._hot_r)
        self._sync(A, R, window - 1)
        self._clock.extend_to(window)
        lam = float(cfg.decay)
        sub = self._ev.subset(A, R)
        psub = pend.subset(A, R)
        psub["freq_exposure"] = psub["freq_exposure"] + self._clock.exposure(window)
        ev = cj.decay_evidence(sub, decay=lam)
        online = self.runs.kinds
        if float(cfg.changepoint_z) > 0:
            self.changes_ += forget_contradicted(ev, psub, self.statuses_,
                                                float(cfg.changepoint_z),
                                                kinds=[k for k in KINDS if k not in online])
        ev_new = ev + psub
        changed = {}
        if online:
            n, changed = self.runs.step(
                window, A, ev, psub, ev_new, prior=self._prior(),
                strength={k: self._strength(k) for k in online},
                hazard=float(cfg.changepoint_hazard),
                threshold=float(cfg.changepoint_threshold), decay=lam, statuses=self.statuses_)
            self.changes_ += n
            self.runs.push(window, A, psub)
        ev = ev_new
        pooled = self.pooled_evidence(ev)
        report = self._gates(pooled, A, R)
        app = self._app.subset(A, R)
        for kind, names in KIND_STATS.items():
            kd, gate = REGISTRY[kind], report["gate"][kind]
            for name in names:
                app[name] = applied.step(kd, gate, name, app[name], pooled[name],
                                         sensitivity=float(cfg.sensitivity), decay=lam)
                if kind in changed:  # a new regime: the old one is not served any longer
                    app[name] = kd.where(changed[kind], name, pooled[name], app[name])
        self._ev.assign(A, R, ev)
        self._app.assign(A, R, app)
        for kind, g in report["gate"].items():
            if kind == "transitions":
                self._gate[kind][:, R] = g
            else:
                self._gate[kind][A] = g
        if self.track_history:
            self.history_.extend(window_rows(
                t=(window + 1) * float(cfg.update_interval), endpoints=self.endpoints_,
                personas=self.personas_, statuses=self.statuses_, pend=pend, pooled=pooled,
                report=report, applied=self.params_from(self._app), mass=float(cfg.credible_mass),
                change={k: self.runs.change_p(k, window, float(cfg.changepoint_hazard))
                        for k in self.runs.kinds}))
        pend.clear(A, R)
        self._done_e[A] = window
        self._done_r[R] = window
        self._touched_e[:] = False
        self._touched_r[:] = False
        self._update_hot(A, R)
        self.n_windows_ += 1

    @staticmethod
    def _silent_decay_kinds() -> list[str]:
        """Kinds whose statistics a silent window only decays (advanced as ``(1-λ)^k``)."""
        return [name for name, kind in REGISTRY.items() if kind.silent_decay]

    def _update_hot(self, A: np.ndarray, R: np.ndarray) -> None:
        """Which of these up-to-date cells a silent window could change beyond closed form."""
        cfg = self.config
        lam, minimum = float(cfg.decay), float(cfg.min_samples)
        ev, gate = self._ev, self._gate
        hot = np.zeros(len(A), bool)
        if lam > 0:
            # under decay a gate may close (or, while n_eff ≥ min_samples, open) in silence;
            # pooled n_eff never exceeds the endpoint's all-persona count
            for kind in self._silent_decay_kinds():
                own = kind_count(ev.subset(A, R, names=KIND_STATS[kind]), kind)
                hot |= gate[kind][A].any(axis=1) | (own.sum(axis=1) >= minimum)
            self._hot_r[R] = gate["transitions"][:, R].any(axis=0) | (
                ev["trans_count"].row_totals()[R] >= minimum)
        else:
            self._hot_r[R] = False
        z = float(cfg.changepoint_z)
        if z > 0 and len(A):
            # a silent window contradicts a busy cell's rate: adaptive forgetting steps it
            hot |= silence_contradicts(ev["freq_count"][A].sum(-1), ev["freq_exposure"][A].sum(-1),
                                       decay=lam, interval=float(cfg.update_interval),
                                       z=z).any(axis=1)
        self._hot_e[A] = hot

    def _sync(self, A: np.ndarray, R: np.ndarray, upto: int) -> None:
        """Bring endpoint units ``A`` and transition rows ``R`` up to date with window ``upto``
        in closed form. Every window they missed was silent for them and they were not hot, so:

        * evidence decays by ``(1-λ)^k``; exposure follows the clock's global series;
        * a closed gate of latency, errors, think time or transitions stays closed (under
          decay, n_eff is below ``min_samples`` and falls), the applied layer fades by
          ``(1-λ)^k``; without decay nothing moves but an open gate's applied layer, which
          closes a share ``1-(1-s)^k`` of its distance to the constant posterior;
        * the frequency gate can only open in silence (exposure grows, the count decays:
          n_eff and confidence rise), at a window found by bisection; the applied layer fades
          until then and follows the posterior after it.
        """
        if self._stale or self.window_sums_ is not None:  # a shard learns nothing to sync
            return
        for units, done, fn in ((A, self._done_e, self._sync_units),
                                (R, self._done_r, self._sync_rows)):
            units = np.asarray(units, dtype=np.int64)
            if not units.size:
                continue
            k = upto - done[units]
            units, k = units[k > 0], k[k > 0]
            if units.size:
                fn(units, k, upto)
                done[units] = upto

    def _sync_units(self, A: np.ndarray, k: np.ndarray, upto: int) -> None:
        cfg = self.config
        lam, s = float(cfg.decay), float(cfg.sensitivity)
        r, q = 1.0 - lam, 1.0 - s
        ev, app = self._ev, self._app
        rk = applied.fade(k, lam)
        kinds = self._silent_decay_kinds()
        if lam > 0:
            for kind in kinds:
                for name in KIND_STATS[kind]:
                    f = rk.reshape((-1,) + (1,) * (ev[name].ndim - 1))
                    ev[name][A] *= f
                    app[name][A] *= f
        elif any(self._gate[kind][A].any() for kind in kinds):
            pooled = self.pooled_evidence(ev.subset(A, None))
            qk = (q ** k.astype(float))[:, None]
            for kind in kinds:
                g = self._gate[kind][A]
                for name in KIND_STATS[kind]:
                    a, post = app[name][A], pooled[name]
                    f = qk.reshape((-1,) + (1,) * (a.ndim - 1))
                    app[name][A] = REGISTRY[kind].where(g, name, applied.follow(a, post, f), a)
        # frequency: never pooled, one cell at a time
        d = upto - k
        c, x = ev["freq_count"][A], ev["freq_exposure"][A]
        offset = x - self._clock.g(d)[:, None, :]
        c_tot, off_tot = c.sum(-1), offset.sum(-1)
        P = c.shape[1]
        dd, kk = np.repeat(d, P).reshape(-1, P), np.repeat(k, P).reshape(-1, P)
        ee = np.repeat(A, P).reshape(-1, P)
        enabled = self._enabled_kind("frequency", A, None)

        def open_at(j):
            b = np.broadcast_shapes(np.shape(j), ee.shape)
            return self._frequency_gate(*(np.broadcast_to(x, b) for x in
                                          (ee, c_tot, off_tot, dd, j))) & enabled

        gate0 = self._gate["frequency"][A]
        jstar = np.where(gate0, 1, kk + 1)  # first silent window with the gate open
        cand = ~gate0 & enabled
        if cand.any():
            at_end = open_at(kk) & cand
            if at_end.any():
                # search (lo, hi]: closed at lo, open at hi; 8 probes per round
                lo, hi = np.zeros_like(kk), kk.copy()
                probes = np.arange(1, 9)[:, None, None]
                while True:
                    live = at_end & (hi - lo > 1)
                    if not live.any():
                        break
                    j = np.minimum(lo + (probes * (hi - lo) + 8) // 9, hi)
                    o = open_at(np.where(live, j, hi))
                    first = np.where(o.any(axis=0), o.argmax(axis=0), len(probes))
                    new_hi = np.where(first < len(probes),
                                      np.take_along_axis(j, np.minimum(first, 7)[None], 0)[0], hi)
                    new_lo = np.where(first > 0,
                                      np.take_along_axis(j, np.maximum(first - 1, 0)[None], 0)[0],
                                      lo)
                    hi, lo = np.where(live, new_hi, hi), np.where(live, new_lo, lo)
                jstar = np.where(at_end, hi, jstar)
        ev["freq_count"][A] = c * rk[:, None, None]
        ev["freq_exposure"][A] = self._clock.g(upto) + rk[:, None, None] * offset
        closed = np.minimum(jstar - 1, kk)
        n_open = kk - closed
        fade = (r ** closed.astype(float))[..., None]
        ac, ax = app["freq_count"][A] * fade, app["freq_exposure"][A] * fade
        if (n_open > 0).any():
            w1 = dd + closed + 1
            qn = (q ** n_open.astype(float))[..., None]
            follow = follow_sum(q, r, n_open, w1 - dd)[..., None]
            h_before = self._clock.h(np.where(n_open > 0, w1 - 1, upto))
            ax_open = qn * ax + (self._clock.h(upto) - qn * h_before) + s * offset * follow
            ac_open = qn * ac + s * c * follow
            is_open = (n_open > 0)[..., None]
            ax, ac = np.where(is_open, ax_open, ax), np.where(is_open, ac_open, ac)
        app["freq_count"][A], app["freq_exposure"][A] = ac, ax
        self._gate["frequency"][A] = jstar <= kk

    def _frequency_gate(self, e, c_tot, off_tot, d, j) -> np.ndarray:
        """Frequency n_eff and confidence gate of cells silent since window ``d``, ``j``
        windows later (``e`` their endpoints; every argument of one shape)."""
        cfg = self.config
        rate = self._prior()["frequency"]
        rate_a, rate_b = rate.a, rate.b
        r = 1.0 - float(cfg.decay)
        rj = r ** j.astype(float)
        x_tot = self._clock.g(d + j).sum(-1) + rj * off_tot
        keep = cj.prior_weight(c_tot * rj, strength=self._strength("frequency")[e],
                               fade=float(cfg.prior_fade))
        a, b = keep * rate_a[e] + c_tot * rj, keep * rate_b[e] + x_tot
        n_eff = x_tot * (rate_a / rate_b)[e]
        mass = float(cfg.credible_mass)
        conf = cj.contraction(gating.frequency_width(a, b, mass),
                              self._prior_widths(mass)["frequency"][e, 0])
        return (n_eff >= float(cfg.min_samples)) & (conf >= float(cfg.confidence_threshold))

    def _sync_rows(self, R: np.ndarray, k: np.ndarray, upto: int) -> None:
        cfg = self.config
        lam, q = float(cfg.decay), 1.0 - float(cfg.sensitivity)
        ev, app = self._ev["trans_count"], self._app["trans_count"]
        if lam > 0:
            f = applied.fade(k, lam)
            ev.scale_rows(R, f)
            app.scale_rows(R, f)
            return
        g = self._gate["transitions"][:, R]
        if g.any():
            post = self.pooled_evidence(self._ev.subset(None, R, names=("trans_count",)),
                                        kinds=("transitions",))["trans_count"]
            a, post = app.subset_rows(R).aligned(post)
            f = a.per_pair(np.broadcast_to((q ** k.astype(float))[None, :], g.shape))
            moved = a.with_values(applied.follow(a.val, post.val, f))
            app.assign_rows(R, REGISTRY["transitions"].where(g, "trans_count", moved, a))

    def _sync_all(self) -> None:
        """Bring every cell up to date with the last closed window (before any read)."""
        if self._stale or self.window_ is None:
            return
        self._sync(np.arange(len(self.endpoints_)), np.arange(len(self.endpoints_) + 1),
                   self.window_ - 1)

    # ------------------------------------------------------------------ pooling, confidence, gates
    def pooled_evidence(self, evidence: Stats | None = None, *,
                        kinds: tuple[str, ...] = KINDS) -> Stats:
        """Evidence behind each cell's posterior, relative to the synthetic prior.

        With ``persona_adaptation`` a persona cell with fewer than ``pooling_strength``
        (decayed) observations borrows the difference from its endpoint's other personas, their
        evidence down-weighted to that many pseudo-observations — but never more than its own
        data can vouch for: with ``d`` the distance between its own estimate and the others'
        and ``se`` its own standard error, at most ``own · se / (|d| − se)`` when ``|d| > se``
        (so the borrowed data cannot pull the estimate further than one standard error; see
        :func:`driftbayes.pooling.consistent_borrowing`). A persona with few samples falls back
        to its endpoint,
        one whose data shows it behaves differently keeps its own. Without it, every persona
        shares the endpoint's all-persona evidence. Request frequency is never pooled.
        """
        cfg = self.config
        return pool_personas(self.evidence_ if evidence is None else evidence,
                             strength=float(cfg.pooling_strength),
                             adaptation=bool(cfg.persona_adaptation), statuses=self.statuses_,
                             kinds=kinds)

    def _enabled_kind(self, kind: str, A=None, R=None) -> np.ndarray:
        """Whether learning is on for each cell of ``kind`` (endpoints ``A`` / rows ``R``)."""
        cfg = self.config
        key = (id(cfg), len(self.endpoints_), len(self.personas_))
        cache = getattr(self, "_enabled_cache", None)
        if cache is None or cache[0] != key:  # globs are matched once per vocabulary
            e_on = np.array([cfg.endpoint_enabled(e) for e in self.endpoints_], dtype=bool)
            p_on = np.array([cfg.persona_enabled(p) for p in self.personas_], dtype=bool)
            cache = self._enabled_cache = (key, e_on, p_on)
        _, e_on, p_on = cache
        on = bool(cfg.enabled) and cfg.learns(kind)
        if kind == "transitions":
            src_on = np.r_[e_on, True][slice(None) if R is None else R]
            return on & p_on[:, None] & src_on[None, :]
        return on & e_on[slice(None) if A is None else A][:, None] & p_on[None, :]

    def _gates(self, pooled: Stats, A=None, R=None) -> dict:
        """n_eff, confidence and the gate, per kind and cell (of endpoints ``A``, rows ``R``)."""
        cfg = self.config
        post = self.params_from(pooled, A, R)
        mass = float(cfg.credible_mass)
        ends = slice(None) if A is None else A
        rows = slice(None) if R is None else R
        rate = self._prior()["frequency"]
        return gating.gate_report(
            pooled, post, prior_widths=self._prior_widths(mass), ends=ends, rows=rows,
            latency_quantiles=self._latency_quantiles(post.lat_alpha, pooled["lat_n"], ends,
                                                      mass),
            enabled={k: self._enabled_kind(k, A, R) for k in KINDS},
            prior_rate=(rate.a / rate.b)[ends, None], n_endpoints=len(self.endpoints_),
            statuses=self.statuses_, min_samples=float(cfg.min_samples),
            threshold=float(cfg.confidence_threshold), mass=mass)

    def gate_report(self) -> dict:
        """``n_eff``, ``confidence``, ``gate`` and ``enabled`` per kind for every cell, as
        the next window close would compute them from the posterior (see
        :func:`driftbayes.gating.gate_report`)."""
        return self._gates(self.pooled_evidence(self.read_evidence()))

    def change_probability(self, kind: str) -> np.ndarray:
        """``(endpoint, persona)`` probability that each cell's ``kind`` changed regime within
        the last 31 windows, as the last closed window leaves it (online changepoint
        detection, :mod:`driftbayes.changepoint`; 0 for a cell without data of the kind)."""
        if kind not in self.runs.kinds:
            raise ValueError(f"{kind!r} has no online changepoint detection (kinds with it: "
                             f"{', '.join(self.runs.kinds) or 'none: changepoint_hazard is 0'})")
        if self.window_ is None:
            return np.zeros((len(self.endpoints_), len(self.personas_)))
        return self.runs.change_p(kind, self.window_ - 1, float(self.config.changepoint_hazard))

    # ------------------------------------------------------------------ censored session ends
    def censored_ends(self) -> TransitionCounts:
        """END mass of the sessions still open, as the last closed window leaves them: a
        session silent for ``t`` has ended with probability ``P(END | silent t)``, from its
        row's END probability and the survival of the think time after its last endpoint
        (:func:`driftbayes.open_sessions.censored_end_weights`; both from the posterior).

        Transition rows thus learn a session's END without waiting for ``session_gap`` to run
        out. The mass is provisional: it is read with the evidence (:meth:`read_evidence`, the
        ``posterior`` and ``applied`` layers, :meth:`gate_report`), never stored, and gives
        way to the session's next request or, once the gap has run out, to its confirmed END
        (counted with the decay since its last request). It leaves the window-by-window scan
        alone, so the scan stays a function of the per-(cell, window) sums.
        """
        E, P = len(self.endpoints_), len(self.personas_)
        if self.window_ is None or not len(self.sessions):
            return TransitionCounts.empty(P, E + 1)
        T = float(self.config.update_interval)
        now = self.window_ * T  # the end of the last closed window
        e, p, ts = self.sessions.arrays()
        known = ts < now  # a request in the open window is not in the evidence yet
        if not known.any():
            return TransitionCounts.empty(P, E + 1)
        post = self.params_from(self.pooled_evidence())
        w = censored_end_weights(e[known], p[known], ts[known], now=now,
                                 think=post["think_time"].nig,
                                 p_end=post.transitions.end_share(), interval=T,
                                 decay=float(self.config.decay))
        return TransitionCounts.from_coo(p[known], e[known], np.full(int(known.sum()), E), w,
                                         P, E + 1)

    def read_evidence(self, stats: Stats | None = None, gate=None) -> Stats:
        """``stats`` (default: the evidence) with the open sessions' :meth:`censored_ends`
        added to the transition rows (only to the ``(persona, src)`` rows where ``gate`` is
        true, when given)."""
        stats = self.evidence_ if stats is None else stats
        ends = self.censored_ends()
        if not len(ends):
            return stats
        if gate is not None:
            ends = ends.with_values(ends.val * ends.per_pair(np.asarray(gate, float)))
        out = Stats(dict(stats.arrays))
        out["trans_count"] = stats["trans_count"] + ends
        return out

    def _latency_quantiles(self, lat_alpha, lat_n, ends, mass: float) -> np.ndarray:
        """Lower, median and upper quantile of the median latency per cell; cells without
        latency evidence share their endpoint's prior values (computed once)."""
        lo_q, hi_q = cj.tail_probs(mass)
        key = (mass, self.sizes.endpoint)
        cache = getattr(self, "_prior_latq_cache", None)
        if cache is None or cache[0] != key:
            lat_alpha0 = self._prior()["latency"].alpha
            cache = (key, cj.dirichlet_median_quantiles(lat_alpha0, [lo_q, 0.5, hi_q]))
            self._prior_latq_cache = cache
        out = np.broadcast_to(cache[1][ends, None, :], lat_alpha.shape[:-1] + (3,)).copy()
        seen = lat_n != 0
        if seen.any():
            out[seen] = cj.dirichlet_median_quantiles(lat_alpha[seen], [lo_q, 0.5, hi_q])
        return out

    def _prior_widths(self, mass: float) -> dict[str, np.ndarray]:
        """Credible-interval widths under the synthetic prior (cached per vocabulary): per
        endpoint ``(E, 1)``; transitions per source row ``(E+1, 2)``, toward an endpoint (each
        has the same prior share) and toward END."""
        key = (mass, self.sizes.endpoint, self.sizes.status)
        cache = getattr(self, "_prior_width_cache", None)
        if cache is not None and cache[0] == key:
            return cache[1]
        E = len(self.endpoints_)
        prior = self.params_from(Stats.zeros(Sizes(E, 1, len(self.statuses_))))
        widths = {k: gating.key_width(k, prior, self.statuses_, mass)
                  for k in KINDS if k != "transitions"}
        widths["transitions"] = transition_prior_widths(*self._prior()["transitions"], mass)
        self._prior_width_cache = (key, widths)
        return widths

    # ------------------------------------------------------------------ layers
    def params_from(self, evidence: Stats | None, A=None, R=None) -> CellParams:
        """Synthetic prior plus ``evidence`` (relative to it) → conjugate parameters per cell
        (of endpoints ``A`` and transition rows ``R`` when ``evidence`` is such a subset)."""
        prior = self._prior()
        ends = slice(None) if A is None else A
        ev = evidence if evidence is not None else Stats.zeros(self.sizes)
        fade = float(self.config.prior_fade)
        out = {}
        for name, kind in REGISTRY.items():
            weight = None
            n = (kind.fade_count(ev, self.statuses_) if fade > 0 and evidence is not None
                 else None)
            if n is not None:
                if "src" in kind.cell_dims:  # per source row: endpoints, then START
                    strength = np.r_[self._strength(name),
                                     float(self.config.synthetic.prior_strength)]
                else:
                    strength = self._strength(name)[ends, None]
                weight = cj.prior_weight(n, strength=strength, fade=fade)
            out[name] = kind.params(prior[name], ev, ends, weight)
        return CellParams(out)

    def snapshot(self) -> DriftLearner:
        """A copy with the open window closed, so every event seen so far is in the layers."""
        # the history needs no copy
        history, self.history_ = self.history_, []
        try:
            snap = copy.deepcopy(self)
        finally:
            self.history_ = history
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
        if name == "applied":  # rows whose gate is open serve the open sessions' ENDs too
            return self.params_from(self.read_evidence(self.applied_,
                                                       self.gate_["transitions"]))
        raise ValueError(f"unknown layer {name!r}; choose one of {', '.join(LAYERS)}")

    # ------------------------------------------------------------------ notebook API
    def learn(self, source, **options) -> DriftLearner:
        """Learn more events from any source :func:`driftbayes.learn` takes (paths, named
        recordings, event dicts, a DataFrame, an EventBatch), continuing this learner's open
        sessions; returns ``self``."""
        from driftbayes.api import learn

        return learn(source, learner=self, **options)

    def posterior(self, layer: str = "posterior"):
        """The whole state's key quantities with credible intervals, ``n_eff``, confidence and
        gates as one ``xarray.Dataset`` (:func:`driftbayes.posterior.posterior`)."""
        from driftbayes.posterior import posterior

        return posterior(self, layer)

    def to_datatree(self, endpoint=None, persona=None, **options):
        """Exact posterior draws as an ``xarray.DataTree`` for ArviZ 1.x
        (:func:`driftbayes.draws.to_datatree`)."""
        from driftbayes.draws import to_datatree

        return to_datatree(self, endpoint, persona, **options)

    def to_inference_data(self, endpoint=None, persona=None, **options):
        """Exact posterior draws in the installed ArviZ's container: ``InferenceData`` (0.x) or
        ``DataTree`` (1.x) (:func:`driftbayes.draws.to_inference_data`)."""
        from driftbayes.draws import to_inference_data

        return to_inference_data(self, endpoint, persona, **options)

    def patterns(self, layer: str = "applied"):
        """Every learned pattern as a pandas DataFrame (:func:`driftbayes.patterns.patterns`)."""
        from driftbayes.patterns import patterns_frame

        return patterns_frame(self, layer)

    def sample(self, n: int, **options) -> dict:
        """``n`` posterior-predictive responses (:func:`driftbayes.sampling.sample`)."""
        from driftbayes.sampling import sample

        return sample(self, n, **options)

    def sample_sessions(self, k: int, **options) -> list[dict]:
        """``k`` whole sessions (:func:`driftbayes.sampling.sample_sessions`)."""
        from driftbayes.sampling import sample_sessions

        return sample_sessions(self, k, **options)

    def save(self, path):
        """Save the state (:func:`driftbayes.state.save_state`); returns the path."""
        from driftbayes.state import save_state

        return save_state(self, path)

    # ------------------------------------------------------------------ names
    def resolve_endpoint(self, name: str) -> int:
        """Index of an endpoint named ``/tmpl`` or ``METHOD /tmpl`` (method only disambiguates)."""
        method, tmpl = split_endpoint(name)
        if method:
            key = f"{method} {tmpl}"
            if key in self.endpoint_vocab:
                return self.endpoint_vocab.codes[key]
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
        names = self.endpoints_ + [split_endpoint(k)[1] for k in self.endpoints_]
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(f"unknown endpoint {name!r}{hint}")

    def resolve_persona(self, name: str) -> int:
        if name in self.persona_vocab:
            return self.persona_vocab.codes[name]
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
        self._forget(cells, rows)
        if endpoint is not None:
            gone = {self.endpoints_[i] for i in np.flatnonzero(e_mask)}
            self.bodies_ = {k: v for k, v in self.bodies_.items() if k[0] not in gone}
        return int(cells.sum())

    def _forget(self, cells: np.ndarray, rows: np.ndarray) -> None:
        """Zero the ``(endpoint, persona)`` ``cells`` and ``(persona, src)`` transition
        ``rows``: evidence, applied, pending, gates and run lengths."""
        for stats in (self.evidence_, self.applied_, self.pending_):
            for name, dims in STAT_DIMS.items():
                if dims[0] == "persona":
                    stats[name].zero_cells(rows)
                else:
                    stats[name] = np.where(broadcast_gate(cells, name), 0.0, stats[name])
        for kind, g in self.gate_.items():
            g &= ~(rows if kind == "transitions" else cells)
        self.runs.reset_cells(cells)
        self._lazy_reset()  # every cell is up to date; which are hot is recomputed

    # ------------------------------------------------------------------ a scan split by endpoint
    # The scan is per endpoint: an endpoint's persona cells pool together, its transition rows
    # (source = the endpoint, any destination) and think times (after it) are its own, and
    # every other input is shared by all endpoints alike (the vocabularies and the windows
    # they join in, the exposure clock, the config and the priors, which depend on the whole
    # vocabulary but on no cell's data). So a copy of the learner that keeps only a block of
    # endpoints (:meth:`keep_endpoints`), scanning only their sums (:meth:`split_blocks`) with the
    # whole run's joins, ends with those endpoints' cells as the whole scan would, and
    # :meth:`join_blocks` puts the blocks back together. START's row goes with one block.
    def split_blocks(self, names: tuple[list, list, list], blocks: int,
                     window: int | None = None) -> list:
        """This shard's sums in the vocabulary ``names`` (endpoints, personas, statuses: the
        whole run's, holding this shard's), split into ``blocks``
        :class:`~driftbayes.blocks.BlockSums` by :func:`~driftbayes.blocks.block_of`; block 0
        has START's row, the open sessions and the event counts. ``window``: the run's last
        window, which the shard's open window first moves to (closing the windows before it,
        so sessions whose gap runs out end there), so that every block ends alike."""
        from driftbayes.blocks import BlockSums, block_of, split_window

        if self.window_sums_ is None:
            raise ValueError("split_blocks splits a shard (DriftLearner.shard()), not a learner")
        if window is not None and self.window_ is not None and self.window_ < window:
            moved = self._copy()  # this shard stays as it is (an engine may share it)
            moved._advance(window)
            return moved.split_blocks(names, blocks)
        sizes = Sizes(*(len(n) for n in names))
        block = block_of(names[0], blocks)
        codes = tuple(Vocabulary(whole).codes_of(mine.names)
                      for whole, mine in zip(names, (self.endpoint_vocab, self.persona_vocab,
                                                     self.status_vocab)))
        if any((c < 0).any() for c in codes):
            raise ValueError("split_blocks: names must hold every name of the shard")
        sums = dict(self.window_sums_)
        last = self.window_ if self.window_ is not None else window
        if last is not None:
            sums[last] = self.pending_
        split = {w: split_window(s, codes, block, sizes, blocks) for w, s in sums.items()}
        out = []
        for b in range(blocks):
            first = b == 0
            sessions = (self.sessions.remapped(codes[0], codes[1]) if first
                        else OpenSessions())
            out.append(BlockSums(
                names, np.flatnonzero(block == b), first, {w: s[b] for w, s in split.items()},
                last, sessions, self.n_events_ if first else 0, self.n_late_ if first else 0,
                self.t_first_ if first else math.nan, self.t_last_ if first else math.nan))
        return out

    def keep_endpoints(self, endpoints: np.ndarray, start: bool = False) -> DriftLearner:
        """Forget every cell but those of the endpoints ``endpoints`` (an ``(E,)`` mask) and,
        when ``start``, START's transition row: the learner a block of a scan split by
        endpoint continues (see :meth:`split_blocks`). Returns ``self``."""
        mask = np.asarray(endpoints, dtype=bool)
        P = len(self.personas_)
        if not mask.size or (mask.all() and start):
            return self
        self._forget(~np.repeat(mask[:, None], P, axis=1),
                     ~np.repeat(np.r_[mask, start][None, :], P, axis=0))
        return self

    def take_cells(self, other: DriftLearner, endpoints: np.ndarray,
                   start: bool = False) -> DriftLearner:
        """Take the cells of the endpoints ``endpoints`` (an ``(E,)`` mask), and START's
        transition row when ``start``, from ``other``, a learner with the same vocabularies
        and open window: evidence, applied and pending statistics, gates and run lengths.
        Returns ``self``."""
        if (other.endpoints_, other.personas_, other.statuses_, other.window_) != (
                self.endpoints_, self.personas_, self.statuses_, self.window_):
            raise ValueError("take_cells needs learners with the same vocabularies and window")
        mask = np.asarray(endpoints, dtype=bool)
        A, R = np.flatnonzero(mask), np.flatnonzero(np.r_[mask, start])
        for attr in ("evidence_", "applied_", "pending_"):  # both up to date
            getattr(self, attr).assign(A, R, getattr(other, attr).subset(A, R))
        gate, theirs = self.gate_, other.gate_
        for kind, g in gate.items():
            if kind == "transitions":
                g[:, R] = theirs[kind][:, R]
            else:
                g[A] = theirs[kind][A]
        self.runs.take_cells(other.runs, mask)
        self._lazy_reset()
        return self

    def join_blocks(self, scans: list[DriftLearner], blocks: list[np.ndarray]) -> DriftLearner:
        """Become the result of a scan split by endpoint: ``scans[i]`` is a copy of this
        learner that kept the endpoints ``blocks[i]`` (masks over the final vocabulary,
        :meth:`keep_endpoints`) and scanned their sums (:meth:`split_blocks`,
        :meth:`learn_sums`);
        ``scans[0]`` has START's row and the run's open sessions and counts. Change counts
        add up and history rows join in window order. Returns ``self``."""
        before, changes = len(self.history_), self.changes_
        base = copy.deepcopy(scans[0])  # written into: an engine may hand back read-only arrays
        for scan, mask in zip(scans[1:], blocks[1:]):
            base.take_cells(scan, mask)
        base.changes_ = changes + sum(s.changes_ - changes for s in scans)
        if self.track_history:
            codes = base.endpoint_vocab.codes
            pcodes = base.persona_vocab.codes
            rows = [r for s, mask in zip(scans, blocks) for r in s.history_[before:]
                    if mask[codes[r[1]]]]
            rows.sort(key=lambda r: (r[0], codes[r[1]], pcodes[r[2]]))
            base.history_ = self.history_ + rows
        config, track = self.config, self.track_history
        self.__dict__.update(base.__dict__)
        self.config, self.track_history = config, track
        return self

    def __add__(self, other: DriftLearner) -> DriftLearner:
        """Merge two learners that saw disjoint traffic (e.g. shards) under the same config.

        Both are first brought to the same open window. Data statistics add; exposure (the
        observed time behind request rates) is shared, so it merges as the elementwise maximum.
        Evidence and pending statistics merge exactly when no shard detected a change
        (``changepoint_z`` = 0 and ``changepoint_hazard`` = 0, or no window contradicted its
        evidence and no change probability crossed ``changepoint_threshold``: adaptive
        forgetting depends on the data a shard saw); the applied layer is a controller whose
        path depends on the gates, so merged applied statistics are the sum of the shards'. The
        recent window sums add up; run-length posteriors start afresh from the long run.
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
        out.sessions.merge(b.sessions)
        if a.window_sums_ is not None or b.window_sums_ is not None:
            out.window_sums_ = dict(a.window_sums_ or {})
            for w, s in (b.window_sums_ or {}).items():
                out.window_sums_[w] = out.window_sums_[w].grown(a.sizes) + s if (
                    w in out.window_sums_) else s
        return out

    def learn_sums(self, shard: DriftLearner, *, joins=None) -> DriftLearner:
        """Run the sequential scan over a shard's (or merged shards') per-window sums: the
        same result as learning the shards' events in one process (see :meth:`shard`).

        Each name joins the vocabularies in the window of its first event, found in the sums;
        ``joins`` (window → ``(endpoints, personas, statuses)`` first seen in it, in order of
        first appearance) says so instead, for sums that hold only some cells (a scan split by
        cell) or shards whose vocabularies list names in another order. Windows are read from
        ``window_sums_`` one at a time (in window order), so it may be a lazy mapping.
        """
        if shard.window_sums_ is None:
            raise ValueError("learn_sums needs a shard (DriftLearner.shard()), not a learner")
        if shard.window_ is None:
            return self

        def sums():
            for w in sorted(shard.window_sums_):
                yield w, shard.window_sums_[w].grown(shard.sizes)
            yield shard.window_, shard.pending_

        if joins is None:
            joins = shard.first_seen()
        vocabs = (self.endpoint_vocab, self.persona_vocab, self.status_vocab)
        maps = None
        for w, stats in sums():
            if self.window_ is None:
                self.window_ = w
            self._lazy_init()
            if w > self.window_:
                self._advance(w)
            # each name joins in the window of its first event, as when learning the events
            joined = False
            for which, mine in enumerate(vocabs):
                new = mine.missing(joins[w][which] if w in joins else [])
                self._register(new, mine)
                joined |= bool(new)
            if maps is None or joined:
                ie, ip, is_ = (mine.codes_of(theirs.names)
                               for mine, theirs in ((self.endpoint_vocab, shard.endpoint_vocab),
                                                    (self.persona_vocab, shard.persona_vocab),
                                                    (self.status_vocab, shard.status_vocab)))
                isrc = np.r_[ie, len(self.endpoints_)]
                maps = {"endpoint": ie, "persona": ip, "status": is_, "src": isrc, "dst": isrc}
            self._add_pending(stats.remapped(maps, self.sizes))
        ie = self.endpoint_vocab.remap(shard.endpoint_vocab)
        self.sessions.merge(shard.sessions.remapped(ie, self.persona_vocab.remap(
            shard.persona_vocab)))
        self.bodies_ = {**shard.bodies_, **self.bodies_}
        self.n_events_ += shard.n_events_
        self.n_late_ += shard.n_late_
        self.t_first_ = float(np.fmin(self.t_first_, shard.t_first_))  # NaN: none yet
        self.t_last_ = float(np.fmax(self.t_last_, shard.t_last_))
        return self

    def first_seen(self) -> dict[int, tuple[list, list, list]]:
        """A shard's names by the window of their first data: window → ``(endpoints,
        personas, statuses)`` first seen in it, each in code order (what :meth:`learn_sums`
        joins when not told otherwise)."""
        if self.window_sums_ is None:
            raise ValueError("first_seen reads a shard (DriftLearner.shard())")
        if self.window_ is None:
            return {}
        vocabs = ((self.endpoint_vocab, (1, 2)), (self.persona_vocab, (0, 2)),
                  (self.status_vocab, None))
        done = [np.zeros(len(v.names), bool) for v, _ in vocabs]
        out = {}
        windows = sorted(self.window_sums_)
        for w in windows + [self.window_]:
            stats = self.pending_ if w == self.window_ else self.window_sums_[w]
            found = []
            for (vocab, other_axes), seen_before in zip(vocabs, done):
                seen = (stats["status_count"].sum(axis=(0, 1)) if other_axes is None
                        else stats["freq_count"].sum(axis=other_axes)) > 0
                new = np.flatnonzero(seen & ~seen_before[: len(seen)])
                seen_before[new] = True
                found.append([vocab.names[c] for c in new])
            if any(found):
                out[w] = tuple(found)
        return out

    def _add_pending(self, stats: Stats) -> None:
        """Add statistics to the open window and mark the cells they touch."""
        self.pending_ = self.pending_ + stats
        for name, dims in STAT_DIMS.items():
            if dims[0] == "endpoint":
                self._touched_e |= stats[name].any(axis=tuple(range(1, len(dims))))
        self._touched_r |= stats["trans_count"].rows_with_data()

    def _copy(self) -> DriftLearner:
        """A deep copy sharing the closed windows' sums of a shard (never changed in place)."""
        sums, self.window_sums_ = self.window_sums_, None
        try:
            out = copy.deepcopy(self)
        finally:
            self.window_sums_ = sums
        out.window_sums_ = None if sums is None else dict(sums)
        return out

    @staticmethod
    def _aligned(x: DriftLearner, y: DriftLearner) -> tuple[DriftLearner, DriftLearner]:
        a, b = x._copy(), y._copy()
        # y's vocabulary codes are remapped into a's (appending new names)
        a.endpoint_vocab.add(b.endpoints_)
        a.persona_vocab.add(b.personas_)
        a.status_vocab.add(b.statuses_)
        a._grow()
        remapped = DriftLearner(a.config)
        remapped.endpoints_, remapped.personas_, remapped.statuses_ = (
            list(a.endpoints_), list(a.personas_), list(a.statuses_))
        ie = a.endpoint_vocab.remap(b.endpoint_vocab)
        ip = a.persona_vocab.remap(b.persona_vocab)
        is_ = a.status_vocab.remap(b.status_vocab)
        E = len(a.endpoints_)
        isrc = np.r_[ie, E]
        maps = {"endpoint": ie, "persona": ip, "status": is_, "src": isrc, "dst": isrc}
        for attr in ("evidence_", "applied_", "pending_"):
            setattr(remapped, attr, getattr(b, attr).remapped(maps, remapped.sizes))
        if b.window_sums_ is not None:
            same = all(np.array_equal(m, np.arange(len(m))) for m in maps.values())
            remapped.window_sums_ = {w: s.grown(remapped.sizes) if same else
                                     s.grown(b.sizes).remapped(maps, remapped.sizes)
                                     for w, s in b.window_sums_.items()}
        remapped.gate_ = remapped._closed_gates()
        for k, g in b.gate_.items():
            idx = (ip, isrc) if k == "transitions" else (ie, ip)
            remapped.gate_[k][np.ix_(*idx)] = g
        remapped.runs = b.runs.remapped(ie, ip, is_, remapped.sizes)
        remapped.window_, remapped.n_events_, remapped.n_late_ = b.window_, b.n_events_, b.n_late_
        remapped.t_first_, remapped.t_last_ = b.t_first_, b.t_last_
        remapped.sessions = b.sessions.remapped(ie, ip)
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
    HISTORY_COLUMNS = HISTORY_COLUMNS

    def history_frame(self):
        """Per-window history as a pandas DataFrame (needs ``track_history=True``)."""
        return history_frame(self.history_)

    def history(self):
        """Per-window history as an ``xarray.Dataset`` with a ``window`` time dim (needs
        ``track_history=True``; :func:`driftbayes.history.history_dataset`)."""
        from driftbayes.history import history_dataset

        return history_dataset(self.history_)

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
                warnings.warn(f"gate can never open for {reason}", GateUnreachableWarning,
                              stacklevel=2)


def response_bodies(batch: EventBatch, keys: np.ndarray | None = None
                    ) -> dict[tuple[str, int], tuple[str, str]]:
    """The latest (already redacted) response body per endpoint key × status in a batch:
    ``(key, status) → (content type, text)``, keys in order of first appearance (what
    :attr:`DriftLearner.bodies_` keeps). ``keys``: each event's ``"METHOD /template"``."""
    body = batch.extra.get("response_body")
    if body is None:
        return {}
    ctype = batch.extra.get("response_content_type")
    out: dict[tuple[str, int], tuple[str, str]] = {}
    for i in np.flatnonzero(pd.notna(body) & (batch.status > 0)):
        if isinstance(body[i], str) and body[i]:
            key = keys[i] if keys is not None else f"{batch.method[i]} {batch.endpoint[i]}"
            ct = ctype[i] if ctype is not None and isinstance(ctype[i], str) else ""
            out[(str(key), int(batch.status[i]))] = (ct or "application/json", body[i])
    return out


def _has_events(stats: Stats) -> bool:
    return bool(stats["freq_count"].any())
