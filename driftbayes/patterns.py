"""Learned patterns as records: one row per endpoint × persona × kind, intervals as data,
computed from the posterior dataset (:func:`driftbayes.posterior.posterior`)."""

from __future__ import annotations

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.gating import error_split
from driftbayes.kinds import REGISTRY
from driftbayes.learner import END, START, split_endpoint

#: Kinds whose rows carry more than the key quantity (written out below); any other
#: registered kind gets a row per cell with data: its key quantity and interval.
BUILT_IN = ("latency", "errors", "think_time", "frequency", "transitions")
#: Order of a cell's rows: the built-in endpoint kinds, then registered ones.
_ENDPOINT_KINDS = ("latency", "errors", "think_time", "frequency")


def patterns(source, layer: str = "applied") -> list[dict]:
    """Every learned pattern with its estimate, credible interval, n_eff, confidence and gate.

    ``source`` is a learner (its ``layer``: ``applied``, ``posterior`` or ``prior``) or a
    posterior dataset (:func:`driftbayes.posterior.posterior`, whose layer it is).
    Rows of kinds with online changepoint detection carry ``change_p``: the probability that
    the cell's regime changed within the last 31 windows.
    ``estimate`` and ``interval`` describe that layer; ``n_eff`` and ``confidence`` are the
    posterior's (what the gate reads) and ``applied`` says whether the gate is open. Key
    quantities: median latency (ms) for ``latency``, P(status ≥ 500) for ``errors``, the most
    likely next endpoint's probability for ``transitions`` (probabilities are posterior means,
    i.e. what the mock serves), median think time (ms) for ``think_time``, request rate (req/s)
    for ``frequency``; a registered extra kind's own key quantity (``unit`` says which).
    """
    from driftbayes.posterior import layer_params, posterior

    ds = source if hasattr(source, "data_vars") else posterior(source, layer)
    layer = ds.attrs["layer"]
    endpoints = [str(x) for x in ds["endpoint"].values]
    if not endpoints:
        return []
    personas = [str(x) for x in ds["persona"].values]
    mass = float(ds.attrs["ci_prob"])
    statuses = [int(x) for x in ds["status"].values]
    prm = layer_params(ds)
    split = [split_endpoint(k) for k in endpoints] + [("", START)]
    P = len(personas)

    def rows_of(kind: str, index: tuple, extra: dict) -> list[tuple[tuple, dict]]:
        """Rows of the cells ``index`` (arrays over the kind's cell dims)."""
        q = REGISTRY[kind].quantity or kind
        at = {name: ds[name].values[index].tolist() for name in
              (q, f"{kind}_n_eff", f"{kind}_confidence", f"{kind}_gate", f"{kind}_enabled")}
        ci = ds[f"{q}_ci"].values[index].tolist()
        change = (ds[f"{kind}_change_p"].values[index].tolist() if f"{kind}_change_p" in ds
                  else None)
        ends, pers = (index[1], index[0]) if kind == "transitions" else index
        out = []
        for i, (e, p) in enumerate(zip(ends.tolist(), pers.tolist())):
            method, tmpl = split[e]
            row = {"endpoint": tmpl, "method": method, "persona": personas[p], "kind": kind,
                   "layer": layer, "n_eff": at[f"{kind}_n_eff"][i],
                   "confidence": at[f"{kind}_confidence"][i],
                   "applied": bool(at[f"{kind}_gate"][i]),
                   "enabled": bool(at[f"{kind}_enabled"][i]), "estimate": at[q][i],
                   "interval": {"lower": ci[i][0], "upper": ci[i][1], "mass": mass},
                   "unit": REGISTRY[kind].unit}
            if change is not None:
                row["change_p"] = change[i]
            row.update({k: v[i] for k, v in extra.items()})
            out.append(((e, p), row))
        return out

    # a kind is listed for a cell once that cell has had data for it (faded evidence included)
    seen = ds["frequency_seen"].values
    listed = {kind: np.nonzero(seen & ds[f"{kind}_seen"].values) for kind in _ENDPOINT_KINDS}
    extra_kinds = [k for k in REGISTRY if k not in BUILT_IN]
    listed.update({kind: np.nonzero(seen & ds[f"{kind}_seen"].values) for kind in extra_kinds})
    extras = {kind: {} for kind in listed}

    ix = listed["latency"]
    lat_q = cj.histogram_quantiles(cj.dirichlet_mean(prm.lat_alpha[ix]), [0.9, 0.99])
    mu, alpha, beta = (x[ix] for x in (prm.lat_nig.mu, prm.lat_nig.alpha, prm.lat_nig.beta))
    sigma = np.sqrt(beta / np.maximum(alpha - 1, 1e-9))
    extras["latency"] = {
        "p90_ms": lat_q[:, 0].tolist(), "p99_ms": lat_q[:, 1].tolist(),
        "lognormal": [{"median_ms": m, "sigma": s}
                      for m, s in zip(np.exp(mu).tolist(), sigma.tolist())]}

    ix = listed["errors"]
    status_alpha = prm.status_alpha[ix]
    a4, rest4 = error_split(status_alpha, statuses, 400)
    e4 = np.stack([a4 / (a4 + rest4), *cj.beta_interval(a4, rest4, mass=mass)], -1).tolist()
    status_p = cj.dirichlet_mean(status_alpha)
    extras["errors"] = {
        "p_4xx": [dict(zip(("estimate", "lower", "upper"), x)) for x in e4],
        "status_mix": [{str(c): round(x, 6) for c, x in zip(statuses, ps) if x > 1e-6}
                       for ps in status_p.tolist()]}

    ix = listed["frequency"]
    extras["frequency"] = {
        "hourly_rate": [[round(x, 6) for x in hours]
                        for hours in ds["request_rate_hourly"].values[ix].tolist()]}

    cells = []
    for order, kind in enumerate(_ENDPOINT_KINDS + tuple(extra_kinds)):
        cells += [((e * P + p, order), row)
                  for (e, p), row in rows_of(kind, listed[kind], extras[kind])]
    cells.sort(key=lambda x: x[0])
    rows = [row for _, row in cells]

    trans = prm.transitions
    dst_names = endpoints + [END]
    ix = np.nonzero(ds["transitions_seen"].values)
    top = trans.top()[0][ix]
    extra = {"next": [dst_names[j] for j in top.tolist()],
             "top_next": [{dst_names[j]: round(p, 6) for j, p in trans.top_next(pi, si, 5)}
                          for pi, si in zip(*(x.tolist() for x in ix))]}
    rows += [row for _, row in rows_of("transitions", ix, extra)]
    return rows


def patterns_frame(source, layer: str = "applied"):
    """:func:`patterns` as a pandas DataFrame with flat interval columns."""
    import pandas as pd

    recs = patterns(source, layer)
    df = pd.DataFrame(recs)
    if len(df):
        df["lower"] = [r["interval"]["lower"] for r in recs]
        df["upper"] = [r["interval"]["upper"] for r in recs]
    return df
