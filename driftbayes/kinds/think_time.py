"""Think time: the log-normal gap between a session's consecutive requests, per source
endpoint, Normal-Inverse-Gamma on the log; key quantity the median think time, on the log
scale."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.kinds import lognormal
from driftbayes.kinds.base import Kind


@dataclass(frozen=True)
class ThinkTimeParams:
    """Think-time posterior per cell (source endpoint × persona)."""

    nig: cj.NIG  # each (E, P): log think time (ms)


class ThinkTime(Kind):
    def accumulate_steps(self, pend, steps):
        cell = steps.source * steps.sizes.persona + steps.persona
        lognormal.accumulate(pend, "think", cell, np.log(np.maximum(steps.gap_s * 1000.0, 1.0)))

    def prior(self, ctx):
        return ThinkTimeParams(cj.nig_prior(median_ms=ctx.col("think_time_median_ms"),
                                            sigma=ctx.col("think_time_sigma"),
                                            strength=ctx.col("prior_strength")))

    def params(self, prior, ev, ends):
        return ThinkTimeParams(lognormal.posterior(prior.nig, ev, "think", ends))

    def count(self, stats):
        return stats["think_n"]

    def key(self, prm, statuses, mass):
        return lognormal.median_interval(prm.nig, mass)

    def width(self, prm, statuses, mass):
        return lognormal.log_width(prm.nig, mass)

    def predictive(self, prm, e, p, rng, statuses):
        return lognormal.sample(prm.nig, e, p, rng)

    def borrow_terms(self, ev, statuses, split):
        return lognormal.borrow_terms(ev, "think", split)

    def changed(self, ev, pend, statuses, z):
        return lognormal.changed(ev, pend, "think", z)


KIND = ThinkTime("think_time", lognormal.stats("think"), behavioral=True, unit="ms")
