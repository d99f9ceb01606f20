"""The full posterior as ArviZ data in one NetCDF file, reloadable as a state.

Groups:

- ``posterior`` (``chain`` = 1, ``draw``): draws of the layer's conjugate posteriors for every
  cell (:func:`driftbayes.draws.posterior_draws`, the :data:`~driftbayes.draws.QUANTITIES`
  vocabulary: ``latency_median_ms``, ``error_rate``, ``status_p``, ``request_rate``,
  ``think_median_ms``, ``next_state_p``, …; ``transition_p``, ``persona × src × dst``, while
  it holds at most :data:`~driftbayes.draws.MAX_TRANSITION_NUMBERS` numbers).
- ``driftbayes_state``: the state's sufficient statistics exactly as
  :func:`driftbayes.state.to_dataset` writes them, so :func:`driftbayes.state.load_state`
  reads the file back as a learner (nothing lost).

The file is written as an ``xarray.DataTree`` (NetCDF groups), which both ArviZ generations
read: ``az.from_netcdf`` gives ``InferenceData`` under ArviZ 0.x and a ``DataTree`` under 1.x,
and ``az.summary`` / the plots work on it directly. Every group and the file carry the
provenance attributes (driftbayes version, layer, config, data span, created_at).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from driftbayes.draws import posterior_draws
from driftbayes.export.model import LAYERS, provenance
from driftbayes.learner import DriftLearner

STATE_GROUP = "driftbayes_state"


def posterior_dataset(learner: DriftLearner, layer: str = "applied", *, draws: int = 1000,
                      seed: int | None = 0) -> xr.Dataset:
    """The ``posterior`` group: conjugate posterior draws of a layer (see the module doc)."""
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)}")
    return posterior_draws(learner, layer=layer, draws=draws, chains=1, seed=seed)


def write_netcdf(learner: DriftLearner, out: str | Path, *, layer: str = "applied",
                 draws: int = 1000, seed: int | None = 0) -> Path:
    """Write ``posterior`` draws and the full state as one NetCDF file (atomically)."""
    from driftbayes.state import to_dataset

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    attrs = provenance(learner, layer)
    post = posterior_dataset(learner, layer, draws=draws, seed=seed)
    state = to_dataset(learner)
    for ds in (post, state):
        ds.attrs.update({k: v for k, v in attrs.items() if k not in ds.attrs})
    tree = xr.DataTree.from_dict({"/": xr.Dataset(attrs=attrs), "posterior": post,
                                  STATE_GROUP: state})
    # the draws are most of the file: compressed, as ArviZ writes them
    encoding = {"/posterior": {k: {"zlib": True} for k, v in post.data_vars.items()
                               if np.issubdtype(v.dtype, np.number)}}
    tmp = out.with_name(out.name + ".tmp")
    tree.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
    tmp.replace(out)
    return out
