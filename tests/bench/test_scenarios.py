"""Tests of :mod:`driftbayes.bench.scenarios`: the events follow the truth they come with.

Tolerances (all from sampling error, fixed seeds)
-------------------------------------------------
* Quantiles: for ``n`` iid draws and the true q-quantile ξ, ``K = #{x_i ≤ ξ} ~ Binomial(n, q)``,
  and ``x_(a) ≤ ξ < x_(b+1)  ⇔  a ≤ K ≤ b``. With ``a = binom.ppf(α/2)`` and
  ``b = binom.ppf(1 - α/2)`` the order-statistic interval ``[x_(a), x_(b+1))`` covers ξ with
  probability ≥ 1 - α; we use α = 1e-3 (:func:`quantile_ci`). Distribution-free, exact.
* Proportions (error rate, transition frequency, persona share, share below an antimode):
  ``|p̂ - p| ≤ 4·sqrt(p(1 - p)/n)`` (normal approximation to the binomial; two-sided tail 6e-5
  per comparison, so the few hundred comparisons here have a family-wise rate of ~1%, and the
  seeds are fixed). Probability 0 must give a count of exactly 0.
* Counts: requests of one cell arrive in sessions, so the count over ``T`` seconds is compound
  Poisson, not Poisson: sessions arrive at rate λ and each brings ``V`` visits to the cell, so
  ``Var N = λ·T·E[V²]``. For an absorbing chain with fundamental matrix ``N = (I - Q)⁻¹``,
  ``V`` is 0 or geometric with mean ``N_ee`` once ``e`` is reached, so
  ``E[V²] = E[V]·(2·N_ee - 1)``; we allow 4 of those SEs (the "Poisson SE" for clustered
  arrivals; ``E[V²] = E[V]`` would be the plain Poisson case).
* Edge effects: sessions start 30 min before ``t0`` (stationary at ``t0``); transitions and
  think times use source requests before ``t_end - 30 min`` so that the successor (or END) is
  known — a think time beyond 30 min has probability < 1e-5.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from driftbayes.bench.scenarios import (
    END,
    SCENARIOS,
    START,
    LatencyDist,
    Profile,
    Scenario,
    make_scenario,
)
from driftbayes.events import COLUMNS

SEED = 7
Z = 4.0
ALPHA = 1e-3
MARGIN = 1800.0
KINDS = {"latency", "errors", "rate", "flow", "persona_mix", "new_endpoint"}


@cache
def scenario(name: str, seed: int = SEED) -> Scenario:
    return make_scenario(name, seed=seed)


def quantile_ci(x, q: float, alpha: float = ALPHA) -> tuple[float, float]:
    """Order-statistic interval ``[lo, hi)`` covering the true q-quantile w.p. ≥ 1 - alpha."""
    xs = np.sort(np.asarray(x, dtype=float))
    n = len(xs)
    a = int(stats.binom.ppf(alpha / 2, n, q))
    b = int(stats.binom.ppf(1 - alpha / 2, n, q))
    return (xs[a - 1] if a >= 1 else -np.inf), (xs[b] if b < n else np.inf)


def assert_quantile(x, q: float, truth: float, what: str = "") -> None:
    lo, hi = quantile_ci(x, q)
    assert lo <= truth < hi, f"{what}: q{q}={truth:.4g} outside [{lo:.4g}, {hi:.4g}) n={len(x)}"


def assert_prop(k: int, n: int, p: float, what: str = "") -> None:
    if p == 0.0:
        assert k == 0, f"{what}: {k} of {n} with probability 0"
        return
    se = np.sqrt(p * (1 - p) / n)
    assert abs(k / n - p) <= Z * se, f"{what}: {k}/{n}={k / n:.4f} vs {p:.4f} (se {se:.4f})"


def cell_mask(sc: Scenario, endpoint: str, persona: str | None = None, t=(None, None)):
    ev = sc.events
    m = ev.endpoint == endpoint
    if persona is not None:
        m &= ev.persona == persona
    if t[0] is not None:
        m &= ev.ts >= t[0]
    if t[1] is not None:
        m &= ev.ts < t[1]
    return m


def truth_at(sc: Scenario, t: float, endpoint: str, persona: str) -> pd.Series:
    w = int((t - sc.t0) // sc.window_s)
    tr = sc.truth
    row = tr[(tr.window == w) & (tr.endpoint == endpoint) & (tr.persona == persona)]
    assert len(row) == 1
    return row.iloc[0]


def successions(sc: Scenario) -> pd.DataFrame:
    """(persona, src, dst, ts of src, gap s) of each request with a known successor.

    ``src`` is START for a session's first request, ``dst`` END after its last. Sources are
    kept in ``[t0 + MARGIN, t_end - MARGIN)`` (START by the first request's time).
    """
    ev = sc.events
    order = np.lexsort((ev.ts, ev.session))
    s, ts, e, p = ev.session[order], ev.ts[order], ev.endpoint[order], ev.persona[order]
    first = np.r_[True, s[1:] != s[:-1]]
    last = np.r_[s[1:] != s[:-1], True]
    nxt_e = np.where(last, END, np.concatenate([e[1:], np.array([END], dtype=object)]))
    gap = np.where(last, np.nan, np.r_[ts[1:], np.nan] - ts)
    df = pd.concat([
        pd.DataFrame({"persona": p[first], "src": START, "dst": e[first], "ts": ts[first],
                      "gap": np.nan}),
        pd.DataFrame({"persona": p, "src": e, "dst": nxt_e, "ts": ts, "gap": gap}),
    ], ignore_index=True)
    return df[(df.ts >= sc.t0 + MARGIN) & (df.ts < sc.t_end - MARGIN)]


def check_rows(sub: pd.DataFrame, matrix: pd.DataFrame, src: str, what: str) -> int:
    """Transition frequencies of row ``src`` vs ``matrix``; returns the row's count."""
    row = sub[sub.src == src]
    n = len(row)
    if n:
        counts = row.dst.value_counts()
        for dst, p in matrix.loc[src].items():
            assert_prop(int(counts.get(dst, 0)), n, float(p), f"{what} {src}->{dst}")
    return n


# --------------------------------------------------------------------------- every scenario


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_builds_valid(name):
    sc = make_scenario(name, seed=SEED)
    ev = sc.events
    assert sc.name == name and sc.description == SCENARIOS[name]
    assert 20_000 <= len(ev) <= 60_000
    assert sc.window_s == 300.0 and sc.t0 % sc.window_s == 0
    hours = 48 if name == "daily_seasonality" else (18 if name == "gradual_drift" else 12)
    assert sc.n_windows * sc.window_s == hours * 3600
    assert not np.isnan(ev.ts).any() and np.all(np.diff(ev.ts) >= 0)
    assert ev.ts[0] >= sc.t0 and ev.ts[-1] < sc.t_end
    assert np.array_equal(ev.line, np.arange(1, len(ev) + 1))
    assert np.isin(ev.status, [200, 201, 400, 404, 500, 503]).all()
    assert ((ev.status == 201) == ((ev.method == "POST") & (ev.status < 300))).all()
    assert np.all(ev.latency_ms > 0) and np.isfinite(ev.latency_ms).all()
    assert all(isinstance(s, str) and s for s in ev.session)
    assert set(ev.persona) <= set(sc.personas) and len(sc.personas) == 3
    assert set(zip(ev.method, ev.endpoint, strict=True)) <= set(sc.endpoints)
    assert 5 <= len(sc.endpoints) <= 7
    # sessions are per persona: one persona per session
    assert pd.DataFrame({"s": ev.session, "p": ev.persona}).groupby("s").p.nunique().max() == 1
    # truth covers every window x cell with traffic, with positive rates and valid values
    tr = sc.truth
    assert list(tr.columns) == ["window", "t_start", "method", "endpoint", "persona", "p50_ms",
                                "p99_ms", "error_rate", "rate_per_s", "think_p50_ms"]
    assert not tr.duplicated(["window", "endpoint", "persona"]).any()
    assert np.allclose(tr.t_start, sc.t0 + tr.window * sc.window_s)
    w = ((ev.ts - sc.t0) // sc.window_s).astype(int)
    seen = set(zip(w, ev.endpoint, ev.persona, strict=True))
    assert seen <= set(zip(tr.window, tr.endpoint, tr.persona, strict=True))
    assert (tr.rate_per_s > 0).all() and (tr.p99_ms > tr.p50_ms).all()
    assert tr.error_rate.between(0, 1).all() and (tr.think_p50_ms > 0).all()
    # flow phases: each persona's phases tile [t0, t_end); rows are distributions
    for p in sc.personas:
        ph = [f for f in sc.transitions if f.persona == p]
        assert ph[0].t_start == sc.t0 and ph[-1].t_end == sc.t_end
        assert all(a.t_end == b.t_start for a, b in zip(ph[:-1], ph[1:], strict=True))
        for f in ph:
            m = f.matrix
            assert list(m.index) == [START] + [e for _, e in sc.endpoints]
            assert list(m.columns) == [e for _, e in sc.endpoints] + [END]
            assert np.allclose(m.sum(axis=1), 1.0) and (m.to_numpy() >= 0).all()
            assert m.loc[START, END] == 0
    assert all(c.kind in KINDS and sc.t0 < c.t < sc.t_end for c in sc.changes)
    assert all(c.t % sc.window_s == 0 for c in sc.changes)
    for a, b in sc.steady:
        assert sc.t0 + 3600 <= a < b <= sc.t_end
        assert not any(a < c.t < b for c in sc.changes)


def test_unknown_name_and_options():
    with pytest.raises(ValueError, match="steady"):
        make_scenario("nope")
    sc = make_scenario("steady", seed=1, scale=0.5, hours=2)
    assert sc.n_windows == 24
    expected = sc.truth.rate_per_s.sum() * sc.window_s  # constant rates: exact mean count
    assert abs(len(sc.events) - expected) < 0.15 * expected
    assert abs(expected - 0.5 * 2 / 12 * scenario("steady").truth.rate_per_s.sum()
               * 300) < 1e-6 * expected


def test_deterministic():
    a, b = make_scenario("flow_change", seed=3), make_scenario("flow_change", seed=3)
    for col in COLUMNS:
        assert np.array_equal(getattr(a.events, col), getattr(b.events, col)), col
    pd.testing.assert_frame_equal(a.truth, b.truth)
    c = make_scenario("flow_change", seed=4)
    assert len(c.events) != len(a.events) or not np.array_equal(c.events.ts, a.events.ts)
    pd.testing.assert_frame_equal(a.truth, c.truth)  # the truth does not depend on the seed


def test_latency_dist_reference():
    ln = LatencyDist.lognormal(50.0, 0.6)
    ref = stats.lognorm(s=0.6, scale=50.0)
    for q in (0.01, 0.5, 0.99):
        assert ln.ppf(q) == pytest.approx(ref.ppf(q), rel=1e-12)
    x = np.geomspace(1, 1000, 20)
    assert np.allclose(ln.cdf(x), ref.cdf(x), rtol=1e-12, atol=1e-15)
    assert np.allclose(ln.pdf(x), ref.pdf(x), rtol=1e-12, atol=1e-15)
    mix = LatencyDist((0.75, 0.25), (6.0, 140.0), (0.3, 0.35))
    tail = LatencyDist((1.0,), (200.0,), (0.5,), tail_weight=0.05, tail_xm_ms=600.0,
                       tail_alpha=1.3)
    rng = np.random.default_rng(0)
    for d in (mix, tail):
        for q in (0.5, 0.9, 0.99):
            assert float(d.cdf(d.ppf(q))) == pytest.approx(q, abs=1e-10)
        assert stats.kstest(d.sample(rng, 20_000), d.cdf).pvalue > 1e-3
        # the density integrates to the cdf
        a, b = d.ppf(0.2), d.ppf(0.995)
        grid = np.geomspace(a, b, 20_001)
        integral = np.trapezoid(d.pdf(grid), grid)
        assert integral == pytest.approx(0.795, abs=2e-3)  # Pareto jump at xm costs accuracy
    p = Profile((10.0, 20.0), (1.0, 3.0), "linear")
    assert np.allclose(p([0, 10, 15, 20, 30]), [1, 1, 2, 3, 3])
    s = Profile((10.0, 20.0), (1.0, 3.0))
    assert np.allclose(s([0, 10, 19.9, 20, 30]), [1, 1, 1, 3, 3])


# --------------------------------------------------------------------------- steady


def test_steady_matches_truth():
    sc = scenario("steady")
    ev = sc.events
    tr0 = sc.truth[sc.truth.window == 0]
    assert (sc.truth.groupby(["endpoint", "persona"])[["p50_ms", "rate_per_s"]].nunique() == 1
            ).all().all()
    T = sc.t_end - sc.t0
    succ = successions(sc)
    for _, row in tr0.iterrows():
        m = cell_mask(sc, row.endpoint, row.persona)
        what = f"{row.endpoint} {row.persona}"
        if m.sum() >= 50:
            assert_quantile(ev.latency_ms[m], 0.5, row.p50_ms, what)
            assert_prop(int((ev.status[m] >= 500).sum()), int(m.sum()), row.error_rate, what)
        # count: compound Poisson (see module docstring)
        f = sc.phase(row.persona, sc.t0).matrix
        Q = f.iloc[1:, :-1].to_numpy()
        N = np.linalg.inv(np.eye(len(Q)) - Q)
        e = list(f.columns).index(row.endpoint)
        visits = f.iloc[0, :-1].to_numpy() @ N
        lam = float(sc.arrivals(row.persona, sc.t0))
        assert row.rate_per_s == pytest.approx(lam * visits[e], rel=1e-12)
        ev2 = visits[e] * (2 * N[e, e] - 1)
        se = np.sqrt(lam * T * ev2)
        assert abs(m.sum() - row.rate_per_s * T) <= Z * se, what
        # think time from this source endpoint
        gaps = succ[(succ.src == row.endpoint) & (succ.persona == row.persona)].gap.dropna()
        if len(gaps) >= 50:
            assert_quantile(gaps * 1000, 0.5, row.think_p50_ms, "think " + what)
    # transitions, every persona and row
    for p in sc.personas:
        mat = sc.phase(p, sc.t0).matrix
        sub = succ[succ.persona == p]
        n = sum(check_rows(sub, mat, src, p) for src in mat.index)
        assert n > 2000


# --------------------------------------------------------------------------- changes


def change(sc: Scenario, kind: str, k: int = 0):
    found = [c for c in sc.changes if c.kind == kind]
    assert found, f"no {kind} change"
    return found[k]


def test_latency_regression():
    sc = scenario("latency_regression")
    c = change(sc, "latency")
    assert c.endpoint == "/api/products/{id}" and c.t == sc.t0 + 6 * 3600
    for p in sc.personas:
        before, after = truth_at(sc, c.t - 1, c.endpoint, p), truth_at(sc, c.t, c.endpoint, p)
        assert after.p50_ms == pytest.approx(3 * before.p50_ms)
        for row, seg in ((before, (sc.t0, c.t)), (after, (c.t, sc.t_end))):
            m = cell_mask(sc, c.endpoint, p, seg)
            assert_quantile(sc.events.latency_ms[m], 0.5, row.p50_ms, p)
    # other endpoints unchanged
    other = sc.truth[sc.truth.endpoint != c.endpoint]
    assert (other.groupby(["endpoint", "persona"]).p50_ms.nunique() == 1).all()


def test_reversal():
    sc = scenario("reversal")
    up, down = change(sc, "latency", 0), change(sc, "latency", 1)
    assert up.endpoint == down.endpoint == "/api/products" and up.t < down.t
    for p in sc.personas:
        rows = [truth_at(sc, t, up.endpoint, p) for t in (sc.t0, up.t, down.t)]
        assert rows[1].p50_ms == pytest.approx(2.5 * rows[0].p50_ms)
        assert rows[2].p50_ms == rows[0].p50_ms
        for row, seg in zip(rows, [(sc.t0, up.t), (up.t, down.t), (down.t, sc.t_end)],
                            strict=True):
            m = cell_mask(sc, up.endpoint, p, seg)
            assert_quantile(sc.events.latency_ms[m], 0.5, row.p50_ms, p)


def test_gradual_drift():
    sc = scenario("gradual_drift")
    a, b = change(sc, "latency", 0), change(sc, "latency", 1)
    ep = a.endpoint
    assert ep == "/api/checkout" and (b.t - a.t) >= 4 * 3600
    assert sc.steady == [(sc.t0 + 3600, a.t), (b.t, sc.t_end)]
    web = sc.truth[(sc.truth.endpoint == ep) & (sc.truth.persona == "web")]
    p50 = web.p50_ms.to_numpy()
    assert np.all(np.diff(p50) >= -1e-9)
    assert p50[-1] == pytest.approx(3 * p50[0])
    ramp = web[(web.t_start >= a.t) & (web.t_start <= b.t)]
    slope = np.diff(ramp.p50_ms) / np.diff(ramp.t_start)
    assert np.allclose(slope, slope[0])  # linear
    mid = truth_at(sc, (a.t + b.t) / 2, ep, "web")
    assert mid.p50_ms == pytest.approx(2 * p50[0])
    for p in sc.personas:
        cell = sc.cells[(ep, p)]
        for seg in ((sc.t0, a.t), (a.t, b.t), (b.t, sc.t_end)):
            m = cell_mask(sc, ep, p, seg)
            # divide out the known scale: the rest is the stationary base distribution
            x = sc.events.latency_ms[m] / cell.scale(sc.events.ts[m])
            assert_quantile(x, 0.5, cell.latency.ppf(0.5), p)
        m = cell_mask(sc, ep, p, (b.t, sc.t_end))
        assert_quantile(sc.events.latency_ms[m], 0.5, truth_at(sc, b.t, ep, p).p50_ms, p)


def test_error_burst():
    sc = scenario("error_burst")
    a, b = change(sc, "errors", 0), change(sc, "errors", 1)
    ep = a.endpoint
    assert ep == "/api/cart" and b.t - a.t == 3600
    for p in sc.personas:
        rows = [truth_at(sc, t, ep, p) for t in (sc.t0, a.t, b.t)]
        assert rows[0].error_rate <= 0.02 and rows[1].error_rate == 0.30
        assert rows[2].error_rate == rows[0].error_rate
        for row, seg in zip(rows, [(sc.t0, a.t), (a.t, b.t), (b.t, sc.t_end)], strict=True):
            m = cell_mask(sc, ep, p, seg)
            assert_prop(int((sc.events.status[m] >= 500).sum()), int(m.sum()), row.error_rate,
                        f"{p} {seg}")
    m = cell_mask(sc, ep, "web", (a.t, b.t))
    assert m.sum() >= 100


def test_new_endpoint():
    sc = scenario("new_endpoint")
    c = change(sc, "new_endpoint")
    ep = c.endpoint
    assert ep == "/api/recommendations"
    assert not (cell_mask(sc, ep) & (sc.events.ts < c.t)).any()
    assert cell_mask(sc, ep, "web", (c.t, None)).sum() > 500
    tr = sc.truth[sc.truth.endpoint == ep]
    assert tr.t_start.min() == c.t and tr.window.nunique() == sc.n_windows - tr.window.min()
    before = sc.phase("web", c.t - 1).matrix
    after = sc.phase("web", c.t).matrix
    assert before[ep].sum() == 0 and after.loc["/api/products/{id}", ep] == 0.2
    succ = successions(sc)
    sub = succ[(succ.persona == "web") & (succ.ts >= c.t)]
    assert check_rows(sub, after, "/api/products/{id}", "after") > 1000
    assert check_rows(sub, after, ep, "after") > 200


def test_persona_mix_change():
    sc = scenario("persona_mix_change")
    c = change(sc, "persona_mix")
    succ = successions(sc)
    starts = succ[succ.src == START]
    for seg, shares in (((sc.t0 + 3600, c.t), {"web": 0.6, "mobile": 0.2, "partner": 0.2}),
                        ((c.t, sc.t_end), {"web": 0.2, "mobile": 0.7, "partner": 0.1})):
        s = starts[(starts.ts >= seg[0]) & (starts.ts < seg[1])]
        for p, share in shares.items():
            lam = sc.arrivals(p, seg[0]) / sum(sc.arrivals(q, seg[0]) for q in sc.personas)
            assert lam == pytest.approx(share)
            assert_prop(int((s.persona == p).sum()), len(s), share, f"{p} {seg}")


def test_flow_change():
    sc = scenario("flow_change")
    c = change(sc, "flow")
    cart, ship, checkout = "/api/cart", "/api/shipping", "/api/checkout"
    assert c.endpoint == cart
    succ = successions(sc)
    for p in sc.personas:
        before, after = sc.phase(p, c.t - 1).matrix, sc.phase(p, c.t).matrix
        assert before.loc[cart, checkout] >= 0.45 and after.loc[cart, checkout] == 0
        assert after.loc[cart, ship] > before.loc[cart, ship]
        sub = succ[succ.persona == p]
        nb = check_rows(sub[sub.ts < c.t], before, cart, f"{p} before")
        na = check_rows(sub[sub.ts >= c.t], after, cart, f"{p} after")
        check_rows(sub[sub.ts >= c.t], after, ship, f"{p} after")
        if p == "web":
            assert nb > 500 and na > 500


def test_daily_seasonality():
    sc = scenario("daily_seasonality")
    assert sc.n_windows * sc.window_s >= 48 * 3600 and not sc.changes
    hour = ((sc.events.ts - sc.t0) // 3600).astype(int)
    counts = np.bincount(hour, minlength=48)
    rate = sc.truth.groupby("window").rate_per_s.sum().to_numpy()
    expected = rate.reshape(48, 12).mean(axis=1) * 3600
    assert np.corrcoef(counts, expected)[0, 1] > 0.9
    assert expected.max() / expected.min() > 5
    assert abs(counts.sum() - expected.sum()) < 0.05 * expected.sum()
    assert int(np.argmax(expected)) % 24 in (13, 14)  # peak at 14:00 UTC
    assert int(np.argmax(counts)) % 24 in range(11, 18)


def test_bimodal_latency():
    sc = scenario("bimodal_latency")
    ep = "/api/products/{id}"
    for p in sc.personas:
        d = sc.cells[(ep, p)].latency
        assert d.weights == (0.75, 0.25)
        # antimode of the density of log latency, between the two modes
        lo, hi = np.log(d.medians_ms)
        res = optimize.minimize_scalar(lambda y: float(d.pdf(np.exp(y)) * np.exp(y)),
                                       bounds=(lo, hi), method="bounded")
        antimode = float(np.exp(res.x))
        share = float(d.cdf(antimode))
        assert share == pytest.approx(0.75, abs=0.01)
        m = cell_mask(sc, ep, p)
        x = sc.events.latency_ms[m]
        assert_prop(int((x < antimode).sum()), len(x), share, p)
        row = truth_at(sc, sc.t0, ep, p)
        assert_quantile(x, 0.5, row.p50_ms, p)
        assert_quantile(x, 0.99, row.p99_ms, p)


def test_heavy_tail_latency():
    sc = scenario("heavy_tail_latency")
    ep = "/api/checkout"
    for p in sc.personas:
        row = truth_at(sc, sc.t0, ep, p)
        cell = sc.cells[(ep, p)]
        assert float(cell.latency.cdf(row.p99_ms)) == pytest.approx(0.99, abs=1e-10)
        assert row.p99_ms > cell.latency.tail_xm_ms  # the p99 is in the Pareto tail
        x = sc.events.latency_ms[cell_mask(sc, ep, p)]
        if len(x) >= 300:
            assert_quantile(x, 0.99, row.p99_ms, p)
            assert_quantile(x, 0.5, row.p50_ms, p)
