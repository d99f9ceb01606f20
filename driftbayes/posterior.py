"""Posteriors of one cell as ArviZ ``InferenceData`` (``az.summary`` / ``az.plot_posterior``)."""

from __future__ import annotations

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.learner import END, DriftLearner


def to_inference_data(
    learner: DriftLearner,
    endpoint: str,
    persona: str | None = None,
    *,
    layer: str = "posterior",
    draws: int = 1000,
    chains: int = 4,
    seed: int | None = 0,
):
    """Exact posterior draws of every model of one endpoint × persona cell.

    Variables (``chain``, ``draw`` first): ``latency_median_ms``, ``latency_p90_ms``,
    ``latency_p99_ms`` (Dirichlet histogram), ``latency_mu``, ``latency_sigma`` (NIG summary on
    log ms), ``p_5xx``, ``p_4xx``, ``status_prob`` (dim ``status``), ``next_prob`` (dim
    ``dst``), ``think_median_ms``, ``rate_per_s``. Draws are independent (conjugate), so ESS is
    the draw count and r-hat is 1 up to Monte-Carlo noise.
    """
    import arviz as az

    snap = learner.snapshot()
    e = snap.resolve_endpoint(endpoint)
    p = snap.resolve_persona(persona if persona is not None else snap.personas_[0])
    prm = snap.layer(layer)
    rng = np.random.default_rng(seed)
    n = draws * chains

    def shape(x):
        x = np.asarray(x)
        return x.reshape((chains, draws) + x.shape[1:])

    lat = rng.dirichlet(prm.lat_alpha[e, p], n)
    lat_q = cj.histogram_quantiles(lat, [0.5, 0.9, 0.99])
    mu, kappa, alpha, beta = (np.asarray(x)[e, p] for x in prm.lat_nig)
    sigma2 = beta / rng.gamma(alpha, 1.0, n)
    lat_mu = rng.normal(mu, np.sqrt(sigma2 / kappa))
    status = rng.dirichlet(np.maximum(prm.status_alpha[e, p], 1e-12), n)
    codes = np.asarray(snap.statuses_)
    tmu, tk, ta, tb = (np.asarray(x)[e, p] for x in prm.think_nig)
    t_sigma2 = tb / rng.gamma(ta, 1.0, n)
    think_mu = rng.normal(tmu, np.sqrt(t_sigma2 / tk))
    rate = rng.gamma(prm.rate_a[e, p], 1.0 / prm.rate_b[e, p], n)
    row = np.maximum(prm.transitions.row(p, e), 1e-12)
    nxt = rng.dirichlet(row, n)
    posterior = {
        "latency_median_ms": shape(lat_q[:, 0]),
        "latency_p90_ms": shape(lat_q[:, 1]),
        "latency_p99_ms": shape(lat_q[:, 2]),
        "latency_mu": shape(lat_mu),
        "latency_sigma": shape(np.sqrt(sigma2)),
        "p_5xx": shape(status[:, codes >= 500].sum(-1)),
        "p_4xx": shape(status[:, codes >= 400].sum(-1)),
        "status_prob": shape(status),
        "next_prob": shape(nxt),
        "think_median_ms": shape(np.exp(think_mu)),
        "rate_per_s": shape(rate),
    }
    coords = {"status": codes, "dst": snap.endpoints_ + [END]}
    dims = {"status_prob": ["status"], "next_prob": ["dst"]}
    idata = az.from_dict(posterior=posterior, coords=coords, dims=dims)
    idata.posterior.attrs.update({
        "endpoint": snap.endpoints_[e], "persona": snap.personas_[p], "layer": layer,
        "inference_library": "driftbayes (conjugate, exact draws)",
    })
    return idata


