"""A pattern kind defined only in the test suite: response size in bytes, log-normal with a
Normal-Inverse-Gamma prior. It proves that a kind is one module plus one registry line
(``driftbayes.kinds.register(KIND)``): it learns, gates, pools, saves, loads, samples and is
listed by ``patterns`` without any change to driftbayes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.kinds import lognormal
from driftbayes.kinds.base import Kind

#: The synthetic mock's response size: median 2 KiB, log-scale spread 1.
PRIOR_MEDIAN_BYTES = 2048.0
PRIOR_SIGMA = 1.0


@dataclass(frozen=True)
class SizeParams:
    nig: cj.NIG  # each (E, P): log response size (bytes)


class ResponseSize(Kind):
    def accumulate(self, pend, events):
        size = events.extra.get("response_bytes")
        if size is None:
            return
        size = np.asarray(size, dtype=float)
        ok = np.isfinite(size) & (size > 0)
        lognormal.accumulate(pend, "size", events.cell[ok], np.log(size[ok]))

    def prior(self, ctx):
        n = len(ctx.synthetic)
        return SizeParams(cj.nig_prior(median_ms=np.full(n, PRIOR_MEDIAN_BYTES),
                                       sigma=np.full(n, PRIOR_SIGMA),
                                       strength=ctx.col("prior_strength")))

    def params(self, prior, ev, ends):
        return SizeParams(lognormal.posterior(prior.nig, ev, "size", ends))

    def count(self, stats):
        return stats["size_n"]

    def key(self, prm, statuses, mass):
        return lognormal.median_interval(prm.nig, mass)

    def width(self, prm, statuses, mass):
        return lognormal.log_width(prm.nig, mass)

    def predictive(self, prm, e, p, rng, statuses):
        return lognormal.sample(prm.nig, e, p, rng)

    def borrow_terms(self, ev, statuses, split):
        return lognormal.borrow_terms(ev, "size", split)

    def changed(self, ev, pend, statuses, z):
        return lognormal.changed(ev, pend, "size", z)


KIND = ResponseSize("response_size", lognormal.stats("size"), unit="bytes",
                    observable="response_bytes")
