"""Think time: the log-normal gap between a session's consecutive requests, per source
endpoint, Normal-Inverse-Gamma on the log; key quantity the median think time, on the log
scale."""

from __future__ import annotations

from driftbayes import conjugate as cj
from driftbayes.kinds.base import Kind
from driftbayes.kinds.latency import log_mean_borrow_terms, log_mean_changed


class ThinkTime(Kind):
    def count(self, stats):
        return stats["think_n"]

    def width(self, prm, statuses, mass):
        mu, kappa, alpha, beta = prm.think_nig
        lo, hi = cj.nig_mean_interval(mu=mu, kappa=kappa, alpha=alpha, beta=beta, mass=mass)
        return hi - lo

    def borrow_terms(self, ev, statuses, split):
        return log_mean_borrow_terms(ev, "think", split)

    def changed(self, ev, pend, statuses, z):
        return log_mean_changed(ev, pend, "think", z)


KIND = ThinkTime("think_time", {
    "think_n": ("endpoint", "persona"),
    "think_sx": ("endpoint", "persona"),
    "think_sxx": ("endpoint", "persona"),
}, behavioral=True)
