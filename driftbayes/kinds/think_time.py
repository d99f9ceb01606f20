"""Think time: the gap between a session's consecutive requests, per source endpoint. A
Dirichlet histogram over log-spaced bins (:data:`histogram.THINK`; the shape, which the
predictive draws from: think times are often multimodal — a script's next call, a reader's
next page) next to a Normal-Inverse-Gamma on the log (the summary: key quantity the median
think time on the log scale, change detection, pooling distance, the survival of censored
session ends, exports)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.kinds import lognormal
from driftbayes.kinds.base import CELL, cell_array
from driftbayes.kinds.histogram import THINK


@dataclass(frozen=True)
class ThinkTimeParams:
    """Think-time posterior per cell."""

    alpha: np.ndarray  # (E, P, B) Dirichlet over think-time bins
    nig: cj.NIG  # each (E, P): log think-time location and scale


@dataclass(frozen=True)
class ThinkTime(lognormal.LogNormalKind):
    prefix: str = "think"

    def accumulate_steps(self, pend, steps):
        cell = steps.source * steps.sizes.persona + steps.persona
        ms = np.maximum(steps.gap_s * 1000.0, 1.0)
        THINK.accumulate(pend, cell, ms)
        lognormal.accumulate(pend, "think", cell, np.log(ms))

    def prior_median_sigma(self, ctx):
        return ctx.col("think_time_median_ms"), ctx.col("think_time_sigma")

    def prior(self, ctx):
        median, sigma = self.prior_median_sigma(ctx)
        return ThinkTimeParams(*THINK.prior_and_summary(median, sigma, ctx.col("prior_strength")))

    def params(self, prior, ev, ends, weight=None):
        return ThinkTimeParams(*THINK.posterior_and_summary(prior.alpha, prior.nig, ev, "think",
                                                            ends, weight))

    def predictive(self, prm, e, p, rng, statuses):
        return THINK.sample(prm.alpha, e, p, rng)

    def variables(self, prm):
        return {"think_bin_alpha": (CELL + ("think_bin",), prm.alpha),
                **lognormal.nig_variables(prm.nig, "think", prm.alpha.shape[:2])}

    def from_variables(self, ds):
        return ThinkTimeParams(cell_array(ds, "think_bin_alpha"), lognormal.nig_from(ds, "think"))


KIND = ThinkTime("think_time", {
    "think_hist": ("endpoint", "persona", "think_bin"),
    **lognormal.stats("think"),
}, fixed_dims={"think_bin": THINK.n_bins}, behavioral=True, unit="ms",
   quantity="think_median_ms", online_change=True,
   change_stats=("think_n", "think_sx", "think_sxx"))
