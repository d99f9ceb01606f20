"""Latency: a Dirichlet histogram over log-spaced bins (shape) and a Normal-Inverse-Gamma on log
latency (summary); key quantity the median latency, on the log scale."""

from __future__ import annotations

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.kinds.base import Kind


def log_mean_borrow_terms(ev, prefix: str, split):
    """``(d, se, own)`` for a mean of log values (standard error from the cell's own spread;
    a cell with one or two samples uses its endpoint's)."""
    (n, n_o), (sx, sx_o), (sxx, sxx_o) = (split(ev[f"{prefix}_{k}"]) for k in ("n", "sx", "sxx"))
    mean, mean_o = sx / n, sx_o / n_o
    var = np.maximum(sxx / n - mean**2, 0.0)
    pooled_var = np.maximum((sxx + sxx_o) / (n + n_o) - ((sx + sx_o) / (n + n_o))**2, 0.0)
    var = np.where(n >= 3, var, pooled_var)
    return np.abs(mean - mean_o), np.sqrt(var / n), n


def log_mean_changed(ev, pend, prefix: str, z: float):
    """Two-sample z-test of the window's mean log value (needs 3 window observations)."""
    if not (pend[f"{prefix}_n"] >= 3).any():
        return None
    return cj.mean_shift_changed(ev[f"{prefix}_n"], ev[f"{prefix}_sx"], ev[f"{prefix}_sxx"],
                                 pend[f"{prefix}_n"], pend[f"{prefix}_sx"], z=z)


class Latency(Kind):
    def count(self, stats):
        return stats["lat_n"]

    def width(self, prm, statuses, mass):
        lo_q, hi_q = cj.tail_probs(mass)
        q = cj.dirichlet_median_quantiles(prm.lat_alpha, [lo_q, hi_q])
        return np.log(q[..., 1]) - np.log(q[..., 0])

    def borrow_terms(self, ev, statuses, split):
        return log_mean_borrow_terms(ev, "lat", split)

    def changed(self, ev, pend, statuses, z):
        return log_mean_changed(ev, pend, "lat", z)


KIND = Latency("latency", {
    "lat_hist": ("endpoint", "persona", "lat_bin"),
    "lat_n": ("endpoint", "persona"),
    "lat_sx": ("endpoint", "persona"),
    "lat_sxx": ("endpoint", "persona"),
})
