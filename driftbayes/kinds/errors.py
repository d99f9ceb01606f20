"""Errors: a Dirichlet over the status codes seen; key quantity P(status ≥ 500), a Beta by
aggregation, on the arcsin √p scale."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from driftbayes import conjugate as cj
from driftbayes.kinds.base import CELL, Kind, add_bincount, cell_array


@dataclass(frozen=True)
class ErrorParams:
    """Status-code posterior per cell."""

    alpha: np.ndarray  # (E, P, S) Dirichlet over the status codes


def error_split(alpha: np.ndarray, statuses: list[int], threshold: int):
    """Dirichlet mass of codes ≥ threshold and of the rest (Beta parameters by aggregation)."""
    codes = np.asarray(statuses)
    err = alpha[..., codes >= threshold].sum(-1)
    return err, alpha.sum(-1) - err


class Errors(Kind):
    def accumulate(self, pend, events):
        ok = events.status >= 0
        if ok.any():
            add_bincount(pend, "status_count",
                         events.cell[ok] * events.sizes.status + events.status[ok])

    def prior(self, ctx):
        status = np.zeros((len(ctx.synthetic), len(ctx.statuses)))
        for i, s in enumerate(ctx.synthetic):
            status[i, ctx.status_codes[int(s.status)]] += s.prior_strength * (1 - s.error_rate)
            status[i, ctx.status_codes[int(s.error_status)]] += s.prior_strength * s.error_rate
        # codes the synthetic mock never serves keep a floor
        return ErrorParams(np.maximum(status, 0.0) + cj._ALPHA_FLOOR)

    def params(self, prior, ev, ends, weight=None):
        alpha0 = prior.alpha[ends, None, :]
        if weight is not None:
            alpha0 = alpha0 * weight[..., None]
        return ErrorParams(cj.dirichlet_categorical_posterior(alpha0=alpha0,
                                                              counts=ev["status_count"]))

    def count(self, stats):
        return stats["status_count"].sum(-1)

    def fade_count(self, stats, statuses):
        # the errors seen, not the requests: a rare event's rate is known once a few have
        # been seen, so a cell with many requests and no 5xx keeps the prior's caution
        return error_split(stats["status_count"], statuses, 500)[0]

    def key(self, prm, statuses, mass):
        a5, rest = error_split(prm.alpha, statuses, 500)
        return (a5 / (a5 + rest), *cj.beta_interval(a5, rest, mass=mass))

    def width(self, prm, statuses, mass):
        a5, rest = error_split(prm.alpha, statuses, 500)
        return cj.beta_width_stabilised(a5, rest, mass=mass)

    def predictive(self, prm, e, p, rng, statuses):
        probs = cj.dirichlet_mean(prm.alpha)[e, p]
        return np.asarray(statuses)[cj.sample_categorical(probs, rng)]

    def variables(self, prm):
        return {"status_alpha": (CELL + ("status",), prm.alpha)}

    def from_variables(self, ds):
        return ErrorParams(cell_array(ds, "status_alpha"))

    def borrow_terms(self, ev, statuses, split):
        err = ev["status_count"][..., np.asarray(statuses) >= 500].sum(-1)
        (e5, e5_o), (n, n_o) = split(err), split(ev["status_count"].sum(-1))
        p, p_o = e5 / n, e5_o / n_o
        p_all = np.clip((e5 + e5_o) / (n + n_o), 1e-3, 1 - 1e-3)
        return np.abs(p - p_o), np.sqrt(p_all * (1 - p_all) / n), n

    def log_predictive(self, prior, e, before, window, weight, statuses):
        # Beta-binomial on P(5xx), the key quantity (the Dirichlet aggregated)
        a5, rest = error_split(prior.alpha[e] * weight[..., None] + before["status_count"],
                               statuses, 500)
        k, other = error_split(window["status_count"], statuses, 500)
        return special.betaln(a5 + k, rest + other) - special.betaln(a5, rest)

    def changed(self, ev, pend, statuses, z):
        n_w = pend["status_count"].sum(-1)
        if not (n_w >= 1).any():
            return None
        codes = np.asarray(statuses)
        return cj.proportion_changed(
            ev["status_count"][..., codes >= 500].sum(-1), ev["status_count"].sum(-1),
            pend["status_count"][..., codes >= 500].sum(-1), n_w, z=z)


KIND = Errors("errors", {"status_count": ("endpoint", "persona", "status")},
              unit="probability", observable="status", quantity="error_rate",
              online_change=True)
