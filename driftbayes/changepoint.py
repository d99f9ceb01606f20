"""Adaptive forgetting: a window whose data contradicts a cell's evidence forgets most of it.

A changepoint test per kind (two-sample z-test on the mean log latency or think time, binomial
tail of the 5xx count, Poisson tail of the request count) compares the closing window with the
decayed evidence; a cell whose window contradicts it beyond ``changepoint_z`` keeps
:data:`~driftbayes.conjugate.CHANGEPOINT_KEEP` of that kind's evidence before the window is added.
"""

from __future__ import annotations

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.stats import KIND_STATS, Stats, broadcast_gate


def forget_contradicted(ev: Stats, pend: Stats, statuses: list[int], z: float) -> int:
    """Shrink, in place, the evidence of cells whose window ``pend`` contradicts it.

    Returns how many cell × kind changes were detected.
    """
    statuses = np.asarray(statuses)
    flags = {"frequency": cj.rate_changed(
        ev["freq_count"].sum(-1), ev["freq_exposure"].sum(-1),
        pend["freq_count"].sum(-1), pend["freq_exposure"].sum(-1), z=z)}
    # the tests need a few window observations: skip a kind the window has too few of
    if (pend["lat_n"] >= 3).any():
        flags["latency"] = cj.mean_shift_changed(ev["lat_n"], ev["lat_sx"], ev["lat_sxx"],
                                                 pend["lat_n"], pend["lat_sx"], z=z)
    if (pend["think_n"] >= 3).any():
        flags["think_time"] = cj.mean_shift_changed(
            ev["think_n"], ev["think_sx"], ev["think_sxx"],
            pend["think_n"], pend["think_sx"], z=z)
    n_w = pend["status_count"].sum(-1)
    if (n_w >= 1).any():
        flags["errors"] = cj.proportion_changed(
            ev["status_count"][..., statuses >= 500].sum(-1), ev["status_count"].sum(-1),
            pend["status_count"][..., statuses >= 500].sum(-1), n_w, z=z)
    n = 0
    for kind, changed in flags.items():
        if not changed.any():
            continue
        n += int(changed.sum())
        for name in KIND_STATS[kind]:  # exposure too: the rate estimate stays, its weight drops
            ev[name] = np.where(broadcast_gate(changed, name), ev[name] * cj.CHANGEPOINT_KEEP,
                                ev[name])
    return n


def silence_contradicts(count, exposure, *, decay: float, interval: float, z: float):
    """Whether a window with no request would contradict a cell's rate (its evidence
    ``count`` requests over ``exposure`` seconds, before that window's decay)."""
    r = 1.0 - decay
    return cj.rate_changed(count * r, exposure * r, 0.0, interval, z=z)
