"""Request frequency: Poisson arrivals with exposure per UTC hour of day, Gamma prior; key
quantity the request rate, on the square-root scale (Poisson's variance-stabilising one: the
interval narrows with exposure even when no request arrives). Never pooled across personas.

Exposure is observed time, not data: the learner's clock adds it to every cell at each window
(:mod:`driftbayes.windows`), so a silent cell is advanced by the clock's closed form rather than
by plain decay."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.kinds.base import CELL, Kind, add_bincount, cell_array

N_HOURS = 24


@dataclass(frozen=True)
class RateParams:
    """Request-rate posterior per cell: Gamma(shape ``a``, rate ``b``) in events/s."""

    a: np.ndarray  # (E, P)
    b: np.ndarray  # (E, P) exposure seconds


def rate_width(a, b, mass: float) -> np.ndarray:
    """Width of the Gamma(a, b) rate interval on the square-root scale."""
    lo, hi = cj.gamma_interval(a, b, mass=mass)
    return np.sqrt(hi) - np.sqrt(lo)


class Frequency(Kind):
    def accumulate(self, pend, events):
        hour = np.floor(events.ts / 3600.0).astype(np.int64) % N_HOURS
        add_bincount(pend, "freq_count", events.cell * N_HOURS + hour)

    def prior(self, ctx):
        return RateParams(*cj.gamma_prior(rate=ctx.col("rate_per_s"),
                                          strength=ctx.col("prior_strength")))

    def params(self, prior, ev, ends, weight=None):
        a0, b0 = prior.a[ends, None], prior.b[ends, None]
        if weight is not None:  # faded by the requests counted (fade_count = count)
            a0, b0 = a0 * weight, b0 * weight
        a, b = cj.poisson_gamma_posterior(a0=a0, b0=b0,
                                          count=ev["freq_count"].sum(-1),
                                          exposure=ev["freq_exposure"].sum(-1))
        shape = ev["freq_count"].shape[:2]
        return RateParams(np.broadcast_to(a, shape), np.broadcast_to(b, shape))

    def count(self, stats):
        return stats["freq_count"].sum(-1)

    def key(self, prm, statuses, mass):
        return (prm.a / prm.b, *cj.gamma_interval(prm.a, prm.b, mass=mass))

    def width(self, prm, statuses, mass):
        return rate_width(prm.a, prm.b, mass)

    def variables(self, prm):
        return {"request_rate_shape": (CELL, prm.a), "request_rate_exposure_s": (CELL, prm.b)}

    def from_variables(self, ds):
        return RateParams(cell_array(ds, "request_rate_shape"),
                          cell_array(ds, "request_rate_exposure_s"))

    def changed(self, ev, pend, statuses, z):
        return cj.rate_changed(ev["freq_count"].sum(-1), ev["freq_exposure"].sum(-1),
                               pend["freq_count"].sum(-1), pend["freq_exposure"].sum(-1), z=z)


KIND = Frequency("frequency", {
    "freq_count": ("endpoint", "persona", "hour"),
    "freq_exposure": ("endpoint", "persona", "hour"),
}, pooled=False, fixed_dims={"hour": N_HOURS}, silent_decay=False, unit="req/s",
   quantity="request_rate")
