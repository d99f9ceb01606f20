"""Transitions: a first-order Markov chain over endpoints with START and END, one Dirichlet row
per persona × source state; key quantity the probability of the row's most likely next state,
on the arcsin √p scale.

The counts are sparse (:class:`TransitionCounts`): only observed ``(source, destination)``
pairs are stored, each with one value per persona, so memory follows the traffic rather than
E². A row's unobserved destinations keep their prior share analytically:
:class:`TransitionParams` is the one API through which every reader (patterns, sampling,
serve's flow rule, the exports) sees the posterior rows.

Codes follow the dense convention: source rows are endpoints ``0…E-1`` then START (``E``);
destinations are endpoints then END (``E``). ``n_states`` is ``E + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.kinds.base import Kind, cell_array

_SHIFT = np.int64(1) << np.int64(32)


def _run_starts(keys: np.ndarray) -> np.ndarray:
    """Start of each run of equal values in a sorted array."""
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, int)


class TransitionCounts:
    """Decay-weighted transition counts of the observed ``(src, dst)`` pairs, every persona.

    Parameters
    ----------
    src, dst : ndarray of int64, shape (n,)
        The pairs, sorted by ``(src, dst)`` and unique.
    val : ndarray, shape (n, P)
        Count per pair and persona.
    n_states : int
        ``E + 1``: START is source ``E``, END destination ``E``.
    rows : ndarray of int64, optional
        Sorted source rows this holds when it is a subset (:meth:`subset_rows`); ``None``: all.
    """

    __slots__ = ("src", "dst", "val", "n_states", "rows")

    def __init__(self, src, dst, val, n_states: int, rows=None):
        self.src = np.asarray(src, dtype=np.int64)
        self.dst = np.asarray(dst, dtype=np.int64)
        self.val = np.asarray(val, dtype=float)
        self.n_states = int(n_states)
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)

    # ---------------------------------------------------------------- construction
    @classmethod
    def empty(cls, personas: int, n_states: int, rows=None) -> TransitionCounts:
        z = np.zeros(0, np.int64)
        return cls(z, z, np.zeros((0, personas)), n_states, rows)

    @classmethod
    def from_coo(cls, p, src, dst, w, personas: int, n_states: int) -> TransitionCounts:
        """Sum of weights ``w`` at ``(p, src, dst)`` (duplicates add up)."""
        p, src, dst = (np.asarray(x, dtype=np.int64) for x in (p, src, dst))
        w = np.broadcast_to(np.asarray(w, dtype=float), p.shape)
        keys = src * _SHIFT + dst
        uniq, inv = np.unique(keys, return_inverse=True)
        val = np.zeros((len(uniq), personas))
        np.add.at(val, (inv.ravel(), p), w)
        return cls(uniq // _SHIFT, uniq % _SHIFT, val, n_states)

    @classmethod
    def from_dense(cls, arr: np.ndarray) -> TransitionCounts:
        """From a dense ``(P, E+1, E+1)`` array (pairs with a non-zero count are kept)."""
        arr = np.asarray(arr, dtype=float)
        src, dst = np.nonzero(arr.any(axis=0))
        return cls(src, dst, arr[:, src, dst].T.copy(), arr.shape[-1])

    def to_dense(self) -> np.ndarray:
        """``(P, rows, E+1)`` dense counts (all ``E+1`` rows unless this is a subset)."""
        rows = self.row_list()
        out = np.zeros((self.personas, len(rows), self.n_states))
        out[:, self.row_pos(), self.dst] = self.val.T
        return out

    # ---------------------------------------------------------------- shape
    @property
    def personas(self) -> int:
        return self.val.shape[1]

    @property
    def keys(self) -> np.ndarray:
        return self.src * _SHIFT + self.dst

    def __len__(self) -> int:
        return len(self.src)

    def row_list(self) -> np.ndarray:
        """The source rows held, in order."""
        return np.arange(self.n_states) if self.rows is None else self.rows

    def row_pos(self) -> np.ndarray:
        """Position of each pair's source in :meth:`row_list`."""
        return self.src if self.rows is None else np.searchsorted(self.rows, self.src)

    def row_sums(self) -> np.ndarray:
        """``(P, rows)`` total count per persona and source row."""
        nrows = len(self.row_list())
        pos = self.row_pos()
        return np.stack([np.bincount(pos, weights=self.val[:, j], minlength=nrows)
                         for j in range(self.personas)]) if self.personas else np.zeros((0, nrows))

    def per_pair(self, cell: np.ndarray) -> np.ndarray:
        """A per-cell ``(P, rows)`` array spread to the pairs: ``(n, P)``."""
        return np.asarray(cell)[:, self.row_pos()].T

    def any(self) -> bool:
        return bool(self.val.any())

    # ---------------------------------------------------------------- arithmetic
    def copy(self) -> TransitionCounts:
        return TransitionCounts(self.src.copy(), self.dst.copy(), self.val.copy(),
                                self.n_states, self.rows)

    def with_values(self, val: np.ndarray) -> TransitionCounts:
        """Same pairs, new values."""
        return TransitionCounts(self.src, self.dst, val, self.n_states, self.rows)

    def scaled(self, factor: float) -> TransitionCounts:
        return self.with_values(self.val * factor)

    __mul__ = scaled
    __rmul__ = scaled

    def __add__(self, other: TransitionCounts) -> TransitionCounts:
        a, b = self.aligned(other)
        return a.with_values(a.val + b.val)

    def __sub__(self, other: TransitionCounts) -> TransitionCounts:
        a, b = self.aligned(other)
        return a.with_values(a.val - b.val)

    def aligned(self, *others: TransitionCounts) -> tuple[TransitionCounts, ...]:
        """This and ``others`` over the union of their pairs (zeros where one has none)."""
        group = (self,) + others
        if all(len(o) == len(self) and np.array_equal(o.src, self.src)
               and np.array_equal(o.dst, self.dst) for o in others):
            return group
        keys = np.unique(np.concatenate([o.keys for o in group]))
        rows = self.rows
        out = []
        for o in group:
            val = np.zeros((len(keys), o.personas))
            val[np.searchsorted(keys, o.keys)] = o.val
            out.append(TransitionCounts(keys // _SHIFT, keys % _SHIFT, val, self.n_states, rows))
        return tuple(out)

    def equals(self, other: TransitionCounts, rtol: float = 1e-9, atol: float = 1e-9) -> bool:
        a, b = self.aligned(other)
        return bool(np.allclose(a.val, b.val, rtol=rtol, atol=atol))

    def add(self, p, src, dst, w=1.0) -> None:
        """Add weights at ``(persona, src, dst)`` in place."""
        if len(np.atleast_1d(p)):
            new = TransitionCounts.from_coo(p, src, dst, w, self.personas, self.n_states)
            new.rows = self.rows
            merged = self + new
            self.src, self.dst, self.val = merged.src, merged.dst, merged.val

    # ---------------------------------------------------------------- rows
    def _in_rows(self, rows) -> np.ndarray:
        mask = np.zeros(self.n_states, bool)
        mask[np.asarray(rows, dtype=np.int64)] = True
        return mask[self.src]

    def subset_rows(self, rows) -> TransitionCounts:
        """A copy holding only source ``rows``."""
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        sel = self._in_rows(rows)
        return TransitionCounts(self.src[sel], self.dst[sel], self.val[sel], self.n_states, rows)

    def assign_rows(self, rows, sub: TransitionCounts) -> None:
        """Replace the pairs of source ``rows`` by ``sub``'s (a :meth:`subset_rows`)."""
        inside = self._in_rows(rows)
        keys, sub_keys = self.keys, sub.keys
        pos = np.searchsorted(keys, sub_keys)
        hit = pos < len(keys)
        hit[hit] = keys[pos[hit]] == sub_keys[hit]
        if hit.all() and int(inside.sum()) == len(sub):  # same pairs: in place
            self.val[pos] = sub.val
            return
        keep = ~inside
        src = np.concatenate([self.src[keep], sub.src])
        dst = np.concatenate([self.dst[keep], sub.dst])
        val = np.concatenate([self.val[keep], sub.val])
        order = np.argsort(src * _SHIFT + dst, kind="stable")  # two sorted runs: a merge
        self.src, self.dst, self.val = src[order], dst[order], val[order]

    def clear_rows(self, rows) -> None:
        """Zero source ``rows`` (their pairs are dropped)."""
        keep = ~self._in_rows(rows)
        self.src, self.dst, self.val = self.src[keep], self.dst[keep], self.val[keep]

    def scale_rows(self, rows, factor) -> None:
        """Multiply source ``rows`` by ``factor`` (one per row), in place."""
        f = np.ones(self.n_states)
        f[np.asarray(rows, dtype=np.int64)] = factor
        self.val *= f[self.src][:, None]

    def zero_cells(self, mask: np.ndarray) -> None:
        """Zero the ``(persona, src)`` cells where ``mask`` (``(P, E+1)``) is true."""
        self.val[np.asarray(mask)[:, self.src].T] = 0.0

    def rows_with_data(self) -> np.ndarray:
        """``(E+1,)`` whether any persona has a non-zero count in each source row."""
        out = np.zeros(self.n_states, bool)
        out[self.src[self.val.any(axis=1)]] = True
        return out

    def row_totals(self) -> np.ndarray:
        """``(E+1,)`` count per source row, all personas and destinations."""
        return np.bincount(self.src, weights=self.val.sum(axis=1), minlength=self.n_states)

    # ---------------------------------------------------------------- vocabulary
    def grown(self, personas: int, n_states: int) -> TransitionCounts:
        """Padded to more personas and endpoints (START and END move to the new last code)."""
        old_last = self.n_states - 1
        src = np.where(self.src == old_last, n_states - 1, self.src)
        dst = np.where(self.dst == old_last, n_states - 1, self.dst)
        val = np.zeros((len(src), personas))
        val[:, : self.personas] = self.val
        return TransitionCounts(src, dst, val, n_states)

    def remapped(self, state_map: np.ndarray, persona_map: np.ndarray, personas: int,
                 n_states: int) -> TransitionCounts:
        """Codes mapped into another vocabulary (``state_map`` for sources and destinations,
        START/END included; ``persona_map`` for personas); -1 drops a code (it must hold no
        counts)."""
        src, dst = state_map[self.src], state_map[self.dst]
        kept = (src >= 0) & (dst >= 0)
        src, dst = src[kept], dst[kept]
        val = np.zeros((len(src), personas))
        val[:, persona_map[persona_map >= 0]] = self.val[kept][:, persona_map >= 0]
        keys = src * _SHIFT + dst
        order = np.argsort(keys, kind="stable")
        return TransitionCounts(src[order], dst[order], val[order], n_states)

    # ---------------------------------------------------------------- dataset
    def __repr__(self) -> str:
        return (f"TransitionCounts({len(self)} pairs × {self.personas} personas, "
                f"{self.n_states} states)")


def transition_prior(strength, end_probability, start_strength: float):
    """Synthetic Dirichlet prior of every source row as two ``(E+1,)`` vectors: ``base``, the
    pseudo-count of each endpoint destination (rows spread their prior evenly), and ``end``,
    the pseudo-count of END. Endpoint rows end with probability ``1/session_length``; the
    START row never ends (an empty session is impossible)."""
    strength = np.asarray(strength, dtype=float)
    E = len(strength)
    if not E:
        return np.zeros(1), np.zeros(1)
    p_end = np.asarray(end_probability, dtype=float)
    base = np.r_[strength * (1 - p_end) / E, start_strength / E]
    end = np.r_[strength * p_end, 0.0]
    base = np.where(base > 0, base, cj._ALPHA_FLOOR)
    end = np.where(end > 0, end, cj._ALPHA_FLOOR)
    end[E] = 0.0
    return base, end


@dataclass
class TransitionParams:
    """Dirichlet rows of the transition model: the prior's ``base`` / ``end`` vectors plus the
    sparse counts. Row ``(p, src)`` has ``alpha[dst] = base[src] + count`` for an endpoint
    ``dst`` and ``end[src] + count`` for END."""

    base: np.ndarray  # (E+1,) prior pseudo-count of each endpoint destination, per source row
    end: np.ndarray  # (E+1,) prior pseudo-count of END, per source row
    counts: TransitionCounts

    @property
    def n_states(self) -> int:
        return self.counts.n_states

    @property
    def personas(self) -> int:
        return self.counts.personas

    def rows(self) -> np.ndarray:
        return self.counts.row_list()

    def alpha(self) -> np.ndarray:
        """``(n, P)`` Dirichlet parameter of each stored pair."""
        c = self.counts
        prior = np.where(c.dst == c.n_states - 1, self.end[c.src], self.base[c.src])
        return prior[:, None] + c.val

    def totals(self) -> np.ndarray:
        """``(P, rows)`` sum of each row's Dirichlet parameters."""
        rows = self.rows()
        E = self.n_states - 1
        return (self.base[rows] * E + self.end[rows])[None, :] + self.counts.row_sums()

    def end_share(self) -> np.ndarray:
        """``(P, rows)`` probability of END next, per row (the Dirichlet mean's END share)."""
        c = self.counts
        rows = self.rows()
        end_alpha = np.broadcast_to(self.end[rows][None, :], (self.personas, len(rows))).copy()
        is_end = c.dst == self.n_states - 1
        end_alpha[:, c.row_pos()[is_end]] += c.val[is_end].T
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.nan_to_num(end_alpha / self.totals())

    # ---------------------------------------------------------------- one row, dense
    def row(self, p: int, src: int) -> np.ndarray:
        """``(E+1,)`` Dirichlet parameters of row ``(p, src)`` (``src`` a global code)."""
        out = np.full(self.n_states, self.base[src])
        out[-1] = self.end[src]
        c = self.counts
        lo, hi = np.searchsorted(c.src, [src, src + 1])
        out[c.dst[lo:hi]] += c.val[lo:hi, p]
        return out

    def row_counts(self, p: int, src: int) -> np.ndarray:
        """``(E+1,)`` counts of row ``(p, src)`` (no prior)."""
        out = np.zeros(self.n_states)
        c = self.counts
        lo, hi = np.searchsorted(c.src, [src, src + 1])
        out[c.dst[lo:hi]] = c.val[lo:hi, p]
        return out

    def mean_row(self, p: int, src: int) -> np.ndarray:
        """``(E+1,)`` Dirichlet mean of row ``(p, src)``: the next-state probabilities."""
        return cj.dirichlet_mean(self.row(p, src))

    def dense(self) -> np.ndarray:
        """``(P, rows, E+1)`` Dirichlet parameters (small vocabularies only)."""
        rows = self.rows()
        out = np.repeat(self.base[rows][None, :, None], self.n_states, axis=2)
        out = np.broadcast_to(out, (self.personas,) + out.shape[1:]).copy()
        out[:, :, -1] = self.end[rows]
        out += self.counts.to_dense()
        return out

    # ---------------------------------------------------------------- key quantity
    def top(self) -> tuple[np.ndarray, np.ndarray]:
        """``(index, alpha)`` of each row's most likely next state, ``(P, rows)`` each; ties go
        to the lowest index, as ``argmax`` over the dense row would."""
        c = self.counts
        rows = self.rows()
        E = self.n_states - 1
        P, R = self.personas, len(rows)
        pos = c.row_pos()
        alpha = self.alpha()
        is_end = c.dst == E
        # END's parameter per cell
        end_alpha = np.broadcast_to(self.end[rows][None, :], (P, R)).copy()
        end_alpha[:, pos[is_end]] = alpha[is_end].T
        # best endpoint destination: observed pairs, else the first unobserved one at `base`
        n_seen = np.bincount(pos[~is_end], minlength=R)
        first_free = _first_free(c.dst[~is_end], pos[~is_end], R)
        best = np.where(n_seen < E, self.base[rows], -np.inf)[None, :].repeat(P, 0)
        best_idx = np.where(n_seen < E, first_free, E)[None, :].repeat(P, 0)
        ep = np.flatnonzero(~is_end)
        if len(ep):
            # per row (pairs are sorted by row, then dst): the largest observed alpha, the
            # lowest dst among ties
            r, val, first = _segment_argmax(alpha[ep], pos[ep])  # (rows seen, P) each
            d = c.dst[ep][first]
            cur, cur_idx = best[:, r].T, best_idx[:, r].T
            better = (val > cur) | ((val == cur) & (d < cur_idx))
            best[:, r] = np.where(better, val, cur).T
            best_idx[:, r] = np.where(better, d, cur_idx).T
        to_end = end_alpha > best
        return np.where(to_end, E, best_idx), np.where(to_end, end_alpha, best)

    def top_next(self, p: int, src: int, k: int = 5) -> list[tuple[int, float]]:
        """The ``k`` most likely next states of row ``(p, src)`` with their probabilities,
        highest first, ties in index order."""
        c = self.counts
        lo, hi = np.searchsorted(c.src, [src, src + 1])
        E = self.n_states - 1
        dst = c.dst[lo:hi]
        alpha = np.where(dst == E, self.end[src], self.base[src]) + c.val[lo:hi, p]
        seen = set(dst.tolist())
        free, j = [], 0
        while len(free) < k and j < E:  # at most k + len(seen) steps
            if j not in seen:
                free.append(j)
            j += 1
        cand_d = np.r_[dst, free, [] if E in seen else [E]].astype(np.int64)
        cand_a = np.r_[alpha, np.full(len(free), self.base[src]),
                       [] if E in seen else [self.end[src]]]
        total = self.base[src] * E + self.end[src] + c.val[lo:hi, p].sum()
        prob = cand_a / total if total > 0 else np.zeros(len(cand_a))
        order = np.lexsort((cand_d, -prob))[:k]
        return [(int(cand_d[i]), float(prob[i])) for i in order]

    def visits(self, p: int) -> np.ndarray:
        """``(E,)`` expected visits of each endpoint per session of persona ``p`` (the chain
        absorbed at END, from START), solved sparse: the rows' Dirichlet means are the
        observed part plus a rank-one prior part, so Sherman–Morrison on ``I − Qᵀ``."""
        from scipy.sparse import csc_matrix, identity
        from scipy.sparse.linalg import splu

        E = self.n_states - 1
        if E == 0:
            return np.zeros(0)
        c = self.counts
        totals = self.base * E + self.end + np.bincount(c.src, weights=c.val[:, p],
                                                        minlength=E + 1)
        inner = (c.src < E) & (c.dst < E)
        d = csc_matrix((c.val[inner, p] / totals[c.src[inner]], (c.dst[inner], c.src[inner])),
                       shape=(E, E))  # Dᵀ: observed part of Q, transposed
        b = (self.base / totals)[:E]  # prior part: Q = D + b·1ᵀ
        start = self.mean_row(p, E)[:E]
        lu = splu((identity(E, format="csc") - d).tocsc())
        x, y = lu.solve(start), lu.solve(np.ones(E))
        return x + y * (b @ x) / (1.0 - b @ y)

    # ---------------------------------------------------------------- predictive
    def sample_next(self, p: np.ndarray, src: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One next state per ``(p[i], src[i])`` from the rows' Dirichlet means, by inverse
        CDF: the same draws as :func:`driftbayes.conjugate.sample_categorical` on dense rows."""
        p, src = np.asarray(p, dtype=np.int64), np.asarray(src, dtype=np.int64)
        u = rng.random(len(p))
        out = np.empty(len(p), dtype=np.int64)
        cell = p * self.n_states + src
        for key in np.unique(cell):
            who = np.flatnonzero(cell == key)
            cdf = np.cumsum(self.mean_row(int(key // self.n_states), int(key % self.n_states)))
            out[who] = np.minimum((cdf[None, :] < (u[who] * cdf[-1])[:, None]).sum(-1),
                                  self.n_states - 1)
        return out


def _segment_argmax(x: np.ndarray, pos: np.ndarray):
    """Per run of equal ``pos`` (sorted) and per column of ``x`` (``(n, P)``): the run's row,
    its maximum and the index of its first maximal element, each ``(runs, P)`` (row ``(runs,)``)."""
    starts = _run_starts(pos)
    top = np.maximum.reduceat(x, starts, axis=0)
    at = np.where(x == np.repeat(top, np.diff(np.r_[starts, len(x)]), axis=0),
                  np.arange(len(x))[:, None], len(x))
    return pos[starts], top, np.minimum.reduceat(at, starts, axis=0)


def _first_free(dst: np.ndarray, pos: np.ndarray, n_rows: int) -> np.ndarray:
    """Per row, the lowest endpoint code with no stored pair (``dst`` sorted within rows)."""
    out = np.zeros(n_rows, dtype=np.int64)
    if not len(dst):
        return out
    start = np.r_[0, np.cumsum(np.bincount(pos, minlength=n_rows))][:-1]
    rank = np.arange(len(dst)) - start[pos]
    gap = dst != rank  # the first pair whose code skips past its rank marks the first hole
    count = np.bincount(pos, minlength=n_rows)
    out[:] = count  # no hole before the last stored pair: the next code is free
    idx = np.flatnonzero(gap)
    if len(idx):
        first = idx[_run_starts(pos[idx])]
        out[pos[first]] = rank[first]
    return out


def component_width(alpha, total, mass: float) -> np.ndarray:
    """Width of the Beta marginal interval of a Dirichlet component ``alpha`` of a row whose
    parameters sum to ``total``."""
    return cj.beta_width_stabilised(alpha, total - alpha, mass=mass)


def prior_widths(base: np.ndarray, end: np.ndarray, mass: float) -> np.ndarray:
    """Prior widths per source row ``(E+1, 2)``: toward any endpoint (all share one prior
    mass) and toward END."""
    E = len(base) - 1
    total = base * E + end
    alpha = np.stack([base if E else np.zeros_like(base), end], axis=-1)
    return cj.beta_width_stabilised(alpha, total[:, None] - alpha, mass=mass)


class Transitions(Kind):
    """Counted by the learner's session machinery (START, END, session expiry), not by
    :meth:`accumulate`; rows, not endpoint cells, are its gate's unit."""

    def prior(self, ctx):
        return transition_prior(ctx.col("prior_strength"), 1.0 / ctx.col("session_length"),
                                float(ctx.default.prior_strength))

    def params(self, prior, ev, ends, weight=None):
        base, end = prior
        if weight is not None:  # one share per source row (all personas): see fade_count
            base, end = base * weight, end * weight
        return TransitionParams(base, end, ev["trans_count"])

    def count(self, stats):
        return stats["trans_count"].row_sums()

    def fade_count(self, stats, statuses):
        # per source row, all personas together: the rows' prior vectors are shared by the
        # personas (persona rows pool toward their endpoint's anyway)
        return stats["trans_count"].row_totals()

    def key(self, prm, statuses, mass):
        _, top_alpha = prm.top()
        total = prm.totals()
        return (top_alpha / total, *cj.beta_interval(top_alpha, total - top_alpha, mass=mass))

    def width(self, prm, statuses, mass):
        return component_width(prm.top()[1], prm.totals(), mass)

    def variables(self, prm):
        # the observed pairs only (sparse): ``pair`` is indexed by ``pair_src``, ``pair_dst``
        c = prm.counts
        return {"transition_base": (("src",), prm.base), "transition_end": (("src",), prm.end),
                "transition_count": (("pair", "persona"), c.val),
                "pair_src_code": (("pair",), c.src), "pair_dst_code": (("pair",), c.dst)}

    def from_variables(self, ds):
        counts = TransitionCounts(cell_array(ds, "pair_src_code"), cell_array(ds, "pair_dst_code"),
                                  cell_array(ds, "transition_count"), ds.sizes["src"])
        return TransitionParams(cell_array(ds, "transition_base"), cell_array(ds, "transition_end"),
                                counts)

    def borrow_terms(self, ev, statuses, split):
        # the largest difference between the own and the others' next-state probabilities
        c = ev["trans_count"]
        own = c.row_sums()
        others = own.sum(axis=0, keepdims=True) - own
        P, R = own.shape
        pos = c.row_pos()
        c_o = c.val.sum(axis=1, keepdims=True) - c.val
        with np.errstate(divide="ignore", invalid="ignore"):
            prob, prob_o = c.val / own[:, pos].T, c_o / others[:, pos].T
            diff = np.abs(prob - prob_o)
            pj_all = np.clip(c.val.sum(axis=1, keepdims=True) / (own + others)[:, pos].T,
                             1e-3, 1 - 1e-3)
        d = np.zeros((P, R))
        p_j = np.full((P, R), 1e-3)
        if len(c):
            r, top, first = _segment_argmax(np.nan_to_num(diff, nan=0.0), pos)
            d[:, r] = top.T
            p_j[:, r] = np.take_along_axis(pj_all, first, 0).T
        d = np.where(others > 0, d, np.nan)  # nobody else: no distance (no borrowing limit)
        with np.errstate(divide="ignore", invalid="ignore"):
            return d, np.sqrt(p_j * (1 - p_j) / own), own

    # pooling and the applied layer act on the pairs, the gate per (persona, row) cell
    def blend(self, x, name, w):
        total = x.val.sum(axis=1, keepdims=True)
        return x.with_values(x.val + x.per_pair(w) * (total - x.val))

    def share(self, x, name):
        return x.with_values(np.repeat(x.val.sum(axis=1, keepdims=True), x.personas, axis=1))

    def where(self, gate, name, yes, no):
        a, b = yes.aligned(no)
        return a.with_values(np.where(a.per_pair(gate), a.val, b.val))


KIND = Transitions("transitions", {"trans_count": ("persona", "src", "dst")}, behavioral=True,
                   silent_decay=False, unit="probability", quantity="next_state_p")
