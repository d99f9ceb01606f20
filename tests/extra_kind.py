"""A pattern kind defined only in the test suite: response size in bytes, log-normal with a
Normal-Inverse-Gamma prior. It proves that a kind is one module plus one registry line
(``driftbayes.kinds.register(KIND)``): it learns, gates, pools, saves, loads, samples and is
listed by ``patterns`` without any change to driftbayes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driftbayes.kinds import lognormal

#: The synthetic mock's response size: median 2 KiB, log-scale spread 1.
PRIOR_MEDIAN_BYTES = 2048.0
PRIOR_SIGMA = 1.0


@dataclass(frozen=True)
class ResponseSize(lognormal.LogNormalKind):
    prefix: str = "size"

    def accumulate(self, pend, events):
        size = events.extra.get("response_bytes")
        if size is None:
            return
        size = np.asarray(size, dtype=float)
        ok = np.isfinite(size) & (size > 0)
        lognormal.accumulate(pend, "size", events.cell[ok], np.log(size[ok]))

    def prior_median_sigma(self, ctx):
        n = len(ctx.synthetic)
        return np.full(n, PRIOR_MEDIAN_BYTES), np.full(n, PRIOR_SIGMA)


KIND = ResponseSize("response_size", lognormal.stats("size"), unit="bytes",
                    observable="response_bytes")
