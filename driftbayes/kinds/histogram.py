"""Shared maths of the kinds that keep a Dirichlet histogram of a positive quantity over
log-spaced bins (latency, think time): one statistic ``<stat>`` of counts per cell and bin, a
Dirichlet prior whose base measure is the synthetic (or fitted group's) log-normal, its
posterior under power-prior fading, the median's credible interval (Dirichlet aggregation) and
the predictive (bin by the posterior mean, then log-uniform inside it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.kinds import lognormal
from driftbayes.kinds.base import add_bincount


@dataclass(frozen=True)
class LogHistogram:
    """A Dirichlet histogram on the bins between ``edges_ms`` (statistic ``stat``, dims
    ``(endpoint, persona, <bin dim>)``); values outside the edges fall into the outer bins."""

    stat: str
    edges_ms: np.ndarray

    @property
    def log_edges(self) -> np.ndarray:
        return np.log(self.edges_ms)

    @property
    def n_bins(self) -> int:
        return len(self.edges_ms) - 1

    def accumulate(self, pend, cell: np.ndarray, value_ms: np.ndarray) -> None:
        """Count values ``value_ms`` of cells ``cell`` (flat ``e·P + p``) in place."""
        bins = cj.bin_index(value_ms, self.edges_ms)
        add_bincount(pend, self.stat, cell * self.n_bins + bins)

    def prior(self, median_ms, sigma, strength) -> np.ndarray:
        """``(E, B)`` pseudo-counts: ``strength`` observations of the log-normal."""
        alpha = cj.dirichlet_prior_alpha(median_ms=median_ms, sigma=sigma, strength=strength,
                                         log_edges=self.log_edges)
        return alpha.reshape(len(np.atleast_1d(strength)), self.n_bins)

    def posterior(self, alpha0, ev, ends, weight=None) -> np.ndarray:
        """``(E, P, B)`` Dirichlet posterior: the prior of endpoints ``ends`` (each cell keeping
        the share ``weight`` of its pseudo-counts) plus the cell's counts in ``ev``."""
        a0 = alpha0[ends, None, :]
        if weight is not None:
            a0 = a0 * weight[..., None]
        return cj.dirichlet_categorical_posterior(alpha0=a0, counts=ev[self.stat])

    def prior_and_summary(self, median_ms, sigma, strength) -> tuple[np.ndarray, cj.NIG]:
        """The histogram's pseudo-counts and its log-normal summary's NIG prior, both from the
        same log-normal worth ``strength`` observations."""
        return (self.prior(median_ms, sigma, strength),
                cj.nig_prior(median_ms=median_ms, sigma=sigma, strength=strength))

    def posterior_and_summary(self, prior_alpha, prior_nig, ev, prefix: str, ends, weight=None):
        """:meth:`posterior` and the log-normal summary's posterior (statistics ``prefix``)."""
        return (self.posterior(prior_alpha, ev, ends, weight),
                lognormal.posterior(prior_nig, ev, prefix, ends, weight))

    def median_quantiles(self, alpha, qs) -> np.ndarray:
        """Quantiles ``qs`` of the posterior of the median (ms), per cell."""
        return cj.dirichlet_median_quantiles(alpha, qs, log_edges=self.log_edges)

    def quantiles(self, alpha, qs) -> np.ndarray:
        """Quantiles ``qs`` (ms) of the predictive (the posterior mean histogram), per cell."""
        return cj.histogram_quantiles(cj.dirichlet_mean(alpha), qs, log_edges=self.log_edges)

    def sample(self, alpha, e, p, rng: np.random.Generator) -> np.ndarray:
        """One predictive draw (ms) per cell ``(e[i], p[i])``."""
        return cj.sample_histogram(cj.dirichlet_mean(alpha[e, p]), rng, log_edges=self.log_edges)

    def coords(self, dim: str, name: str) -> dict:
        """Bin bounds as coordinates ``<name>_lower_ms``, ``<name>_upper_ms`` on ``dim``."""
        return {f"{name}_lower_ms": (dim, self.edges_ms[:-1]),
                f"{name}_upper_ms": (dim, self.edges_ms[1:])}


#: Latency (statistic ``lat_hist``, 217 bins from 0.05 ms to 300 s).
LATENCY = LogHistogram("lat_hist", cj.LATENCY_EDGES_MS)
#: Think time (statistic ``think_hist``, 104 bins from 1 ms to 53 min).
THINK = LogHistogram("think_hist", cj.THINK_EDGES_MS)
