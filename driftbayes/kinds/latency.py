"""Latency: a Dirichlet histogram over log-spaced bins (shape, :data:`histogram.LATENCY`) and a
Normal-Inverse-Gamma on log latency (summary); key quantity the median latency, on the log
scale."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.kinds import lognormal
from driftbayes.kinds.base import CELL, Kind, cell_array
from driftbayes.kinds.histogram import LATENCY


@dataclass(frozen=True)
class LatencyParams:
    """Latency posterior per cell."""

    alpha: np.ndarray  # (E, P, B) Dirichlet over latency bins
    nig: cj.NIG  # each (E, P): log-latency location and scale


class Latency(Kind):
    def accumulate(self, pend, events):
        lat = events.latency_ms
        ok = np.isfinite(lat) & (lat >= 0)
        if not ok.any():
            return
        cell, x = events.cell[ok], np.log(np.maximum(lat[ok], 1e-3))
        LATENCY.accumulate(pend, cell, lat[ok])
        lognormal.accumulate(pend, "lat", cell, x)

    def prior(self, ctx):
        median, sigma = ctx.col("latency_median_ms"), ctx.col("latency_sigma")
        return LatencyParams(*LATENCY.prior_and_summary(median, sigma, ctx.col("prior_strength")))

    def params(self, prior, ev, ends, weight=None):
        return LatencyParams(*LATENCY.posterior_and_summary(prior.alpha, prior.nig, ev, "lat",
                                                            ends, weight))

    def count(self, stats):
        return stats["lat_n"]

    def key(self, prm, statuses, mass):
        lo_q, hi_q = cj.tail_probs(mass)
        q = LATENCY.median_quantiles(prm.alpha, [lo_q, 0.5, hi_q])
        return q[..., 1], q[..., 0], q[..., 2]

    def width(self, prm, statuses, mass):
        lo_q, hi_q = cj.tail_probs(mass)
        q = LATENCY.median_quantiles(prm.alpha, [lo_q, hi_q])
        return np.log(q[..., 1]) - np.log(q[..., 0])

    def predictive(self, prm, e, p, rng, statuses):
        return LATENCY.sample(prm.alpha, e, p, rng)

    def variables(self, prm):
        return {"latency_bin_alpha": (CELL + ("latency_bin",), prm.alpha),
                **lognormal.nig_variables(prm.nig, "latency", prm.alpha.shape[:2])}

    def from_variables(self, ds):
        return LatencyParams(cell_array(ds, "latency_bin_alpha"),
                             lognormal.nig_from(ds, "latency"))

    def borrow_terms(self, ev, statuses, split):
        return lognormal.borrow_terms(ev, "lat", split)

    def log_predictive(self, prior, e, before, window, weight, statuses):
        # the log-normal summary: a smooth predictive. The fine histogram's Dirichlet-
        # multinomial predicts a sparse cell's next request best from the run with the least
        # data (whose prior smooths it most), so it sees changes in steady traffic
        return lognormal.log_predictive(prior.nig, e, before, window, weight, "lat")

    def changed(self, ev, pend, statuses, z):
        return lognormal.changed(ev, pend, "lat", z)


KIND = Latency("latency", {
    "lat_hist": ("endpoint", "persona", "lat_bin"),
    **lognormal.stats("lat"),
}, fixed_dims={"lat_bin": LATENCY.n_bins}, unit="ms", observable="latency_ms",
   quantity="latency_median_ms", online_change=True,
   change_stats=("lat_n", "lat_sx", "lat_sxx"))
