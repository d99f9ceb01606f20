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

from driftbayes.kinds import REGISTRY
from driftbayes.kinds.base import split_by
from driftbayes.stats import KIND_STATS, KINDS, Stats


def pool_personas(ev: Stats, *, strength: float, adaptation: bool, statuses: list[int],
                  kinds: tuple[str, ...] = KINDS) -> Stats:
    """Evidence behind each persona cell's posterior (kinds absent from ``ev`` are skipped)."""
    out = ev.copy()
    for kind in kinds:
        names = KIND_STATS[kind]
        if not REGISTRY[kind].pooled or names[0] not in ev.arrays:
            continue
        if not any(ev[name].any() for name in names):
            continue  # no evidence: pooled is zero too
        axis = REGISTRY[kind].persona_axis
        own = kind_count(ev, kind)
        others = own.sum(axis=axis, keepdims=True) - own
        if adaptation and not (others > 0).any():
            continue  # nobody to borrow from: each persona keeps its own evidence
        with np.errstate(divide="ignore", invalid="ignore"):
            borrow = np.minimum(np.maximum(strength - own, 0.0),
                                consistent_borrowing(ev, kind, axis, statuses))
            w = np.where(others > 0, np.minimum(1.0, borrow / others), 0.0)
        kd = REGISTRY[kind]
        for name in names:
            out[name] = kd.blend(ev[name], name, w) if adaptation else kd.share(ev[name], name)
    return out


def kind_count(stats: Stats, kind: str) -> np.ndarray:
    """Effective (decay-weighted) sample count of a kind, per cell."""
    return REGISTRY[kind].count(stats)


def consistent_borrowing(ev: Stats, kind: str, axis: int, statuses: list[int]) -> np.ndarray:
    """Most pseudo-observations a persona cell may borrow from its endpoint's other personas
    without moving its estimate by more than one of its own standard errors.

    The kind gives ``(d, se, own)``: the distance between the cell's estimate of its key
    quantity and the other personas', its own standard error and sample count (see each
    kind's ``borrow_terms``). Borrowing ``k`` pseudo-observations moves the estimate by
    ``k / (own + k) · |d|``; that stays within ``se`` for ``k ≤ own · se / (|d| − se)``.
    Unlimited (inf) where ``|d| ≤ se`` or the cell has no data.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        d, se, own = REGISTRY[kind].borrow_terms(ev, statuses, split_by(axis))
        k = own * se / (d - se)
    return np.where((own > 0) & np.isfinite(d) & (d > se), k, np.inf)
