"""Errors: a Dirichlet over the status codes seen; key quantity P(status ≥ 500), a Beta by
aggregation, on the arcsin √p scale."""

from __future__ import annotations

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.kinds.base import Kind


def error_split(alpha: np.ndarray, statuses: list[int], threshold: int):
    """Dirichlet mass of codes ≥ threshold and of the rest (Beta parameters by aggregation)."""
    codes = np.asarray(statuses)
    err = alpha[..., codes >= threshold].sum(-1)
    return err, alpha.sum(-1) - err


class Errors(Kind):
    def count(self, stats):
        return stats["status_count"].sum(-1)

    def width(self, prm, statuses, mass):
        a5, rest = error_split(prm.status_alpha, statuses, 500)
        return cj.beta_width_stabilised(a5, rest, mass=mass)

    def borrow_terms(self, ev, statuses, split):
        err = ev["status_count"][..., np.asarray(statuses) >= 500].sum(-1)
        (e5, e5_o), (n, n_o) = split(err), split(ev["status_count"].sum(-1))
        p, p_o = e5 / n, e5_o / n_o
        p_all = np.clip((e5 + e5_o) / (n + n_o), 1e-3, 1 - 1e-3)
        return np.abs(p - p_o), np.sqrt(p_all * (1 - p_all) / n), n

    def changed(self, ev, pend, statuses, z):
        n_w = pend["status_count"].sum(-1)
        if not (n_w >= 1).any():
            return None
        codes = np.asarray(statuses)
        return cj.proportion_changed(
            ev["status_count"][..., codes >= 500].sum(-1), ev["status_count"].sum(-1),
            pend["status_count"][..., codes >= 500].sum(-1), n_w, z=z)


KIND = Errors("errors", {"status_count": ("endpoint", "persona", "status")})
