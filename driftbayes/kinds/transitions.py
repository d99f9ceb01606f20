"""Transitions: a first-order Markov chain over endpoints with START and END, one Dirichlet row
per persona × source state; key quantity the probability of the row's most likely next state,
on the arcsin √p scale."""

from __future__ import annotations

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.kinds.base import Kind


def component_width(alpha: np.ndarray, index: np.ndarray, mass: float) -> np.ndarray:
    """Width of the Beta marginal interval of one Dirichlet component per row."""
    a = np.take_along_axis(alpha, index, -1)[..., 0]
    return cj.beta_width_stabilised(a, alpha.sum(-1) - a, mass=mass)


class Transitions(Kind):
    def count(self, stats):
        return stats["trans_count"].sum(-1)

    def width(self, prm, statuses, mass):
        top = np.argmax(prm.trans_alpha, axis=-1)[..., None]
        return component_width(prm.trans_alpha, top, mass)

    def borrow_terms(self, ev, statuses, split):
        # the largest difference between the own and the others' next-state probabilities
        c, c_o = split(ev["trans_count"])
        n, n_o = c.sum(-1), c_o.sum(-1)
        prob, prob_o = c / n[..., None], c_o / n_o[..., None]
        j = np.nan_to_num(np.abs(prob - prob_o), nan=0.0).argmax(-1)[..., None]
        p_j = np.take_along_axis(np.clip((c + c_o) / (n + n_o)[..., None], 1e-3, 1 - 1e-3),
                                 j, -1)[..., 0]
        d = np.take_along_axis(np.abs(prob - prob_o), j, -1)[..., 0]
        return d, np.sqrt(p_j * (1 - p_j) / n), n


KIND = Transitions("transitions", {"trans_count": ("persona", "src", "dst")}, behavioral=True)
