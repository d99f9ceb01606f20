"""Exact posterior draws of the conjugate models, under one vocabulary, for ArviZ.

:data:`QUANTITIES` names every variable a draw dataset holds, with its units and meaning; the
posterior summary (``learner.posterior()``) uses the same names for its key quantities.
:func:`posterior_draws` builds the draws of a layer for one cell, some or all;
:func:`to_datatree` (ArviZ 1.x) and :func:`to_inference_data` (ArviZ 0.x) wrap them for
``az.summary``, ``az.hdi`` and the plots, and the NetCDF export writes them
(:mod:`driftbayes.export.netcdf`).

The draws are independent (each model is conjugate), so ESS is the draw count and r-hat is 1
up to Monte-Carlo noise. One seed gives the same draws every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.learner import END, START, DriftLearner

#: ``transition_p`` (Dirichlet draws of whole rows, ``E + 1`` states wide) is drawn only when it
#: holds at most this many numbers (chains × draws × personas × rows × states; 512 MiB): all
#: rows of a state grow as E². ``next_state_p`` is always there.
MAX_TRANSITION_NUMBERS = 1 << 26
#: Latency histograms are drawn this many numbers at a time (memory stays bounded).
_CHUNK = 1 << 24


@dataclass(frozen=True)
class Quantity:
    """One variable of the draws: its units, meaning and the dims it has beyond its cell's."""

    units: str
    meaning: str
    dims: tuple[str, ...] = ()
    #: ``(endpoint, persona)``, or ``(persona, src)`` for a transition row
    cell: tuple[str, ...] = ("endpoint", "persona")


ROW = ("persona", "src")
#: The draws' variables, by name: the one vocabulary (the README's Quantities table).
QUANTITIES: dict[str, Quantity] = {
    "latency_median_ms": Quantity("ms", "median latency (of a Dirichlet draw of the latency "
                                        "histogram)"),
    "latency_p90_ms": Quantity("ms", "90th percentile latency (same histogram draw)"),
    "latency_p99_ms": Quantity("ms", "99th percentile latency (same histogram draw)"),
    "latency_log_mu": Quantity("log ms", "mean of log latency (Normal-Inverse-Gamma summary)"),
    "latency_log_sigma": Quantity("log ms", "standard deviation of log latency (NIG summary)"),
    "error_rate": Quantity("probability", "P(status >= 500), the 5xx share of a Dirichlet draw "
                                          "of the status mix"),
    "error_rate_4xx_5xx": Quantity("probability", "P(status >= 400), 4xx or 5xx (same draw)"),
    "status_p": Quantity("probability", "status-code mix (Dirichlet)", ("status",)),
    "request_rate": Quantity("req/s", "request rate (Gamma)"),
    "think_median_ms": Quantity("ms", "median think time after the endpoint (exp of the NIG "
                                      "mean of log think time)"),
    "transition_p": Quantity("probability", "next-state probabilities of row src (Dirichlet; "
                                            "dst: endpoints, then END)", ("dst",), ROW),
    "next_state_p": Quantity("probability", "probability of the row's most likely next state "
                                            "(coordinate next_state, under the posterior mean)",
                             (), ROW),
}


def arviz_generation() -> int:
    """Major version of the installed ArviZ (0: ``InferenceData``, 1: ``xarray.DataTree``)."""
    return int(version("arviz").split(".")[0])


def _dirichlet(alpha: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` Dirichlet draws of every row of ``alpha`` (..., K) → (n, ..., K)."""
    g = rng.standard_gamma(np.broadcast_to(np.maximum(alpha, 1e-12), (n,) + alpha.shape))
    return g / g.sum(-1, keepdims=True)


def _nig(nig: cj.NIG, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` joint draws ``(mu, sigma)`` of Normal-Inverse-Gamma parameters (arrays per cell)."""
    mu, kappa, alpha, beta = (np.asarray(x, dtype=float) for x in nig)
    sigma2 = beta / rng.standard_gamma(np.broadcast_to(alpha, (n,) + alpha.shape))
    return rng.normal(mu, np.sqrt(sigma2 / kappa)), np.sqrt(sigma2)


def _latency_quantiles(alpha: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Median, p90 and p99 (ms) of ``n`` histogram draws per cell: (C, B) → (n, C, 3)."""
    C, B = alpha.shape
    out = np.empty((n, C, 3))
    step = max(1, _CHUNK // (n * B))
    for lo in range(0, C, step):
        out[:, lo:lo + step] = cj.histogram_quantiles(_dirichlet(alpha[lo:lo + step], n, rng),
                                                      [0.5, 0.9, 0.99])
    return out


def _select(names, resolve, size: int) -> np.ndarray:
    """Codes of ``names`` (None: all, a name, or a list of names)."""
    if names is None:
        return np.arange(size)
    return np.array([resolve(x) for x in ([names] if isinstance(names, str) else names)],
                    dtype=np.int64)


def posterior_draws(learner: DriftLearner, endpoint=None, persona=None, *,
                    layer: str = "posterior", draws: int = 1000, chains: int = 4,
                    seed: int | None = 0):
    """Exact draws of every model of a layer for the selected cells, as an ``xarray.Dataset``.

    Parameters
    ----------
    endpoint, persona : str, list of str or None
        The cells: a name drops that dim (it stays as a scalar coordinate), a list keeps it,
        None takes all. ``endpoint=None`` also draws the START row of the transitions.
    layer : {"prior", "posterior", "applied"}
    draws, chains : int
        ``chains × draws`` independent draws in all.
    seed : int or None

    Returns
    -------
    xarray.Dataset
        The :data:`QUANTITIES` (``transition_p`` subject to :data:`MAX_TRANSITION_NUMBERS`),
        dims ``chain``, ``draw`` first, then ``endpoint``, ``persona`` (transition rows:
        ``persona``, ``src``), then the variable's own; ``units`` and ``description`` attrs.
    """
    import xarray as xr

    from driftbayes.posterior import layer_params, posterior

    snap = learner.snapshot()
    if not snap.endpoints_ or not snap.personas_:
        raise ValueError("nothing learned yet: no endpoint × persona cells to draw")
    prm = layer_params(posterior(snap, layer))  # the draws come from the posterior dataset
    E = len(snap.endpoints_)
    es = _select(endpoint, snap.resolve_endpoint, E)
    ps = _select(persona, snap.resolve_persona, len(snap.personas_))
    src = np.r_[es, E] if endpoint is None else es
    rng = np.random.default_rng(seed)
    n = chains * draws
    cell = np.ix_(es, ps)
    lat = prm["latency"]
    shape = (len(es), len(ps))

    q = _latency_quantiles(lat.alpha[cell].reshape(-1, lat.alpha.shape[-1]), n, rng)
    q = q.reshape((n,) + shape + (3,))
    log_mu, log_sigma = _nig(cj.NIG(*(np.asarray(x)[cell] for x in lat.nig)), n, rng)
    status = _dirichlet(prm["errors"].alpha[cell], n, rng)
    codes = np.asarray(snap.statuses_)
    rate = prm["frequency"]
    request_rate = rng.gamma(np.broadcast_to(rate.a[cell], (n,) + shape), 1.0 / rate.b[cell])
    think_mu, _ = _nig(cj.NIG(*(np.asarray(x)[cell] for x in prm["think_time"].nig)), n, rng)
    data = {
        "latency_median_ms": q[..., 0], "latency_p90_ms": q[..., 1],
        "latency_p99_ms": q[..., 2], "latency_log_mu": log_mu, "latency_log_sigma": log_sigma,
        "error_rate": status[..., codes >= 500].sum(-1),
        "error_rate_4xx_5xx": status[..., codes >= 400].sum(-1), "status_p": status,
        "request_rate": request_rate, "think_median_ms": np.exp(think_mu),
    }
    tp = prm["transitions"]
    top_idx, top_alpha = (x[np.ix_(ps, src)] for x in tp.top())
    if n * len(ps) * len(src) * (E + 1) <= MAX_TRANSITION_NUMBERS:
        rows = np.array([[tp.row(p, s) for s in src] for p in ps]).reshape(len(ps), len(src), -1)
        data["transition_p"] = _dirichlet(rows, n, rng)
        data["next_state_p"] = np.take_along_axis(data["transition_p"], top_idx[None, ..., None],
                                                  -1)[..., 0]
    else:  # the top state's Beta marginal
        rest = tp.totals()[np.ix_(ps, src)] - top_alpha
        data["next_state_p"] = rng.beta(
            np.broadcast_to(np.maximum(top_alpha, 1e-12), (n,) + top_alpha.shape),
            np.maximum(rest, 1e-12))

    states = np.array(snap.endpoints_ + [END], dtype=object)
    coords = {"chain": np.arange(chains), "draw": np.arange(draws),
              "endpoint": np.array(snap.endpoints_, dtype=object)[es],
              "persona": np.array(snap.personas_, dtype=object)[ps], "status": codes,
              "src": np.array(snap.endpoints_ + [START], dtype=object)[src], "dst": states,
              "next_state": (ROW, states[top_idx])}
    ds = xr.Dataset(
        {k: (("chain", "draw") + QUANTITIES[k].cell + QUANTITIES[k].dims,
             v.reshape((chains, draws) + v.shape[1:]),
             {"units": QUANTITIES[k].units, "description": QUANTITIES[k].meaning})
         for k, v in data.items()},
        coords=coords,
        attrs={"layer": layer, "inference_library": "driftbayes (conjugate, exact draws)",
               "driftbayes_seed": "" if seed is None else int(seed)})
    if isinstance(endpoint, str):
        ds = ds.isel(endpoint=0, src=0)
    if isinstance(persona, str):
        ds = ds.isel(persona=0)
    return ds


def to_datatree(learner: DriftLearner, endpoint=None, persona=None, *,
                layer: str = "posterior", draws: int = 1000, chains: int = 4,
                seed: int | None = 0):
    """Posterior draws (:func:`posterior_draws`) as an ``xarray.DataTree`` with a ``posterior``
    group: ArviZ 1.x's container (``az.summary(dt, ci_prob=0.9)``, ``az.hdi``,
    ``az.plot_dist``). Under ArviZ 0.x, ``az.from_datatree(dt)`` gives ``InferenceData``."""
    import xarray as xr

    ds = posterior_draws(learner, endpoint, persona, layer=layer, draws=draws, chains=chains,
                         seed=seed)
    return xr.DataTree.from_dict({"posterior": ds})


def to_inference_data(learner: DriftLearner, endpoint=None, persona=None, *,
                      layer: str = "posterior", draws: int = 1000, chains: int = 4,
                      seed: int | None = 0):
    """Posterior draws (:func:`posterior_draws`) in the installed ArviZ's container: an
    ``InferenceData`` under ArviZ 0.x (``az.summary(idata, hdi_prob=0.9)``,
    ``az.plot_posterior``), the :func:`to_datatree` ``DataTree`` under ArviZ 1.x (where
    ``InferenceData`` became ``xarray.DataTree``)."""
    if arviz_generation() >= 1:
        return to_datatree(learner, endpoint, persona, layer=layer, draws=draws, chains=chains,
                           seed=seed)
    import arviz as az

    ds = posterior_draws(learner, endpoint, persona, layer=layer, draws=draws, chains=chains,
                         seed=seed)
    return az.InferenceData(posterior=ds)


__all__ = ["MAX_TRANSITION_NUMBERS", "QUANTITIES", "Quantity", "arviz_generation",
           "posterior_draws", "to_datatree", "to_inference_data"]
