"""The hierarchical model (PyMC), on the cells' sufficient statistics.

Three levels, each kind apart:

1. **population**: one centre per parameter, with a weakly informative hyperprior centred on
   the synthetic mock (the synthetic prior stays the prior of the population);
2. **groups** (``--group-by``): with :data:`POOLED_MIN_GROUPS` groups or more, each group's
   parameter is drawn around the population's,
   ``θ_g ~ N(θ_pop, τ)``; non-centred (``θ_g = θ_pop + τ·z_g``, ``z_g ~ N(0, 1)``) for groups
   with few cells, where the centred form makes a funnel with ``τ``, centred for groups with
   many (:data:`CENTRED_MIN_CELLS`), where the non-centred form ties ``θ_pop`` and ``z_g``
   together; with fewer groups each group's parameter has the population's hyperprior
   (their spread cannot be estimated from so few); with one group the group *is* the
   population;
3. **cells**: their own parameters are integrated out in closed form
   (:mod:`driftbayes.priors.data`), so NUTS only sees group-level parameters.

================= ====================================== ==================================
kind              a cell's parameters, given its group    group parameters (sampled scale)
================= ====================================== ==================================
latency,          ``s² ~ InvGamma(α, α·σ²)``,             ``mu`` (log ms), ``log_sigma``,
think time        ``m | s² ~ N(μ, s²/κ)`` on log ms       ``log_kappa``, ``log_alpha``
errors            ``p ~ Beta(r·c, (1−r)·c)``              ``logit_rate``, ``log_concentration``
frequency         ``λ ~ Gamma(a, a/r)`` (req/s)           ``log_rate``, ``log_shape``
================= ====================================== ==================================

The hyperpriors (:data:`HYPER`): the population centre ``N(synthetic value, sd)`` on the
sampled scale, the group spread ``τ ~ Gamma(2, 2/tau_sd)`` (mean ``tau_sd``; zero-avoiding, as
recommended for group-level scales estimated from few groups: with a handful of groups a prior
with mass at 0 leaves a funnel NUTS diverges in).
"""

from __future__ import annotations

import numpy as np

from driftbayes.priors.data import LOGNORMAL_KINDS, CellData, pytensor_ops

#: (sampled-scale centre from the synthetic prior, population sd, prior mean of the group
#: spread τ) per group parameter; ``k`` is the synthetic ``prior_strength``.
HYPER = {
    "mu": (lambda med, sig, k: np.log(med), 2.0, 1.0),
    "log_sigma": (lambda med, sig, k: np.log(sig), 1.0, 0.5),
    "log_kappa": (lambda med, sig, k: np.log(k), 2.0, 1.0),
    "log_alpha": (lambda med, sig, k: np.log(k / 2.0), 1.5, 0.5),
}
#: The parameters that differ between groups; the others (how much cells vary within a group:
#: κ and α of the log-normal kinds, the Beta's concentration, the Gamma's shape) are shared by
#: every group, estimated from all of them.
GROUPED = ("mu", "log_sigma", "logit_rate", "log_rate")
ERROR_HYPER = {"logit_rate": 2.0, "log_concentration": 2.0}
RATE_HYPER = {"log_rate": 3.0, "log_shape": 2.0}
GROUP_TAU_SD = {"logit_rate": 1.0, "log_concentration": 1.0, "log_rate": 1.5, "log_shape": 1.0}



def _synthetic_lognormal(kind: str, syn) -> tuple[float, float]:
    if kind == "latency":
        return float(syn.latency_median_ms), float(syn.latency_sigma)
    return float(syn.think_time_median_ms), float(syn.think_time_sigma)


def population_centres(synthetic) -> dict[str, float]:
    """Centre of every population parameter (sampled scale) from a ``SyntheticPrior``."""
    k = float(synthetic.prior_strength)
    out = {}
    for kind in LOGNORMAL_KINDS:
        med, sig = _synthetic_lognormal(kind, synthetic)
        for p, (centre, _, _) in HYPER.items():
            out[f"{kind}_{p}"] = float(centre(med, sig, k))
    err = float(np.clip(synthetic.error_rate, 1e-4, 1 - 1e-4))
    out["errors_logit_rate"] = float(np.log(err / (1 - err)))
    out["errors_log_concentration"] = float(np.log(k))
    out["frequency_log_rate"] = float(np.log(synthetic.rate_per_s))
    out["frequency_log_shape"] = float(np.log(k))
    return out


def parameters(kinds) -> list[tuple[str, str]]:
    """``(kind, param)`` of every group parameter on its sampled scale, in the order of the
    model's ``param`` dim (named ``<kind>_<param>``)."""
    own = {"errors": tuple(ERROR_HYPER), "frequency": tuple(RATE_HYPER)}
    return [(kind, p) for kind in kinds for p in own.get(kind, tuple(HYPER))]


def hyperpriors(pairs, synthetic) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Population centre, population sd and group-spread scale of each parameter."""
    centre = population_centres(synthetic)
    sd = {**{p: HYPER[p][1] for p in HYPER}, **ERROR_HYPER, **RATE_HYPER}
    tau = {**{p: HYPER[p][2] for p in HYPER}, **GROUP_TAU_SD}
    return (np.array([centre[f"{k}_{p}"] for k, p in pairs]), np.array([sd[p] for _, p in pairs]),
            np.array([tau[p] for _, p in pairs]))


#: A group parameter is sampled centred (``θ_g ~ N(pop, τ)``) when there are at least
#: :data:`CENTRED_MIN_GROUPS` groups and its group has at least :data:`CENTRED_MIN_CELLS`
#: informative cells holding at least :data:`CENTRED_MIN_EVIDENCE` observations of the kind
#: (for errors: errors, for the request rate: requests): its data then pin ``θ_g`` down, and the
#: non-centred form would tie ``pop``, ``τ`` and ``z_g`` together. Otherwise it is non-centred
#: (``θ_g = pop + τ·z_g``): a group with little data would make a funnel with ``τ``, and with few
#: groups ``pop`` itself would (given pinned ``θ_g``, ``pop`` is known to ``τ/√G``). Measured on
#: the OpenStack sample (3 groups): 35 divergences centred, none non-centred; on the NASA log
#: (36 groups) non-centred ``/shuttle`` left ESS < 300.
CENTRED_MIN_GROUPS = 5
#: With fewer groups than this, how much groups differ cannot be estimated (and ``pop``, ``τ``
#: make a funnel NUTS diverges in): each group parameter gets the population's hyperprior
#: directly (``theta_u``), without a fitted ``τ``, and the population row of the stored priors
#: is that hyperprior, centred on the synthetic mock. Cells are still pooled within groups.
POOLED_MIN_GROUPS = 5
CENTRED_MIN_CELLS = 3
#: A group's log request rate is known to about ``1/√requests`` (when spread over several cells
#: with exposure, each with requests or not): 5 requests (±0.45) already pin it well inside the
#: spread of groups (prior mean 1.5; 1.4 fitted on the NASA log, where with 30 requests in 3
#: cells with a request each the groups of 5–30 requests stayed non-centred and
#: ``pop[frequency_log_rate]`` mixed slowly: bulk ESS 330–470 of 2,000 draws). The log-normal
#: kinds' ``log_sigma`` spread is much smaller (0.2 there), so their groups need more evidence
#: before the centred form's funnel with ``τ`` is no risk (5 made a divergence).
CENTRED_MIN_EVIDENCE = {"latency": 30.0, "think_time": 30.0, "errors": 30.0, "frequency": 5.0}
_INFORMATIVE = {"latency": "n", "think_time": "n", "errors": "k", "frequency": "c"}


def centring(data: CellData, pairs) -> tuple[np.ndarray, np.ndarray]:
    """``(offset, centred)``, each ``(param, group)``: the group parameters sampled
    non-centred and centred; shared parameters are neither."""
    G = len(data.groups)
    strong = {}
    for k in data.kinds:
        x = data.stats[k][_INFORMATIVE[k]]
        g = data.group[data.cells[k]]
        # a cell's requests count as exposure: every cell with exposure informs the rate, the
        # more so the more of them (for the other kinds, a cell of less than one observation
        # hardly does)
        cells = np.bincount(g, weights=(x >= 1.0) | (k == "frequency"), minlength=G)
        evidence = np.bincount(g, weights=x, minlength=G)
        strong[k] = (cells >= CENTRED_MIN_CELLS) & (evidence >= CENTRED_MIN_EVIDENCE[k])
    centred = np.array([strong[k] for k, _ in pairs]).reshape(len(pairs), G)
    centred &= G >= CENTRED_MIN_GROUPS
    if G < POOLED_MIN_GROUPS:
        return np.zeros_like(centred), np.zeros_like(centred)
    grouped = np.array([p in GROUPED for _, p in pairs])[:, None] & (G > 1)
    return grouped & ~centred, grouped & centred


def group_theta(post, data: CellData) -> np.ndarray:
    """Draws of the sampled-scale group parameters ``(chain, draw, param, group)`` from the
    posterior's ``pop``, ``tau``, ``z``, ``theta_c`` and ``theta_u``."""
    pop = np.asarray(post["pop"].values)
    pairs = parameters(data.kinds)
    if "theta_u" in post:
        theta = np.repeat(pop[..., None], len(data.groups), axis=-1)
        grouped = np.flatnonzero([p in GROUPED for _, p in pairs])
        theta[..., grouped, :] = np.asarray(post["theta_u"].values)
        return theta
    if "tau" not in post:
        return pop[..., None]
    offset, centred = centring(data, pairs)
    grouped = np.flatnonzero([p in GROUPED for _, p in pairs])
    tau = np.zeros(pop.shape)
    tau[..., grouped] = np.asarray(post["tau"].values)
    theta = np.repeat(pop[..., None], len(data.groups), axis=-1)
    pi, gi = np.nonzero(offset)
    if len(pi):
        theta[..., pi, gi] = pop[..., pi] + tau[..., pi] * np.asarray(post["z"].values)
    pc, gc = np.nonzero(centred)
    if len(pc):
        theta[..., pc, gc] = np.asarray(post["theta_c"].values)
    return theta


def natural(theta: dict[str, np.ndarray], kind: str) -> dict[str, np.ndarray]:
    """A kind's natural parameters from its sampled-scale ones (any array backend with
    ``exp``: NumPy arrays here)."""
    if kind in LOGNORMAL_KINDS:
        return {"mu": theta[f"{kind}_mu"],
                **{p: np.exp(theta[f"{kind}_log_{p}"]) for p in ("sigma", "kappa", "alpha")}}
    if kind == "errors":
        return {"rate": 1.0 / (1.0 + np.exp(-theta["errors_logit_rate"])),
                "concentration": np.exp(theta["errors_log_concentration"])}
    return {"rate": np.exp(theta["frequency_log_rate"]),
            "shape": np.exp(theta["frequency_log_shape"])}


def model_coords(data: CellData) -> dict:
    """Coords of the model: ``group``, ``param``, ``grouped`` (parameters that differ between
    groups), ``offset`` / ``centred`` (non-centred and centred group parameters) and each
    kind's ``<kind>_cell``."""
    pairs = parameters(data.kinds)
    names = [f"{k}_{p}" for k, p in pairs]
    offset, centred = centring(data, pairs)
    coords = {"group": data.groups, "param": names,
              "grouped": [n for n, (_, p) in zip(names, pairs)
                          if p in GROUPED and len(data.groups) > 1],
              "offset": [f"{names[i]}, {data.groups[j]}" for i, j in zip(*np.nonzero(offset))],
              "centred": [f"{names[i]}, {data.groups[j]}"
                          for i, j in zip(*np.nonzero(centred))]}
    for kind in data.kinds:
        coords[f"{kind}_cell"] = np.arange(len(data.cells[kind]))
    return coords


def group_parameters(data: CellData, synthetic):
    """Inside a ``pm.Model`` with :func:`model_coords`: the population and group levels, as
    ``(flat, index)``: every sampled-scale parameter in one vector ``flat`` (the population
    first, then the group-specific values) and ``index`` ``(param, group)``, where group ``g``'s
    value of parameter ``i`` is ``flat[index[i, g]]``.

    One vector and constant indices keep the compiled graph small (each node of it is compiled
    on its own, and compiling dominates a cold fit): the likelihood gathers each cell's
    parameters from ``flat`` directly."""
    import pymc as pm
    import pytensor.tensor as pt

    G = len(data.groups)
    pairs = parameters(data.kinds)
    P = len(pairs)
    centre, sd, tau_sd = hyperpriors(pairs, synthetic)
    offset, centred = centring(data, pairs)
    pi, gi = np.nonzero(offset)
    pc, gc = np.nonzero(centred)
    grouped = np.flatnonzero([p in GROUPED for _, p in pairs]) if G > 1 else np.array([], int)
    index = np.repeat(np.arange(P)[:, None], G, axis=1)
    pop = pm.Normal("pop", centre, sd, dims="param")
    parts = [pop]
    if len(grouped) and G < POOLED_MIN_GROUPS:
        parts.append(pm.Normal("theta_u", centre[grouped, None], sd[grouped, None],
                               dims=("grouped", "group")).ravel())
        index[grouped] = P + np.arange(len(grouped) * G).reshape(len(grouped), G)
    elif len(grouped):
        # Gamma(2): zero-avoiding, so that few groups cannot pull the spread into the neck of
        # the funnel where every group equals the population (mean tau_sd)
        tau = pm.Gamma("tau", 2.0, 2.0 / tau_sd[grouped], dims="grouped")
        slot = np.zeros(P, int)
        slot[grouped] = np.arange(len(grouped))  # a parameter's place in ``tau``
        if len(pi):
            z = pm.Normal("z", 0.0, 1.0, dims="offset")
            parts.append(pop[pi] + tau[slot[pi]] * z)
            index[pi, gi] = P + np.arange(len(pi))
        if len(pc):
            parts.append(pm.Normal("theta_c", pop[pc], tau[slot[pc]], dims="centred"))
            index[pc, gc] = P + len(pi) + np.arange(len(pc))
    flat = pt.concatenate(parts) if len(parts) > 1 else pop
    return flat, index


def build_model(data: CellData, synthetic):
    """The PyMC model of ``data``: free variables ``pop`` (dims ``param``), ``tau``
    (``grouped``), ``z`` (``offset``: the non-centred group parameters) and ``theta_c``
    (``centred``), or ``theta_u`` (``grouped, group``) with fewer than
    :data:`POOLED_MIN_GROUPS` groups, and with one group only ``pop``. Every data array is a
    ``pm.Data``, so one compiled model can be refitted on new statistics of the same shapes
    (freeze them, ``freeze_dims_and_data``, for a smaller graph otherwise). The group
    parameters are computed from the draws (:func:`group_theta`), not stored, to keep the
    compiled graph small."""
    import pymc as pm
    import pytensor.tensor as pt

    from driftbayes.priors import data as lik

    ops = pytensor_ops()
    names = [f"{k}_{p}" for k, p in parameters(data.kinds)]
    with pm.Model(coords=model_coords(data)) as model:
        flat, index = group_parameters(data, synthetic)
        total = 0.0
        for kind in data.kinds:
            dims = f"{kind}_cell"
            g = data.group[data.cells[kind]]
            counts = np.bincount(g, minlength=len(data.groups)).astype(float)
            s = {k: pm.Data(f"{kind}_{k}", v, dims=dims) for k, v in data.stats[kind].items()}
            # each group's parameters: a vector for those that differ between groups, a scalar
            # for those the groups share
            row = {}
            for i, n in enumerate(names):
                if n.startswith(kind + "_"):
                    at = index[i]
                    row[n.removeprefix(kind + "_")] = (flat[at] if np.any(at != at[0])
                                                       else flat[int(at[0])])
            if kind in LOGNORMAL_KINDS:
                sigma, kappa, alpha = (pt.exp(row[f"log_{p}"]) for p in ("sigma", "kappa",
                                                                          "alpha"))
                ll = lik.nig_loglik(s["n"], s["mean"], s["W"], row["mu"], kappa, alpha,
                                    alpha * sigma**2, ops, g=g, const=False, counts=counts)
            elif kind == "errors":
                rate = pt.sigmoid(row["logit_rate"])
                conc = pt.exp(row["log_concentration"])
                ll = lik.betabinom_loglik(s["n"], s["k"], rate * conc, (1.0 - rate) * conc, ops,
                                          g=g, const=False, counts=counts)
            else:
                ll = lik.gamma_poisson_loglik(s["c"], s["T"], pt.exp(row["log_shape"]),
                                              pt.exp(row["log_rate"]), ops, g=g, const=False,
                                              counts=counts)
            total = total + ll
        pm.Potential("loglik", total)
    return model
