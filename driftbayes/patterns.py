"""Learned patterns as records: one row per endpoint × persona × kind, intervals as data."""

from __future__ import annotations

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.gating import error_split
from driftbayes.kinds import REGISTRY
from driftbayes.learner import END, START, DriftLearner, split_endpoint

#: Kinds whose rows carry more than the key quantity (written out below); any other
#: registered kind gets a row per cell with data: its key quantity and interval.
BUILT_IN = ("latency", "errors", "think_time", "frequency", "transitions")


def patterns(learner: DriftLearner, layer: str = "applied") -> list[dict]:
    """Every learned pattern with its estimate, credible interval, n_eff, confidence and gate.

    ``estimate`` and ``interval`` describe the chosen ``layer`` (``applied``, ``posterior`` or
    ``prior``); ``n_eff`` and ``confidence`` are the posterior's (what the gate reads) and
    ``applied`` says whether the gate is open. Key quantities: median latency (ms) for
    ``latency``, P(status ≥ 500) for ``errors``, the most likely next endpoint's probability for
    ``transitions`` (probabilities are posterior means, i.e. what the mock serves), median
    think time (ms) for ``think_time``, request rate (req/s) for
    ``frequency``; a registered extra kind's own key quantity (``unit`` says which).
    """
    snap = learner.snapshot()
    if not snap.endpoints_:
        return []
    pooled = snap.pooled_evidence()
    report = snap.gate_report()
    gate = snap.gate_  # read once: each read brings every cell up to date
    prm = snap.layer(layer)
    mass = float(snap.config.credible_mass)
    lo_q, hi_q = cj.tail_probs(mass)
    own = snap.evidence_

    statuses = snap.statuses_
    key = {name: kind.key(prm[name], statuses, mass) for name, kind in REGISTRY.items()}
    lat_pred = cj.histogram_quantiles(cj.dirichlet_mean(prm.lat_alpha), [0.9, 0.99])
    mu, kappa, alpha, beta = prm.lat_nig
    a4, rest4 = error_split(prm.status_alpha, snap.statuses_, 400)
    e4 = (a4 / (a4 + rest4), *cj.beta_interval(a4, rest4, mass=mass))
    status_p = cj.dirichlet_mean(prm.status_alpha)
    # rate by UTC hour of day: the prior spread evenly over the 24 hours, plus that hour's data
    ev = {"prior": None, "posterior": pooled, "applied": snap.applied_}[layer]
    a0, b0 = (prm.rate_a - (0 if ev is None else ev["freq_count"].sum(-1)),
              prm.rate_b - (0 if ev is None else ev["freq_exposure"].sum(-1)))
    counts = 0 if ev is None else ev["freq_count"]
    expo = 0 if ev is None else ev["freq_exposure"]
    hourly = (a0[..., None] / 24 + counts) / (b0[..., None] / 24 + expo)

    rows: list[dict] = []
    names = snap.endpoints_ + [START]
    dst_names = snap.endpoints_ + [END]

    def row(ei, pi, kind, estimate, lower, upper, **extra):
        method, tmpl = split_endpoint(names[ei]) if ei < len(snap.endpoints_) else ("", START)
        gate_idx = (pi, ei) if kind == "transitions" else (ei, pi)
        rows.append({
            "endpoint": tmpl,
            "method": method,
            "persona": snap.personas_[pi],
            "kind": kind,
            "layer": layer,
            "n_eff": float(report["n_eff"][kind][gate_idx]),
            "confidence": float(report["confidence"][kind][gate_idx]),
            "applied": bool(gate[kind][gate_idx]),
            "enabled": bool(report["enabled"][kind][gate_idx]),
            "estimate": float(estimate),
            "interval": {"lower": float(lower), "upper": float(upper), "mass": mass},
            "unit": REGISTRY[kind].unit,
            **extra,
        })

    E, P = len(snap.endpoints_), len(snap.personas_)
    mu, alpha, beta = prm.lat_nig.mu, prm.lat_nig.alpha, prm.lat_nig.beta
    extra = {name: REGISTRY[name].count(own) > 0 for name in REGISTRY if name not in BUILT_IN}

    def at(name, ei, pi):
        return (x[ei, pi] for x in key[name])

    # a kind is listed for a cell once that cell has had data for it (faded evidence included)
    seen = own["freq_count"].sum(-1) > 0
    for ei in range(E):
        for pi in range(P):
            if not seen[ei, pi]:
                continue
            if own["lat_n"][ei, pi] > 0:
                row(ei, pi, "latency", *at("latency", ei, pi),
                    p90_ms=float(lat_pred[ei, pi, 0]), p99_ms=float(lat_pred[ei, pi, 1]),
                    lognormal={"median_ms": float(np.exp(mu[ei, pi])),
                               "sigma": float(np.sqrt(beta[ei, pi]
                                                      / max(alpha[ei, pi] - 1, 1e-9)))})
            if own["status_count"][ei, pi].sum() > 0:
                row(ei, pi, "errors", *at("errors", ei, pi),
                    p_4xx={"estimate": float(e4[0][ei, pi]), "lower": float(e4[1][ei, pi]),
                           "upper": float(e4[2][ei, pi])},
                    status_mix={str(c): round(float(status_p[ei, pi, k]), 6)
                                for k, c in enumerate(statuses)
                                if status_p[ei, pi, k] > 1e-6})
            if own["think_n"][ei, pi] > 0:
                row(ei, pi, "think_time", *at("think_time", ei, pi))
            row(ei, pi, "frequency", *at("frequency", ei, pi),
                hourly_rate=[round(float(x), 6) for x in hourly[ei, pi]])
            for name, has in extra.items():
                if has[ei, pi]:
                    row(ei, pi, name, *at(name, ei, pi))
    trans = prm.transitions
    top = trans.top()[0]
    for pi, si in zip(*np.nonzero(own["trans_count"].row_sums() > 0)):
        row(si, pi, "transitions", *(x[pi, si] for x in key["transitions"]),
            next=dst_names[top[pi, si]],
            top_next={dst_names[j]: round(p, 6) for j, p in trans.top_next(pi, si, 5)})
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

