"""The applied layer's controller: what the mock serves follows the posterior while a kind's
gate is open and fades toward the prior while it is closed.

Per closed window, for every statistic ``x`` of a kind (held relative to the prior):

* gate open: ``applied ← applied + s·(posterior − applied)`` (``s``: ``sensitivity``);
* gate closed: ``applied ← (1 − λ)·applied`` (``λ``: ``decay``).

Over ``k`` silent windows the learner advances a cell in closed form with :func:`fade`
(closed gate: ``(1 − λ)^k``) or :func:`follow` (open gate without decay, the posterior then
constant: ``posterior + (1 − s)^k·(applied − posterior)``). The request rate's exposure grows in
silence; its closed form (the clock's ``H`` series) lives in :mod:`driftbayes.windows`.
"""

from __future__ import annotations

import numpy as np


def step(kind, gate: np.ndarray, name: str, applied, posterior, *, sensitivity: float,
         decay: float):
    """One window of the controller for statistic ``name`` of ``kind`` (per-cell ``gate``)."""
    return kind.where(gate, name, applied + (posterior - applied) * sensitivity,
                      applied * (1.0 - decay))


def fade(k, decay: float):
    """Factor of ``k`` windows with the gate closed: ``(1 − λ)^k``."""
    return (1.0 - decay) ** np.asarray(k, dtype=float)


def follow(applied, posterior, factor):
    """``k`` windows with the gate open and a constant posterior: ``factor = (1 − s)^k`` of the
    distance to the posterior is left."""
    return posterior + factor * (applied - posterior)
