"""The built-in demo: a seeded simulation of a small shop API whose truth is known.

``driftbayes demo`` learns this simulation window by window and plots what it learned beside
the truth. It needs nothing but the installed package. The traffic comes from the benchmark's
scenario generator (:func:`driftbayes.bench.scenarios.build_scenario`): three personas walk a
shop API (products, product page, users, cart, shipping, checkout) for six hours, and four
things happen to it:

========== ===================================================================================
at         what changes (every persona)
========== ===================================================================================
2 h        latency regression: ``GET /api/products/{id}`` median latency x3, 5xx 0.5% -> 6%
3 h        error burst: ``POST /api/cart`` 5xx 1% -> 30%, median latency x2
3 h        changed flow: cart -> checkout becomes cart -> shipping -> checkout (for good)
4 h        recovery: product page and cart are back to their old latency and error rate
========== ===================================================================================

Examples
--------
>>> sc = demo_scenario(seed=0)
>>> [c.kind for c in sc.changes]
['latency', 'errors', 'errors', 'flow', 'latency', 'errors', 'errors']
"""

from __future__ import annotations

from driftbayes.bench.scenarios import (
    HOUR,
    Change,
    Profile,
    Scenario,
    build_scenario,
    shipping_detour,
)
from driftbayes.config import Config

__all__ = ["DEMO_CONFIG", "DEMO_ENDPOINTS", "DEMO_PERSONA", "demo_scenario", "truth_frame"]

#: Learning settings of the demo: five-minute windows (the scenario's own), defaults otherwise.
DEMO_CONFIG = Config(update_interval=300.0)
#: The endpoints the demo plots (both drift in latency and in error rate) and their persona.
DEMO_ENDPOINTS = ["GET /api/products/{id}", "POST /api/cart"]
DEMO_PERSONA = "web"

_HOURS = 6.0
_REGRESSION, _BURST, _RECOVERY = 2 * HOUR, 3 * HOUR, 4 * HOUR


def _modify(s) -> None:
    t_reg, t_burst, t_rec = (s.t0 + t for t in (_REGRESSION, _BURST, _RECOVERY))
    for p in s.personas:
        d_err = float(s.cell("D", p).error_rate(s.t0))
        s.set_cell("D", p, scale=Profile((s.t0, t_reg, t_rec), (1.0, 3.0, 1.0)),
                   error_rate=Profile((s.t0, t_reg, t_rec), (d_err, 0.06, d_err)))
        c_err = float(s.cell("C", p).error_rate(s.t0))
        s.set_cell("C", p, scale=Profile((s.t0, t_burst, t_rec), (1.0, 2.0, 1.0)),
                   error_rate=Profile((s.t0, t_burst, t_rec), (c_err, 0.30, c_err)))
    s.phases.append((t_burst, shipping_detour(s.phases[0][1])))
    d, c = s.template("D"), s.template("C")
    s.changes += [
        Change(t_reg, "latency", d, None, "latency regression: median latency x3"),
        Change(t_reg, "errors", d, None, "5xx rate 0.5% -> 6%"),
        Change(t_burst, "errors", c, None, "error burst: 5xx rate -> 30%, median latency x2"),
        Change(t_burst, "flow", c, None, "cart -> checkout becomes cart -> shipping -> checkout"),
        Change(t_rec, "latency", d, None, "recovery: median latency back to the old level"),
        Change(t_rec, "errors", d, None, "recovery: 5xx rate back to 0.5%"),
        Change(t_rec, "errors", c, None, "recovery: 5xx rate and latency back"),
    ]
    s.steady = s.segments(t_reg, t_burst, t_rec)


def demo_scenario(seed: int = 0, scale: float = 1.0) -> Scenario:
    """The demo's simulated traffic and its truth (same seed, same events).

    Parameters
    ----------
    seed : int
        Seed of the generator.
    scale : float
        Multiplies the session arrival rate (about 0.35 sessions/s at 1).

    Returns
    -------
    Scenario
        ``events``, the per-window ``truth`` and the ``changes``.
    """
    return build_scenario(
        "demo", "a small shop API: latency regression, error burst, changed flow, recovery",
        _modify, seed=seed, scale=scale, hours=_HOURS, session_rate=0.35)


def truth_frame(scenario: Scenario):
    """The truth per window in the layout of :meth:`DriftLearner.history_frame`.

    Returns
    -------
    pandas.DataFrame
        ``time`` (window end, UTC), ``endpoint`` (``"METHOD /template"``), ``persona``,
        ``p50_ms`` and ``error_rate`` (P(status >= 500)) in force during that window.
    """
    import pandas as pd

    tr = scenario.truth
    return pd.DataFrame({
        "time": pd.to_datetime(tr["t_start"] + scenario.window_s, unit="s", utc=True),
        "endpoint": tr["method"] + " " + tr["endpoint"],
        "persona": tr["persona"],
        "p50_ms": tr["p50_ms"],
        "error_rate": tr["error_rate"],
    })
