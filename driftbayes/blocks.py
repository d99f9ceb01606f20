"""Per-(cell, window) sums of one block of endpoints: the unit of a reduce and a scan split
by endpoint (``learn --workers`` / ``--scheduler``, :mod:`driftbayes.distributed`).

The scan is per endpoint (see :meth:`driftbayes.learner.DriftLearner.keep_endpoints`), so the
sums of a run split into blocks of endpoints, each reduced and scanned apart. A
:class:`BlockSums` holds, per window, the statistics of its endpoints only (rows in code order
of the run's whole vocabulary) and the transition rows whose source is one of them (START's
too in the block that has it), every destination kept: merging two is adding arrays of one
shape, and the merged sums of all endpoints never sit in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from driftbayes.kinds.transitions import TransitionCounts
from driftbayes.open_sessions import OpenSessions
from driftbayes.stats import STAT_DIMS, Sizes, Stats

__all__ = ["BlockSums", "Names", "block_of", "bucket"]

#: A run's whole vocabulary: endpoint keys, personas, status codes, each in code order.
Names = tuple[list, list, list]


def bucket(keys, n: int) -> np.ndarray:
    """A stable hash of each of ``keys`` (strings) into ``0 … n-1``, vectorised: every process,
    machine and Python run agrees (SipHash-2-4 of the UTF-8 text under pandas' fixed key,
    :func:`pandas.util.hash_array`; each distinct key hashed once)."""
    keys = np.asarray(keys, dtype=object).ravel()
    if n == 1 or not keys.size:
        return np.zeros(keys.size, dtype=np.int64)
    codes, uniq = pd.factorize(keys, use_na_sentinel=False)
    uniq = np.asarray(uniq, dtype=object)
    try:
        h = pd.util.hash_array(uniq, categorize=False)
    except (TypeError, UnicodeEncodeError):  # not text, or lone surrogates (undecodable bytes)
        h = pd.util.hash_array(np.array([str(k).encode("utf-8", "surrogatepass")
                                         for k in uniq], dtype=object), categorize=False)
    return (h % np.uint64(n)).astype(np.int64)[codes]


def block_of(endpoints: list[str], blocks: int) -> np.ndarray:
    """Each endpoint's block: :func:`bucket` of its name, so any process splits alike."""
    return bucket(endpoints, blocks)


@dataclass
class BlockSums:
    """One block's per-window sums in the run's whole vocabulary (module docstring).

    Attributes
    ----------
    names : Names
        The run's whole vocabulary.
    endpoints : ndarray of int64
        The block's endpoint codes, sorted: row ``i`` of every endpoint statistic is endpoint
        ``endpoints[i]``.
    start : bool
        Whether the block has START's transition row.
    windows : dict of int to Stats
        Every window with data in the run (the block's own may be zero), and the open one.
    window : int or None
        The open window (the run's last).
    sessions : OpenSessions
        Open sessions (whole-vocabulary codes), in the ``start`` block only.
    n_events, n_late : int
    t_first, t_last : float
    """

    names: Names
    endpoints: np.ndarray
    start: bool
    windows: dict
    window: int | None
    sessions: OpenSessions
    n_events: int = 0
    n_late: int = 0
    t_first: float = float("nan")
    t_last: float = float("nan")

    @property
    def sizes(self) -> Sizes:
        return Sizes(*(len(n) for n in self.names))

    def __add__(self, other: BlockSums) -> BlockSums:
        """Both blocks' sums (the same block of another session group, at the same window)."""
        if other.window != self.window or not np.array_equal(other.endpoints, self.endpoints):
            raise ValueError("cannot add the sums of different blocks or windows")
        windows = dict(self.windows)
        for w, s in other.windows.items():
            windows[w] = windows[w] + s if w in windows else s
        sessions = OpenSessions.from_open(self.sessions.open())
        sessions.merge(other.sessions)
        return BlockSums(self.names, self.endpoints, self.start, windows, self.window,
                         sessions, self.n_events + other.n_events, self.n_late + other.n_late,
                         float(np.fmin(self.t_first, other.t_first)),
                         float(np.fmax(self.t_last, other.t_last)))

    def expanded(self, window: int) -> Stats:
        """One window's sums at the whole vocabulary's size (zero outside the block)."""
        sizes = self.sizes
        out = Stats.zeros(sizes)
        for name, a in self.windows[window].arrays.items():
            if isinstance(a, TransitionCounts):
                out[name] = a
            else:
                out[name][self.endpoints] = a
        return out

    def shard(self, config):
        """A shard (:meth:`~driftbayes.learner.DriftLearner.shard`) holding these sums, its
        closed windows expanded one at a time as the scan reads them."""
        from driftbayes.learner import DriftLearner

        out = DriftLearner.shard(config, names=self.names)
        if self.window is None:
            return out
        out.window_sums_ = _Expanded(self)
        out.pending_ = self.expanded(self.window)
        out.window_ = self.window
        out.sessions = OpenSessions.from_open(self.sessions.open())
        out.n_events_, out.n_late_ = self.n_events, self.n_late
        out.t_first_, out.t_last_ = self.t_first, self.t_last
        return out


class _Expanded(Mapping):
    """A shard's closed windows, expanded from a block's sums when read."""

    def __init__(self, block: BlockSums):
        self.block = block
        self.keys_ = [w for w in block.windows if w != block.window]

    def __getitem__(self, window: int) -> Stats:
        if window == self.block.window or window not in self.block.windows:
            raise KeyError(window)
        return self.block.expanded(window)

    def __iter__(self):
        return iter(self.keys_)

    def __len__(self) -> int:
        return len(self.keys_)


def split_window(stats: Stats, codes: tuple[np.ndarray, np.ndarray, np.ndarray],
                 block: np.ndarray, sizes: Sizes, blocks: int) -> list[Stats]:
    """One window's sums (in a shard's codes, maybe of an older, smaller vocabulary) split
    into blocks in the whole vocabulary: ``codes`` maps the shard's endpoint, persona and
    status codes to the whole vocabulary's, ``block`` is each whole-vocabulary endpoint's
    block."""
    ie, ip, is_ = codes
    pos = np.zeros(len(block), dtype=np.int64)  # row of each endpoint within its block
    counts = np.bincount(block, minlength=blocks)
    for b in range(blocks):
        pos[block == b] = np.arange(counts[b])
    out = [Stats({}) for _ in range(blocks)]
    for name, dims in STAT_DIMS.items():
        a = stats[name]
        if isinstance(a, TransitionCounts):
            n = a.n_states - 1
            full = a.remapped(np.r_[ie[:n], sizes.endpoint], ip[: a.personas], sizes.persona,
                              sizes.endpoint + 1)
            row_block = np.r_[block, 0][full.src]  # START's row goes with block 0
            for b in range(blocks):
                sel = row_block == b
                out[b][name] = TransitionCounts(full.src[sel], full.dst[sel], full.val[sel],
                                                sizes.endpoint + 1)
            continue
        shape = tuple(sizes.dim(d) for d in dims[1:])
        rows = np.flatnonzero(a.reshape(a.shape[0], -1).any(axis=1)) if a.size else []
        target = ie[rows]
        rest = [ip[: a.shape[i]] if d == "persona" else is_[: a.shape[i]] if d == "status"
                else None for i, d in enumerate(dims) if i > 0]
        for b in range(blocks):
            dense = np.zeros((counts[b],) + shape)
            sel = block[target] == b
            if sel.any():
                dense[pos[target[sel]]] = _widened(a[rows[sel]], rest, shape)
            out[b][name] = dense
    return out


def _widened(a: np.ndarray, codes: list, shape: tuple) -> np.ndarray:
    """``a`` with each axis after the first moved to the codes ``codes[i]`` (``None``: kept)
    of an axis of ``shape[i]``: one advanced index per axis (a copy of whole rows), much
    cheaper than one ``np.ix_`` over all axes."""
    for i, c in enumerate(codes, start=1):
        if c is None or (len(c) == shape[i - 1] and (c == np.arange(len(c))).all()):
            continue
        wide = np.zeros(a.shape[:i] + (shape[i - 1],) + a.shape[i + 1:])
        wide[(slice(None),) * i + (c,)] = a
        a = wide
    return a
