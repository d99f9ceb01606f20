"""Think time: the log-normal gap between a session's consecutive requests, per source
endpoint, Normal-Inverse-Gamma on the log; key quantity the median think time, on the log
scale."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driftbayes.kinds import lognormal


@dataclass(frozen=True)
class ThinkTime(lognormal.LogNormalKind):
    prefix: str = "think"

    def accumulate_steps(self, pend, steps):
        cell = steps.source * steps.sizes.persona + steps.persona
        lognormal.accumulate(pend, "think", cell, np.log(np.maximum(steps.gap_s * 1000.0, 1.0)))

    def prior_median_sigma(self, ctx):
        return ctx.col("think_time_median_ms"), ctx.col("think_time_sigma")


KIND = ThinkTime("think_time", lognormal.stats("think"), behavioral=True, unit="ms",
                 quantity="think_median_ms", online_change=True)
