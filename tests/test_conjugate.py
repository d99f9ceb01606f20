"""Reference tests of :mod:`driftbayes.conjugate` against SciPy, textbook formulas and
Monte-Carlo simulation of each generative model (PreliZ-style tables).

Tolerances
----------
* Deterministic comparisons (same maths, different code): a few ulps times the condition of
  the computation, stated next to each ``rtol``/``atol``.
* Monte-Carlo comparisons: fixed seeds and a bound of ``Z`` standard errors of the simulation
  (``Z = 5``: a two-sided normal tail of 6e-7 per comparison, so the ~100 comparisons of this
  file have a family-wise false-alarm rate below 1e-4). Each test states which SE it uses.
* Goodness of fit (chi-square, KS): ``p > 1e-3`` with a fixed seed.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftbayes import conjugate as cj

Z = 5.0  # standard errors allowed for a Monte-Carlo comparison (see module docstring)
EPS = np.finfo(float).eps
LOG_BIN_WIDTH = float(cj.LOG_EDGES[1] - cj.LOG_EDGES[0])  # ln(10)/32: 32 bins per decade


# --------------------------------------------------------------------------- NIG posterior
def textbook_nig(mu0, kappa0, alpha0, beta0, x, w=None):
    """Normal-Inverse-Gamma posterior from raw (weighted) data, two-pass textbook form.

    Murphy (2007), "Conjugate Bayesian analysis of the Gaussian distribution", eqs. 86-89:
    kappa_n = kappa0 + n, mu_n = (kappa0 mu0 + n xbar)/kappa_n, alpha_n = alpha0 + n/2,
    beta_n = beta0 + S/2 + kappa0 n (xbar - mu0)^2 / (2 kappa_n), S = sum w (x - xbar)^2.
    """
    x = np.asarray(x, float)
    w = np.ones_like(x) if w is None else np.asarray(w, float)
    n = w.sum()
    if n == 0:
        return mu0, kappa0, alpha0, beta0
    xbar = np.sum(w * x) / n
    S = np.sum(w * (x - xbar) ** 2)
    kn = kappa0 + n
    return ((kappa0 * mu0 + n * xbar) / kn, kn, alpha0 + n / 2,
            beta0 + S / 2 + kappa0 * n * (xbar - mu0) ** 2 / (2 * kn))


def suff(x, w=None):
    x = np.asarray(x, float)
    w = np.ones_like(x) if w is None else np.asarray(w, float)
    return dict(n=w.sum(), sx=np.sum(w * x), sxx=np.sum(w * x * x))


_rng = np.random.default_rng(11)
_LOGLAT = np.log(80.0) + 0.5 * _rng.standard_normal(200)
PRIOR_100MS = dict(zip(("mu0", "kappa0", "alpha0", "beta0"),
                       map(float, cj.nig_prior(median_ms=100.0, sigma=0.6, strength=10.0))))

NIG_CASES = {
    # name: (prior, x, weights)
    "synthetic-prior, 200 log-latencies": (PRIOR_100MS, _LOGLAT, None),
    "one observation": (PRIOR_100MS, _LOGLAT[:1], None),
    "vague prior": (dict(mu0=0.0, kappa0=1e-6, alpha0=1e-3, beta0=1e-3), _LOGLAT, None),
    "strong prior far from data": (dict(mu0=-3.0, kappa0=1e4, alpha0=5e3, beta0=50.0),
                                   _LOGLAT, None),
    "fractional (decay) weights": (PRIOR_100MS, _LOGLAT, 0.95 ** np.arange(200)[::-1]),
    "tiny weights": (PRIOR_100MS, _LOGLAT, np.full(200, 1e-9)),
    "huge counts (1e9 each)": (PRIOR_100MS, _LOGLAT, np.full(200, 1e9)),
    "huge counts (1e12 each)": (PRIOR_100MS, _LOGLAT, np.full(200, 1e12)),
    "near-constant latency, 1e9 each": (PRIOR_100MS, np.log(80.0) + 1e-3 * _LOGLAT,
                                        np.full(200, 1e9)),
}


@pytest.mark.parametrize("case", list(NIG_CASES))
def test_normal_nig_posterior_matches_textbook_batch_update(case):
    prior, x, w = NIG_CASES[case]
    s = suff(x, w)
    got = cj.normal_nig_posterior(**prior, **s)
    want = textbook_nig(*prior.values(), x, w)
    mu0, kappa0 = prior["mu0"], prior["kappa0"]
    # mu, kappa, alpha: a handful of roundings each -> 16 ulp.
    np.testing.assert_allclose(got[:3], want[:3], rtol=16 * EPS, atol=16 * EPS * abs(mu0))
    # beta: the one-pass form sxx + kappa0 mu0^2 - kappa mu^2 cancels terms of size
    # ~(sxx + kappa0 mu0^2); its rounding error is a few ulps of that size (64 ulp allowed:
    # the summation of sxx itself adds log2(200) ~ 8 ulp).
    atol = 64 * EPS * (s["sxx"] + kappa0 * mu0**2)
    np.testing.assert_allclose(got[3], want[3], rtol=16 * EPS, atol=atol)


def test_normal_nig_posterior_n0_returns_prior():
    prior = PRIOR_100MS
    got = cj.normal_nig_posterior(**prior, n=0.0, sx=0.0, sxx=0.0)
    np.testing.assert_allclose(got, list(prior.values()), rtol=4 * EPS)


def test_normal_nig_posterior_integer_weights_equal_duplicated_data():
    x = _LOGLAT[:50]
    w = np.random.default_rng(3).integers(1, 6, size=50)
    got = cj.normal_nig_posterior(**PRIOR_100MS, **suff(x, w))
    dup = cj.normal_nig_posterior(**PRIOR_100MS, **suff(np.repeat(x, w)))
    # Same numbers summed in another order: 64 ulp of the cancelled size (see above).
    np.testing.assert_allclose(got[:3], dup[:3], rtol=16 * EPS)
    np.testing.assert_allclose(got[3], dup[3], rtol=0,
                               atol=64 * EPS * float(suff(np.repeat(x, w))["sxx"]))


def test_normal_nig_posterior_is_sequential_and_vectorised():
    """Updating in two halves equals one pass, and leading dims broadcast."""
    a, b = _LOGLAT[:120], _LOGLAT[120:]
    half = cj.normal_nig_posterior(**PRIOR_100MS, **suff(a))
    mu, kappa, alpha, beta = half
    both = cj.normal_nig_posterior(mu0=mu, kappa0=kappa, alpha0=alpha, beta0=beta, **suff(b))
    one = cj.normal_nig_posterior(**PRIOR_100MS, **suff(_LOGLAT))
    np.testing.assert_allclose(both, one, rtol=1e-12)
    n = np.array([[0.0, 3.0], [10.0, 200.0]])
    out = cj.normal_nig_posterior(**PRIOR_100MS, n=n, sx=n * 4.4, sxx=n * 4.4**2 + n * 0.25)
    assert all(np.shape(o) == (2, 2) for o in out)


# --------------------------------------------------------------------------- NIG predictive
NIG_PARAMS = {
    "synthetic prior": dict(mu=np.log(100.0), kappa=10.0, alpha=5.0, beta=1.8),
    "posterior n=200": dict(mu=4.36, kappa=210.0, alpha=105.0, beta=23.5),
    "heavy tails": dict(mu=1.0, kappa=2.0, alpha=1.5, beta=1.0),
}


def _simulate_nig(p, n, seed):
    """sigma^2 ~ InvGamma(alpha, beta), mu ~ N(mu, sigma^2/kappa), x ~ N(mu, sigma^2)."""
    rng = np.random.default_rng(seed)
    sigma2 = p["beta"] / rng.gamma(p["alpha"], 1.0, n)
    mu = rng.normal(p["mu"], np.sqrt(sigma2 / p["kappa"]))
    return mu, rng.normal(mu, np.sqrt(sigma2))


@pytest.mark.parametrize("name", list(NIG_PARAMS))
def test_normal_nig_predictive_matches_generative_simulation(name):
    p = NIG_PARAMS[name]
    df, loc, scale = cj.normal_nig_predictive(**p)
    ref = stats.t(df, loc, scale)
    n = 200_000
    _, x = _simulate_nig(p, n, seed=1)
    for q in (0.1, 0.5, 0.9):
        # Order-statistic SE of a sample quantile: sqrt(q(1-q)/n) / f(x_q) (f = reference pdf).
        se = np.sqrt(q * (1 - q) / n) / ref.pdf(ref.ppf(q))
        assert abs(np.quantile(x, q) - ref.ppf(q)) < Z * se, (name, q)
    assert stats.kstest(x, ref.cdf).pvalue > 1e-3


@pytest.mark.parametrize("name", list(NIG_PARAMS))
@pytest.mark.parametrize("mass", [0.5, 0.9, 0.99])
def test_nig_mean_interval_matches_scipy_t_and_simulation(name, mass):
    p = NIG_PARAMS[name]
    lo, hi = cj.nig_mean_interval(**p, mass=mass)
    want = stats.t.interval(mass, 2 * p["alpha"], loc=p["mu"],
                            scale=np.sqrt(p["beta"] / (p["alpha"] * p["kappa"])))
    # Same Student-t quantile (stdtrit vs t.ppf): agree to ~1e-12 relative.
    np.testing.assert_allclose((lo, hi), want, rtol=1e-10)
    # Independently: the simulated marginal of mu falls inside with probability `mass`
    # (binomial SE sqrt(m(1-m)/n)).
    n = 200_000
    mu, _ = _simulate_nig(p, n, seed=2)
    inside = np.mean((mu >= lo) & (mu <= hi))
    assert abs(inside - mass) < Z * np.sqrt(mass * (1 - mass) / n)


def test_sample_lognormal_nig_is_exp_of_the_student_t():
    p = NIG_PARAMS["synthetic prior"]
    rng = np.random.default_rng(5)
    n = 50_000
    draws = cj.sample_lognormal_nig(**{k: np.full(n, v) for k, v in p.items()}, rng=rng)
    df, loc, scale = cj.normal_nig_predictive(**p)
    assert stats.kstest(np.log(draws), stats.t(df, loc, scale).cdf).pvalue > 1e-3


# --------------------------------------------------------------------------- Beta / Gamma
BETA_GRID = [(a, b) for a in (1e-3, 0.1, 1.0, 9.9, 171.9, 1e6) for b in (1e-3, 0.1, 1.0, 17.1, 1e6)]


@pytest.mark.parametrize("mass", [0.5, 0.9, 0.99])
def test_beta_interval_matches_scipy(mass):
    a, b = np.array(BETA_GRID).T
    lo, hi = cj.beta_interval(a, b, mass=mass)
    want_lo, want_hi = stats.beta.interval(mass, a, b)
    # betaincinv and beta.ppf are both Boost's ibeta_inv: agree to ~1e-12 relative; values
    # that underflow (a = 1e-3: q^(1/a) ~ 1e-1300) are 0 in both.
    np.testing.assert_allclose(lo, want_lo, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(hi, want_hi, rtol=1e-9, atol=1e-300)
    assert np.all(lo <= hi)


def test_beta_interval_degenerate_components_are_points():
    lo, hi = cj.beta_interval(np.array([0.0, 5.0, 0.0]), np.array([5.0, 0.0, 0.0]), mass=0.9)
    np.testing.assert_array_equal(lo, [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(hi, [0.0, 1.0, 0.0])


GAMMA_GRID = [(a, b) for a in (1e-2, 0.5, 10.0, 970.0, 1e7) for b in (1e-3, 1.0, 100.0, 2500.0)]


@pytest.mark.parametrize("mass", [0.5, 0.9, 0.99])
def test_gamma_interval_matches_scipy(mass):
    a, b = np.array(GAMMA_GRID).T
    lo, hi = cj.gamma_interval(a, b, mass=mass)
    want_lo, want_hi = stats.gamma.interval(mass, a, scale=1.0 / b)
    np.testing.assert_allclose(lo, want_lo, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(hi, want_hi, rtol=1e-9, atol=1e-300)


def test_gamma_prior_and_posterior():
    a0, b0 = cj.gamma_prior(rate=0.1, strength=10.0)
    assert (a0, b0) == (10.0, 100.0)  # 10 pseudo-events in 100 s: mean rate 0.1/s
    a, b = cj.poisson_gamma_posterior(a0=a0, b0=b0, count=960.0, exposure=2400.0)
    assert (a, b) == (970.0, 2500.0)


# ------------------------------------------------------------------ Gamma-Poisson predictive
@pytest.mark.parametrize("a, b, window_s", [(10.0, 100.0, 60.0), (2.5, 0.5, 1.0),
                                            (970.0, 2500.0, 60.0), (0.3, 2.0, 10.0)])
def test_poisson_gamma_predictive_matches_simulation(a, b, window_s):
    n_nb, p_nb = cj.poisson_gamma_predictive(a=a, b=b, window_s=window_s)
    ref = stats.nbinom(n_nb, p_nb)
    n = 200_000
    rng = np.random.default_rng(7)
    counts = rng.poisson(rng.gamma(a, 1.0 / b, n) * window_s)
    mean, var, _, kurt = ref.stats(moments="mvsk")
    # Mean: SE = sd/sqrt(n).  Variance: SE of a sample variance = var*sqrt((kurt_excess+2)/n).
    assert abs(counts.mean() - mean) < Z * np.sqrt(var / n)
    assert abs(counts.var(ddof=1) - var) < Z * var * np.sqrt((kurt + 2) / n)
    # Whole pmf: chi-square over the support, the upper tail pooled so every cell expects >= 5.
    hi = int(ref.ppf(1 - 1e-4))
    obs = np.bincount(np.minimum(counts, hi), minlength=hi + 1)
    exp = n * np.r_[ref.pmf(np.arange(hi)), ref.sf(hi - 1)]
    keep = exp >= 5
    obs = np.r_[obs[keep], obs[~keep].sum()]
    exp = np.r_[exp[keep], exp[~keep].sum()]
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    assert stats.chisquare(obs, exp).pvalue > 1e-3


# --------------------------------------------------------------------------- latency bins
@pytest.mark.parametrize("median_ms, sigma", [(100.0, 0.6), (3.0, 1.2), (2000.0, 0.3),
                                              (0.01, 0.5), (1e6, 0.8), (80.0, 0.05)])
def test_lognormal_bin_probs_matches_scipy_lognorm(median_ms, sigma):
    probs = cj.lognormal_bin_probs(median_ms=median_ms, sigma=sigma)
    edges = cj.LATENCY_EDGES_MS
    ref = stats.lognorm(s=sigma, scale=median_ms)
    assert probs.shape == (cj.N_LATENCY_BINS,)
    assert np.all(probs >= 0)
    # Sum of 217 non-negative terms that telescope to 1: a few ulps.
    assert abs(probs.sum() - 1.0) < 1e-13
    # Interior bins: CDF differences (ndtr vs lognorm.cdf: ~1e-16 absolute each).
    np.testing.assert_allclose(probs[1:-1], np.diff(ref.cdf(edges[1:-1])), rtol=0, atol=1e-14)
    # Outer bins absorb the tails.
    np.testing.assert_allclose(probs[0], ref.cdf(edges[1]), rtol=0, atol=1e-14)
    np.testing.assert_allclose(probs[-1], ref.sf(edges[-2]), rtol=0, atol=1e-14)


def test_lognormal_bin_probs_broadcasts_and_prior_alpha_scales():
    med = np.array([[10.0], [100.0]])
    sig = np.array([0.3, 0.6, 1.2])
    probs = cj.lognormal_bin_probs(median_ms=med, sigma=sig)
    assert probs.shape == (2, 3, cj.N_LATENCY_BINS)
    np.testing.assert_allclose(probs[1, 1], cj.lognormal_bin_probs(median_ms=100.0, sigma=0.6))
    alpha = cj.dirichlet_prior_alpha(median_ms=100.0, sigma=0.6, strength=10.0)
    assert np.all(alpha > 0)  # the floor keeps the Dirichlet proper
    np.testing.assert_allclose(alpha.sum(), 10.0, rtol=1e-12, atol=cj.N_LATENCY_BINS * 1e-9)


def test_bin_index_edges_and_out_of_range():
    e = cj.LATENCY_EDGES_MS
    idx = cj.bin_index(np.array([0.0, 0.01, e[0], e[1], e[5] * 1.0001, e[-1], 1e9]))
    np.testing.assert_array_equal(idx, [0, 0, 0, 1, 5, cj.N_LATENCY_BINS - 1,
                                        cj.N_LATENCY_BINS - 1])


# ------------------------------------------------------------------ median of a Dirichlet histogram
def _alphas():
    rng = np.random.default_rng(2024)
    prior = cj.dirichlet_prior_alpha(median_ms=100.0, sigma=0.6, strength=10.0)
    uni = np.bincount(cj.bin_index(np.exp(np.log(80.0) + 0.5 * rng.standard_normal(200))),
                      minlength=cj.N_LATENCY_BINS)
    two_modes = np.r_[np.exp(np.log(20.0) + 0.2 * rng.standard_normal(100)),
                      np.exp(np.log(500.0) + 0.2 * rng.standard_normal(100))]
    bi = np.bincount(cj.bin_index(two_modes), minlength=cj.N_LATENCY_BINS)
    return {"prior only": prior, "unimodal data": prior + uni, "bimodal data": prior + bi}


ALPHAS = _alphas()


@pytest.mark.parametrize("name", list(ALPHAS))
def test_dirichlet_median_quantiles_matches_monte_carlo(name):
    alpha = ALPHAS[name]
    qs = [0.05, 0.5, 0.95]
    got = np.log(cj.dirichlet_median_quantiles(alpha, qs))
    n = 20_000
    draws = np.random.default_rng(99).dirichlet(alpha, n)
    medians = np.sort(np.log(cj.histogram_quantiles(draws, [0.5])[:, 0]))
    for q, g in zip(qs, got):
        # Distribution-free CI of the q-quantile from order statistics: ranks
        # n*q +- Z*sqrt(n q(1-q)) (binomial SE of the count below the quantile). The function
        # is exact at bin edges and interpolates inside the bin holding the quantile, so it may
        # differ from the true quantile by less than one bin width (in log ms).
        half = Z * np.sqrt(n * q * (1 - q))
        lo = medians[max(int(np.floor(n * q - half)), 0)]
        hi = medians[min(int(np.ceil(n * q + half)), n - 1)]
        assert lo - LOG_BIN_WIDTH <= g <= hi + LOG_BIN_WIDTH, (name, q, g, lo, hi)


@pytest.mark.parametrize("name", list(ALPHAS))
def test_dirichlet_median_cdf_is_exact_at_bin_edges(name):
    """P(median <= edge_{k+1}) = P(Beta(A_k, A - A_k) >= 1/2) (Dirichlet aggregation)."""
    alpha = ALPHAS[name]
    cum = np.cumsum(alpha)
    total = cum[-1]
    g = stats.beta.sf(0.5, cum[:-1], total - cum[:-1])  # upper edges of bins 0..B-2
    inner = np.flatnonzero((g > 0.01) & (g < 0.99))
    assert inner.size >= 1
    # At level q = g_k the quantile is the edge itself (up to ulps of the log interpolation).
    got = cj.dirichlet_median_quantiles(alpha, g[inner])
    np.testing.assert_allclose(got, cj.LATENCY_EDGES_MS[inner + 1], rtol=1e-12)
    # And the aggregation identity itself, by simulation (binomial SE sqrt(g(1-g)/n)).
    n = 20_000
    draws = np.random.default_rng(17).dirichlet(alpha, n)
    medians = cj.histogram_quantiles(draws, [0.5])[:, 0]
    for k in inner:
        frac = np.mean(medians <= cj.LATENCY_EDGES_MS[k + 1])
        assert abs(frac - g[k]) < Z * np.sqrt(g[k] * (1 - g[k]) / n), (name, k)


def test_dirichlet_median_interval_shrinks_like_inverse_sqrt_n():
    """The posterior of the median concentrates: its 90% interval shrinks ~ 1/sqrt(n).

    Asymptotically the posterior median is normal with sd sqrt(pi/2)*sigma/sqrt(n) on the log
    scale, so 100x the data must make the interval ~10x narrower. The exact ratio (Monte-Carlo
    of Dirichlet draws' histogram medians, 4000 draws, for this alpha) is 10.3; the +-20% band
    covers that finite-n deviation and the MC noise of the reference (<3% per width).
    """
    prior = cj.dirichlet_prior_alpha(median_ms=100.0, sigma=0.6, strength=10.0)
    p = cj.lognormal_bin_probs(median_ms=80.0, sigma=0.5)
    widths = {}
    for n in (1e4, 1e6):
        lo, hi = cj.dirichlet_median_quantiles(prior + n * p, [0.05, 0.95])
        widths[n] = np.log(hi / lo)
    ratio = widths[1e4] / widths[1e6]
    assert 8.0 < ratio < 12.0, (
        f"90% interval of the median: {widths[1e4] / LOG_BIN_WIDTH:.3f} bins at n=1e4, "
        f"{widths[1e6] / LOG_BIN_WIDTH:.3f} bins at n=1e6 (ratio {ratio:.2f}, expected ~10)")


def test_dirichlet_median_quantiles_both_code_paths_agree_exactly():
    stack = np.stack(list(ALPHAS.values()))  # (3, B): all-edges path
    qs = [0.05, 0.25, 0.5, 0.75, 0.95]
    small = cj.dirichlet_median_quantiles(stack, qs)
    reps = 400_000 // (3 * cj.N_LATENCY_BINS) + 2  # > 400k elements: binary-search path
    tiled = np.tile(stack, (reps, 1))
    assert tiled.size > 400_000
    big = cj.dirichlet_median_quantiles(tiled, qs)
    np.testing.assert_array_equal(big, np.tile(small, (reps, 1)))
    # leading dims are kept, quantiles go last
    assert cj.dirichlet_median_quantiles(stack.reshape(3, 1, -1), qs).shape == (3, 1, len(qs))


def test_one_repeated_dirichlet_gives_every_row_what_a_mixed_stack_gives():
    stack = np.stack(list(ALPHAS.values()))  # distinct rows: the general path
    qs = [0.05, 0.5, 0.95]
    mixed = cj.dirichlet_median_quantiles(stack, qs)
    for i, alpha in enumerate(stack):  # one row repeated: computed once
        same = cj.dirichlet_median_quantiles(np.broadcast_to(alpha, (5, 2, len(alpha))), qs)
        assert same.shape == (5, 2, len(qs))
        np.testing.assert_array_equal(same, np.broadcast_to(mixed[i], same.shape))


def test_dirichlet_median_quantiles_are_monotone_in_q():
    qs = np.linspace(0.01, 0.99, 41)
    for alpha in ALPHAS.values():
        out = cj.dirichlet_median_quantiles(alpha, qs)
        assert np.all(np.diff(out) >= 0)


# --------------------------------------------------------------------------- sampling
def _chisquare_pooled(obs, exp):
    """Chi-square with cells expecting < 5 pooled into one."""
    keep = exp >= 5
    obs2, exp2 = obs[keep], exp[keep]
    if (~keep).any() and exp[~keep].sum() > 0:
        obs2, exp2 = np.r_[obs2, obs[~keep].sum()], np.r_[exp2, exp[~keep].sum()]
    return stats.chisquare(obs2, exp2 * obs2.sum() / exp2.sum()).pvalue


@pytest.mark.parametrize("name", ["lognormal 100ms", "bimodal posterior mean",
                                  "unnormalised alpha"])
def test_sample_histogram_goodness_of_fit(name):
    probs = {
        "lognormal 100ms": cj.lognormal_bin_probs(median_ms=100.0, sigma=0.6),
        "bimodal posterior mean": cj.dirichlet_mean(ALPHAS["bimodal data"]),
        "unnormalised alpha": ALPHAS["bimodal data"],
    }[name]
    p = probs / probs.sum()
    n = 50_000
    x = cj.sample_histogram(np.broadcast_to(probs, (n, probs.size)), np.random.default_rng(3))
    assert x.shape == (n,)
    k = np.clip(np.searchsorted(cj.LOG_EDGES, np.log(x), side="right") - 1, 0, p.size - 1)
    assert _chisquare_pooled(np.bincount(k, minlength=p.size), n * p) > 1e-3
    # inside its bin a draw is log-uniform
    u = (np.log(x) - cj.LOG_EDGES[k]) / (cj.LOG_EDGES[k + 1] - cj.LOG_EDGES[k])
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    # zero-probability bins are never drawn (up to the floor in the alpha case)
    assert np.all(p[np.unique(k)] > 0)


def test_sample_histogram_rows_use_their_own_probs():
    p1 = cj.lognormal_bin_probs(median_ms=10.0, sigma=0.3)
    p2 = cj.lognormal_bin_probs(median_ms=1000.0, sigma=0.3)
    n = 20_000
    probs = np.where(np.arange(n)[:, None] % 2 == 0, p1, p2)
    x = cj.sample_histogram(probs, np.random.default_rng(4))
    ref1 = stats.lognorm(s=0.3, scale=10.0)
    ref2 = stats.lognorm(s=0.3, scale=1000.0)
    # The log-uniform within-bin spread is a KS distance of at most the largest bin mass of
    # the reference (~0.04) times the within-bin CDF mismatch; compare binned instead.
    for x_, ref in ((x[::2], ref1), (x[1::2], ref2)):
        k = np.clip(np.searchsorted(cj.LOG_EDGES, np.log(x_), side="right") - 1, 0, p1.size - 1)
        p = cj.lognormal_bin_probs(median_ms=ref.median(), sigma=0.3)
        assert _chisquare_pooled(np.bincount(k, minlength=p.size), len(x_) * p) > 1e-3


@pytest.mark.parametrize("probs", [[0.5, 0.3, 0.0, 0.2], [2.0, 1.0, 0.0, 7.0],
                                   [1e-3, 0.999, 0.0, 0.0], [1.0]])
def test_sample_categorical_goodness_of_fit(probs):
    probs = np.asarray(probs)
    p = probs / probs.sum()
    n = 50_000
    idx = cj.sample_categorical(np.broadcast_to(probs, (n, probs.size)), np.random.default_rng(8))
    counts = np.bincount(idx, minlength=p.size)
    assert counts.size == p.size  # never out of range
    assert np.all(counts[p == 0] == 0)
    if (p > 0).sum() > 1:
        assert stats.chisquare(counts[p > 0], n * p[p > 0]).pvalue > 1e-3


# --------------------------------------------------------------------------- confidence
@pytest.mark.parametrize("post, prior, want", [
    (0.0, 1.0, 1.0),        # a point posterior: full confidence
    (1.0, 1.0, 0.0),        # nothing learned
    (0.25, 1.0, 0.75),
    (2.0, 1.0, 0.0),        # wider than the prior: clipped, not negative
    (1.0, 0.0, 0.0),        # degenerate prior width: 1 - inf -> clipped to 0
    (0.0, 0.0, 0.0),        # 0/0 -> NaN -> 0
    (np.nan, 1.0, 0.0),     # undefined posterior width -> 0
    (np.inf, 1.0, 0.0),
    (1.0, np.inf, 1.0),     # infinitely wide prior
])
def test_contraction_edge_cases(post, prior, want):
    got = cj.contraction(post, prior)
    assert got == want
    assert 0.0 <= got <= 1.0


def test_contraction_broadcasts():
    got = cj.contraction(np.array([[0.5], [0.1]]), np.array([1.0, 2.0]))
    np.testing.assert_allclose(got, [[0.5, 0.75], [0.9, 0.95]])


def test_tail_probs():
    assert cj.tail_probs(0.9) == pytest.approx((0.05, 0.95))


@pytest.mark.parametrize("p", [0.01, 0.2, 0.5])
def test_beta_width_stabilised_shrinks_like_inverse_sqrt_n(p):
    """On the arcsin(sqrt p) scale Var ~ 1/(4n), so the 90% width is ~ z_0.95/sqrt(n) at any p."""
    ns = np.array([1e3, 4e3, 1.6e4, 6.4e4, 2.56e5])
    a, b = 0.5 + ns * p, 0.5 + ns * (1 - p)
    w = cj.beta_width_stabilised(a, b, mass=0.9)
    assert np.all(np.diff(w) < 0)
    # Quadrupling n halves the width; the delta-method error is O(1/(n p (1-p))), i.e. below
    # 1/(1000*0.01*0.99) = 10% at the smallest n and shrinking 4x per step.
    ratio = w[:-1] / w[1:]
    rel_err = 1.0 / (ns[:-1] * p * (1 - p))
    assert np.all(np.abs(ratio - 2.0) < 2.0 * rel_err), ratio
    np.testing.assert_allclose(w[-1] * np.sqrt(ns[-1]), stats.norm.ppf(0.95),
                               rtol=1.0 / (ns[-1] * p * (1 - p)) + 1e-3)


def test_beta_width_stabilised_is_comparable_across_p_raw_width_is_not():
    n = 1e4
    ps = np.array([0.01, 0.2, 0.5])
    a, b = 0.5 + n * ps, 0.5 + n * (1 - ps)
    stab = cj.beta_width_stabilised(a, b, mass=0.9)
    lo, hi = cj.beta_interval(a, b, mass=0.9)
    raw = hi - lo
    assert stab.max() / stab.min() < 1.02  # same information -> same width
    assert raw.max() / raw.min() > 4.0     # raw widths track sqrt(p(1-p)) ~ 5x apart


def test_beta_median_and_dirichlet_mean():
    np.testing.assert_allclose(cj.beta_median([2.0, 9.9], [5.0, 0.1]),
                               stats.beta.median([2.0, 9.9], [5.0, 0.1]), rtol=1e-10)
    np.testing.assert_array_equal(cj.dirichlet_mean(np.array([[1.0, 3.0], [0.0, 0.0]])),
                                  [[0.25, 0.75], [0.0, 0.0]])


def test_decay_evidence_k_steps():
    assert cj.decay_evidence(8.0, decay=0.5, k=3) == 1.0
    assert cj.decay_evidence(8.0, decay=0.0, k=100) == 8.0
    assert cj.decay_evidence(8.0, decay=1.0) == 0.0


def test_dirichlet_categorical_posterior_matches_scipy_mean_and_batch_counts():
    rng = np.random.default_rng(5)
    alpha0 = np.array([0.5, 2.0, 1.0, 3.5])
    draws = rng.choice(4, size=400, p=[0.1, 0.2, 0.3, 0.4])
    counts = np.bincount(draws, minlength=4)
    # one batch equals the events one at a time (the update is linear in the counts)
    alpha = alpha0
    for d in draws:
        alpha = cj.dirichlet_categorical_posterior(alpha0=alpha, counts=np.eye(4)[d])
    np.testing.assert_allclose(alpha, cj.dirichlet_categorical_posterior(alpha0=alpha0,
                                                                         counts=counts))
    np.testing.assert_allclose(cj.dirichlet_mean(alpha), stats.dirichlet(alpha).mean())
