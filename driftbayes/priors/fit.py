"""Fitting the hierarchical model: sampling (nutpie when installed, else PyMC's NUTS),
diagnostics that decide whether the priors may be stored, and the stored priors themselves.

Diagnostics (every posterior variable, each element): ``r_hat ≤ 1.01`` (Vehtari et al. 2021
rank-normalised split-R̂), bulk ESS ``≥ 400`` (100 per chain for 4 chains, the same total for
our 2), and no divergent transition. A fit failing any of them is not stored; the message
names the variable, the element and the number.
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from driftbayes.priors.data import LOGNORMAL_KINDS, CellData, cell_data, pointwise_loglik
from driftbayes.priors.groups import POPULATION
from driftbayes.priors.model import build_model, group_theta, natural
from driftbayes.priors.stored import GroupPriors

#: An endpoint's own spread of log values is trusted for its standard error from this many
#: (decayed) observations on (the default ``min_samples``); below, its group's spread is used:
#: the spread of a few values is too often far too small, and a cold endpoint would then be
#: judged to differ from its group.
OWN_SPREAD_MIN = 10.0
R_HAT_MAX = 1.01
ESS_MIN = 400
SAMPLERS = ("auto", "nutpie", "pymc")
#: NUTS's target acceptance: above the default 0.8, so that the step size is small enough for
#: the group-spread funnels of groups with little data (fewer divergences). On the NASA log 0.8
#: diverged (1–3 per fit) and 0.9 let every trajectory settle at 15 leapfrog steps, which left
#: some non-centred group offsets with r_hat 1.010–1.013 in half of the seeds (0.95: none of 4).
TARGET_ACCEPT = 0.95


@dataclass
class PriorFit:
    """What :func:`fit_priors` returns.

    ``idata`` holds the posterior, ``sample_stats`` and, when asked for (``log_likelihood=True``),
    a ``log_likelihood`` group (each cell's statistics per kind and their ``total``, over
    ``cell``) for ``az.loo`` / ``az.compare``; ``priors`` the :class:`GroupPriors` to store;
    ``diagnostics`` one row per variable; ``failures`` why the priors may not be stored (empty:
    they may). ``compile_s``, ``sampling_s`` and ``post_s`` (diagnostics, log-likelihood and
    stored priors) are the seconds each step took.
    """

    data: CellData
    idata: object
    priors: GroupPriors
    diagnostics: object
    failures: list[str]
    sampler: str
    compile_s: float
    sampling_s: float
    divergences: int = 0
    post_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def fit_priors(learner, group_by: str = "prefix", *, depth: int = 1, draws: int = 1000,
               tune: int = 1000, chains: int = 2, seed: int = 0, sampler: str = "auto",
               cores: int | None = None, log_likelihood: bool = False) -> PriorFit:
    """Fit the hierarchical model on the learner's sufficient statistics.

    Parameters
    ----------
    learner : DriftLearner
        Its decay-weighted evidence per cell is the data (:func:`cell_data`).
    group_by : {"prefix", "method", "persona", "none"}
        How cells are grouped (:mod:`driftbayes.priors.groups`).
    depth : int
        Directory segments of the ``prefix`` grouping.
    draws, tune, chains, seed : int
        NUTS settings (``chains`` run on ``cores``, default ``min(chains, cpu count)``).
    sampler : {"auto", "nutpie", "pymc"}
        ``auto``: nutpie when importable, else PyMC's NUTS.
    log_likelihood : bool
        Add each cell's pointwise log-likelihood to ``idata`` (for ``az.loo`` /
        ``az.compare``; storing the priors does not need it).

    Returns
    -------
    PriorFit
        Check ``.ok`` (or ``.failures``) before storing ``.priors`` with
        :meth:`DriftLearner.set_group_priors`.
    """
    data = cell_data(learner, group_by, depth)
    fit = fit_cells(data, learner.config.synthetic, draws=draws, tune=tune, chains=chains,
                    seed=seed, sampler=sampler, cores=cores, log_likelihood=log_likelihood)
    fit.priors.group_by, fit.priors.depth = group_by, depth
    return fit


def fit_cells(data: CellData, synthetic, *, draws: int = 1000, tune: int = 1000,
              chains: int = 2, seed: int = 0, sampler: str = "auto",
              cores: int | None = None, log_likelihood: bool = False) -> PriorFit:
    """Fit the model on cell statistics (:func:`fit_priors` without a learner; ``synthetic``
    is the ``SyntheticPrior`` the population is centred on)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if not data.kinds:
        raise ValueError("nothing to fit: the state has no learned evidence (run `driftbayes "
                         "learn` first)")
    model = build_model(data, synthetic)
    cores = min(chains, os.cpu_count() or 1) if cores is None else cores
    idata, name, compile_s, sampling_s = sample(model, draws=draws, tune=tune, chains=chains,
                                                seed=seed, sampler=sampler, cores=cores)
    return finish(idata, data, name=name, compile_s=compile_s, sampling_s=sampling_s,
                  settings={"draws": draws, "tune": tune, "chains": chains, "seed": seed},
                  log_likelihood=log_likelihood)


def finish(idata, data: CellData, *, name: str, compile_s: float, sampling_s: float,
           settings: dict, log_likelihood: bool = False) -> PriorFit:
    """Diagnostics, stored priors and (``log_likelihood``) the pointwise log-likelihood of a
    sampled fit."""
    t0 = time.perf_counter()
    group_draws(idata, data)  # adds theta to the posterior, for the diagnostics
    if log_likelihood:
        add_log_likelihood(idata, data)
    table, failures, divergences = diagnose(idata)
    priors = group_priors(idata, data, "none", 1)
    priors.info.update({"sampler": name, **settings, "compile_s": round(compile_s, 2),
                        "sampling_s": round(sampling_s, 2), "n_cells": data.n_cells,
                        "max_r_hat": float(table["r_hat"].max()),
                        "min_ess_bulk": float(table["ess_bulk"].min()),
                        "divergences": divergences,
                        "fitted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return PriorFit(data, idata, priors, table, failures, name, compile_s, sampling_s,
                    divergences, time.perf_counter() - t0)


def sample(model, *, draws: int, tune: int, chains: int, seed: int, sampler: str = "auto",
           cores: int = 1):
    """``(idata, sampler used, compile seconds, sampling seconds)``."""
    use_nutpie = sampler == "nutpie" or (sampler == "auto"
                                         and importlib.util.find_spec("nutpie") is not None)
    if use_nutpie:
        import nutpie

        t0 = time.perf_counter()
        # frozen data are constants: fewer nodes to compile (each is compiled apart, and
        # compiling dominates a cold fit)
        compiled = nutpie.compile_pymc_model(model, freeze_model=True)
        t1 = time.perf_counter()
        idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed,
                              cores=cores, progress_bar=False, target_accept=TARGET_ACCEPT,
                              save_warmup=False)
        return idata, "nutpie", t1 - t0, time.perf_counter() - t1
    import pymc as pm
    from pymc.model.transform.optimization import freeze_dims_and_data

    with freeze_dims_and_data(model):
        t0 = time.perf_counter()
        step = pm.NUTS(target_accept=TARGET_ACCEPT)  # compiles the log density and its gradient
        t1 = time.perf_counter()
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, step=step,
                          random_seed=seed, progressbar=False, compute_convergence_checks=False)
    return idata, "pymc", t1 - t0, time.perf_counter() - t1


def group_draws(idata, data: CellData) -> dict[str, np.ndarray]:
    """Draws of every group's natural parameters, ``(chain, draw, groups + 1)``: the groups,
    then the population (``pop``) as the last column. Adds ``theta`` (the sampled-scale group
    parameters) to the posterior, so the diagnostics cover it."""
    post = idata.posterior
    pop = np.asarray(post["pop"].values)  # (chain, draw, param)
    theta = group_theta(post, data)
    if "theta" not in post and ("tau" in post or "theta_u" in post):
        idata.posterior["theta"] = (("chain", "draw", "param", "group"), theta)
        idata.posterior = idata.posterior.assign_coords(group=list(data.groups))
    both = np.concatenate([theta, pop[..., None]], axis=-1)
    names = [str(n) for n in post["param"].values]
    sampled = {n: both[..., i, :] for i, n in enumerate(names)}
    out = {}
    for kind in data.kinds:
        for p, v in natural(sampled, kind).items():
            out[f"{kind}_{p}"] = v
    return out


def add_log_likelihood(idata, data: CellData) -> None:
    """Add a ``log_likelihood`` group: each cell's log-likelihood per kind and their
    ``total`` (dims ``chain, draw, cell``)."""
    import xarray as xr

    draws = {k: v[..., :-1] for k, v in group_draws(idata, data).items()}
    ll = pointwise_loglik(data, draws)
    ll["total"] = sum(ll.values())
    post = idata.posterior
    ds = xr.Dataset({k: (("chain", "draw", "cell"), v) for k, v in ll.items()},
                    coords={"chain": post["chain"].values, "draw": post["draw"].values,
                            "cell": np.arange(data.n_cells)})
    idata.add_groups(log_likelihood=ds)


def diagnose(idata, *, r_hat_max: float | None = None, ess_min: float | None = None):
    """``(table, failures, divergences)``: worst r_hat and bulk ESS per posterior variable
    (pandas, with the element that is worst), and why the fit may not be stored (thresholds:
    :data:`R_HAT_MAX`, :data:`ESS_MIN` unless given)."""
    import arviz as az
    import pandas as pd

    r_hat_max = R_HAT_MAX if r_hat_max is None else r_hat_max
    ess_min = ESS_MIN if ess_min is None else ess_min

    post = idata.posterior
    rhat = az.rhat(post)
    ess = az.ess(post, method="bulk")
    rows, failures = [], []
    for name in post.data_vars:
        if str(name).endswith("__"):
            continue  # a transformed copy (nutpie keeps tau_log__ beside tau)
        r, e = np.asarray(rhat[name].values, float), np.asarray(ess[name].values, float)
        r = np.where(np.isfinite(r), r, 1.0)  # constant draws (a fixed quantity)
        e = np.where(np.isfinite(e), e, np.inf)
        worst_r, worst_e = int(np.argmax(r)), int(np.argmin(e))
        rows.append({"variable": name, "r_hat": float(r.flat[worst_r]),
                     "ess_bulk": float(e.flat[worst_e]), "at": _label(post[name], worst_e)})
        if r.flat[worst_r] > r_hat_max:
            failures.append(f"{name}{_label(post[name], worst_r)}: r_hat "
                            f"{r.flat[worst_r]:.3f} > {r_hat_max} (chains disagree: draw more "
                            "or simplify the grouping)")
        if e.flat[worst_e] < ess_min:
            failures.append(f"{name}{_label(post[name], worst_e)}: bulk ESS "
                            f"{e.flat[worst_e]:.0f} < {ess_min} (too few effective draws: "
                            "raise --draws)")
    div = int(np.asarray(idata.sample_stats["diverging"].values).sum())
    if div:
        failures.append(f"{div} divergent transitions (the posterior geometry is hard for NUTS; "
                        "the draws may be biased)")
    return pd.DataFrame(rows), failures, div


def _label(var, flat: int) -> str:
    """``[coord, …]`` of element ``flat`` (C order) of a posterior variable."""
    dims = [d for d in var.dims if d not in ("chain", "draw")]
    if not dims:
        return ""
    at = np.unravel_index(flat, [var.sizes[d] for d in dims])
    return "[" + ", ".join(str(var[d].values[i]) for d, i in zip(dims, at)) + "]"


# ----------------------------------------------------------------------------- stored priors
def group_priors(idata, data: CellData, group_by: str, depth: int) -> GroupPriors:
    """The priors to store: posterior medians (and 90% intervals) of each group's natural
    parameters, the population row, and each endpoint's capped weight (module
    :mod:`driftbayes.priors.stored`)."""
    draws = group_draws(idata, data)
    values = {}
    for kind in data.kinds:
        if kind in LOGNORMAL_KINDS:
            draws[f"{kind}_median_ms"] = np.exp(draws[f"{kind}_mu"])
            draws[f"{kind}_weight"] = np.minimum(draws[f"{kind}_kappa"],
                                                 2.0 * draws[f"{kind}_alpha"])
        else:
            draws[f"{kind}_weight"] = draws[f"{kind}_concentration" if kind == "errors"
                                            else f"{kind}_shape"]
    for name, x in draws.items():
        flat = x.reshape(-1, x.shape[-1])
        values[name] = np.quantile(flat, [0.5, 0.05, 0.95], axis=0).T
    groups = data.groups + [POPULATION]
    endpoints, group, weight = endpoint_caps(data, values)
    return GroupPriors(group_by, depth, groups, data.kinds, values, endpoints, group, weight)


def endpoint_caps(data: CellData, values: dict[str, np.ndarray]):
    """Each fit endpoint's group (its busiest cell's) and, per kind, the most pseudo-
    observations its group prior may be worth: ``min(group weight, own·se/(|d| − se))``, where
    ``d`` is the distance of the endpoint's own estimate from the group's and ``se`` its own
    standard error (the prior then moves the estimate by at most ``se``)."""
    E = len(data.endpoints)
    busiest = np.full(E, -1)
    order = np.argsort(data.stats["frequency"]["c"], kind="stable")
    busiest[data.endpoint[order]] = data.group[order]  # repeated indices: the last one wins
    seen = np.flatnonzero(busiest >= 0)
    group = busiest[seen]
    weight = {}
    for kind in data.kinds:
        idx, s = data.cells[kind], data.stats[kind]
        e = data.endpoint[idx]

        def total(x, e=e):
            return np.bincount(e, weights=x, minlength=E)[seen]

        w_group = values[f"{kind}_weight"][group, 0]
        if kind in LOGNORMAL_KINDS:
            n, sx = total(s["n"]), total(s["n"] * s["mean"])
            sxx = total(s["W"] + s["n"] * s["mean"] ** 2)
            with np.errstate(divide="ignore", invalid="ignore"):
                mean = sx / n
                var = np.maximum(sxx / n - mean**2, 0.0)
                sigma2 = values[f"{kind}_sigma"][group, 0] ** 2
                own = n >= OWN_SPREAD_MIN
                cap = np.minimum(
                    _cap(n, np.abs(mean - values[f"{kind}_mu"][group, 0]),
                         np.sqrt(np.where(own, var, sigma2) / n)),
                    np.where(own, _cap(n, np.abs(var - sigma2), var * np.sqrt(2.0 / n)),
                             np.inf))
        elif kind == "errors":
            n, k = total(s["n"]), total(s["k"])
            with np.errstate(divide="ignore", invalid="ignore"):
                p = k / n
                pc = np.clip(p, 1e-3, 1 - 1e-3)
                cap = _cap(n, np.abs(p - values["errors_rate"][group, 0]),
                           np.sqrt(pc * (1 - pc) / n))
        else:
            cnt, T = total(s["c"]), total(s["T"])
            rate = values["frequency_rate"][group, 0]
            with np.errstate(divide="ignore", invalid="ignore"):
                se = np.sqrt(np.maximum(cnt, 1.0)) / T
                # the prior's pseudo-exposure shape/rate against the endpoint's exposure T
                cap = rate * _cap(T, np.abs(cnt / T - rate), se)
        weight[kind] = np.minimum(w_group, np.where(np.isnan(cap), np.inf, cap))
    return [data.endpoints[e] for e in seen], group, weight


def _cap(own, d, se):
    """``own · se / (d − se)`` where ``d > se`` and ``own > 0``, else inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        k = own * se / (d - se)
    return np.where((own > 0) & np.isfinite(d) & (d > se), k, math.inf)
