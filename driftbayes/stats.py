"""Sufficient-statistic containers: named numpy arrays with named dims, mergeable by ``+``.

One :class:`Stats` holds every model's statistics for all cells. The learner keeps three:
``evidence`` (decay-weighted data behind the posterior), ``applied`` (what the mock serves,
relative to the synthetic prior) and ``pending`` (the open ``update_interval`` window).
Statistics are dense arrays, except the transition counts: a sparse
:class:`~driftbayes.kinds.transitions.TransitionCounts` of the observed pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from driftbayes.kinds import REGISTRY, on_change
from driftbayes.kinds.frequency import N_HOURS
from driftbayes.kinds.transitions import TransitionCounts

__all__ = ["KINDS", "KIND_STATS", "N_HOURS", "STAT_DIMS", "Sizes", "Stats"]

#: statistic → dims. ``src`` rows are endpoints then START; ``dst`` columns endpoints then END.
#: Built from the kinds' registry (:mod:`driftbayes.kinds`).
STAT_DIMS: dict[str, tuple[str, ...]] = {}
#: Which statistics each learned pattern kind owns (gating acts on a kind as a whole).
KIND_STATS: dict[str, tuple[str, ...]] = {}
#: The registered kinds' names, in registry order.
KINDS: list[str] = []
#: Sizes of the kinds' own dims (``lat_bin``, ``hour``, …).
FIXED_DIMS: dict[str, int] = {}


def _rebuild() -> None:
    """Derive the tables above from the registry (in place: importers hold these objects)."""
    STAT_DIMS.clear()
    STAT_DIMS.update({n: d for k in REGISTRY.values() for n, d in k.stats.items()})
    KIND_STATS.clear()
    KIND_STATS.update({k.name: tuple(k.stats) for k in REGISTRY.values()})
    KINDS[:] = list(REGISTRY)
    FIXED_DIMS.clear()
    FIXED_DIMS.update({n: s for k in REGISTRY.values() for n, s in k.fixed_dims.items()})


_rebuild()
on_change(_rebuild)

#: Dims whose last slot is a fixed state (START / END) that must stay last when growing.
_TAILED = {"src", "dst"}


@dataclass
class Sizes:
    """Current vocabulary sizes."""

    endpoint: int = 0
    persona: int = 0
    status: int = 0

    def dim(self, name: str) -> int:
        vocab = {"endpoint": self.endpoint, "persona": self.persona, "status": self.status,
                 "src": self.endpoint + 1, "dst": self.endpoint + 1}
        return vocab[name] if name in vocab else FIXED_DIMS[name]


@dataclass
class Stats:
    """All sufficient statistics, one array per entry of :data:`STAT_DIMS`."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def zeros(cls, sizes: Sizes) -> Stats:
        return cls({n: _zeros(dims, sizes) for n, dims in STAT_DIMS.items()})

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __getstate__(self) -> dict:
        """Pickled with mostly-zero dense arrays as their nonzero entries (a window's sums
        touch few cells and latency bins: shards travel between processes this way)."""
        return {"arrays": {n: pack(a) for n, a in self.arrays.items()}}

    def __setstate__(self, state: dict) -> None:
        self.arrays = {n: unpack(a) for n, a in state["arrays"].items()}

    def __setitem__(self, name: str, value: np.ndarray) -> None:
        self.arrays[name] = value

    def copy(self) -> Stats:
        return Stats({n: a.copy() for n, a in self.arrays.items()})

    def __add__(self, other: Stats) -> Stats:
        return Stats({n: a + other.arrays[n] for n, a in self.arrays.items()})

    def scaled(self, factor: float) -> Stats:
        return Stats({n: a * factor for n, a in self.arrays.items()})

    __mul__ = scaled
    __rmul__ = scaled

    def subset(self, endpoints, rows, names=None) -> Stats:
        """A copy restricted to some endpoints (``endpoint``-dim statistics) and transition
        source rows (``src``); ``None`` leaves that family out."""
        out = {}
        for n in names or self.arrays:
            by_row = STAT_DIMS[n][0] == "persona"
            idx = rows if by_row else endpoints
            if idx is not None:
                a = self.arrays[n]
                out[n] = a.subset_rows(idx) if by_row else a[idx]
        return Stats(out)

    def assign(self, endpoints, rows, sub: Stats) -> None:
        """Write back a :meth:`subset`."""
        for n, a in sub.arrays.items():
            if STAT_DIMS[n][0] == "persona":
                self.arrays[n].assign_rows(rows, a)
            else:
                self.arrays[n][endpoints] = a

    def only(self, endpoints, rows) -> Stats:
        """A copy holding some endpoints (``endpoint``-dim statistics) and transition source
        rows (``src``) only, zero elsewhere (arrays allocated zero: pages the kept cells do
        not touch take no memory)."""
        out = {}
        for n, a in self.arrays.items():
            if STAT_DIMS[n][0] == "persona":
                b = a.copy()
                b.clear_rows(np.setdiff1d(np.arange(a.n_states), rows))
            else:
                b = np.zeros(a.shape, dtype=a.dtype)
                b[endpoints] = a[endpoints]
            out[n] = b
        return Stats(out)

    def clear(self, endpoints, rows) -> None:
        """Zero some endpoints and transition source rows."""
        for n, a in self.arrays.items():
            if STAT_DIMS[n][0] == "persona":
                a.clear_rows(rows)
            else:
                a[endpoints] = 0.0

    def grown(self, sizes: Sizes) -> Stats:
        """Zero-padded to new vocabulary sizes (START/END slots stay last)."""
        return Stats({n: a.grown(sizes.persona, sizes.endpoint + 1)
                      if isinstance(a, TransitionCounts) else _grow(a, STAT_DIMS[n], sizes)
                      for n, a in self.arrays.items()})

    def remapped(self, maps: dict[str, np.ndarray], sizes: Sizes) -> Stats:
        """Codes mapped into another vocabulary: ``maps`` gives, per dim (``endpoint``,
        ``persona``, ``status``, ``src``/``dst`` with START/END last), each old code's new one;
        -1 drops a code (it must hold no data)."""
        out = Stats.zeros(sizes)
        for name, dims in STAT_DIMS.items():
            a = self.arrays[name]
            if isinstance(a, TransitionCounts):
                out[name] = a.remapped(maps["src"], maps["persona"], sizes.persona,
                                       sizes.endpoint + 1)
                continue
            # index the leading vocabulary dims; the kinds' own dims (bins, hours) follow whole
            lead = next((i for i, d in enumerate(dims) if d not in maps), len(dims))
            idx = [maps[d] for d in dims[:lead]]
            keep = [m >= 0 for m in idx]
            rows = np.flatnonzero(a.reshape(a.shape[0], -1).any(axis=1)) if a.size else []
            if len(rows) == 0:
                continue
            keep[0] = keep[0] & np.isin(np.arange(len(keep[0])), rows)
            out[name][np.ix_(*(m[k] for m, k in zip(idx, keep)))] = a[np.ix_(*keep)]
        return out

    def has_data(self) -> bool:
        """Whether any event (or session end) was counted."""
        return bool(self.arrays["freq_count"].any() or self.arrays["trans_count"].any())

    def equals(self, other: Stats, rtol: float = 1e-9, atol: float = 1e-9) -> bool:
        return all(
            a.equals(other.arrays[n], rtol=rtol, atol=atol) if isinstance(a, TransitionCounts)
            else np.allclose(a, other.arrays[n], rtol=rtol, atol=atol)
            for n, a in self.arrays.items()
        )


def pack(a):
    """A mostly-zero dense array as its nonzero entries, for pickling (:func:`unpack`);
    anything else as it is."""
    if isinstance(a, np.ndarray) and a.size > 64:
        at = np.flatnonzero(a)
        if at.size * 3 < a.size:
            return ("nonzero", a.shape, a.dtype.str, at, a.ravel()[at])
    return a


def unpack(a):
    """Inverse of :func:`pack`."""
    if isinstance(a, tuple) and a and a[0] == "nonzero":
        _, shape, dtype, at, values = a
        a = np.zeros(shape, dtype=dtype)
        a.ravel()[at] = values
    return a


def _zeros(dims: tuple[str, ...], sizes: Sizes):
    if dims == ("persona", "src", "dst"):  # sparse: only observed pairs are stored
        return TransitionCounts.empty(sizes.persona, sizes.endpoint + 1)
    return np.zeros(tuple(sizes.dim(d) for d in dims))


def _grow(arr: np.ndarray, dims: tuple[str, ...], sizes: Sizes) -> np.ndarray:
    target = tuple(sizes.dim(d) for d in dims)
    if target == arr.shape:
        return arr
    out = np.zeros(target, dtype=arr.dtype)
    if not _TAILED.intersection(dims):
        out[tuple(slice(0, n) for n in arr.shape)] = arr
        return out
    src_idx, dst_idx = [], []
    for d, old, new in zip(dims, arr.shape, target):
        if d in _TAILED:  # body then the fixed tail slot
            src_idx.append(np.r_[np.arange(old - 1), old - 1])
            dst_idx.append(np.r_[np.arange(old - 1), new - 1])
        else:
            src_idx.append(np.arange(old))
            dst_idx.append(np.arange(old))
    out[np.ix_(*dst_idx)] = arr[np.ix_(*src_idx)]
    return out


def broadcast_gate(gate: np.ndarray, stat: str) -> np.ndarray:
    """Expand a kind's cell gate to the shape of one of its statistics."""
    extra = len(STAT_DIMS[stat]) - gate.ndim
    return gate.reshape(gate.shape + (1,) * extra)


def stores_to_dataset(stores: dict[str, Stats]):
    """Several :class:`Stats` (``evidence``, ``applied``, …) as one Dataset: a variable per
    statistic with a leading ``store`` dim."""
    import xarray as xr

    names = list(stores)
    data = {}
    for n, dims in STAT_DIMS.items():
        first = stores[names[0]][n]
        if isinstance(first, TransitionCounts):  # one ``pair`` dim over every store's pairs
            aligned = first.aligned(*(stores[k][n] for k in names[1:]))
            data[f"{n}_src"] = ("pair", aligned[0].src)
            data[f"{n}_dst"] = ("pair", aligned[0].dst)
            data[n] = (("store", "pair", "persona"), np.stack([a.val for a in aligned]))
        else:
            data[n] = (("store",) + dims, np.stack([stores[k][n] for k in names]))
    return xr.Dataset(data, coords={"store": names})


def stores_from_dataset(ds, sizes: Sizes) -> dict[str, Stats]:
    """Inverse of :func:`stores_to_dataset` (``sizes``: the vocabulary sizes)."""
    out = {}
    for i, store in enumerate(ds["store"].values):
        arrays = {}
        for n, dims in STAT_DIMS.items():
            if n not in ds:  # a kind registered after the state was written starts empty
                arrays[n] = _zeros(dims, sizes)
            elif "pair" in ds[n].dims:
                arrays[n] = TransitionCounts(ds[f"{n}_src"].values, ds[f"{n}_dst"].values,
                                             np.array(ds[n].values[i], dtype=float),
                                             sizes.endpoint + 1)
            else:
                arrays[n] = np.array(ds[n].values[i], dtype=float)
        out[str(store)] = Stats(arrays)
    return out
