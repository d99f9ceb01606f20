"""Persona pooling: a persona cell with little data borrows its endpoint's other personas'.

A persona cell with fewer than ``pooling_strength`` (decayed) observations borrows the difference
from its endpoint's other personas (their evidence down-weighted to that many
pseudo-observations), but never more than its own data can vouch for: at most
``own · se / (|d| − se)`` when its estimate is ``d`` away from theirs with standard error ``se``.
Without ``persona_adaptation`` every persona shares the endpoint's all-persona evidence.
Request frequency is never pooled.
"""

from __future__ import annotations

import numpy as np

from driftbayes.stats import KIND_STATS, KINDS, Stats, broadcast_gate


def pool_personas(ev: Stats, *, strength: float, adaptation: bool, statuses: list[int],
                  kinds: tuple[str, ...] = KINDS) -> Stats:
    """Evidence behind each persona cell's posterior (kinds absent from ``ev`` are skipped)."""
    out = ev.copy()
    for kind in kinds:
        names = KIND_STATS[kind]
        if kind == "frequency" or names[0] not in ev.arrays:
            continue
        if not any(ev[name].any() for name in names):
            continue  # no evidence: pooled is zero too
        axis = 0 if kind == "transitions" else 1
        own = kind_count(ev, kind)
        others = own.sum(axis=axis, keepdims=True) - own
        if adaptation and not (others > 0).any():
            continue  # nobody to borrow from: each persona keeps its own evidence
        with np.errstate(divide="ignore", invalid="ignore"):
            borrow = np.minimum(np.maximum(strength - own, 0.0),
                                consistent_borrowing(ev, kind, axis, statuses))
            w = np.where(others > 0, np.minimum(1.0, borrow / others), 0.0)
        for name in names:
            total = ev[name].sum(axis=axis, keepdims=True)
            if adaptation:
                out[name] = ev[name] + broadcast_gate(w, name) * (total - ev[name])
            else:
                out[name] = np.broadcast_to(total, ev[name].shape).copy()
    return out


def kind_count(stats: Stats, kind: str) -> np.ndarray:
    """Effective (decay-weighted) sample count of a kind, per cell."""
    if kind == "latency":
        return stats["lat_n"]
    if kind == "errors":
        return stats["status_count"].sum(-1)
    if kind == "frequency":
        return stats["freq_count"].sum(-1)
    if kind == "think_time":
        return stats["think_n"]
    return stats["trans_count"].sum(-1)


def consistent_borrowing(ev: Stats, kind: str, axis: int, statuses: list[int]) -> np.ndarray:
    """Most pseudo-observations a persona cell may borrow from its endpoint's other personas
    without moving its estimate by more than one of its own standard errors.

    Each kind's key quantity: mean log latency / log think time (standard error from the
    cell's own spread), P(5xx), and for transitions the largest difference between the own
    and the others' next-state probabilities. Borrowing ``k`` pseudo-observations moves the
    estimate by ``k / (own + k) · |d|``; that stays within ``se`` for
    ``k ≤ own · se / (|d| − se)``. Unlimited (inf) where ``|d| ≤ se`` or the cell has no data.
    """
    def split(x):
        total = x.sum(axis=axis, keepdims=True)
        return x, total - x

    with np.errstate(divide="ignore", invalid="ignore"):
        if kind in ("latency", "think_time"):
            pre = "lat" if kind == "latency" else "think"
            (n, n_o), (sx, sx_o), (sxx, sxx_o) = (split(ev[f"{pre}_{k}"])
                                                  for k in ("n", "sx", "sxx"))
            mean, mean_o = sx / n, sx_o / n_o
            var = np.maximum(sxx / n - mean**2, 0.0)
            pooled_var = np.maximum((sxx + sxx_o) / (n + n_o) - ((sx + sx_o) / (n + n_o))**2, 0.0)
            # a cell with one or two samples has no spread of its own: use the endpoint's
            var = np.where(n >= 3, var, pooled_var)
            d, se, own = np.abs(mean - mean_o), np.sqrt(var / n), n
        elif kind == "errors":
            err = ev["status_count"][..., np.asarray(statuses) >= 500].sum(-1)
            (e5, e5_o), (n, n_o) = split(err), split(ev["status_count"].sum(-1))
            p, p_o = e5 / n, e5_o / n_o
            p_all = np.clip((e5 + e5_o) / (n + n_o), 1e-3, 1 - 1e-3)
            d, se, own = np.abs(p - p_o), np.sqrt(p_all * (1 - p_all) / n), n
        else:  # transitions (P, src, dst), personas on axis 0
            c, c_o = split(ev["trans_count"])
            n, n_o = c.sum(-1), c_o.sum(-1)
            prob, prob_o = c / n[..., None], c_o / n_o[..., None]
            j = np.nan_to_num(np.abs(prob - prob_o), nan=0.0).argmax(-1)[..., None]
            p_j = np.take_along_axis(np.clip((c + c_o) / (n + n_o)[..., None], 1e-3, 1 - 1e-3),
                                     j, -1)[..., 0]
            d = np.take_along_axis(np.abs(prob - prob_o), j, -1)[..., 0]
            se, own = np.sqrt(p_j * (1 - p_j) / n), n
        k = own * se / (d - se)
    return np.where((own > 0) & np.isfinite(d) & (d > se), k, np.inf)
