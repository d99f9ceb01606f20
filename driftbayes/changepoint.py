"""Adaptive forgetting: a window whose data contradicts a cell's evidence forgets most of it.

A changepoint test per kind (two-sample z-test on the mean log latency or think time, binomial
tail of the 5xx count, Poisson tail of the request count) compares the closing window with the
decayed evidence; a cell whose window contradicts it beyond ``changepoint_z`` keeps
:data:`~driftbayes.conjugate.CHANGEPOINT_KEEP` of that kind's evidence before the window is added.
"""

from __future__ import annotations

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.kinds import REGISTRY
from driftbayes.stats import KIND_STATS, Stats, broadcast_gate


def forget_contradicted(ev: Stats, pend: Stats, statuses: list[int], z: float) -> int:
    """Shrink, in place, the evidence of cells whose window ``pend`` contradicts it.

    Returns how many cell × kind changes were detected.
    """
    flags = {}
    for kind in REGISTRY.values():
        changed = kind.changed(ev, pend, statuses, z)
        if changed is not None:
            flags[kind.name] = changed
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
