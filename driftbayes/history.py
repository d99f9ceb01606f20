"""History: what each window closed with, per cell, for drift plots (``track_history``).

One row per endpoint × persona cell with latency or error evidence or requests, per window:
the window's observed median latency and error rate, the posterior's credible interval and
median / mean, the applied value, the gate's confidence and whether it was open.
"""

from __future__ import annotations

import math

import numpy as np

from driftbayes import conjugate as cj
from driftbayes.gating import error_split
from driftbayes.pooling import kind_count
from driftbayes.stats import Stats

HISTORY_COLUMNS = (
    "t", "endpoint", "persona", "n", "observed_latency_ms", "latency_lower", "latency_median",
    "latency_upper", "latency_applied", "latency_confidence", "latency_gate",
    "observed_error_rate", "error_lower", "error_mean", "error_upper", "error_applied",
    "error_confidence", "error_gate", "latency_change_p", "error_change_p",
)


def window_rows(*, t: float, endpoints: list[str], personas: list[str], statuses: list[int],
                pend: Stats, pooled: Stats, report: dict, applied, mass: float,
                change: dict | None = None) -> list[tuple]:
    """History rows of one closed window (``t`` its end): the window's ``pend`` statistics,
    the ``pooled`` evidence and gate ``report`` it closed with, the ``applied`` parameters and
    the ``change`` probability of latency and errors (``{kind: (E, P)}``; NaN without online
    changepoint detection)."""
    post, lat_q = report["posterior"], report["latency_quantiles"]
    lat_a = cj.dirichlet_median_quantiles(applied.lat_alpha, [0.5])[..., 0]
    a5, rest = error_split(post.status_alpha, statuses, 500)
    err_lo, err_hi = cj.beta_interval(a5, rest, mass=mass)
    err_med = a5 / np.maximum(a5 + rest, 1e-300)
    b5, brest = error_split(applied.status_alpha, statuses, 500)
    err_app = b5 / np.maximum(b5 + brest, 1e-300)
    n_lat = pend["lat_n"]
    obs_lat = cj.histogram_quantiles(pend["lat_hist"] + 1e-300, [0.5])[..., 0]
    n_st = pend["status_count"].sum(-1)
    o5, _ = error_split(pend["status_count"], statuses, 500)
    n_req = pend["freq_count"].sum(-1)
    conf, gate = report["confidence"], report["gate"]
    seen = kind_count(pooled, "latency") + kind_count(pooled, "errors") + n_req > 0
    change = change or {}
    nan = np.full(n_req.shape, math.nan)
    lat_c, err_c = change.get("latency", nan), change.get("errors", nan)
    return [(
        t, endpoints[ei], personas[pi], float(n_req[ei, pi]),
        float(obs_lat[ei, pi]) if n_lat[ei, pi] > 0 else math.nan,
        *map(float, lat_q[ei, pi]), float(lat_a[ei, pi]),
        float(conf["latency"][ei, pi]), bool(gate["latency"][ei, pi]),
        float(o5[ei, pi] / n_st[ei, pi]) if n_st[ei, pi] > 0 else math.nan,
        float(err_lo[ei, pi]), float(err_med[ei, pi]), float(err_hi[ei, pi]),
        float(err_app[ei, pi]),
        float(conf["errors"][ei, pi]), bool(gate["errors"][ei, pi]),
        float(lat_c[ei, pi]), float(err_c[ei, pi]),
    ) for ei, pi in zip(*np.nonzero(seen))]


def history_frame(rows: list[tuple]):
    """History rows as a pandas DataFrame with a UTC ``time`` column."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    df["time"] = pd.to_datetime(df["t"], unit="s", utc=True)
    return df


def history_dataset(rows: list[tuple]):
    """History rows as an ``xarray.Dataset`` with dims ``window`` (its end, UTC time),
    ``endpoint`` and ``persona``; cells a window did not report are NaN (gates False)."""
    import numpy as np

    df = history_frame(rows).drop(columns="t").rename(columns={"time": "window"})
    df["window"] = df["window"].dt.tz_localize(None)  # UTC; xarray indexes naive datetimes
    ds = df.set_index(["window", "endpoint", "persona"]).to_xarray()
    for name in ("latency_gate", "error_gate"):
        ds[name] = ds[name].fillna(False).astype(bool)
    ds["n"] = ds["n"].fillna(0).astype(np.int64)
    return ds

