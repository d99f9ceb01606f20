"""The gate: how sure the posterior is of each kind's key quantity, and whether it is applied.

Confidence is defined here and nowhere else: the contraction ``1 − width(posterior CI) /
width(prior CI)`` of the key quantity's credible interval (``credible_mass``), measured on its
variance-stabilising scale — log for the median latency and think time, arcsin √p for P(5xx)
and the most likely next state, √ for the request rate. The gate of a cell is open when learning
is enabled for it, ``n_eff ≥ min_samples`` and ``confidence ≥ confidence_threshold``.
"""

from __future__ import annotations

import math

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.kinds import REGISTRY
from driftbayes.kinds.errors import error_split
from driftbayes.kinds.frequency import rate_width as frequency_width
from driftbayes.kinds.transitions import component_width
from driftbayes.pooling import kind_count
from driftbayes.stats import KINDS, Stats

__all__ = ["component_width", "error_split", "frequency_width", "gate_report", "key_width"]


def key_width(kind: str, prm, statuses: list[int], mass: float) -> np.ndarray:
    """Width of the credible interval of a kind's key quantity (``prm``: a ``CellParams``)."""
    return REGISTRY[kind].width(prm[kind], statuses, mass)


def gate_report(pooled: Stats, post, *, prior_widths: dict, ends, rows, latency_quantiles,
                enabled: dict, prior_rate, n_endpoints: int, statuses: list[int],
                min_samples: float, threshold: float, mass: float) -> dict:
    """``n_eff``, ``confidence`` and ``gate`` per kind for the cells of ``pooled``.

    ``post`` holds their posterior parameters, ``ends`` / ``rows`` index the per-endpoint and
    per-source-row prior widths, ``prior_rate`` is the synthetic rate per cell (frequency's
    ``n_eff`` is the number of requests it predicts for the exposure seen, so an endpoint that
    stays quiet is learned to be quiet).
    """
    conf, n_eff = {}, {}
    lat_q = latency_quantiles
    for kind in KINDS:
        n_eff[kind] = kind_count(pooled, kind)
        if kind == "frequency":
            n_eff[kind] = pooled["freq_exposure"].sum(-1) * prior_rate
        if kind == "latency":
            w_post = np.log(lat_q[..., 2] / lat_q[..., 0])
            w_prior = prior_widths[kind][ends]
        elif kind == "transitions":  # the row's most likely next state
            top, top_alpha = post["transitions"].top()
            w_post = component_width(top_alpha, post["transitions"].totals(), mass)
            to_end, to_endpoint = prior_widths[kind][rows, 1], prior_widths[kind][rows, 0]
            w_prior = np.where(top == n_endpoints, to_end, to_endpoint)
        else:
            w_post, w_prior = key_width(kind, post, statuses, mass), prior_widths[kind][ends]
        conf[kind] = cj.contraction(w_post, w_prior)
    gate = {k: enabled[k] & (n_eff[k] >= min_samples) & (conf[k] >= threshold) for k in KINDS}
    return {"gate": gate, "confidence": conf, "n_eff": n_eff, "enabled": enabled,
            "posterior": post, "latency_quantiles": lat_q}


def confidence_ceiling(n_eff: float, prior_strength: float, fade: float = 0.0) -> float:
    """Highest confidence reachable with ``n_eff`` effective samples against a prior worth
    ``prior_strength``: every key quantity's interval narrows as ``1/√(k' + n)`` once data
    dominates, where ``k'`` is what is left of the prior (``k`` itself, or its faded weight
    :func:`~driftbayes.conjugate.prior_weight` · ``k`` under ``prior_fade``), so the contraction
    tends to ``1 − √(k / (k' + n))``."""
    if math.isinf(n_eff):
        return 1.0
    kept = prior_strength * float(cj.prior_weight(n_eff, strength=prior_strength, fade=fade))
    return 1.0 - math.sqrt(prior_strength / (kept + n_eff))


def closed_gates(sizes) -> dict[str, np.ndarray]:
    """Every gate closed: per kind, one flag per cell of its own dims (endpoint × persona;
    transitions per persona × source row)."""
    return {k: np.zeros(tuple(sizes.dim(d) for d in REGISTRY[k].cell_dims), bool) for k in KINDS}


def gates_to_dataset(gate: dict[str, np.ndarray]):
    """The gates as one ``gate_<kind>`` variable per kind, with that kind's own dims."""
    import xarray as xr

    return xr.Dataset({f"gate_{k}": (REGISTRY[k].cell_dims, np.asarray(g, dtype=np.int8))
                       for k, g in gate.items()})


def gates_from_dataset(ds, sizes) -> dict[str, np.ndarray]:
    """Inverse of :func:`gates_to_dataset`. A kind registered after the file was written
    (neither its gate nor its statistics are there) starts closed; a gate missing beside its
    kind's statistics is a damaged file (``KeyError``)."""
    gates = closed_gates(sizes)
    for k in KINDS:
        if f"gate_{k}" in ds:
            gates[k] = ds[f"gate_{k}"].values.astype(bool)
        elif any(name in ds for name in REGISTRY[k].stats):
            raise KeyError(f"No variable named 'gate_{k}'")
    return gates
