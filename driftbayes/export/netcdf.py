"""The full posterior as ArviZ ``InferenceData`` in one NetCDF file, reloadable as a state.

Groups:

- ``posterior`` (``chain`` = 1, ``draw``): draws of the layer's conjugate posteriors per
  endpoint × persona — ``latency_median_ms`` (median of a Dirichlet draw of the latency
  histogram), ``latency_p99_ms``, ``status_p`` (Dirichlet, over ``status``), ``error_rate``
  (5xx share of that draw), ``request_rate`` (Gamma, requests/s) and, for states of at most
  :data:`MAX_TRANSITION_ENDPOINTS` endpoints, ``transition_p`` (Dirichlet rows, ``persona ×
  src × dst``). ``az.summary`` / ``az.plot_posterior`` work on it directly.
- ``driftbayes_state``: the state's sufficient statistics exactly as
  :func:`driftbayes.state.to_dataset` writes them, so :func:`driftbayes.state.load_state`
  reads the file back as a learner (nothing lost).

Every group and the file carry the provenance attributes (driftbayes version, layer, config,
data span, created_at).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from driftbayes import conjugate as cj
from driftbayes.export.model import LAYERS, provenance
from driftbayes.learner import END, START, DriftLearner

STATE_GROUP = "driftbayes_state"
#: Transition draws are (P, E+1, E+1, draws): skipped above this many endpoints.
MAX_TRANSITION_ENDPOINTS = 100


def _dirichlet_draws(alpha: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """``draws`` Dirichlet draws of every row of ``alpha`` (..., K) → (draws, ..., K)."""
    g = rng.standard_gamma(np.broadcast_to(np.maximum(alpha, 1e-12), (draws,) + alpha.shape))
    return g / g.sum(-1, keepdims=True)


def posterior_dataset(learner: DriftLearner, layer: str = "applied", *, draws: int = 1000,
                      seed: int | None = 0) -> xr.Dataset:
    """The ``posterior`` group: conjugate posterior draws of a layer (see the module doc)."""
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)}")
    snap = learner.snapshot()
    rng = np.random.default_rng(seed)
    prm = snap.layer(layer)
    E, P = len(snap.endpoints_), len(snap.personas_)
    hist = _dirichlet_draws(prm.lat_alpha, draws, rng)  # (D, E, P, B)
    q = cj.histogram_quantiles(hist, np.array([0.5, 0.99]))  # (D, E, P, 2)
    status = _dirichlet_draws(prm.status_alpha, draws, rng)  # (D, E, P, S)
    codes = np.asarray(snap.statuses_)
    rate = rng.gamma(np.broadcast_to(prm.rate_a, (draws, E, P)), 1.0 / prm.rate_b)
    data = {
        "latency_median_ms": (("endpoint", "persona"), q[..., 0]),
        "latency_p99_ms": (("endpoint", "persona"), q[..., 1]),
        "status_p": (("endpoint", "persona", "status"), status),
        "error_rate": (("endpoint", "persona"), status[..., codes >= 500].sum(-1)),
        "request_rate": (("endpoint", "persona"), rate),
    }
    coords = {"chain": [0], "draw": np.arange(draws),
              "endpoint": np.array(snap.endpoints_, dtype=object),
              "persona": np.array(snap.personas_, dtype=object), "status": codes}
    if E <= MAX_TRANSITION_ENDPOINTS:
        data["transition_p"] = (("persona", "src", "dst"),
                                _dirichlet_draws(prm.transitions.dense(), draws, rng))
        coords["src"] = np.array(snap.endpoints_ + [START], dtype=object)
        coords["dst"] = np.array(snap.endpoints_ + [END], dtype=object)
    ds = xr.Dataset({k: (("chain", "draw") + dims, v[None]) for k, (dims, v) in data.items()},
                    coords=coords)
    ds["latency_median_ms"].attrs["units"] = ds["latency_p99_ms"].attrs["units"] = "ms"
    ds["request_rate"].attrs["units"] = "requests/s"
    return ds


def write_netcdf(learner: DriftLearner, out: str | Path, *, layer: str = "applied",
                 draws: int = 1000, seed: int | None = 0) -> Path:
    """Write ``posterior`` draws and the full state as one InferenceData NetCDF file."""
    import arviz as az

    from driftbayes.state import to_dataset

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    attrs = provenance(learner, layer)
    post = posterior_dataset(learner, layer, draws=draws, seed=seed)
    state = to_dataset(learner)
    for ds in (post, state):
        ds.attrs.update({k: v for k, v in attrs.items() if k not in ds.attrs})
    idata = az.InferenceData(posterior=post, **{STATE_GROUP: state})
    tmp = out.with_name(out.name + ".tmp")
    idata.to_netcdf(str(tmp), engine="h5netcdf")
    tmp.replace(out)
    return out
