"""Adaptive forgetting: a cell whose data changed regime forgets the old regime.

**Latency, error rate and think time: Bayesian online changepoint detection** (Adams & MacKay
2007, arXiv:0710.3742). Each cell keeps, per kind, the posterior over its *run length*: how many
``update_interval`` windows ago its current regime began. At each window the cell has data
for, every run length ``r`` predicts the window from the conjugate posterior of the cell's last
``r`` windows (:meth:`~driftbayes.kinds.base.Kind.log_predictive`: the Beta-binomial of P(5xx);
for latency and think time the window's mean log value under a Normal–Normal model whose scale
is the cell's whole evidence's, so heavy or skewed tails do not pass for changes), a change (run
length 1, predicted by the prior alone, its shape worth one observation) has prior probability
``changepoint_hazard``, and the run lengths are reweighted by how well they predicted. Evidence
thus accumulates across windows: a sparse cell or a slow drift builds up the case for a change
over several windows.

* **Truncation.** Run lengths 1 … 31 (:data:`~driftbayes.config.RUN_WINDOWS`) are told apart;
  longer runs are one *long-run* state whose statistics are the cell's whole decayed
  evidence. The windows' own sums for the last 31 windows are kept (:class:`RunLengths`).
* **Silent windows** carry no data for the kind: each only lets a run grow (``1 − H``) or
  restart (``H``), in closed form when the cell is next touched (:func:`shift_silent`).
* **Change probability** ``change_p = 1 − P(long run)``: the probability that the regime
  changed within the last 31 windows. A cell whose data cannot tell runs apart keeps the
  prior's :func:`~driftbayes.config.changepoint_background`.
* **The forgetting it drives.** While ``change_p ≤ changepoint_threshold`` the evidence is the
  plain decayed sum (so steady traffic keeps its long memory and shards merge exactly).
  Above it, the kind's statistics are *mixed by run length*: each past window keeps its decay
  weight times the posterior probability that it belongs to the current run,
  ``Σ_r P(r)·(statistics of the last r windows)`` with the long run's share of the older
  evidence; and the applied layer moves all the way to the posterior, gate open or not
  (:class:`driftbayes.learner.DriftLearner`), so the mock never serves a regime the data ruled
  out (a thin new run keeps most of the fading prior: it stays cautious).

**Request rate: a per-window Poisson tail test** (``changepoint_z``): silence is data for a rate
(exposure grows), which the lazy clock advances in closed form; a window whose count
contradicts the rate keeps :data:`~driftbayes.conjugate.CHANGEPOINT_KEEP` of its evidence. With
``changepoint_hazard = 0`` the other kinds use the same kind of test (two-sample z-test of the
mean log value, binomial tail of the 5xx count) instead of run lengths.
"""

from __future__ import annotations

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.config import RUN_WINDOWS
from driftbayes.kinds import REGISTRY
from driftbayes.stats import KIND_STATS, STAT_DIMS, Stats, broadcast_gate, pack, unpack

#: Run-length states: 1 … RUN_WINDOWS windows, and the long run (last).
N_STATES = RUN_WINDOWS + 1


def forget_contradicted(ev: Stats, pend: Stats, statuses: list[int], z: float,
                        kinds=None) -> int:
    """Shrink, in place, the evidence of cells whose window ``pend`` contradicts it (of
    ``kinds``, default every kind with a test).

    Returns how many cell × kind changes were detected.
    """
    flags = {}
    for kind in REGISTRY.values():
        if kinds is not None and kind.name not in kinds:
            continue
        changed = kind.changed(ev, pend, statuses, z)
        if changed is not None:
            flags[kind.name] = changed
    n = 0
    for kind, changed in flags.items():
        if not changed.any():
            continue
        n += int(changed.sum())
        for name in KIND_STATS[kind]:  # exposure too: the rate estimate stays, its weight drops
            ev[name] = np.where(broadcast_gate(changed, name), ev[name] * cj.CHANGEPOINT_KEEP,
                                ev[name])
    return n


def silence_contradicts(count, exposure, *, decay: float, interval: float, z: float):
    """Whether a window with no request would contradict a cell's rate (its evidence
    ``count`` requests over ``exposure`` seconds, before that window's decay)."""
    r = 1.0 - decay
    return cj.rate_changed(count * r, exposure * r, 0.0, interval, z=z)


def online_kinds(hazard: float) -> list[str]:
    """Kinds whose changes are detected by run length (none when ``hazard`` is 0)."""
    return [k.name for k in REGISTRY.values() if k.online_change] if hazard > 0 else []


# --------------------------------------------------------------------------- run lengths


def initial(shape: tuple[int, ...]) -> np.ndarray:
    """Run-length posteriors of cells without data: all mass on the long run."""
    w = np.zeros(shape + (N_STATES,))
    w[..., -1] = 1.0
    return w


def shift_silent(w: np.ndarray, k, hazard: float) -> np.ndarray:
    """Run-length posteriors ``w`` (``(…, N_STATES)``) after ``k`` windows without data:
    each window every run grows with probability ``1 − H`` or a new one starts (``H``), and no
    run length predicts the (absent) data better than another. Closed form: run ``j ≤ k``
    has ``H·(1−H)^(j−1)``, run ``j > k`` the ``(1−H)^k`` of run ``j − k``, the long run the
    rest."""
    k = np.asarray(k, dtype=np.int64)[..., None]
    j = np.arange(1, N_STATES)
    src = j - k  # the run length that grows into j
    grown = np.take_along_axis(w[..., :-1], np.clip(src - 1, 0, N_STATES - 2), axis=-1)
    out = np.empty(np.broadcast_shapes(w.shape, k.shape[:-1] + (N_STATES,)))
    out[..., :-1] = np.where(src >= 1, grown * (1.0 - hazard) ** k, 0.0) + np.where(
        j <= k, hazard * (1.0 - hazard) ** (j - 1), 0.0)
    out[..., -1] = np.maximum(1.0 - out[..., :-1].sum(-1), 0.0)
    return out


def run_length_update(w: np.ndarray, log_pred: np.ndarray, hazard: float) -> np.ndarray:
    """One Adams–MacKay step: run-length posteriors ``w`` (``(n, N_STATES)``) and each
    hypothesis' log predictive of the window (``(N_STATES + 1, n)``: a change, runs 1 …
    ``N_STATES − 1``, the long run) → the posteriors after the window. A change starts run 1;
    run ``r`` grows into ``r + 1``; the longest told-apart run grows into the long run."""
    with np.errstate(divide="ignore"):
        logw = np.log(w)
    grow = np.log1p(-hazard) + logw + log_pred[1:].T  # (n, N_STATES)
    out = np.empty_like(grow)
    out[:, 0] = np.log(hazard) + log_pred[0]
    out[:, 1:-1] = grow[:, :-2]
    out[:, -1] = np.logaddexp(grow[:, -2], grow[:, -1])
    out = np.exp(out - out.max(axis=1, keepdims=True))
    return out / out.sum(axis=1, keepdims=True)


class RunLengths:
    """Per cell and online kind, the run-length posterior (as of the last window the cell had
    data for the kind) and the per-window sums of the last :data:`RUN_WINDOWS` windows.

    Parameters
    ----------
    kinds : list of str
        The kinds with online change detection (:func:`online_kinds`).
    sizes : driftbayes.stats.Sizes
        Vocabulary sizes.
    """

    def __init__(self, kinds: list[str], sizes):
        self.kinds = list(kinds)
        self.sizes = sizes
        shape = (sizes.endpoint, sizes.persona)
        self.w = {k: initial(shape) for k in self.kinds}
        self.asof = {k: np.full(shape, -1, dtype=np.int64) for k in self.kinds}
        #: ``(window, endpoints, {statistic: (len(endpoints), P, …)})``, oldest first
        self.ring: list[tuple[int, np.ndarray, dict[str, np.ndarray]]] = []

    @property
    def names(self) -> list[str]:
        return [n for k in self.kinds for n in KIND_STATS[k]]

    def __getstate__(self) -> dict:
        """Pickled with the window sums' mostly-zero arrays as their nonzero entries."""
        state = dict(self.__dict__)
        state["ring"] = [(win, ends, {n: pack(a) for n, a in arrays.items()})
                         for win, ends, arrays in self.ring]
        return state

    def __deepcopy__(self, memo) -> RunLengths:
        import copy

        out = RunLengths.__new__(RunLengths)
        out.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return out

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.ring = [(win, ends, {n: unpack(a) for n, a in arrays.items()})
                     for win, ends, arrays in self.ring]

    # ---------------------------------------------------------------- vocabulary
    def grow(self, sizes) -> None:
        """Pad to new vocabulary sizes (new cells start without data)."""
        E, P = sizes.endpoint, sizes.persona
        for k in self.kinds:
            w, a = self.w[k], self.asof[k]
            self.w[k] = initial((E, P))
            self.w[k][: w.shape[0], : w.shape[1]] = w
            self.asof[k] = np.full((E, P), -1, dtype=np.int64)
            self.asof[k][: a.shape[0], : a.shape[1]] = a
        self.ring = [(win, ends, {n: _pad(a, n, sizes) for n, a in arrays.items()})
                     for win, ends, arrays in self.ring]
        self.sizes = sizes

    def remapped(self, endpoints: np.ndarray, personas: np.ndarray, statuses: np.ndarray,
                 sizes) -> RunLengths:
        """The window sums in another vocabulary (codes through the maps); every run-length
        posterior starts afresh (see :meth:`merge`)."""
        out = RunLengths(self.kinds, sizes)
        for win, ends, arrays in self.ring:
            moved = {}
            for n, a in arrays.items():
                dst = np.zeros((len(ends), sizes.persona) + _trailing(n, sizes))
                idx = [np.arange(len(ends)), personas]
                if STAT_DIMS[n][2:3] == ("status",):
                    idx.append(statuses)
                dst[np.ix_(*idx)] = a
                moved[n] = dst
            new_ends = endpoints[ends]
            order = np.argsort(new_ends)
            out.ring.append((win, new_ends[order], {n: a[order] for n, a in moved.items()}))
        return out

    def merge(self, other: RunLengths) -> None:
        """Add another learner's window sums (same vocabulary). Run-length posteriors of
        learners that saw different traffic do not combine: every cell starts afresh from the
        long run (its evidence, the merged sums, is unchanged)."""
        by_window = {win: (ends, arrays) for win, ends, arrays in self.ring}
        for win, ends, arrays in other.ring:
            if win not in by_window:
                by_window[win] = (ends, arrays)
                continue
            mine, mine_arrays = by_window[win]
            union = np.union1d(mine, ends)
            merged = {}
            for n in arrays:
                a = np.zeros((len(union),) + arrays[n].shape[1:])
                a[np.searchsorted(union, mine)] += mine_arrays[n]
                a[np.searchsorted(union, ends)] += arrays[n]
                merged[n] = a
            by_window[win] = (union, merged)
        self.ring = [(win, *by_window[win]) for win in sorted(by_window)]
        self.restart()

    def take_cells(self, other: RunLengths, endpoints: np.ndarray) -> None:
        """Take the run lengths and window sums of the endpoints ``endpoints`` (an ``(E,)``
        mask) from ``other`` (same vocabulary): joining a scan split by endpoint."""
        mask = np.asarray(endpoints, dtype=bool)
        for k in self.kinds:
            self.w[k][mask] = other.w[k][mask]
            self.asof[k][mask] = other.asof[k][mask]
        by_window: dict[int, list] = {}
        for ring, keep in ((self.ring, ~mask), (other.ring, mask)):
            for win, ends, arrays in ring:
                sel = keep[ends]
                if sel.all():  # a block's ring holds its own endpoints only: no copy
                    by_window.setdefault(win, []).append((ends, arrays))
                elif sel.any():
                    by_window.setdefault(win, []).append(
                        (ends[sel], {n: a[sel] for n, a in arrays.items()}))
        self.ring = []
        for win in sorted(by_window):
            parts = by_window[win]
            if len(parts) == 1:
                self.ring.append((win, *parts[0]))
                continue
            ends = np.concatenate([e for e, _ in parts])
            order = np.argsort(ends, kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))  # each row's place in endpoint order
            at = np.split(rank, np.cumsum([len(e) for e, _ in parts])[:-1])
            merged = {}
            for n, a in parts[0][1].items():  # one copy of each row into its place
                merged[n] = np.empty((len(ends),) + a.shape[1:], dtype=a.dtype)
                for (_, arrays), rows in zip(parts, at):
                    merged[n][rows] = arrays[n]
            self.ring.append((win, ends[order], merged))

    def restart(self) -> None:
        """Every cell's run-length posterior back to the long run, without data."""
        for k in self.kinds:
            self.w[k] = initial(self.w[k].shape[:2])
            self.asof[k][:] = -1

    def reset_cells(self, cells: np.ndarray) -> None:
        """Forget the cells ``cells`` (``(E, P)`` mask): their run lengths and window sums."""
        for k in self.kinds:
            self.w[k][cells] = initial((1,))[0]
            self.asof[k][cells] = -1
        for _, ends, arrays in self.ring:
            mask = cells[ends]
            for a in arrays.values():
                a[mask] = 0.0

    # ---------------------------------------------------------------- reading
    def change_p(self, kind: str, window: int, hazard: float) -> np.ndarray:
        """``(E, P)`` probability that each cell's regime changed within the last
        :data:`RUN_WINDOWS` windows, as of window ``window`` (0 for a cell without data)."""
        a = self.asof[kind]
        w = shift_silent(self.w[kind], np.where(a < 0, 0, np.maximum(window - a, 0)), hazard)
        return np.where(a < 0, 0.0, 1.0 - w[..., -1])

    def _recent(self, names, e, p, window: int) -> dict[str, np.ndarray]:
        """Sums of the ``RUN_WINDOWS`` windows before ``window`` of cells ``(e, p)``:
        ``{name: (RUN_WINDOWS, n, …)}``, the window ``k`` back at index ``k − 1``."""
        n = len(e)
        out = {name: np.zeros((RUN_WINDOWS, n) + _trailing(name, self.sizes)) for name in names}
        for win, ends, arrays in self.ring:
            k = window - win
            if not 1 <= k <= RUN_WINDOWS or not len(ends):
                continue
            pos = np.minimum(np.searchsorted(ends, e), len(ends) - 1)
            hit = ends[pos] == e
            if hit.any():
                for name in names:
                    out[name][k - 1, hit] = arrays[name][pos[hit], p[hit]]
        return out

    # ---------------------------------------------------------------- one window
    def step(self, window: int, A: np.ndarray, ev: Stats, x: Stats, ev_new: Stats, *, prior,
             strength: dict, hazard: float, threshold: float, decay: float,
             statuses: list[int]) -> tuple[int, dict[str, np.ndarray]]:
        """Run lengths of the endpoints ``A`` through window ``window``.

        ``ev`` is their decayed evidence before the window, ``x`` the window's sums and
        ``ev_new`` (= ``ev + x``) the evidence after it: where a kind's change probability
        exceeds ``threshold`` its statistics in ``ev_new`` are replaced, in place, by the
        run-length mixture. ``prior`` and ``strength`` give each kind's prior parameters and
        ``(E,)`` prior strengths (the new-run prior is that prior's shape worth one
        observation). Returns how many cells crossed the threshold upward and, per kind, the
        ``(len(A), P)`` cells above it.
        """
        r = 1.0 - decay
        crossed = 0
        above = {}
        for kind in self.kinds:
            kd = REGISTRY[kind]
            names = KIND_STATS[kind]
            above[kind] = np.zeros(x[names[0]].shape[:2], bool)
            ia, ip = np.nonzero(kd.count(x) > 0)
            if not len(ia):
                continue
            e = A[ia]
            a = self.asof[kind][e, ip]
            w = shift_silent(self.w[kind][e, ip], np.where(a < 0, 0, window - 1 - a), hazard)
            reads = kd.change_stats or names
            recent = self._recent(reads, e, ip, window)
            dec = r ** np.arange(1, RUN_WINDOWS + 1)
            before = {}
            for name in reads:
                wx = recent[name] * dec.reshape((-1,) + (1,) * (recent[name].ndim - 1))
                tail = ev[name][ia, ip]
                before[name] = np.concatenate([np.zeros((1,) + tail.shape),
                                               np.cumsum(wx, axis=0), tail[None]])
            # one prior for every run length: the kind's prior's shape worth one
            # observation. A new regime may be anything; a prior worth prior_strength
            # observations would make a burst of errors look like the old 1% for many windows,
            # and a faded one would favour the run lengths with the least data
            weight = np.broadcast_to(np.minimum(1.0 / strength[kind][e], 1.0),
                                     before[reads[0]].shape[:2])
            window_x = {name: x[name][ia, ip] for name in reads}
            lp = kd.log_predictive(prior[kind], e, before, window_x, weight, statuses)
            w_new = run_length_update(w, lp, hazard)
            cp_old, cp = 1.0 - w[:, -1], 1.0 - w_new[:, -1]
            hot = cp > threshold
            crossed += int((hot & (cp_old <= threshold)).sum())
            if hot.any():
                # each window k back keeps its decay weight times P(run covers it)
                cover = np.cumsum(w_new[hot, :-1][:, ::-1], axis=1)[:, ::-1]  # P(run ≥ j+1)
                keep_long = w_new[hot, -1]
                rest = [n for n in names if n not in reads]
                recent.update({n: v[:, hot] for n, v in recent.items()})
                recent.update(self._recent(rest, e[hot], ip[hot], window))
                for name in names:
                    rec = recent[name][:-1]  # windows 1 … RUN_WINDOWS−1 back
                    share = (cover[:, 1:].T * dec[:-1, None])
                    share = share.reshape(share.shape + (1,) * (rec.ndim - 2))
                    ic, pc = ia[hot], ip[hot]
                    mixed = (keep_long.reshape((-1,) + (1,) * (rec.ndim - 2)) * ev_new[name][ic, pc]
                             + (1.0 - keep_long).reshape((-1,) + (1,) * (rec.ndim - 2))
                             * x[name][ic, pc] + (share * rec).sum(axis=0))
                    ev_new[name][ic, pc] = mixed
                above[kind][ia[hot], ip[hot]] = True
            self.w[kind][e, ip] = w_new
            self.asof[kind][e, ip] = window
        return crossed, above

    def push(self, window: int, A: np.ndarray, x: Stats) -> None:
        """Keep window ``window``'s sums of the endpoints ``A`` (those with data), dropping
        windows too old to matter."""
        names = self.names
        if names:
            has = np.zeros(len(A), bool)
            for kind in self.kinds:
                cnt = REGISTRY[kind].count(x)
                has |= cnt.reshape(cnt.shape[0], -1).any(axis=1) if cnt.size else has
            if has.any():
                self.ring.append((window, np.asarray(A)[has],
                                  {n: np.array(x[n][has]) for n in names}))
        self.ring = [item for item in self.ring if item[0] > window - RUN_WINDOWS]

    # ---------------------------------------------------------------- state file
    def to_dataset(self):
        """Run-length posteriors (``run_<kind>`` on ``endpoint``, ``persona``, ``run``,
        ``run_asof_<kind>``) and the window sums (``ring_<statistic>`` on a ``ring_cell`` dim,
        with ``ring_window`` and ``ring_endpoint`` per row)."""
        import xarray as xr

        data = {}
        for k in self.kinds:
            data[f"run_{k}"] = (("endpoint", "persona", "run"), self.w[k])
            data[f"run_asof_{k}"] = (("endpoint", "persona"), self.asof[k])
        wins = [np.full(len(ends), win, np.int64) for win, ends, _ in self.ring]
        data["ring_window"] = ("ring_cell", np.concatenate(wins) if wins else
                               np.zeros(0, np.int64))
        data["ring_endpoint"] = ("ring_cell", np.concatenate([ends for _, ends, _ in self.ring])
                                 if self.ring else np.zeros(0, np.int64))
        for n in self.names:
            dims = ("ring_cell",) + STAT_DIMS[n][1:]
            shape = (0, self.sizes.persona) + _trailing(n, self.sizes)
            data[f"ring_{n}"] = (dims, np.concatenate([a[n] for _, _, a in self.ring])
                                 if self.ring else np.zeros(shape))
        return xr.Dataset(data)

    @classmethod
    def from_dataset(cls, ds, kinds: list[str], sizes) -> RunLengths:
        """Inverse of :meth:`to_dataset`; a state written without run lengths starts afresh."""
        out = cls(kinds, sizes)
        if "ring_window" not in ds:
            return out
        for k in kinds:
            if f"run_{k}" in ds:
                out.w[k] = np.array(ds[f"run_{k}"].values, dtype=float)
                out.asof[k] = np.array(ds[f"run_asof_{k}"].values, dtype=np.int64)
        wins = np.asarray(ds["ring_window"].values, dtype=np.int64)
        ends = np.asarray(ds["ring_endpoint"].values, dtype=np.int64)
        for win in np.unique(wins):
            rows = np.flatnonzero(wins == win)
            out.ring.append((int(win), ends[rows], {
                n: np.array(ds[f"ring_{n}"].values[rows], dtype=float) for n in out.names}))
        return out


def _trailing(name: str, sizes) -> tuple[int, ...]:
    """Sizes of a statistic's dims after ``endpoint`` and ``persona``."""
    return tuple(sizes.dim(d) for d in STAT_DIMS[name][2:])


def _pad(a: np.ndarray, name: str, sizes) -> np.ndarray:
    """A window-sum array (``(n, P, …)``) zero-padded to grown personas and status codes."""
    target = (a.shape[0], sizes.persona) + _trailing(name, sizes)
    if a.shape == target:
        return a
    out = np.zeros(target)
    out[tuple(slice(0, s) for s in a.shape)] = a
    return out
