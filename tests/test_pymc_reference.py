"""Reference tests: the conjugate posteriors the learner builds equal PyMC/NUTS fits of the same
model on the same data, starting from the learner's own synthetic prior.

For each pattern kind the traffic goes through the whole pipeline (``EventBatch.from_records``
→ ``DriftLearner`` with ``decay=0`` → ``snapshot().layer(...)`` / ``patterns``), the prior
hyper-parameters are read from the learner's ``prior`` layer (the ``SyntheticPrior`` through
``Config``), and PyMC fits the textbook model with those hyper-parameters.

Tolerances (Monte-Carlo error of NUTS, from ArviZ's effective sample sizes):
* posterior mean: ``|mean_nuts − mean_exact| < Z·sd/√ESS_mean``;
* posterior sd: the SE of a sample sd is ``sd·√((κ_excess + 2)/(4·ESS_sd))``
  (``= sd/√(2·ESS)`` for a normal; κ_excess is the exact excess kurtosis of the reference
  marginal);
* posterior quantiles / interval ends: ``Z·MCSE_quantile`` (ArviZ ``mcse(method="quantile")``);
* probabilities ``P(median ≤ edge)``: binomial SE ``√(g(1−g)/ESS)`` of the indicator.
``Z = 4.5`` (two-sided 7e-6 per comparison; ~80 comparisons → family-wise < 1e-3). NUTS
diagnostics (r̂ < 1.01, no divergences) are asserted first, so a failure means the models
differ, not that the sampler failed.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from driftbayes import conjugate as cj
from driftbayes.config import Config, SyntheticPrior
from driftbayes.events import EventBatch
from driftbayes.learner import DriftLearner
from driftbayes.patterns import patterns

pm = pytest.importorskip("pymc")
az = pytest.importorskip("arviz")

pytestmark = pytest.mark.slow

Z = 4.5
SAMPLE_KW = dict(draws=1000, tune=1000, chains=2, cores=1, progressbar=False,
                 compute_convergence_checks=False)
# A conjugate Dirichlet update with a zero pseudo-count (a status code the synthetic prior never
# serves) is the eps -> 0 limit of a Dirichlet(eps) prior; PyMC needs eps > 0. eps = 1e-6 moves
# posterior means by <= eps/A ~ 5e-9, far below the NUTS MCSE (~1e-3).
EPS_ALPHA = 1e-6


# --------------------------------------------------------------------------- helpers
def nuts(model, seed):
    with model:
        idata = pm.sample(random_seed=seed, **SAMPLE_KW)
    assert int(idata.sample_stats["diverging"].sum()) == 0, "NUTS diverged"
    rhat = az.rhat(idata)
    worst = max(float(rhat[v].max()) for v in rhat.data_vars)
    assert worst < 1.01, f"r_hat {worst:.4f}"
    return idata


def draws_of(idata, name):
    """(chain, draw, ...) numpy array of a posterior variable."""
    return np.asarray(idata.posterior[name])


def check_moments(x, mean, sd, kurt_excess, label):
    """NUTS draws ``x`` (chain, draw) against an exact marginal's mean, sd and excess kurtosis."""
    ess_mean = float(az.ess(x, method="mean"))
    ess_sd = float(az.ess(x, method="sd"))
    m_hat, s_hat = x.mean(), x.std(ddof=1)
    tol_m = Z * sd / np.sqrt(ess_mean)
    tol_s = Z * sd * np.sqrt((kurt_excess + 2.0) / (4.0 * ess_sd))
    assert abs(m_hat - mean) < tol_m, (
        f"{label} mean: NUTS {m_hat:.6g} vs exact {mean:.6g} (tol {tol_m:.3g})")
    assert abs(s_hat - sd) < tol_s, (
        f"{label} sd: NUTS {s_hat:.6g} vs exact {sd:.6g} (tol {tol_s:.3g})")


def check_quantile(x, q, value, label, extra=0.0):
    """Exact ``value`` of the q-quantile against the NUTS quantile, within Z·MCSE (+ ``extra``)."""
    got = float(np.quantile(x, q))
    tol = Z * float(az.mcse(x, method="quantile", prob=q)) + extra
    assert abs(got - value) < tol, (
        f"{label} q={q}: NUTS {got:.6g} vs exact {value:.6g} (tol {tol:.3g})")


def check_dist(x, dist, label):
    """Mean, sd and the 5/95% quantiles of NUTS draws against a frozen SciPy distribution."""
    mean, var, _, kurt = (float(v) for v in dist.stats(moments="mvsk"))
    check_moments(x, mean, np.sqrt(var), kurt, label)
    for q in (0.05, 0.95):
        check_quantile(x, q, float(dist.ppf(q)), label)


def learner_from(records, **cfg):
    # the conjugate models the NUTS fits are written for: a synthetic prior worth 10
    # pseudo-observations that never fades (fading only rescales the prior's pseudo-counts:
    # tests/test_learner_prior_fade.py) and no adaptive forgetting
    fixed = dict(decay=0.0, prior_fade=0.0, changepoint_hazard=0.0,
                 synthetic=SyntheticPrior(prior_strength=10.0))
    return DriftLearner(Config(**fixed, **cfg)).learn_many(EventBatch.from_records(records))


def sqrt_invgamma_moments(alpha, beta):
    """Mean, sd and excess kurtosis of sigma when sigma^2 ~ InvGamma(alpha, beta).

    E[sigma^k] = beta^(k/2) Gamma(alpha - k/2) / Gamma(alpha).
    """
    m = [np.exp(k / 2 * np.log(beta) + special.gammaln(alpha - k / 2) - special.gammaln(alpha))
         for k in range(5)]
    var = m[2] - m[1] ** 2
    mu4 = m[4] - 4 * m[3] * m[1] + 6 * m[2] * m[1] ** 2 - 3 * m[1] ** 4
    return m[1], np.sqrt(var), mu4 / var**2 - 3.0


def nig_model(x, prior):
    """sigma^2 ~ InvGamma(alpha0, beta0), mu ~ N(mu0, sigma/sqrt(kappa0)), x ~ N(mu, sigma)."""
    mu0, kappa0, alpha0, beta0 = prior
    with pm.Model() as model:
        sigma2 = pm.InverseGamma("sigma2", alpha=alpha0, beta=beta0)
        sigma = pm.Deterministic("sigma", pm.math.sqrt(sigma2))
        mu = pm.Normal("mu", mu=mu0, sigma=sigma / np.sqrt(kappa0))
        pm.Normal("obs", mu=mu, sigma=sigma, observed=x)
    return model


def check_nig(idata, post, mass, label):
    mu_n, kappa_n, alpha_n, beta_n = post
    # mu: Student-t marginal, df 2a, scale sqrt(b/(a k)); sd sqrt(b/(k(a-1))).
    t = stats.t(2 * alpha_n, loc=mu_n, scale=np.sqrt(beta_n / (alpha_n * kappa_n)))
    check_dist(draws_of(idata, "mu"), t, f"{label} mu")
    lo, hi = cj.nig_mean_interval(mu=mu_n, kappa=kappa_n, alpha=alpha_n, beta=beta_n, mass=mass)
    for q, v in zip(cj.tail_probs(mass), (lo, hi)):
        check_quantile(draws_of(idata, "mu"), q, v, f"{label} mu interval")
    # sigma^2 ~ InvGamma(a, b); sigma = its square root.
    check_dist(draws_of(idata, "sigma2"), stats.invgamma(alpha_n, scale=beta_n), f"{label} sigma2")
    check_moments(draws_of(idata, "sigma"), *sqrt_invgamma_moments(alpha_n, beta_n),
                  f"{label} sigma")


def check_dirichlet(p, alpha, label):
    """Each component of Dirichlet draws p (chain, draw, K) against its Beta marginal."""
    total = alpha.sum()
    for k, a in enumerate(alpha):
        check_dist(p[..., k], stats.beta(a, total - a), f"{label}[{k}]")


def row_of(rows, kind, endpoint=None):
    hits = [r for r in rows
            if r["kind"] == kind and (endpoint is None or r["endpoint"] == endpoint)]
    assert len(hits) == 1, (kind, endpoint, len(hits))
    return hits[0]


# --------------------------------------------------------------------------- traffic
@pytest.fixture(scope="module")
def single_endpoint():
    """200 requests to one endpoint: log-normal latency (median 80 ms, sigma 0.5), 3 codes."""
    rng = np.random.default_rng(20240611)
    n = 200
    lat = np.exp(np.log(80.0) + 0.5 * rng.standard_normal(n))
    status = rng.choice([200, 404, 500], p=[0.8, 0.08, 0.12], size=n)
    records = [{"ts": float(i), "path": "/api/items", "status": int(s), "latency_ms": float(v)}
               for i, (s, v) in enumerate(zip(status, lat))]
    snap = learner_from(records, update_interval=1e9).snapshot()
    return {"lat": lat, "status": status, "snap": snap,
            "rows": patterns(snap, layer="posterior"), "mass": snap.config.credible_mass}


@pytest.fixture(scope="module")
def sessions():
    """150 sessions over /a, /b, /c (a Markov chain with END) with log-normal think times."""
    rng = np.random.default_rng(7)
    names = ["/a", "/b", "/c"]
    start = [0.7, 0.2, 0.1]
    trans = np.array([[0.1, 0.4, 0.2, 0.3], [0.3, 0.1, 0.2, 0.4], [0.2, 0.3, 0.1, 0.4]])
    records, from_a, gaps_a = [], [], []
    for s in range(150):
        t = 10_000.0 * s
        state = rng.choice(3, p=start)
        records.append({"ts": t, "path": names[state], "session": f"s{s}", "status": 200})
        while True:
            nxt = rng.choice(4, p=trans[state])
            if state == 0:
                from_a.append(nxt)
            if nxt == 3:
                break
            t_next = t + float(np.exp(np.log(4.0) + 0.7 * rng.standard_normal()))  # seconds
            if state == 0:
                gaps_a.append(t_next - t)  # the same float arithmetic as the learner's ts diff
            t, state = t_next, nxt
            records.append({"ts": t, "path": names[state], "session": f"s{s}", "status": 200})
    snap = learner_from(records, update_interval=1e9).snapshot()
    return {"snap": snap, "from_a": np.array(from_a), "gaps_a": np.array(gaps_a),
            "rows": patterns(snap, layer="posterior"), "mass": snap.config.credible_mass}


# --------------------------------------------------------------------------- 1. latency summary NIG
def test_latency_summary_nig_matches_nuts(single_endpoint):
    snap = single_endpoint["snap"]
    e = snap.resolve_endpoint("/api/items")
    prior = [float(np.asarray(v)[e, 0]) for v in snap.layer("prior").lat_nig]
    # the synthetic prior (median 100 ms, sigma 0.6, strength 10) as NIG hyper-parameters
    np.testing.assert_allclose(prior, [np.log(100.0), 10.0, 5.0, 10 * 0.6**2 / 2], rtol=1e-12)
    post = [float(np.asarray(v)[e, 0]) for v in snap.layer("posterior").lat_nig]
    x = np.log(single_endpoint["lat"])
    idata = nuts(nig_model(x, prior), seed=1)
    check_nig(idata, post, single_endpoint["mass"], "latency")


# --------------------------------------------------------------------------- 2. status mix
def test_status_mix_dirichlet_matches_nuts(single_endpoint):
    snap, status = single_endpoint["snap"], single_endpoint["status"]
    e = snap.resolve_endpoint("/api/items")
    codes = np.asarray(snap.statuses_, dtype=int)
    assert sorted(codes) == [200, 404, 500]
    prior = np.asarray(snap.layer("prior").status_alpha[e, 0], dtype=float)
    post = np.asarray(snap.layer("posterior").status_alpha[e, 0], dtype=float)
    index = {int(c): i for i, c in enumerate(codes)}
    obs = np.array([index[int(s)] for s in status])  # each request's code, learner's order
    np.testing.assert_array_equal(post, prior + np.bincount(obs, minlength=codes.size))
    with pm.Model() as model:
        p = pm.Dirichlet("p", a=np.where(prior > 0, prior, EPS_ALPHA))
        pm.Categorical("obs", p=p, observed=obs)
    idata = nuts(model, seed=2)
    p = draws_of(idata, "p")
    check_dirichlet(p, post, "status")
    # P(5xx) and P(status >= 400) as patterns() reports them (mean and credible interval)
    row = row_of(single_endpoint["rows"], "errors")
    reported = {500: (row["estimate"], row["interval"]["lower"], row["interval"]["upper"]),
                400: (row["p_4xx"]["estimate"], row["p_4xx"]["lower"], row["p_4xx"]["upper"])}
    for threshold, (est, lower, upper) in reported.items():
        draws = p[..., codes >= threshold].sum(-1)
        a = post[codes >= threshold].sum()
        ref = stats.beta(a, post.sum() - a)  # aggregation: a sum of components is Beta
        label = f"P(status >= {threshold})"
        check_dist(draws, ref, label)
        check_moments(draws, est, ref.std(), float(ref.stats("k")), f"{label} estimate")
        for q, v in zip(cj.tail_probs(single_endpoint["mass"]), (lower, upper)):
            check_quantile(draws, q, v, f"{label} interval")


# --------------------------------------------------------------------------- 3. latency histogram
def test_latency_histogram_median_matches_nuts(single_endpoint):
    snap = single_endpoint["snap"]
    e = snap.resolve_endpoint("/api/items")
    prior = np.asarray(snap.layer("prior").lat_alpha[e, 0], dtype=float)
    post = np.asarray(snap.layer("posterior").lat_alpha[e, 0], dtype=float)
    counts = np.bincount(cj.bin_index(single_endpoint["lat"]), minlength=cj.N_LATENCY_BINS)
    np.testing.assert_allclose(post, prior + counts, rtol=1e-12)
    # Keep the fine bins where the posterior median can be (P(median <= edge) in
    # (1e-6, 1 - 1e-6), plus two bins each side) and aggregate the rest into a lower and an
    # upper tail bucket. By the Dirichlet aggregation property the aggregated vector is
    # Dirichlet(aggregated alpha), and the CDF at every kept edge, hence the median, is unchanged.
    cum = np.cumsum(post)
    g = stats.beta.sf(0.5, cum[:-1], cum[-1] - cum[:-1])  # P(median <= upper edge of bin k)
    live = np.flatnonzero((g > 1e-6) & (g < 1 - 1e-6))
    lo, hi = max(live[0] - 2, 1), min(live[-1] + 3, cj.N_LATENCY_BINS - 2)  # kept bins lo..hi

    def aggregate(v):
        return np.r_[v[:lo].sum(), v[lo:hi + 1], v[hi + 1:].sum()]

    agg_edges = np.r_[cj.LOG_EDGES[0], cj.LOG_EDGES[lo:hi + 2], cj.LOG_EDGES[-1]]
    with pm.Model() as model:
        theta = pm.Dirichlet("theta", a=aggregate(prior))
        pm.Multinomial("obs", n=int(counts.sum()), p=theta, observed=aggregate(counts))
    idata = nuts(model, seed=3)
    theta = draws_of(idata, "theta")
    check_dirichlet(theta, aggregate(post), "latency bins")
    # the median of each posterior draw (log-uniform inside a bin, as the mock samples)
    med = np.log(cj.histogram_quantiles(theta, [0.5], log_edges=agg_edges)[..., 0])
    assert np.all((med > agg_edges[1]) & (med < agg_edges[-2])), "median fell in a tail bucket"
    # (a) exact at edges: P(median <= edge) vs the aggregation identity the package uses
    for k in range(lo, hi + 1):
        if 0.01 < g[k] < 0.99:
            ind = (med <= cj.LOG_EDGES[k + 1]).astype(float)
            ess = float(az.ess(ind, method="mean"))
            assert abs(ind.mean() - g[k]) < Z * np.sqrt(g[k] * (1 - g[k]) / ess), k
    # (b) the credible interval patterns() reports: exact at edges, interpolated inside a bin,
    # so it may differ from the true quantile by up to one fine bin (log ms) plus NUTS error.
    row = row_of(single_endpoint["rows"], "latency")
    mass = single_endpoint["mass"]
    width = float(cj.LOG_EDGES[1] - cj.LOG_EDGES[0])
    for q, v in zip((cj.tail_probs(mass)[0], 0.5, cj.tail_probs(mass)[1]),
                    (row["interval"]["lower"], row["estimate"], row["interval"]["upper"])):
        check_quantile(med, q, np.log(v), "median latency (log ms)", extra=width)


# --------------------------------------------------------------------------- 4. request frequency
def test_request_rate_gamma_poisson_matches_nuts():
    rng = np.random.default_rng(4)
    interval, n_windows, rate = 60.0, 40, 0.4
    counts = rng.poisson(rate * interval, n_windows)
    assert counts[-1] > 0  # the last window closes at snapshot only if it has events
    ts = np.concatenate([np.sort(w * interval + rng.uniform(0, interval, c))
                         for w, c in enumerate(counts)])
    records = [{"ts": float(t), "path": "/api/feed", "status": 200} for t in ts]
    snap = learner_from(records, update_interval=interval).snapshot()
    a0, b0 = (float(np.asarray(v)[0, 0]) for v in (snap.layer("prior").rate_a,
                                                    snap.layer("prior").rate_b))
    assert (a0, b0) == (10.0, 100.0)  # synthetic 0.1 req/s worth 10 events
    post = snap.layer("posterior")
    a, b = float(post.rate_a[0, 0]), float(post.rate_b[0, 0])
    # exposure is every closed window's length (the first window starts at t = 0)
    np.testing.assert_allclose((a, b), (a0 + counts.sum(), b0 + n_windows * interval), rtol=1e-12)
    with pm.Model() as model:
        lam = pm.Gamma("rate", alpha=a0, beta=b0)
        pm.Poisson("obs", mu=lam * interval, observed=counts)
    idata = nuts(model, seed=4)
    x = draws_of(idata, "rate")
    check_dist(x, stats.gamma(a, scale=1.0 / b), "rate")
    row = row_of(patterns(snap, layer="posterior"), "frequency")
    check_moments(x, row["estimate"], np.sqrt(a) / b, 6.0 / a, "rate estimate")
    for q, key in zip(cj.tail_probs(snap.config.credible_mass), ("lower", "upper")):
        check_quantile(x, q, row["interval"][key], "rate interval")


# --------------------------------------------------------------------------- 5. transitions
def test_transition_row_dirichlet_matches_nuts(sessions):
    snap, from_a = sessions["snap"], sessions["from_a"]
    ia = snap.resolve_endpoint("/a")
    order = [snap.resolve_endpoint(p) for p in ("/a", "/b", "/c")] + [len(snap.endpoints_)]
    prior = np.asarray(snap.layer("prior").transitions.row(0, ia), dtype=float)[order]
    post = np.asarray(snap.layer("posterior").transitions.row(0, ia), dtype=float)[order]
    # synthetic rows: session_length 5 -> END w.p. 1/5, the rest spread over 3 endpoints
    np.testing.assert_allclose(prior, [8 / 3, 8 / 3, 8 / 3, 2.0], rtol=1e-9)
    np.testing.assert_allclose(post, prior + np.bincount(from_a, minlength=4), rtol=1e-12)
    with pm.Model() as model:
        p = pm.Dirichlet("p", a=prior)
        pm.Categorical("obs", p=p, observed=from_a)
    idata = nuts(model, seed=5)
    p = draws_of(idata, "p")
    check_dirichlet(p, post, "a -> [a, b, c, END]")
    # patterns() reports the most likely next state with the Beta-marginal interval
    row = row_of(sessions["rows"], "transitions", endpoint="/a")
    top = int(np.argmax(post))
    assert row["next"] == ("END" if top == 3 else snap.endpoints_[order[top]])
    for q, key in zip(cj.tail_probs(sessions["mass"]), ("lower", "upper")):
        check_quantile(p[..., top], q, row["interval"][key], "top transition interval")


# --------------------------------------------------------------------------- 6. think time NIG
def test_think_time_nig_matches_nuts(sessions):
    snap = sessions["snap"]
    ia = snap.resolve_endpoint("/a")
    prior = [float(np.asarray(v)[ia, 0]) for v in snap.layer("prior").think_nig]
    np.testing.assert_allclose(prior, [np.log(1000.0), 10.0, 5.0, 10 * 1.0**2 / 2], rtol=1e-12)
    post = [float(np.asarray(v)[ia, 0]) for v in snap.layer("posterior").think_nig]
    x = np.log(np.maximum(sessions["gaps_a"] * 1000.0, 1.0))  # log ms, as the learner records
    assert float(snap.evidence_["think_n"][ia, 0]) == len(x)
    idata = nuts(nig_model(x, prior), seed=6)
    check_nig(idata, post, sessions["mass"], "think time")
    row = row_of(sessions["rows"], "think_time", endpoint="/a")
    lo, hi = cj.nig_mean_interval(mu=post[0], kappa=post[1], alpha=post[2], beta=post[3],
                                  mass=sessions["mass"])
    reported = [row["estimate"], row["interval"]["lower"], row["interval"]["upper"]]
    np.testing.assert_allclose(reported,
                               np.exp([post[0], lo, hi]), rtol=1e-12)
