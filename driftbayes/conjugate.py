"""Pure conjugate maths on sufficient statistics.

Every function here is keyword-friendly, stateless and vectorised: inputs broadcast over any
leading dims (``endpoint``, ``persona``, …) and new dims go last. The learner keeps *evidence*
(decay-weighted sufficient statistics) and adds it to the synthetic prior's pseudo-statistics,
so each posterior is ``prior + evidence`` in natural-parameter space.

Models
------
* latency shape — categorical over fine log-spaced bins, Dirichlet prior whose base measure is
  the synthetic log-normal; the median's credible interval is exact through the Dirichlet
  aggregation property (``F(edge_k) ~ Beta(A_k, A - A_k)``).
* think-time shape — the same, on coarser bins (:data:`THINK_EDGES_MS`).
* latency summary / think time — log-normal, Normal-Inverse-Gamma on ``(μ, σ²)`` of the log.
* status mix — categorical, Dirichlet; error rates are Beta marginals.
* request frequency — Poisson counts with exposure, Gamma prior, negative-binomial predictive.
* transitions — one categorical row per source state, Dirichlet rows.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special

#: Latency bin edges in milliseconds: 32 log-spaced bins per decade from 0.05 ms to 300 s.
#: Latencies outside the range fall into the first / last bin.
LATENCY_EDGES_MS = np.geomspace(0.05, 3.0e5, 218)
LOG_EDGES = np.log(LATENCY_EDGES_MS)
N_LATENCY_BINS = len(LATENCY_EDGES_MS) - 1
#: Think-time bin edges in milliseconds: 16 log-spaced bins per decade from 1 ms to 10^6.5 ms
#: (53 min, beyond the default 30-min ``session_gap``), 104 bins. Coarser than latency's: a
#: think time spans more decades and 16 per decade (bins 15% wide) keeps the state small.
THINK_EDGES_MS = np.geomspace(1.0, 10**6.5, 105)
THINK_LOG_EDGES = np.log(THINK_EDGES_MS)
N_THINK_BINS = len(THINK_EDGES_MS) - 1

# Pseudo-count floor so every Dirichlet component stays strictly positive (proper posterior).
_ALPHA_FLOOR = 1e-9


# --------------------------------------------------------------------------- decay & confidence
def decay_evidence(evidence, *, decay: float, k: int = 1):
    """Stabilised exponential forgetting of evidence toward the prior.

    ``post = prior + (1-λ)·(post − prior)`` applied ``k`` times is ``evidence·(1-λ)^k``.
    """
    return evidence * (1.0 - decay) ** k


#: Share of a cell's evidence kept when its window contradicts it (adaptive forgetting). A
#: change keeps being detected window after window until the evidence agrees with the new
#: regime, so a real change is followed in a few windows; a false alarm costs one window of
#: extra forgetting.
CHANGEPOINT_KEEP = 0.25


def prior_weight(n_eff, *, strength, fade: float):
    """Share of the synthetic prior a cell keeps (power-prior discounting): ``1 / (1 + n_eff /
    (fade · strength))``. The prior, worth ``strength`` pseudo-observations on a cold cell, is
    worth half that once the cell's decayed ``n_eff`` reaches ``fade · strength`` and fades like
    ``1/n_eff`` beyond, so tails follow the data while thin cells stay close to the prior.
    ``fade = 0`` keeps the whole prior. With ``fade ≥ 1`` the prior's weight plus ``n_eff``
    never falls as ``n_eff`` grows (more data never widens an interval).

    Examples
    --------
    >>> float(prior_weight(0.0, strength=10.0, fade=1.0)), float(prior_weight(10.0, strength=10.0,
    ...                                                                      fade=1.0))
    (1.0, 0.5)
    """
    n = np.maximum(np.asarray(n_eff, dtype=float), 0.0)
    if fade <= 0:
        return np.ones_like(n)
    return 1.0 / (1.0 + n / (fade * np.asarray(strength, dtype=float)))


def _two_sided_p_threshold(z: float) -> float:
    return float(2.0 * special.ndtr(-z))


def mean_shift_changed(n, sx, sxx, n_w, sx_w, *, z: float, min_n: float = 5.0):
    """Whether a window's mean (of log values) contradicts the evidence: a two-sample z-test
    with the evidence's spread, ``|m_w − m| / (sd·√(1/n_w + 1/n)) > z``.

    Needs ``min_n`` evidence and 3 window observations; arrays of any common shape.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        m, m_w = sx / n, sx_w / n_w
        var = np.maximum(sxx / n - m * m, 1e-6)
        stat = np.abs(m_w - m) / np.sqrt(var * (1.0 / n_w + 1.0 / n))
    return (n >= min_n) & (n_w >= 3) & (stat > z)


def proportion_changed(k, n, k_w, n_w, *, z: float, min_n: float = 5.0):
    """Whether a window's count ``k_w`` of ``n_w`` contradicts the evidence's proportion
    ``k / n``: two-sided binomial tail probability below that of a z-score ``z``."""
    from scipy import stats

    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.clip((k + 0.5) / (n + 1.0), 1e-6, 1 - 1e-6)
        lo = stats.binom.cdf(k_w, n_w, p)
        hi = stats.binom.sf(k_w - 1, n_w, p)
    return (n >= min_n) & (n_w >= 1) & (2 * np.minimum(lo, hi) < _two_sided_p_threshold(z))


def rate_changed(count, exposure, count_w, exposure_w, *, z: float, min_n: float = 5.0):
    """Whether a window's request count contradicts the evidence's rate: two-sided Poisson
    tail probability below that of a z-score ``z``."""
    count_w = np.floor(np.asarray(count_w, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = (count + 0.5) / exposure * exposure_w
        # scipy.stats.poisson's cdf and sf, without its per-call overhead
        lo = special.pdtr(count_w, mu)
        hi = np.where(count_w >= 1, special.pdtrc(count_w - 1, mu), 1.0)
    return ((count >= min_n) & (exposure_w > 0)
            & (2 * np.minimum(lo, hi) < _two_sided_p_threshold(z)))


def contraction(width_post, width_prior):
    """Confidence as credible-interval contraction ``1 − width_post / width_prior`` in [0, 1]."""
    width_post = np.asarray(width_post, dtype=float)
    width_prior = np.asarray(width_prior, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = 1.0 - width_post / width_prior
    return np.clip(np.nan_to_num(c, nan=0.0), 0.0, 1.0)


def tail_probs(mass: float) -> tuple[float, float]:
    """Lower and upper quantile levels of an equal-tailed interval of probability ``mass``."""
    return (1.0 - mass) / 2.0, (1.0 + mass) / 2.0


# --------------------------------------------------------------------------- latency histogram
def lognormal_bin_probs(*, median_ms, sigma, log_edges=LOG_EDGES):
    """Probability of each latency bin under a log-normal; the outer bins absorb the tails.

    Returns shape ``(..., n_bins)`` for broadcastable ``median_ms`` and ``sigma``.
    """
    mu = np.log(np.asarray(median_ms, dtype=float))[..., None]
    sigma = np.asarray(sigma, dtype=float)[..., None]
    cdf = special.ndtr((log_edges - mu) / sigma)
    cdf[..., 0] = 0.0
    cdf[..., -1] = 1.0
    return np.diff(cdf, axis=-1)


def dirichlet_prior_alpha(*, median_ms, sigma, strength, log_edges=LOG_EDGES):
    """Dirichlet pseudo-counts with the synthetic log-normal as base measure."""
    probs = lognormal_bin_probs(median_ms=median_ms, sigma=sigma, log_edges=log_edges)
    return np.asarray(strength, dtype=float)[..., None] * probs + _ALPHA_FLOOR


def bin_index(value_ms, edges=LATENCY_EDGES_MS):
    """Bin of each value (ms) among ``edges``; out-of-range values go to the outer bins."""
    idx = np.searchsorted(edges, value_ms, side="right") - 1
    return np.clip(idx, 0, len(edges) - 2)


def _median_cdf_at_edges(cum, total):
    """P(median ≤ upper edge of bin k) = P(Beta(A_k, A − A_k) ≥ ½) = I_½(A − A_k, A_k).

    A Beta(a, b) is sub-Gaussian with variance proxy 1/(4(a+b+1)) (Marchal & Arbel 2017), so
    where the mean CDF sits more than 9 proxy standard deviations from ½ the probability is 0
    or 1 to within 3e-18; the incomplete beta function is evaluated only on the other edges.
    """
    cum, total = np.broadcast_arrays(np.asarray(cum, float), np.asarray(total, float))
    with np.errstate(invalid="ignore", divide="ignore"):
        m = cum / total
    g = (m >= 0.5).astype(float)
    active = np.abs(m - 0.5) < 4.5 / np.sqrt(total + 1.0)
    active &= (cum > 0) & (cum < total)
    if active.any():
        a, t = cum[active], total[active]
        g[active] = special.betainc(t - a, a, 0.5)
    g[cum <= 0] = 0.0
    g[cum >= total] = 1.0
    return g


def dirichlet_median_quantiles(alpha, qs, *, log_edges=LOG_EDGES):
    """Quantiles of the posterior distribution of the *median latency* (ms).

    Uses the aggregation property of the Dirichlet: the CDF value at a bin edge is Beta
    distributed, so ``P(median ≤ edge)`` is a regularised incomplete beta function. A vectorised
    binary search over bins finds each quantile, interpolated linearly in log latency.

    Parameters
    ----------
    alpha : array of shape (..., n_bins)
        Dirichlet parameters.
    qs : sequence of float
        Quantile levels in (0, 1).

    Returns
    -------
    ndarray of shape (..., len(qs))
    """
    alpha = np.asarray(alpha, dtype=float)
    n_bins = alpha.shape[-1]
    flat = alpha.reshape(-1, n_bins)
    if len(flat) > 1 and (flat == flat[:1]).all():
        # one Dirichlet repeated (every endpoint's synthetic prior): computed once; each row's
        # quantiles depend on that row alone, so this is exactly what the stack would give
        one = dirichlet_median_quantiles(flat[:1], qs, log_edges=log_edges)
        return np.broadcast_to(one, (len(flat), len(qs))).reshape(
            alpha.shape[:-1] + (len(qs),)).copy()
    cum = np.cumsum(alpha, axis=-1)
    flat_cum = cum.reshape(-1, n_bins)
    flat_tot = flat_cum[:, -1]
    if flat_cum.size <= 400_000:  # small: evaluate every edge at once (fewest numpy calls)
        g_all = _median_cdf_at_edges(flat_cum, flat_tot[:, None])
        ks = [np.minimum((g_all < q).sum(axis=-1), n_bins - 1) for q in qs]
        g_at = lambda k: np.take_along_axis(g_all, k[:, None], -1)[:, 0]  # noqa: E731
    else:  # large: vectorised binary search, O(log n_bins) evaluations per cell
        rows = np.arange(flat_cum.shape[0])
        g_at = lambda k: _median_cdf_at_edges(flat_cum[rows, k], flat_tot)  # noqa: E731
        ks = []
        for q in qs:
            lo = np.zeros(len(rows), dtype=np.int64)
            hi = np.full(len(rows), n_bins - 1, dtype=np.int64)
            while np.any(lo < hi):
                mid = (lo + hi) // 2
                right = g_at(mid) < q
                lo, hi = np.where(right, mid + 1, lo), np.where(right, hi, mid)
            ks.append(lo)
    # Inside bin k the predictive spreads the bin's mass evenly in log latency, so the CDF at a
    # fraction u of the bin is Beta with pseudo-count c = cum_{k-1} + u·alpha_k: solve
    # I_½(A − c, c) = q for c (monotone) by the Illinois variant of regula falsi.
    q = np.repeat(np.asarray(qs, dtype=float)[None, :], flat_cum.shape[0], 0).ravel()
    k = np.stack(ks, axis=1).ravel()
    tot = np.repeat(flat_tot, len(qs))
    row = np.repeat(np.arange(flat_cum.shape[0]), len(qs))
    c_hi = flat_cum[row, k]
    c_lo = np.where(k > 0, flat_cum[row, np.maximum(k - 1, 0)], 0.0)
    # on the probit scale the CDF is close to linear in c, so regula falsi needs few steps
    def probit(g):
        return special.ndtri(np.clip(g, 1e-300, 1 - 1e-16))

    z = probit(q)
    f_lo = np.where(k > 0, probit(_median_cdf_at_edges(c_lo, tot)), probit(0.0)) - z
    f_hi = probit(_median_cdf_at_edges(c_hi, tot)) - z
    c = _illinois_root(c_lo, c_hi, f_lo, f_hi,
                       lambda x, i: probit(_median_cdf_at_edges(x, tot[i])) - z[i])
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.clip(np.nan_to_num((c - c_lo) / (c_hi - c_lo), nan=0.5), 0.0, 1.0)
    log_ms = log_edges[k] + frac * (log_edges[k + 1] - log_edges[k])
    return np.exp(log_ms).reshape(alpha.shape[:-1] + (len(qs),))


def _illinois_root(a, b, fa, fb, f, *, rtol=1e-5, ftol=1e-10, max_iter=60):
    """Roots of increasing functions bracketed by ``[a, b]`` (``fa ≤ 0 ≤ fb``), vectorised.

    Illinois regula falsi; only unconverged elements are re-evaluated. ``f(x, index)`` gets the
    trial points and the indices of the elements they belong to.
    """
    a, b = np.array(a, dtype=float), np.array(b, dtype=float)
    fa, fb = np.array(fa, dtype=float), np.array(fb, dtype=float)
    width0 = np.maximum(b - a, 1e-300)
    root = np.where(fa >= 0, a, b)
    todo = np.flatnonzero((fa < 0) & (fb > 0))
    side = np.zeros(len(a))
    for _ in range(max_iter):
        if not len(todo):
            break
        ai, bi, fai, fbi = a[todo], b[todo], fa[todo], fb[todo]
        c = np.clip((ai * fbi - bi * fai) / (fbi - fai), ai, bi)
        fc = f(c, todo)
        root[todo] = c
        left = fc < 0  # the root lies in [c, b]
        s_old = side[todo]
        a[todo] = np.where(left, c, ai)
        fa[todo] = np.where(left, fc, np.where(s_old == -1, fai / 2, fai))
        b[todo] = np.where(left, bi, c)
        fb[todo] = np.where(left, np.where(s_old == 1, fbi / 2, fbi), fc)
        side[todo] = np.where(left, 1, -1)
        done = (np.abs(fc) <= ftol) | (b[todo] - a[todo] <= rtol * width0[todo])
        todo = todo[~done]
    return root


def histogram_quantiles(probs, qs, *, log_edges=LOG_EDGES):
    """Quantiles (ms) of the histogram predictive with log-uniform mass inside each bin.

    ``probs`` has shape (..., n_bins) and sums to one on the last axis; every quantile of every
    row at once (rows in chunks, so memory stays bounded).
    """
    probs = np.asarray(probs, dtype=float)
    qs = np.asarray(qs, dtype=float)
    n_bins = probs.shape[-1]
    flat = probs.reshape(-1, n_bins)
    out = np.empty((len(flat), len(qs)))
    step = max(1, 4_000_000 // max(len(qs) * n_bins, 1))
    for lo in range(0, len(flat), step):
        p = flat[lo:lo + step]
        cdf = np.cumsum(p, axis=-1)
        cdf = cdf / cdf[:, -1:]
        k = np.minimum((cdf[:, None, :] < qs[None, :, None]).sum(axis=-1), n_bins - 1)
        c_hi = np.take_along_axis(cdf, k, -1)
        p_k = np.take_along_axis(p, k, -1) / np.maximum(np.sum(p, axis=-1), 1e-300)[:, None]
        c_lo = c_hi - p_k
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.clip(np.nan_to_num((qs[None, :] - c_lo) / p_k, nan=0.5), 0.0, 1.0)
        out[lo:lo + step] = np.exp(log_edges[k] + frac * (log_edges[k + 1] - log_edges[k]))
    return out.reshape(probs.shape[:-1] + (len(qs),))


def sample_histogram(probs, rng: np.random.Generator, *, log_edges=LOG_EDGES):
    """One latency (ms) per row of ``probs`` (shape (n, n_bins)): draw a bin, then log-uniform."""
    probs = np.atleast_2d(probs)
    u = rng.random(probs.shape[0])
    v = rng.random(probs.shape[0])
    return histogram_from_cdf(np.cumsum(probs, axis=-1), u, v, log_edges=log_edges)


def histogram_from_cdf(cdf, u, v, *, log_edges=LOG_EDGES):
    """Latencies (ms) from uniforms: bin by inverse CDF (``u``), then log-uniform inside it
    (``v``). ``cdf`` is one cumulative histogram (shared) or one per draw. The one latency
    predictive: :func:`sample_histogram` and the mock server's cached CDFs both use it."""
    k = categorical_from_cdf(cdf, u)
    return np.exp(log_edges[k] + v * (log_edges[k + 1] - log_edges[k]))


def categorical_from_cdf(cdf, u) -> np.ndarray:
    """Inverse CDF: per uniform ``u``, the first index whose cumulative weight reaches
    ``u · total`` (``cdf``: one cumulative row, shared, or one row per uniform)."""
    cdf, u = np.asarray(cdf, dtype=float), np.asarray(u, dtype=float)
    if cdf.ndim == 1:
        k = np.searchsorted(cdf, u * cdf[-1], side="left")
    else:
        k = (cdf < (u * cdf[:, -1])[:, None]).sum(axis=-1)
    return np.minimum(k, cdf.shape[-1] - 1)


# --------------------------------------------------------------------------- Normal-Inverse-Gamma
class NIG(NamedTuple):
    """Normal-Inverse-Gamma parameters of a log-normal's log location and scale."""

    mu: np.ndarray
    kappa: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray


def nig_prior(*, median_ms, sigma, strength):
    """NIG hyper-parameters ``(mu, kappa, alpha, beta)`` for a synthetic log-normal.

    ``strength`` pseudo-observations at log-median ``log(median_ms)`` with log-scale
    spread ``sigma``: ``kappa = strength``, ``alpha = strength/2``, ``beta = strength·sigma²/2``.
    """
    strength = np.asarray(strength, dtype=float)
    mu = np.log(np.asarray(median_ms, dtype=float))
    sigma = np.asarray(sigma, dtype=float)
    return NIG(mu, strength, strength / 2.0, strength * sigma**2 / 2.0)


def normal_nig_posterior(*, mu0, kappa0, alpha0, beta0, n, sx, sxx):
    """Posterior NIG parameters from (weighted) sufficient statistics of log values.

    Natural-parameter form, valid for fractional (decay-weighted) counts and ``n = 0``:
    ``kappa = kappa0 + n``, ``mu = (kappa0·mu0 + Σx)/kappa``, ``alpha = alpha0 + n/2``,
    ``beta = beta0 + (Σx² + kappa0·mu0² − kappa·mu²)/2``.
    """
    kappa = kappa0 + n
    mu = (kappa0 * mu0 + sx) / kappa
    alpha = alpha0 + n / 2.0
    beta = beta0 + 0.5 * np.maximum(sxx + kappa0 * mu0**2 - kappa * mu**2, 0.0)
    return NIG(mu, kappa, alpha, beta)


def nig_mean_interval(*, mu, kappa, alpha, beta, mass):
    """Equal-tailed credible interval of ``mu`` (Student-t marginal, df = 2·alpha)."""
    _, hi = tail_probs(mass)
    half = special.stdtrit(2.0 * alpha, hi) * np.sqrt(beta / (alpha * kappa))
    return mu - half, mu + half


def normal_nig_predictive(*, mu, kappa, alpha, beta):
    """Student-t predictive of a new log value: ``(df, loc, scale)``."""
    return 2.0 * alpha, mu, np.sqrt(beta * (kappa + 1.0) / (alpha * kappa))


def sample_lognormal_nig(*, mu, kappa, alpha, beta, rng: np.random.Generator):
    """Predictive draws on the original scale: ``exp(Student-t)``, one per parameter row."""
    df, loc, scale = normal_nig_predictive(mu=mu, kappa=kappa, alpha=alpha, beta=beta)
    return np.exp(loc + scale * rng.standard_t(df))


# --------------------------------------------------------------------------- Dirichlet / Beta
def beta_interval(a, b, *, mass):
    """Equal-tailed interval of Beta(a, b); degenerate components give a point at 0 or 1."""
    lo_q, hi_q = tail_probs(mass)
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a_ = np.maximum(a, 1e-300)
    b_ = np.maximum(b, 1e-300)
    lo = special.betaincinv(a_, b_, lo_q)
    hi = special.betaincinv(a_, b_, hi_q)
    lo = np.where(a <= 0, 0.0, np.where(b <= 0, 1.0, lo))
    hi = np.where(a <= 0, 0.0, np.where(b <= 0, 1.0, hi))
    return lo, hi


def beta_width_stabilised(a, b, *, mass):
    """Interval width of a probability on the variance-stabilising ``arcsin(√p)`` scale.

    On this scale a Beta's interval width shrinks like ``1/√n`` wherever the probability sits,
    so contraction against a prior concentrated near 0 (a low synthetic error rate) measures
    information, not distance from the prior.
    """
    lo, hi = beta_interval(a, b, mass=mass)
    return np.arcsin(np.sqrt(hi)) - np.arcsin(np.sqrt(lo))


def beta_median(a, b):
    """Posterior median of Beta(a, b)."""
    a_ = np.maximum(np.asarray(a, dtype=float), 1e-300)
    b_ = np.maximum(np.asarray(b, dtype=float), 1e-300)
    return special.betaincinv(a_, b_, 0.5)


def dirichlet_categorical_posterior(*, alpha0, counts):
    """Dirichlet posterior of a categorical: ``alpha0 + counts`` (counts per category, last
    axis; decay-weighted counts are fine: the update is linear in them)."""
    return np.asarray(alpha0, dtype=float) + np.asarray(counts, dtype=float)


def dirichlet_mean(alpha):
    """Mean of a Dirichlet along the last axis (the one-draw categorical predictive)."""
    alpha = np.asarray(alpha, dtype=float)
    total = alpha.sum(axis=-1, keepdims=True)
    return np.divide(alpha, total, out=np.zeros_like(alpha), where=total > 0)


def sample_categorical(probs, rng: np.random.Generator):
    """One index per row of ``probs`` (shape (n, k)), by inverse CDF."""
    probs = np.atleast_2d(probs)
    return categorical_from_cdf(np.cumsum(probs, axis=-1), rng.random(probs.shape[0]))


# --------------------------------------------------------------------------- Gamma-Poisson
def gamma_prior(*, rate, strength):
    """Gamma(shape, rate) pseudo-statistics worth ``strength`` events at ``rate`` events/s."""
    strength = np.asarray(strength, dtype=float)
    return strength, strength / np.asarray(rate, dtype=float)


def poisson_gamma_posterior(*, a0, b0, count, exposure):
    """Gamma posterior of a Poisson rate: ``(a0 + Σcount, b0 + Σexposure)``."""
    return a0 + count, b0 + exposure


def gamma_interval(a, b, *, mass):
    """Equal-tailed interval of the rate under Gamma(shape a, rate b)."""
    lo_q, hi_q = tail_probs(mass)
    return special.gammaincinv(a, lo_q) / b, special.gammaincinv(a, hi_q) / b


def poisson_gamma_predictive(*, a, b, window_s):
    """Negative-binomial predictive of the count in a window: scipy ``nbinom(n, p)`` params."""
    return a, b / (b + window_s)
