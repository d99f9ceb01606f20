"""What a pattern kind is: its sufficient statistics and the maths the learner runs on them.

A kind owns, for every cell: its statistics (names and dims: its part of the state schema), the
effective sample count ``n_eff`` behind them, the width of its key quantity's credible interval
on a variance-stabilising scale (the gate's confidence is its contraction), the distance between
a persona's estimate and its endpoint's other personas' (how much pooling may borrow), and the
changepoint test of a closing window against the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Kind:
    """One pattern kind. Subclasses implement the maths; instances are registered by name."""

    name: str
    stats: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: ``behavioral`` kinds are applied in ``mode: behavioral``, the others in ``statistical``
    behavioral: bool = False
    #: whether persona cells borrow from their endpoint's other personas
    pooled: bool = True

    @property
    def persona_axis(self) -> int:
        """Axis of the persona dim in the kind's statistics."""
        return next(iter(self.stats.values())).index("persona")

    def count(self, stats) -> np.ndarray:
        """Effective (decay-weighted) sample count per cell."""
        raise NotImplementedError

    def width(self, prm, statuses: list[int], mass: float) -> np.ndarray:
        """Width of the key quantity's credible interval (``prm``: a ``CellParams``)."""
        raise NotImplementedError

    def borrow_terms(self, ev, statuses: list[int], split):
        """``(d, se, own)``: distance of each persona's estimate from its endpoint's other
        personas', its own standard error and sample count (``split(x)`` gives own, others)."""
        raise NotImplementedError

    # -- the kind's statistics, cell-wise (dense arrays here; sparse kinds override)
    def cells(self, gate: np.ndarray, x) -> np.ndarray:
        """A per-cell array broadcast to statistic ``x``'s shape."""
        return gate.reshape(gate.shape + (1,) * (np.ndim(x) - gate.ndim))

    def blend(self, x, name: str, w: np.ndarray):
        """``x + w · (all personas' total − x)``: a persona cell borrowing share ``w``."""
        total = x.sum(axis=self.persona_axis, keepdims=True)
        return x + self.cells(w, x) * (total - x)

    def share(self, x, name: str):
        """Every persona cell holds the all-persona total."""
        return np.broadcast_to(x.sum(axis=self.persona_axis, keepdims=True), x.shape).copy()

    def where(self, gate: np.ndarray, name: str, yes, no):
        """``yes`` in the cells where ``gate`` is true, else ``no``."""
        return np.where(self.cells(gate, yes), yes, no)

    def changed(self, ev, pend, statuses: list[int], z: float):
        """Cells whose window ``pend`` contradicts their evidence ``ev``; ``None`` when the
        window cannot trigger the test (too few observations anywhere)."""
        return None


def split_by(axis: int):
    """``x → (x, sum over the other personas)`` along ``axis``."""
    def split(x):
        total = x.sum(axis=axis, keepdims=True)
        return x, total - x
    return split
