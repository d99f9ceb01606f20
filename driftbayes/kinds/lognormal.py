"""Shared maths of the kinds that model a positive quantity as log-normal with a
Normal-Inverse-Gamma prior on its log (latency summary, think time, and any kind alike): the
statistics ``<prefix>_n``, ``_sx``, ``_sxx`` of the log values per cell, their posterior, the
mean-shift change test and the pooling distance."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.kinds.base import CELL, Kind, add_bincount, cell_array


def stats(prefix: str) -> dict[str, tuple[str, ...]]:
    """The three per-cell statistics of log values."""
    return {f"{prefix}_{k}": ("endpoint", "persona") for k in ("n", "sx", "sxx")}


def accumulate(pend, prefix: str, cell: np.ndarray, x: np.ndarray) -> None:
    """Add log values ``x`` of cells ``cell`` (flat ``e·P + p``) in place."""
    add_bincount(pend, f"{prefix}_n", cell)
    add_bincount(pend, f"{prefix}_sx", cell, x)
    add_bincount(pend, f"{prefix}_sxx", cell, x * x)


def posterior(prior: cj.NIG, ev, prefix: str, ends, weight=None) -> cj.NIG:
    """NIG posterior per cell of the prior (per endpoint, rows ``ends``; each cell keeping the
    share ``weight`` of its pseudo-observations) plus ``ev``."""
    mu0, k0, a0, b0 = (np.asarray(x)[ends, None] for x in prior)
    if weight is not None:
        k0, a0, b0 = k0 * weight, a0 * weight, b0 * weight
    post = cj.normal_nig_posterior(mu0=mu0, kappa0=k0, alpha0=a0, beta0=b0,
                                   n=ev[f"{prefix}_n"], sx=ev[f"{prefix}_sx"],
                                   sxx=ev[f"{prefix}_sxx"])
    shape = ev[f"{prefix}_n"].shape
    return cj.NIG(*(np.broadcast_to(x, shape) for x in post))


def median_interval(nig: cj.NIG, mass: float):
    """``(median, lower, upper)`` of the log-normal's median, ``exp`` of the NIG mean's."""
    lo, hi = cj.nig_mean_interval(mu=nig.mu, kappa=nig.kappa, alpha=nig.alpha, beta=nig.beta,
                                  mass=mass)
    return np.exp(nig.mu), np.exp(lo), np.exp(hi)


def log_width(nig: cj.NIG, mass: float) -> np.ndarray:
    """Width of the NIG mean's interval (the log median's)."""
    lo, hi = cj.nig_mean_interval(mu=nig.mu, kappa=nig.kappa, alpha=nig.alpha, beta=nig.beta,
                                  mass=mass)
    return hi - lo


def borrow_terms(ev, prefix: str, split):
    """``(d, se, own)`` for a mean of log values (standard error from the cell's own spread;
    a cell with one or two samples uses its endpoint's)."""
    (n, n_o), (sx, sx_o), (sxx, sxx_o) = (split(ev[f"{prefix}_{k}"]) for k in ("n", "sx", "sxx"))
    mean, mean_o = sx / n, sx_o / n_o
    mean_all = (sx + sx_o) / (n + n_o)
    var = _spread(sxx / n, mean)
    pooled_var = _spread((sxx + sxx_o) / (n + n_o), mean_all)
    var = np.where(n >= 3, var, pooled_var)
    return np.abs(mean - mean_o), np.sqrt(var / n), n


def _spread(mean_sq, mean):
    """``E[x²] − E[x]²``, exactly 0 where it is rounding noise (below 1e-9 of ``E[x²]``): a
    cell whose values are all one value must not get a spread from the last bits of its sums
    (they differ between a closed-form and a step-by-step decay)."""
    var = mean_sq - mean**2
    return np.where(var > 1e-9 * np.abs(mean_sq), var, 0.0)


def changed(ev, pend, prefix: str, z: float):
    """Two-sample z-test of the window's mean log value (needs 3 window observations)."""
    if not (pend[f"{prefix}_n"] >= 3).any():
        return None
    return cj.mean_shift_changed(ev[f"{prefix}_n"], ev[f"{prefix}_sx"], ev[f"{prefix}_sxx"],
                                 pend[f"{prefix}_n"], pend[f"{prefix}_sx"], z=z)


def log_predictive(prior: cj.NIG, e, before, window, weight, prefix: str) -> np.ndarray:
    """Log probability of each cell's window mean of log values (statistics ``window``)
    under each hypothesis' statistics ``before`` (``(h, n)``; the last one holds the cell's
    whole evidence): a Normal–Normal predictive of the mean, ``N(x̄ | m_h, s²·(1/n_x +
    1/κ_h))``, whose scale ``s²`` is the whole evidence's (``β/α`` of its NIG posterior) for
    every hypothesis. Only the location is compared: heavy or skewed tails (a cache miss, a
    long think time) then do not favour the short runs, whose own scales are the least sure;
    terms equal for every hypothesis are left out."""
    mu0, k0, a0, b0 = (np.asarray(x)[e] for x in prior)
    k0, a0, b0 = k0 * weight, a0 * weight, b0 * weight
    n, sx, sxx = (before[f"{prefix}_{k}"] for k in ("n", "sx", "sxx"))
    pre = cj.normal_nig_posterior(mu0=mu0, kappa0=k0, alpha0=a0, beta0=b0, n=n, sx=sx, sxx=sxx)
    scale2 = pre.beta[-1] / pre.alpha[-1]
    wn, wsx = window[f"{prefix}_n"], window[f"{prefix}_sx"]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(wn > 0, wsx / wn, 0.0)
        var = scale2 * (1.0 / np.maximum(wn, 1e-300) + 1.0 / pre.kappa)
    return -0.5 * (np.log(2 * np.pi * var) + (mean - pre.mu) ** 2 / var)


def sample(nig: cj.NIG, e, p, rng: np.random.Generator) -> np.ndarray:
    """Log-normal predictive draws (Student-t on the log), one per cell ``(e[i], p[i])``."""
    return cj.sample_lognormal_nig(mu=nig.mu[e, p], kappa=nig.kappa[e, p],
                                   alpha=nig.alpha[e, p], beta=nig.beta[e, p], rng=rng)


def nig_variables(nig: cj.NIG, name: str, shape) -> dict:
    """A NIG's parameters as dataset variables ``<name>_log_mu`` … ``<name>_log_beta``."""
    return {f"{name}_log_{f}": (CELL, np.broadcast_to(np.asarray(x, dtype=float), shape))
            for f, x in zip(cj.NIG._fields, nig)}


def nig_from(ds, name: str) -> cj.NIG:
    """The NIG :func:`nig_variables` wrote."""
    return cj.NIG(*(cell_array(ds, f"{name}_log_{f}") for f in cj.NIG._fields))


@dataclass(frozen=True)
class LogNormalParams:
    """Posterior of a log-normal kind per cell."""

    nig: cj.NIG  # each (E, P): location and scale of the log values


class LogNormalKind(Kind):
    """A kind whose cells hold a log-normal quantity under a NIG prior, with statistics
    ``<prefix>_n``, ``_sx``, ``_sxx`` (see :func:`stats`) and the median as key quantity; a
    subclass says how events add to them and what the prior is (:meth:`prior_median_sigma`)."""

    prefix: str = ""

    def prior_median_sigma(self, ctx) -> tuple[np.ndarray, np.ndarray]:
        """The synthetic median and log-scale spread per endpoint."""
        raise NotImplementedError

    def prior(self, ctx):
        median, sigma = self.prior_median_sigma(ctx)
        return LogNormalParams(cj.nig_prior(median_ms=median, sigma=sigma,
                                            strength=ctx.col("prior_strength")))

    def params(self, prior, ev, ends, weight=None):
        return LogNormalParams(posterior(prior.nig, ev, self.prefix, ends, weight))

    def count(self, stats):
        return stats[f"{self.prefix}_n"]

    def key(self, prm, statuses, mass):
        return median_interval(prm.nig, mass)

    def width(self, prm, statuses, mass):
        return log_width(prm.nig, mass)

    def predictive(self, prm, e, p, rng, statuses):
        return sample(prm.nig, e, p, rng)

    def variables(self, prm):
        return nig_variables(prm.nig, self.prefix, np.broadcast(*prm.nig).shape)

    def from_variables(self, ds):
        return LogNormalParams(nig_from(ds, self.prefix))

    def borrow_terms(self, ev, statuses, split):
        return borrow_terms(ev, self.prefix, split)

    def log_predictive(self, prior, e, before, window, weight, statuses):
        return log_predictive(prior.nig, e, before, window, weight, self.prefix)

    def changed(self, ev, pend, statuses, z):
        return changed(ev, pend, self.prefix, z)
