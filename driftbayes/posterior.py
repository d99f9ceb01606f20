"""The posterior of the whole state as one labelled ``xarray.Dataset`` with intervals as data
(:func:`posterior`); its exact draws for ArviZ are :mod:`driftbayes.draws`."""

from __future__ import annotations

import numpy as np

from driftbayes.kinds.histogram import LATENCY, THINK
from driftbayes.learner import END, CellParams, DriftLearner


def posterior(learner: DriftLearner, layer: str = "posterior"):
    """The whole posterior of a layer as one labelled ``xarray.Dataset``: what every reader
    (``patterns``, ``serve``, the exports, the NetCDF draws) computes from.

    Per kind, on that kind's cell dims (``endpoint``, ``persona``; transitions ``persona``,
    ``src``):

    - the key quantity, named by the kind's ``quantity`` (``latency_median_ms``,
      ``error_rate``, ``request_rate``, ``think_median_ms``, ``next_state_p`` — the
      probability of a row's most likely next state — and any registered kind's), and
      ``<quantity>_ci`` with a ``ci_bound`` dim (``lower``, ``upper``);
    - ``<kind>_n_eff``, ``<kind>_confidence``, ``<kind>_gate``, ``<kind>_enabled`` (what the
      gate reads, from the posterior, whether it is open, whether the config learns it) and
      ``<kind>_seen`` (the cell has had data of its own, faded evidence included);
    - ``<kind>_change_p`` for the kinds with online changepoint detection (latency, errors,
      think time): the probability that the cell's regime changed within the last 31 windows
      (:meth:`~driftbayes.learner.DriftLearner.change_probability`);
    - the conjugate parameters (:meth:`~driftbayes.kinds.base.Kind.variables`):
      ``latency_bin_alpha`` (Dirichlet over ``latency_bin``) and ``latency_log_mu``,
      ``_kappa``, ``_alpha``, ``_beta`` (Normal-Inverse-Gamma on log ms); ``status_alpha``
      (Dirichlet over ``status``); ``request_rate_shape``, ``request_rate_exposure_s``
      (Gamma); ``think_bin_alpha`` (Dirichlet over ``think_bin``) and ``think_log_mu`` …
      ``think_log_beta``; ``transition_base``,
      ``transition_end`` (the prior's pseudo-counts per ``src`` row) and ``transition_count``
      on the observed pairs only (``pair``, with ``pair_src``/``pair_dst`` names and codes);
    - ``request_rate_hourly`` (``hour`` of day, UTC).

    Attrs: ``ci_prob`` (``credible_mass``), ``ci_kind`` (``eti``: equal-tailed), ``layer``
    and the provenance (version, config, data span, created_at). :func:`layer_params` turns
    the dataset back into the typed parameters, exactly.
    """
    import xarray as xr

    from driftbayes.export.model import provenance
    from driftbayes.kinds import REGISTRY
    from driftbayes.kinds.frequency import N_HOURS
    from driftbayes.learner import LAYERS, START

    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)}")
    snap = learner.snapshot()
    prm = snap.layer(layer)
    report = snap.gate_report()
    gate = snap.gate_
    own = snap.evidence_
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
        data[f"{name}_enabled"] = (dims, np.broadcast_to(report["enabled"][name], est.shape))
        data[f"{name}_seen"] = (dims, np.asarray(kind.count(own)) > 0)
        if name in snap.runs.kinds:
            data[f"{name}_change_p"] = (dims, snap.change_probability(name),
                                        {"units": "probability"})
        data.update(kind.variables(prm[name]))
    # the rate by hour of day: the prior spread evenly over the 24 hours, plus that hour's data
    ev = {"prior": None, "posterior": snap.pooled_evidence(), "applied": snap.applied_}[layer]
    rate = prm["frequency"]
    if ev is None:
        hourly = np.repeat((rate.a / rate.b)[..., None], N_HOURS, axis=-1)
    else:
        a0 = rate.a - ev["freq_count"].sum(-1)
        b0 = rate.b - ev["freq_exposure"].sum(-1)
        hourly = ((a0[..., None] / N_HOURS + ev["freq_count"])
                  / (b0[..., None] / N_HOURS + ev["freq_exposure"]))
    data["request_rate_hourly"] = (("endpoint", "persona", "hour"), hourly,
                                   {"units": "req/s"})
    src = np.array(snap.endpoints_ + [START], dtype=object)
    dst = np.array(snap.endpoints_ + [END], dtype=object)
    pair_src, pair_dst = data["pair_src_code"][1], data["pair_dst_code"][1]
    coords = {"endpoint": np.array(snap.endpoints_, dtype=object),
              "persona": np.array(snap.personas_, dtype=object),
              "status": np.asarray(snap.statuses_, dtype=np.int64),
              "src": src, "dst": dst, "ci_bound": ["lower", "upper"],
              "hour": np.arange(N_HOURS),
              **LATENCY.coords("latency_bin", "latency"), **THINK.coords("think_bin", "think"),
              "pair_src": ("pair", src[pair_src]), "pair_dst": ("pair", dst[pair_dst])}
    return xr.Dataset(data, coords=coords, attrs={
        "ci_prob": mass, "ci_kind": "eti", **{k: str(v) for k, v in
                                            provenance(snap, layer).items()}})


def layer_params(ds) -> CellParams:
    """The typed conjugate parameters of every kind (what ``snapshot().layer(...)`` gives)
    from a :func:`posterior` dataset."""
    from driftbayes.kinds import REGISTRY

    return CellParams({name: kind.from_variables(ds) for name, kind in REGISTRY.items()})
