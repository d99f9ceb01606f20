"""REFERENCE (tests only): the dense statistics containers as they were before transitions
became sparse, used by the window-by-window reference learner. Do not change (one addition
since: the think-time histogram ``think_hist``, issue 15).

Sufficient-statistic containers: named numpy arrays with named dims, mergeable by ``+``.

One :class:`Stats` holds every model's statistics for all cells. The learner keeps three:
``evidence`` (decay-weighted data behind the posterior), ``applied`` (what the mock serves,
relative to the synthetic prior) and ``pending`` (the open ``update_interval`` window).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from driftbayes.conjugate import N_LATENCY_BINS, N_THINK_BINS

N_HOURS = 24

#: statistic → dims. ``src`` rows are endpoints then START; ``dst`` columns endpoints then END.
#: Built from the kinds' registry (:mod:`driftbayes.kinds`).
STAT_DIMS: dict[str, tuple[str, ...]] = {
    "lat_hist": ("endpoint", "persona", "lat_bin"),
    "lat_n": ("endpoint", "persona"),
    "lat_sx": ("endpoint", "persona"),
    "lat_sxx": ("endpoint", "persona"),
    "status_count": ("endpoint", "persona", "status"),
    "freq_count": ("endpoint", "persona", "hour"),
    "freq_exposure": ("endpoint", "persona", "hour"),
    "think_hist": ("endpoint", "persona", "think_bin"),
    "think_n": ("endpoint", "persona"),
    "think_sx": ("endpoint", "persona"),
    "think_sxx": ("endpoint", "persona"),
    "trans_count": ("persona", "src", "dst"),
}

#: Which statistics each learned pattern kind owns (gating acts on a kind as a whole).
KIND_STATS: dict[str, tuple[str, ...]] = {
    "latency": ("lat_hist", "lat_n", "lat_sx", "lat_sxx"),
    "errors": ("status_count",),
    "frequency": ("freq_count", "freq_exposure"),
    "think_time": ("think_hist", "think_n", "think_sx", "think_sxx"),
    "transitions": ("trans_count",),
}
KINDS = tuple(KIND_STATS)

#: Dims whose last slot is a fixed state (START / END) that must stay last when growing.
_TAILED = {"src", "dst"}


@dataclass
class Sizes:
    """Current vocabulary sizes."""

    endpoint: int = 0
    persona: int = 0
    status: int = 0

    def dim(self, name: str) -> int:
        return {
            "endpoint": self.endpoint,
            "persona": self.persona,
            "status": self.status,
            "lat_bin": N_LATENCY_BINS,
            "think_bin": N_THINK_BINS,
            "hour": N_HOURS,
            "src": self.endpoint + 1,
            "dst": self.endpoint + 1,
        }[name]


@dataclass
class Stats:
    """All sufficient statistics, one array per entry of :data:`STAT_DIMS`."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def zeros(cls, sizes: Sizes) -> Stats:
        return cls(
            {n: np.zeros(tuple(sizes.dim(d) for d in dims)) for n, dims in STAT_DIMS.items()}
        )

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

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
                out[n] = a[:, idx] if by_row else a[idx]
        return Stats(out)

    def assign(self, endpoints, rows, sub: Stats) -> None:
        """Write back a :meth:`subset`."""
        for n, a in sub.arrays.items():
            if STAT_DIMS[n][0] == "persona":
                self.arrays[n][:, rows] = a
            else:
                self.arrays[n][endpoints] = a

    def clear(self, endpoints, rows) -> None:
        """Zero some endpoints and transition source rows."""
        for n, a in self.arrays.items():
            if STAT_DIMS[n][0] == "persona":
                a[:, rows] = 0.0
            else:
                a[endpoints] = 0.0

    def grown(self, sizes: Sizes) -> Stats:
        """Zero-padded to new vocabulary sizes (START/END slots stay last)."""
        return Stats({n: _grow(a, STAT_DIMS[n], sizes) for n, a in self.arrays.items()})

    def equals(self, other: Stats, rtol: float = 1e-9, atol: float = 1e-9) -> bool:
        return all(
            np.allclose(a, other.arrays[n], rtol=rtol, atol=atol) for n, a in self.arrays.items()
        )


def _grow(arr: np.ndarray, dims: tuple[str, ...], sizes: Sizes) -> np.ndarray:
    target = tuple(sizes.dim(d) for d in dims)
    if target == arr.shape:
        return arr
    out = np.zeros(target, dtype=arr.dtype)
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
    data = {n: (("store",) + dims, np.stack([stores[k][n] for k in names]))
            for n, dims in STAT_DIMS.items()}
    return xr.Dataset(data, coords={"store": names})


def stores_from_dataset(ds) -> dict[str, Stats]:
    """Inverse of :func:`stores_to_dataset`."""
    return {str(store): Stats({n: np.array(ds[n].values[i], dtype=float) for n in STAT_DIMS})
            for i, store in enumerate(ds["store"].values)}
