"""Request frequency: Poisson arrivals with exposure per UTC hour of day, Gamma prior; key
quantity the request rate, on the square-root scale (Poisson's variance-stabilising one: the
interval narrows with exposure even when no request arrives). Never pooled across personas."""

from __future__ import annotations

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.kinds.base import Kind


def rate_width(a, b, mass: float) -> np.ndarray:
    """Width of the Gamma(a, b) rate interval on the square-root scale."""
    lo, hi = cj.gamma_interval(a, b, mass=mass)
    return np.sqrt(hi) - np.sqrt(lo)


class Frequency(Kind):
    def count(self, stats):
        return stats["freq_count"].sum(-1)

    def width(self, prm, statuses, mass):
        return rate_width(prm.rate_a, prm.rate_b, mass)

    def changed(self, ev, pend, statuses, z):
        return cj.rate_changed(ev["freq_count"].sum(-1), ev["freq_exposure"].sum(-1),
                               pend["freq_count"].sum(-1), pend["freq_exposure"].sum(-1), z=z)


KIND = Frequency("frequency", {
    "freq_count": ("endpoint", "persona", "hour"),
    "freq_exposure": ("endpoint", "persona", "hour"),
}, pooled=False)
