"""REFERENCE (tests only): ``patterns`` as it was before transitions became sparse, reading
the dense reference learner. One deliberate change: destinations of equal probability are
listed in index order (``kind="stable"``); numpy's default introsort left their order
arbitrary; and the prior layer's ``hourly_rate`` lists 24 equal hours (it was one number, the
broadcast of an hourless prior); and rows of the kinds with online changepoint detection carry
``change_p`` (issue 15). Do not change otherwise.

Learned patterns as records: one row per endpoint × persona × kind, intervals as data."""

from __future__ import annotations

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.gating import error_split
from tests.reference.window_learner import END, START, DriftLearner, split_endpoint

UNITS = {
    "latency": "ms",
    "errors": "probability",
    "transitions": "probability",
    "think_time": "ms",
    "frequency": "req/s",
}


def patterns(learner: DriftLearner, layer: str = "applied") -> list[dict]:
    """Every learned pattern with its estimate, credible interval, n_eff, confidence and gate.

    ``estimate`` and ``interval`` describe the chosen ``layer`` (``applied``, ``posterior`` or
    ``prior``); ``n_eff`` and ``confidence`` are the posterior's (what the gate reads) and
    ``applied`` says whether the gate is open. Key quantities: median latency (ms) for
    ``latency``, P(status ≥ 500) for ``errors``, the most likely next endpoint's probability for
    ``transitions`` (probabilities are posterior means, i.e. what the mock serves), median
    think time (ms) for ``think_time``, request rate (req/s) for
    ``frequency``.
    """
    snap = learner.snapshot()
    if not snap.endpoints_:
        return []
    pooled = snap.pooled_evidence()
    report = snap.gate_report()
    prm = snap.layer(layer)
    mass = float(snap.config.credible_mass)
    lo_q, hi_q = cj.tail_probs(mass)
    own = snap.evidence_

    lat_q = cj.dirichlet_median_quantiles(prm.lat_alpha, [lo_q, 0.5, hi_q])
    lat_pred = cj.histogram_quantiles(cj.dirichlet_mean(prm.lat_alpha), [0.9, 0.99])
    mu, kappa, alpha, beta = prm.lat_nig
    a5, rest5 = error_split(prm.status_alpha, snap.statuses_, 500)
    e5 = (a5 / (a5 + rest5), *cj.beta_interval(a5, rest5, mass=mass))
    a4, rest4 = error_split(prm.status_alpha, snap.statuses_, 400)
    e4 = (a4 / (a4 + rest4), *cj.beta_interval(a4, rest4, mass=mass))
    status_p = cj.dirichlet_mean(prm.status_alpha)
    tmu, tk, ta, tb = prm.think_nig
    t_lo, t_hi = cj.nig_mean_interval(mu=tmu, kappa=tk, alpha=ta, beta=tb, mass=mass)
    r_lo, r_hi = cj.gamma_interval(prm.rate_a, prm.rate_b, mass=mass)
    trans_p = cj.dirichlet_mean(prm.trans_alpha)
    # rate by UTC hour of day: the prior spread evenly over the 24 hours, plus that hour's data
    ev = {"prior": None, "posterior": pooled, "applied": snap.applied_}[layer]
    a0, b0 = (prm.rate_a - (0 if ev is None else ev["freq_count"].sum(-1)),
              prm.rate_b - (0 if ev is None else ev["freq_exposure"].sum(-1)))
    counts = 0 if ev is None else ev["freq_count"]
    expo = 0 if ev is None else ev["freq_exposure"]
    hourly = (a0[..., None] / 24 + counts) / (b0[..., None] / 24 + expo)
    hourly = np.broadcast_to(hourly, a0.shape + (24,))

    rows: list[dict] = []
    names = snap.endpoints_ + [START]
    change = {k: snap.runs.change_p(k, snap.window_ - 1, float(snap.config.changepoint_hazard))
              for k in snap.runs.kinds}
    dst_names = snap.endpoints_ + [END]

    def row(ei, pi, kind, estimate, lower, upper, **extra):
        method, tmpl = split_endpoint(names[ei]) if ei < len(snap.endpoints_) else ("", START)
        gate_idx = (pi, ei) if kind == "transitions" else (ei, pi)
        if kind in change:  # online changepoint detection (issue 15)
            extra = {"change_p": float(change[kind][ei, pi]), **extra}
        rows.append({
            "endpoint": tmpl,
            "method": method,
            "persona": snap.personas_[pi],
            "kind": kind,
            "layer": layer,
            "n_eff": float(report["n_eff"][kind][gate_idx]),
            "confidence": float(report["confidence"][kind][gate_idx]),
            "applied": bool(snap.gate_[kind][gate_idx]),
            "enabled": bool(report["enabled"][kind][gate_idx]),
            "estimate": float(estimate),
            "interval": {"lower": float(lower), "upper": float(upper), "mass": mass},
            "unit": UNITS[kind],
            **extra,
        })

    E, P = len(snap.endpoints_), len(snap.personas_)
    # a kind is listed for a cell once that cell has had data for it (faded evidence included)
    seen = own["freq_count"].sum(-1) > 0
    for ei in range(E):
        for pi in range(P):
            if not seen[ei, pi]:
                continue
            if own["lat_n"][ei, pi] > 0:
                row(ei, pi, "latency", *lat_q[ei, pi, [1, 0, 2]],
                    p90_ms=float(lat_pred[ei, pi, 0]), p99_ms=float(lat_pred[ei, pi, 1]),
                    lognormal={"median_ms": float(np.exp(mu[ei, pi])),
                               "sigma": float(np.sqrt(beta[ei, pi]
                                                      / max(alpha[ei, pi] - 1, 1e-9)))})
            if own["status_count"][ei, pi].sum() > 0:
                row(ei, pi, "errors", *(x[ei, pi] for x in e5),
                    p_4xx={"estimate": float(e4[0][ei, pi]), "lower": float(e4[1][ei, pi]),
                           "upper": float(e4[2][ei, pi])},
                    status_mix={str(c): round(float(status_p[ei, pi, k]), 6)
                                for k, c in enumerate(snap.statuses_)
                                if status_p[ei, pi, k] > 1e-6})
            if own["think_n"][ei, pi] > 0:
                row(ei, pi, "think_time", np.exp(tmu[ei, pi]), np.exp(t_lo[ei, pi]),
                    np.exp(t_hi[ei, pi]))
            row(ei, pi, "frequency", prm.rate_a[ei, pi] / prm.rate_b[ei, pi],
                r_lo[ei, pi], r_hi[ei, pi],
                hourly_rate=[round(float(x), 6) for x in hourly[ei, pi]])
    trans_own = own["trans_count"].sum(-1)
    for pi in range(P):
        for si in range(E + 1):
            if trans_own[pi, si] <= 0:
                continue
            top = int(np.argmax(prm.trans_alpha[pi, si]))
            a = prm.trans_alpha[pi, si, top]
            lo, hi = cj.beta_interval(a, prm.trans_alpha[pi, si].sum() - a, mass=mass)
            order = np.argsort(-trans_p[pi, si], kind="stable")[:5]
            row(si, pi, "transitions", trans_p[pi, si, top], lo, hi,
                next=dst_names[top],
                top_next={dst_names[j]: round(float(trans_p[pi, si, j]), 6) for j in order})
    return rows


def patterns_frame(learner: DriftLearner, layer: str = "applied"):
    """:func:`patterns` as a pandas DataFrame with flat interval columns."""
    import pandas as pd

    recs = patterns(learner, layer)
    df = pd.DataFrame(recs)
    if len(df):
        df["lower"] = [r["interval"]["lower"] for r in recs]
        df["upper"] = [r["interval"]["upper"] for r in recs]
    return df

