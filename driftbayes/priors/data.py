"""What the hierarchical model is fitted on: each cell's learned sufficient statistics, and
the marginal likelihood of those statistics under a group's population (cell parameters
integrated out in closed form, so the model has group-level parameters only).

Per cell (endpoint × persona) and kind, from the learner's decay-weighted evidence:

* latency and think time: ``n``, the mean of the log values and their within-cell sum of
  squares ``W``; a cell's ``(m, s²)`` follows the group's Normal-Inverse-Gamma
  ``s² ~ InvGamma(α, β)``, ``m | s² ~ N(μ, s²/κ)``;
* errors: ``n`` responses, ``k`` of them 5xx; a cell's rate ``p ~ Beta(a, b)``;
* request rate: ``c`` requests in ``T`` seconds of exposure; a cell's rate
  ``λ ~ Gamma(shape, shape/rate)``.

The likelihoods take fractional (decayed) counts as the learner's own conjugate updates do.
The functions are written once for NumPy/SciPy and PyTensor (``xp``), so the sampled model and
the pointwise log-likelihood behind LOO are the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
from scipy import special

from driftbayes.priors.groups import group_of

#: The kinds the model has a population for, and their likelihood family.
LOGNORMAL_KINDS = ("latency", "think_time")
KINDS = ("latency", "think_time", "errors", "frequency")
_STAT_PREFIX = {"latency": "lat", "think_time": "think"}
#: A cell takes part in a kind's likelihood when its evidence is at least this (decayed)
#: count; smaller error and request counts are rounded to 0. What is left out is next to no
#: information (0.2% of the decayed think-time evidence in the NASA log) but half the cells.
MIN_N = 0.01
LOG_2PI = float(np.log(2 * np.pi))

NP = SimpleNamespace(log=np.log, gammaln=special.gammaln)


def pytensor_ops():
    """The PyTensor namespace of the likelihood functions."""
    import pytensor.tensor as pt

    return SimpleNamespace(log=pt.log, gammaln=pt.gammaln)


def _take(g):
    """Each cell's value of a per-group parameter (a scalar is every group's)."""
    return (lambda x: x) if g is None else (lambda x: x[..., g] if np.ndim(x) else x)


def _combine(per_group, per_cell, take, counts):
    """Per-cell log-likelihoods, or with ``counts`` (cells per group) their sum, in which each
    group's own terms are computed once and weighed by its cells."""
    if counts is None:
        return take(per_group) + per_cell
    return (counts * per_group).sum() + per_cell.sum()


def nig_loglik(n, mean, W, mu, kappa, alpha, beta, xp=NP, g=None, const=True, counts=None):
    """Log marginal density of ``n`` log values with mean ``mean`` and within sum of squares
    ``W`` under ``s² ~ InvGamma(alpha, beta)``, ``m ~ N(mu, s²/kappa)`` (a multivariate
    Student-t; fractional ``n`` as in the learner's conjugate update).

    With ``g``, the parameters are per group (or scalars, shared by every group) and ``g`` is
    each cell's group (the terms of the group alone are computed once per group);
    ``const=False`` leaves out the terms of the data alone (the sampler does not need them);
    ``counts`` (each group's number of cells, with ``const=False``) gives the sum over the
    cells instead."""
    take = _take(g)
    per_group = 0.5 * xp.log(kappa) + alpha * xp.log(beta) - xp.gammaln(alpha)
    mu, kappa, alpha, beta = (take(x) for x in (mu, kappa, alpha, beta))
    kn = kappa + n
    an = alpha + n / 2.0
    bn = beta + W / 2.0 + kappa * n * (mean - mu) ** 2 / (2.0 * kn)
    out = _combine(per_group, -0.5 * xp.log(kn) - an * xp.log(bn) + xp.gammaln(an), take,
                   counts)
    return out - 0.5 * n * LOG_2PI if const else out


def betabinom_loglik(n, k, a, b, xp=NP, g=None, const=True, counts=None):
    """Log Beta-binomial probability of ``k`` errors in ``n`` responses (``g``, ``const``,
    ``counts``: see :func:`nig_loglik`)."""
    take = _take(g)
    per_group = xp.gammaln(a + b) - xp.gammaln(a) - xp.gammaln(b)
    a, b = take(a), take(b)
    out = _combine(per_group, xp.gammaln(k + a) + xp.gammaln(n - k + b) - xp.gammaln(n + a + b),
                   take, counts)
    if const:
        out = out + xp.gammaln(n + 1.0) - xp.gammaln(k + 1.0) - xp.gammaln(n - k + 1.0)
    return out


def gamma_poisson_loglik(c, T, shape, rate, xp=NP, g=None, const=True, counts=None):
    """Log negative-binomial probability of ``c`` requests in ``T`` seconds when the cell's
    rate is ``Gamma(shape, shape/rate)`` (mean ``rate``; ``g``, ``const``, ``counts``: see
    :func:`nig_loglik`)."""
    take = _take(g)
    b = shape / rate
    per_group = shape * xp.log(b) - xp.gammaln(shape)
    shape, b = take(shape), take(b)
    out = _combine(per_group, xp.gammaln(c + shape) - (shape + c) * xp.log(b + T), take,
                   counts)
    return out + c * xp.log(T) - xp.gammaln(c + 1.0) if const else out


@dataclass(frozen=True)
class CellData:
    """Sufficient statistics of every cell with exposure, and the cells' groups.

    ``endpoint``/``persona`` index the learner's vocabularies; ``group`` indexes ``groups``;
    ``stats[kind]`` holds the arrays of that kind over the cells in ``cells[kind]`` (indices
    into the cell list): ``n, mean, W`` (log-normal kinds), ``n, k`` (errors) or ``c, T``
    (frequency).
    """

    endpoints: list[str]
    personas: list[str]
    endpoint: np.ndarray
    persona: np.ndarray
    group: np.ndarray
    groups: list[str]
    cells: dict[str, np.ndarray]
    stats: dict[str, dict[str, np.ndarray]]

    @property
    def n_cells(self) -> int:
        return len(self.endpoint)

    @property
    def kinds(self) -> list[str]:
        """Kinds with data in at least one cell (the model has a population for those)."""
        return [k for k in KINDS if len(self.cells[k])]


def cell_data(learner, group_by: str = "prefix", depth: int = 1) -> CellData:
    """The learner's per-cell sufficient statistics (its own decay-weighted evidence, as the
    posterior is computed from) grouped by ``group_by``.

    Each cell's *own* evidence is used, not the persona-pooled posterior: pooled persona cells
    share their endpoint's data, and counting it once per persona would overstate it.
    """
    snap = learner.snapshot()
    ev = snap.evidence_
    T_all = ev["freq_exposure"].sum(-1)
    e_idx, p_idx = np.nonzero(T_all > 0)
    names = [group_of(snap.endpoints_[e], snap.personas_[p], group_by, depth)
             for e, p in zip(e_idx, p_idx)]
    groups = sorted(set(names))
    code = {g: i for i, g in enumerate(groups)}
    group = np.array([code[g] for g in names], dtype=np.int64)
    cells, stats = {}, {}
    for kind, prefix in _STAT_PREFIX.items():
        n, sx, sxx = (ev[f"{prefix}_{k}"][e_idx, p_idx] for k in ("n", "sx", "sxx"))
        keep = np.flatnonzero(n >= MIN_N)
        n, sx, sxx = n[keep], sx[keep], sxx[keep]
        mean = sx / n
        cells[kind] = keep
        stats[kind] = {"n": n, "mean": mean, "W": np.maximum(sxx - sx * mean, 0.0)}
    counts = ev["status_count"][e_idx, p_idx]
    err_codes = np.asarray(snap.statuses_) >= 500
    n = counts.sum(-1)
    keep = np.flatnonzero(n >= MIN_N)
    cells["errors"] = keep
    k = counts[keep][:, err_codes].sum(-1)
    stats["errors"] = {"n": n[keep], "k": np.where(k >= MIN_N, k, 0.0)}
    cells["frequency"] = np.arange(len(e_idx))
    c = ev["freq_count"][e_idx, p_idx].sum(-1)
    stats["frequency"] = {"c": np.where(c >= MIN_N, c, 0.0), "T": T_all[e_idx, p_idx]}
    return CellData(list(snap.endpoints_), list(snap.personas_), e_idx, p_idx, group, groups,
                    cells, stats)


def pointwise_loglik(data: CellData, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Log-likelihood of each cell's statistics per kind, ``(..., n_cells)``, for group-level
    parameters ``params`` (arrays ``(..., n_groups)`` named as the model's: ``latency_mu``,
    ``latency_kappa``, ``latency_alpha``, ``latency_sigma``, ``errors_rate``,
    ``errors_concentration``, ``frequency_rate``, ``frequency_shape``, …); cells without data
    of a kind get 0."""
    out = {}
    for kind in data.kinds:
        idx = data.cells[kind]
        g = data.group[idx]
        s = data.stats[kind]
        if kind in LOGNORMAL_KINDS:
            mu, kappa, alpha, sigma = (params[f"{kind}_{p}"]
                                       for p in ("mu", "kappa", "alpha", "sigma"))
            ll = nig_loglik(s["n"], s["mean"], s["W"], mu, kappa, alpha, alpha * sigma**2, g=g)
        elif kind == "errors":
            m, c = params["errors_rate"], params["errors_concentration"]
            ll = betabinom_loglik(s["n"], s["k"], m * c, (1.0 - m) * c, g=g)
        else:
            ll = gamma_poisson_loglik(s["c"], s["T"], params["frequency_shape"],
                                      params["frequency_rate"], g=g)
        full = np.zeros(ll.shape[:-1] + (data.n_cells,))
        full[..., idx] = ll
        out[kind] = full
    return out


def simulate(data: CellData, params: dict[str, np.ndarray], rng: np.random.Generator) -> CellData:
    """New statistics for the cells of ``data`` (same counts ``n`` and exposures ``T``) drawn
    from the model with group parameters ``params`` (natural, ``(groups,)`` each, named as in
    :func:`pointwise_loglik`): each cell's own parameters from its group's population, then its
    statistics. Fractional counts are rounded for the error counts; a cell with ``n ≤ 1`` has
    ``W = 0``. For prior-predictive checks and simulation tests."""
    stats = {}
    for kind in data.kinds:
        g = data.group[data.cells[kind]]
        s = data.stats[kind]
        if kind in LOGNORMAL_KINDS:
            mu, kappa, alpha, sigma = (np.asarray(params[f"{kind}_{p}"])[g]
                                       for p in ("mu", "kappa", "alpha", "sigma"))
            s2 = alpha * sigma**2 / rng.gamma(alpha)
            m = rng.normal(mu, np.sqrt(s2 / kappa))
            n = s["n"]
            W = np.where(n > 1, s2 * rng.chisquare(np.maximum(n - 1, 1e-9)), 0.0)
            stats[kind] = {"n": n, "mean": rng.normal(m, np.sqrt(s2 / n)), "W": W}
        elif kind == "errors":
            r, c = (np.asarray(params[f"errors_{p}"])[g] for p in ("rate", "concentration"))
            p = rng.beta(np.maximum(r * c, 1e-12), np.maximum((1 - r) * c, 1e-12))
            n = np.round(s["n"])
            stats[kind] = {"n": n, "k": rng.binomial(n.astype(np.int64), p).astype(float)}
        else:
            rate, shape = (np.asarray(params[f"frequency_{p}"])[g] for p in ("rate", "shape"))
            lam = rng.gamma(shape, rate / shape)
            stats[kind] = {"c": rng.poisson(lam * s["T"]).astype(float), "T": s["T"]}
    return CellData(data.endpoints, data.personas, data.endpoint, data.persona, data.group,
                    data.groups, data.cells, stats)
