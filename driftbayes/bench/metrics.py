"""Scoring functions of the prequential mock-realism benchmark: pure, vectorised NumPy.

A mock serves, per endpoint x persona, a predictive distribution; each window compares what it
would serve with what traffic then did. Latency and think-time predictives are **quantile
grids**: increasing levels ``taus`` in (0, 1) and the predictive quantiles ``q`` at them, on the
log-ms scale. Conventions shared by all functions:

* Integrals over the level axis use the *cell rule* of :func:`level_weights`: level ``τ_i``
  stands for the cell between the midpoints to its neighbours (the first cell starts at 0, the
  last ends at 1). On a uniform grid this is the midpoint rule on the interior cells; the
  weights sum to 1 and, on a grid symmetric about 1/2 such as :data:`QUANTILE_LEVELS`,
  integrate every linear function of τ exactly.
* No observations → ``nan`` (nothing to score); malformed inputs → ``ValueError``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The benchmark's quantile levels: 0.005, 0.010, …, 0.995 (199 levels).
QUANTILE_LEVELS = np.arange(1, 200) / 200

_BETTER = ("lower", "higher", "target")


# --------------------------------------------------------------------------- quantile grids
def level_weights(taus) -> np.ndarray:
    """Quadrature weights of the cell rule on the level axis.

    Parameters
    ----------
    taus : array_like, shape (K,)
        Strictly increasing levels in (0, 1).

    Returns
    -------
    numpy.ndarray, shape (K,)
        Width of each level's cell ``[(τ_{i-1}+τ_i)/2, (τ_i+τ_{i+1})/2]`` with ``τ_0 = 0`` and
        ``τ_{K+1} = 1`` (so the end cells are ``[0, (τ_1+τ_2)/2]`` and ``[…, 1]``); sums to 1.
    """
    t = _check_levels(taus)
    edges = np.concatenate([[0.0], (t[1:] + t[:-1]) / 2, [1.0]])
    return np.diff(edges)


def crps_from_quantiles(taus, q, y) -> float:
    """Mean CRPS of a quantile-grid predictive over observations ``y``.

    ``CRPS(F, y) = 2 ∫_0^1 QS_τ(q(τ), y) dτ`` with the pinball loss
    ``QS_τ(q, y) = (1{y < q} − τ)(q − y)``, integrated with the cell rule of
    :func:`level_weights` (midpoint rule on a uniform grid). Exact for a point mass on a
    symmetric grid; for a smooth predictive the error is second order in the level spacing
    except in the two end cells (about 3e-3 σ for a far-off ``y`` and a normal predictive on
    :data:`QUANTILE_LEVELS`). Cost ``O((n + K) log n)``: sorted ``y`` and cumulative sums, no
    ``n x K`` matrix.

    Parameters
    ----------
    taus : array_like, shape (K,)
        Strictly increasing levels in (0, 1).
    q : array_like, shape (K,)
        Nondecreasing predictive quantiles at ``taus`` (same scale as ``y``, e.g. log ms).
    y : array_like
        Finite observations.

    Returns
    -------
    float
        Mean CRPS (units of ``y``), ``nan`` when ``y`` is empty.
    """
    t, q = _check_grid(taus, q)
    y = _check_obs(y)
    if y.size == 0:
        return float("nan")
    shift = float(np.median(y))  # CRPS is shift invariant; centring avoids cancellation
    ys, qc = np.sort(y) - shift, q - shift
    n = ys.size
    csum = np.concatenate([[0.0], np.cumsum(ys)])
    below = np.searchsorted(ys, qc, side="left")  # #{y < q_i}
    # Σ_j (1{y_j < q_i} − τ_i)(q_i − y_j) = c_i q_i − S_i − τ_i (n q_i − Σ y)
    per_level = below * qc - csum[below] - t * (n * qc - csum[-1])
    return float(2.0 * np.dot(level_weights(t), per_level) / n)


def wasserstein1_from_quantiles(taus, q, y) -> float:
    """W1 between a quantile-grid predictive and the empirical distribution of ``y``.

    ``W1 = ∫_0^1 |q(τ) − Ŷ(τ)| dτ`` with ``Ŷ`` the empirical quantile function of ``y``
    (inverted-CDF definition, ``np.quantile(y, τ, method="inverted_cdf")``), integrated with
    the cell rule of :func:`level_weights` on the same grid.

    Parameters
    ----------
    taus : array_like, shape (K,)
        Strictly increasing levels in (0, 1).
    q : array_like, shape (K,)
        Nondecreasing predictive quantiles at ``taus``.
    y : array_like
        Finite observations, same scale as ``q``.

    Returns
    -------
    float
        W1 (units of ``y``), ``nan`` when ``y`` is empty.
    """
    t, q = _check_grid(taus, q)
    y = _check_obs(y)
    if y.size == 0:
        return float("nan")
    y_q = np.quantile(y, t, method="inverted_cdf")
    return float(np.dot(level_weights(t), np.abs(q - y_q)))


#: Think-time score: W1 on log-ms between the served think-time quantiles and the observed
#: gaps (:func:`wasserstein1_from_quantiles` under its own name).
think_time_w1 = wasserstein1_from_quantiles


def quantile_at(taus, q, level) -> float:
    """Predictive quantile at ``level`` by linear interpolation in the grid.

    Parameters
    ----------
    taus, q : array_like, shape (K,)
        The quantile grid.
    level : float
        Level in ``[taus[0], taus[-1]]``; outside the grid raises ``ValueError`` (no silent
        clamping of, e.g., a p99.9 to the last grid level).

    Returns
    -------
    float
    """
    t, q = _check_grid(taus, q)
    level = float(level)
    if not t[0] <= level <= t[-1]:
        raise ValueError(f"level {level} outside the grid [{t[0]}, {t[-1]}]")
    return float(np.interp(level, t, q))


# --------------------------------------------------------------------------- point scores
def relative_error(pred, true) -> float:
    """``|pred − true| / |true|``; ``nan`` when ``true`` is 0 or either value is ``nan``."""
    pred, true = float(pred), float(true)
    if true == 0.0:
        return float("nan")
    return abs(pred - true) / abs(true)


def absolute_error(p, rate) -> float:
    """``|p − rate|`` (e.g. served vs true error rate); ``nan`` propagates."""
    return abs(float(p) - float(rate))


def interval_coverage(lo, hi, y) -> float:
    """Share of observations in the closed interval ``[lo, hi]``.

    Parameters
    ----------
    lo, hi : float or array_like
        Interval bounds, broadcast against ``y``.
    y : array_like
        Observations.

    Returns
    -------
    float
        Coverage in [0, 1], ``nan`` when ``y`` is empty.
    """
    y = np.asarray(y, dtype=float)
    if y.size == 0:
        return float("nan")
    return float(np.mean((y >= lo) & (y <= hi)))


def brier(p, outcomes) -> float:
    """Brier score ``mean((p − o)^2)`` of a forecast probability against 0/1 outcomes.

    Parameters
    ----------
    p : float or array_like
        Forecast probabilities in [0, 1], broadcast against ``outcomes``; ``nan`` propagates.
    outcomes : array_like
        0/1 outcomes (e.g. ``status >= 500``).

    Returns
    -------
    float
        ``nan`` when there are no outcomes.
    """
    o = np.asarray(outcomes, dtype=float)
    p = np.asarray(p, dtype=float)
    if not np.all((o == 0) | (o == 1)):
        raise ValueError("outcomes must be 0 or 1")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    if o.size == 0:
        return float("nan")
    return float(np.mean((p - o) ** 2))


def rate_error(served_rate, observed_count, exposure_s) -> float:
    """Relative error of a served request rate against the observed rate.

    ``|served − count/exposure| / (count/exposure)``. When nothing was observed
    (``observed_count == 0``) or ``exposure_s <= 0`` the observed rate is no usable reference
    (a relative error against 0 is undefined), so the result is ``nan`` and the window does not
    count.

    Parameters
    ----------
    served_rate : float
        Rate the mock serves (req/s).
    observed_count : float
        Requests observed during the exposure.
    exposure_s : float
        Exposure (s).

    Returns
    -------
    float
    """
    count, expo = float(observed_count), float(exposure_s)
    if count < 0:
        raise ValueError("observed_count must be >= 0")
    if not count > 0 or not expo > 0:
        return float("nan")
    observed = count / expo
    return abs(float(served_rate) - observed) / observed


# --------------------------------------------------------------------------- Markov chains
def served_transitions(Q) -> np.ndarray:
    """Row-stochastic version of served transition probabilities.

    ``nan`` entries count as 0; a row with no positive mass (all ``nan`` or zero: the mock
    knows nothing about that source) becomes uniform; the other rows are renormalised.

    Parameters
    ----------
    Q : array_like, shape (..., S, D)

    Returns
    -------
    numpy.ndarray, shape (..., S, D)
    """
    Q = np.asarray(Q, dtype=float)
    if Q.ndim < 2:
        raise ValueError("Q must be a matrix")
    Q = np.where(np.isnan(Q), 0.0, Q)
    if np.any(Q < 0) or not np.all(np.isfinite(Q)):
        raise ValueError("transition probabilities must be finite and >= 0")
    mass = Q.sum(axis=-1, keepdims=True)
    Q = np.where(mass > 0, Q, 1.0)
    return Q / Q.sum(axis=-1, keepdims=True)


def markov_kl_rate_true(P_true, pi, Q, eps: float = 1e-6) -> float:
    """KL rate of the served chain from a known true chain, nats per transition.

    ``Σ_i π_i Σ_j P_ij log(P_ij / Q̃_ij)`` with ``0 log 0 = 0`` and ``Q̃`` the served rows
    (:func:`served_transitions`) plus ``eps``, renormalised (so a transition the mock rules out
    costs about ``log(1/eps)`` instead of infinity).

    Parameters
    ----------
    P_true : array_like, shape (S, D)
        True transition probabilities (rows with ``π_i > 0`` must sum to 1).
    pi : array_like, shape (S,)
        Weight of each source (e.g. the stationary visit frequency); normalised to sum 1.
    Q : array_like, shape (S, D)
        Served transition probabilities.
    eps : float
        Floor added to every served probability before renormalising.

    Returns
    -------
    float
    """
    P = np.asarray(P_true, dtype=float)
    pi = np.asarray(pi, dtype=float)
    Qs = served_transitions(Q)
    if P.shape != Qs.shape or pi.shape != P.shape[:1]:
        raise ValueError(f"shapes differ: P {P.shape}, pi {pi.shape}, Q {Qs.shape}")
    if np.any(P < 0) or np.any(pi < 0) or not np.all(np.isfinite(P)) or not pi.sum() > 0:
        raise ValueError("P_true and pi must be finite, >= 0 and pi must have positive mass")
    pi = pi / pi.sum()
    if not np.allclose(P[pi > 0].sum(axis=1), 1.0, rtol=0, atol=1e-9):
        raise ValueError("rows of P_true with pi > 0 must sum to 1")
    Qt = (Qs + eps) / (Qs + eps).sum(axis=1, keepdims=True)
    pos = P > 0
    terms = np.zeros_like(P)
    terms[pos] = P[pos] * np.log(P[pos] / Qt[pos])
    return float(np.dot(pi, terms.sum(axis=1)))


def markov_kl_rate(counts, Q, eps: float = 1e-6) -> float:
    """KL rate of the served chain from the observed transitions, nats per transition.

    ``P`` = row-normalised ``counts``, ``π`` = row totals / total, then
    :func:`markov_kl_rate_true` ``(P, π, Q, eps)``: the expected log-likelihood-ratio per
    observed transition between the empirical chain and the served one.

    Parameters
    ----------
    counts : array_like, shape (S, D)
        Observed transition counts; rows = sources incl. START, columns = destinations incl.
        END.
    Q : array_like, shape (S, D)
        Served transition probabilities (rows of all ``nan`` or zero → uniform).
    eps : float
        Floor added to every served probability before renormalising.

    Returns
    -------
    float
        ``nan`` when ``counts`` holds no transition.
    """
    c = np.asarray(counts, dtype=float)
    if c.ndim != 2 or np.any(c < 0) or not np.all(np.isfinite(c)):
        raise ValueError("counts must be a finite, nonnegative matrix")
    rows = c.sum(axis=1)
    if not rows.sum() > 0:
        return float("nan")
    P = c / np.where(rows > 0, rows, 1.0)[:, None]
    return markov_kl_rate_true(P, rows, Q, eps)


def session_length_pmf(Q, start_row: int, end_col: int, kmax: int = 200) -> np.ndarray:
    """Pmf of the number of requests in a session of an absorbing chain.

    Removing ``start_row`` from the rows and ``end_col`` from the columns must leave the same
    transient states in the same order (the package's layout: rows = endpoints then START,
    columns = endpoints then END). With ``T`` that transient block, ``e`` the exit column and
    ``s`` the START row on the transient states, ``P(L = k) = s T^{k-1} e``. Served rows are
    made stochastic by :func:`served_transitions` (unknown rows uniform).

    Parameters
    ----------
    Q : array_like, shape (S, S)
        Served transition probabilities.
    start_row, end_col : int
        Index of the START row and of the END column.
    kmax : int
        Longest length returned.

    Returns
    -------
    numpy.ndarray, shape (kmax,)
        ``pmf[k - 1] = P(L = k)`` for ``k = 1..kmax``. Sums to ``1 − P(L = 0) − P(L > kmax)``,
        ``P(L = 0)`` being the served START → END probability.
    """
    Qs = served_transitions(Q)
    n = Qs.shape[-1]
    if Qs.shape != (n, n):
        raise ValueError(f"Q must be square, got {Qs.shape}")
    if int(kmax) < 1:
        raise ValueError("kmax must be >= 1")
    start, end = range(n)[start_row], range(n)[end_col]
    rows = np.delete(np.arange(n), start)
    cols = np.delete(np.arange(n), end)
    T = Qs[np.ix_(rows, cols)]
    exit_ = Qs[rows, end]
    v = Qs[start, cols]
    pmf = np.empty(int(kmax))
    for k in range(int(kmax)):
        pmf[k] = v @ exit_
        v = v @ T
    return pmf


def session_length_w1(observed_lengths, pmf) -> float:
    """W1 between observed session lengths and a length pmf on 1, 2, ….

    ``W1 = Σ_k |F_obs(k) − F(k)|`` over the integers, with ``F`` the CDF of ``pmf``
    renormalised to sum 1 (i.e. conditioned on ``1 ≤ L ≤ len(pmf)``).

    Parameters
    ----------
    observed_lengths : array_like of int
        Nonnegative integer lengths.
    pmf : array_like, shape (kmax,)
        ``pmf[k - 1] = P(L = k)``, e.g. from :func:`session_length_pmf`.

    Returns
    -------
    float
        In requests; ``nan`` when there are no observations or the pmf has no mass.
    """
    obs = np.asarray(observed_lengths, dtype=float).ravel()
    p = np.asarray(pmf, dtype=float).ravel()
    if np.any(obs < 0) or np.any(obs != np.round(obs)):
        raise ValueError("observed lengths must be nonnegative integers")
    if np.any(p < 0) or not np.all(np.isfinite(p)):
        raise ValueError("pmf must be finite and >= 0")
    if obs.size == 0 or not p.sum() > 0:
        return float("nan")
    k_top = max(p.size, int(obs.max()))
    f_model = np.zeros(k_top + 1)  # support 0..k_top; pmf[k-1] is P(L = k)
    f_model[1 : p.size + 1] = p / p.sum()
    f_obs = np.bincount(obs.astype(np.int64), minlength=k_top + 1) / obs.size
    return float(np.abs(np.cumsum(f_obs) - np.cumsum(f_model)).sum())


# --------------------------------------------------------------------------- change scores
def adaptation_lag(t, served, truth_after, t_change, tol: float = 0.2, hold: int = 3) -> float:
    """Windows the mock needs after a change until it serves the new truth.

    The windows after the change are those with end time ``t > t_change``, counted 0, 1, ….
    A window is *on target* when ``|served − truth_after| / |truth_after| ≤ tol`` (a ``nan``
    served value is off target). The lag is the index of the first window of the first run of
    ``hold`` consecutive on-target windows: 0 when the mock is right from the first window after
    the change.

    Parameters
    ----------
    t : array_like, shape (W,)
        Increasing window end times.
    served : array_like, shape (W,)
        The served value per window (e.g. p50 in ms).
    truth_after : float
        The true value after the change.
    t_change : float
        Time of the change.
    tol : float
        Relative tolerance.
    hold : int
        Consecutive on-target windows required.

    Returns
    -------
    float
        The lag in windows; ``inf`` when no full run of ``hold`` windows exists (a run cut by the
        end of the data does not count); ``nan`` when ``truth_after`` is 0 or ``nan`` (relative
        error undefined).
    """
    t = np.asarray(t, dtype=float)
    served = np.asarray(served, dtype=float)
    if t.shape != served.shape or t.ndim != 1:
        raise ValueError("t and served must be 1-d arrays of the same length")
    if np.any(np.diff(t) <= 0):
        raise ValueError("t must be strictly increasing")
    if int(hold) < 1:
        raise ValueError("hold must be >= 1")
    truth = float(truth_after)
    if truth == 0.0 or np.isnan(truth):
        return float("nan")
    after = served[t > t_change]
    with np.errstate(invalid="ignore"):
        ok = np.abs(after - truth) / abs(truth) <= tol
    if ok.size < hold:
        return float("inf")
    runs = np.convolve(ok.astype(int), np.ones(int(hold), dtype=int), mode="valid") == hold
    hits = np.flatnonzero(runs)
    return float(hits[0]) if hits.size else float("inf")


def false_adaptation(served, truth, tol: float = 0.2) -> float:
    """Share of (steady-state) windows whose served value is off the truth by more than ``tol``.

    Parameters
    ----------
    served : array_like, shape (W,)
        Served values; ``nan`` counts as off.
    truth : float or array_like, shape (W,)
        True values; windows where the truth is 0 or ``nan`` are left out.
    tol : float
        Relative tolerance.

    Returns
    -------
    float
        In [0, 1]; ``nan`` when no window is left.
    """
    served = np.asarray(served, dtype=float)
    truth = np.broadcast_to(np.asarray(truth, dtype=float), served.shape)
    keep = np.isfinite(truth) & (truth != 0)
    if not keep.any():
        return float("nan")
    s, tr = served[keep], truth[keep]
    with np.errstate(invalid="ignore"):
        ok = np.abs(s - tr) / np.abs(tr) <= tol
    return float(np.mean(~ok))


# --------------------------------------------------------------------------- ranking
def rank_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Rank the learners per (scenario, metric).

    Parameters
    ----------
    scores : pandas.DataFrame
        Long table with columns ``scenario`` (or ``stream``), ``metric``, ``learner``, ``value``,
        ``better`` (``'lower'``, ``'higher'`` or ``'target'``) and, when any metric is
        ``'target'``, ``target``: those rank by ``|value − target|`` (closer is better).

    Returns
    -------
    pandas.DataFrame
        The input rows with a ``rank`` column (1 = best; ties share their average rank; a
        ``nan`` value ranks after every number, ``nan`` values tying among themselves), sorted
        by scenario, metric and rank.
    """
    group = "scenario" if "scenario" in scores else "stream"
    need = {group, "metric", "learner", "value", "better"}
    if not need <= set(scores.columns):
        raise ValueError(f"scores lack columns {sorted(need - set(scores.columns))}")
    df = scores.reset_index(drop=True).copy()
    bad = ~df["better"].isin(_BETTER)
    if bad.any():
        raise ValueError(f"better must be one of {_BETTER}, got {sorted(set(df.better[bad]))}")
    if df.groupby([group, "metric"])["better"].nunique().gt(1).any():
        raise ValueError("a (scenario, metric) mixes several 'better' rules")
    value = df["value"].astype(float)
    key = value.where(df["better"] != "higher", -value)
    is_target = df["better"] == "target"
    if is_target.any():
        if "target" not in df or df.loc[is_target, "target"].isna().any():
            raise ValueError("'target' metrics need a target value")
        key = key.where(~is_target, (value - df["target"].astype(float)).abs())
    df["rank"] = key.groupby([df[group], df["metric"]]).rank(method="average", na_option="bottom")
    return df.sort_values([group, "metric", "rank", "learner"], kind="mergesort").reset_index(
        drop=True)


def mean_rank(scores: pd.DataFrame) -> pd.Series:
    """Mean rank of each learner over all (scenario, metric) pairs, best first.

    Parameters
    ----------
    scores : pandas.DataFrame
        As for :func:`rank_table`.

    Returns
    -------
    pandas.Series
        Indexed by learner, named ``mean_rank``, ascending (ties by learner name).
    """
    ranks = rank_table(scores).groupby("learner")["rank"].mean()
    return ranks.sort_values(kind="mergesort").rename("mean_rank")


# --------------------------------------------------------------------------- validation
def _check_levels(taus) -> np.ndarray:
    t = np.asarray(taus, dtype=float)
    if t.ndim != 1 or t.size < 1:
        raise ValueError("taus must be a non-empty 1-d array")
    if not (np.all(t > 0) and np.all(t < 1) and np.all(np.diff(t) > 0)):
        raise ValueError("taus must be strictly increasing in (0, 1)")
    return t


def _check_grid(taus, q) -> tuple[np.ndarray, np.ndarray]:
    t = _check_levels(taus)
    q = np.asarray(q, dtype=float)
    if q.shape != t.shape:
        raise ValueError(f"q has shape {q.shape}, taus {t.shape}")
    if not np.all(np.isfinite(q)):
        raise ValueError("quantiles must be finite")
    d = np.diff(q)
    if np.any(d < -1e-9 * max(1.0, float(np.max(np.abs(q))))):
        raise ValueError("quantiles must be nondecreasing")
    if np.any(d < 0):  # rounding-level decreases only
        q = np.maximum.accumulate(q)
    return t, q


def _check_obs(y) -> np.ndarray:
    y = np.asarray(y, dtype=float).ravel()
    if not np.all(np.isfinite(y)):
        raise ValueError("observations must be finite")
    return y
