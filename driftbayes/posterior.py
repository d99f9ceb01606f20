"""The posterior of the whole state as one labelled ``xarray.Dataset`` with intervals as data
(:func:`posterior`); its exact draws for ArviZ are :mod:`driftbayes.draws`."""

from __future__ import annotations

import numpy as np

from driftbayes.learner import DriftLearner


def posterior(learner: DriftLearner, layer: str = "posterior"):
    """Every kind's key quantity for every cell of a layer, with its credible interval as data.

    One variable per kind, named by its quantity (``latency_median_ms``, ``error_rate``,
    ``request_rate``, ``think_median_ms``, ``next_state_p`` — the probability of a row's most
    likely next state — and any registered kind's), on that kind's cell dims (``endpoint``,
    ``persona``; transitions ``persona``, ``src``); beside it ``<quantity>_ci`` with a
    ``ci_bound`` dim (``lower``, ``upper``), and ``<kind>_n_eff``, ``<kind>_confidence``,
    ``<kind>_gate`` (what the gate reads, from the posterior, and whether it is open). Attrs:
    ``ci_prob`` (``credible_mass``), ``ci_kind`` (``eti``: equal-tailed), ``layer``, provenance.
    The numbers are those ``driftbayes patterns`` prints.
    """
    import xarray as xr

    from driftbayes.kinds import REGISTRY
    from driftbayes.learner import LAYERS, START

    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)}")
    snap = learner.snapshot()
    prm = snap.layer(layer)
    report = snap.gate_report()
    gate = snap.gate_
    mass = float(snap.config.credible_mass)
    data = {}
    for name, kind in REGISTRY.items():
        q = kind.quantity or name
        dims = kind.cell_dims
        est, lo, hi = (np.asarray(x, dtype=float) for x in kind.key(prm[name], snap.statuses_,
                                                                     mass))
        data[q] = (dims, est, {"units": kind.unit, "kind": name})
        data[f"{q}_ci"] = (dims + ("ci_bound",), np.stack([lo, hi], axis=-1),
                           {"units": kind.unit, "kind": name})
        data[f"{name}_n_eff"] = (dims, np.asarray(report["n_eff"][name], dtype=float))
        data[f"{name}_confidence"] = (dims, np.asarray(report["confidence"][name], dtype=float))
        data[f"{name}_gate"] = (dims, np.asarray(gate[name], dtype=bool))
    coords = {"endpoint": np.array(snap.endpoints_, dtype=object),
              "persona": np.array(snap.personas_, dtype=object),
              "src": np.array(snap.endpoints_ + [START], dtype=object),
              "ci_bound": ["lower", "upper"]}
    from driftbayes.export.model import provenance

    return xr.Dataset(data, coords=coords, attrs={
        "ci_prob": mass, "ci_kind": "eti", **{k: str(v) for k, v in
                                            provenance(snap, layer).items()}})
