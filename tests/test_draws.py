"""Posterior draws (``driftbayes.draws``): one vocabulary, exact conjugate draws whose Monte-Carlo
means are within 4 standard errors of the closed-form posterior means, seeded, any selection.
Needs xarray only (either ArviZ generation); the ArviZ calls are in ``test_arviz_0x.py`` and
``test_arviz_1x.py``."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import driftbayes as db
from driftbayes import conjugate as cj
from driftbayes import draws as dr
from driftbayes.config import Config
from driftbayes.kinds import REGISTRY
from driftbayes.learner import DriftLearner
from tests.helpers import traffic

N = 4000  # chains × draws
BUILT_IN = ("latency", "errors", "frequency", "think_time", "transitions")


@pytest.fixture(scope="module")
def learner() -> DriftLearner:
    return DriftLearner(Config()).learn_many(traffic(3000, seed=18))


@pytest.fixture(scope="module")
def cell(learner):
    """One cell's draws (4 × 1000) and its posterior parameters."""
    ds = dr.posterior_draws(learner, "/api/cart", "premium", draws=1000, chains=4, seed=3)
    snap = learner.snapshot()
    e, p = snap.resolve_endpoint("/api/cart"), snap.resolve_persona("premium")
    return ds, snap.layer("posterior"), snap, e, p


def within(draws, mean, sd, z=4.0):
    """The draws' mean is within ``z`` standard errors of ``mean``."""
    return abs(np.mean(draws) - mean) <= z * sd / np.sqrt(np.size(draws)) + 1e-12


def test_one_vocabulary(learner):
    ds = dr.posterior_draws(learner, draws=50, chains=2)
    assert set(ds.data_vars) == set(dr.QUANTITIES)
    for name, q in dr.QUANTITIES.items():
        assert ds[name].dims == ("chain", "draw") + q.cell + q.dims, name
        assert ds[name].attrs["units"] == q.units and ds[name].attrs["description"] == q.meaning
    # the posterior summary's key quantities are draw variables of the same name and unit
    for kind in BUILT_IN:
        q = REGISTRY[kind].quantity
        assert q in dr.QUANTITIES and dr.QUANTITIES[q].units == REGISTRY[kind].unit, kind
    assert list(ds["src"].values) == learner.endpoints_ + ["START"]
    assert list(ds["dst"].values) == learner.endpoints_ + ["END"]


def test_every_name_is_in_the_readme_table():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for name, q in dr.QUANTITIES.items():
        assert f"| `{name}` | {q.units} |" in text, name


def test_draws_match_the_conjugate_posterior(cell):
    ds, prm, snap, e, p = cell
    codes = np.asarray(snap.statuses_)
    alpha = prm["errors"].alpha[e, p]
    mean, var = stats.dirichlet.mean(alpha), stats.dirichlet.var(alpha)
    got = ds["status_p"].values.reshape(N, -1)
    assert np.all(np.abs(got.mean(0) - mean) <= 4 * np.sqrt(var / N) + 1e-12)
    for name, threshold in (("error_rate", 500), ("error_rate_4xx_5xx", 400)):
        beta = stats.beta(alpha[codes >= threshold].sum(), alpha[codes < threshold].sum())
        assert within(ds[name].values, beta.mean(), beta.std()), name
    rate = stats.gamma(prm["frequency"].a[e, p], scale=1 / prm["frequency"].b[e, p])
    assert within(ds["request_rate"].values, rate.mean(), rate.std())
    # NIG: mu | data is Student-t (mean mu0), sigma² inverse-gamma (mean beta / (alpha - 1))
    mu, kappa, a, b = (float(np.asarray(x)[e, p]) for x in prm["latency"].nig)
    t = stats.t(2 * a, loc=mu, scale=np.sqrt(b / (a * kappa)))
    assert within(ds["latency_log_mu"].values, t.mean(), t.std())
    ig = stats.invgamma(a, scale=b)
    assert within(ds["latency_log_sigma"].values ** 2, ig.mean(), ig.std())
    # think time: exp of a Student-t, so its median is exp(mu): half the draws lie below
    tmu = float(np.asarray(prm["think_time"].nig.mu)[e, p])
    below = np.mean(ds["think_median_ms"].values <= np.exp(tmu))
    assert abs(below - 0.5) <= 4 * np.sqrt(0.25 / N)
    # latency: the draws of the median bracket the key quantity's estimate (patterns' number)
    est, lo, hi = REGISTRY["latency"].key(prm["latency"], snap.statuses_, 0.9)
    med = ds["latency_median_ms"].values
    assert np.quantile(med, 0.01) <= est[e, p] <= np.quantile(med, 0.99)
    assert np.all(ds["latency_p90_ms"].values >= med) and np.all(
        ds["latency_p99_ms"].values >= ds["latency_p90_ms"].values)
    hist = cj.histogram_quantiles(cj.dirichlet_mean(prm["latency"].alpha[e, p]), [0.9])[0]
    p90 = ds["latency_p90_ms"].values
    assert np.quantile(p90, 0.01) <= hist <= np.quantile(p90, 0.99)


def test_transition_row_and_next_state(cell):
    ds, prm, snap, e, p = cell
    row = prm["transitions"].row(p, e)
    got = ds["transition_p"].values.reshape(N, -1)
    sd = np.sqrt(stats.dirichlet.var(row) / N)
    assert np.all(np.abs(got.mean(0) - stats.dirichlet.mean(row)) <= 4 * sd + 1e-12)
    top = int(np.argmax(row))
    assert ds["next_state"].item() == (snap.endpoints_ + ["END"])[top]
    np.testing.assert_array_equal(ds["next_state_p"].values, ds["transition_p"].values[..., top])


def test_a_large_table_keeps_next_state_p_only(learner, monkeypatch):
    monkeypatch.setattr(dr, "MAX_TRANSITION_NUMBERS", 10)
    ds = dr.posterior_draws(learner, persona="regular", draws=N, chains=1, seed=4)
    assert "transition_p" not in ds and ds["next_state_p"].dims == ("chain", "draw", "src")
    snap = learner.snapshot()
    tp = snap.layer("posterior")["transitions"]
    p = snap.resolve_persona("regular")
    for s, name in enumerate(ds["src"].values):
        row = tp.row(p, s)
        top = int(np.argmax(row))
        assert ds["next_state"].values[s] == (snap.endpoints_ + ["END"])[top]
        beta = stats.beta(row[top], row.sum() - row[top])
        assert within(ds["next_state_p"].values[0, :, s], beta.mean(), beta.std()), name


def test_selections(learner):
    one = dr.posterior_draws(learner, "/api/cart", "premium", draws=20, chains=2)
    assert one["error_rate"].dims == ("chain", "draw")
    assert one["endpoint"].item() == "GET /api/cart" and one["persona"].item() == "premium"
    assert one["transition_p"].dims == ("chain", "draw", "dst")
    some = dr.posterior_draws(learner, ["/api/cart", "GET /api/users/{id}"], draws=20, chains=1)
    assert list(some["endpoint"].values) == ["GET /api/cart", "GET /api/users/{id}"]
    assert list(some["src"].values) == list(some["endpoint"].values)  # no START row
    assert some["error_rate"].dims == ("chain", "draw", "endpoint", "persona")
    assert some.sizes["persona"] == len(learner.personas_)


def test_seeded_and_reproducible(learner):
    a = dr.posterior_draws(learner, "/api/cart", draws=100, chains=2, seed=7)
    b = dr.posterior_draws(learner, "/api/cart", draws=100, chains=2, seed=7)
    c = dr.posterior_draws(learner, "/api/cart", draws=100, chains=2, seed=8)
    assert a.identical(b)
    assert not np.allclose(a["request_rate"].values, c["request_rate"].values)


def test_the_notebook_api_gives_a_datatree(learner):
    import xarray as xr

    dt = db.to_datatree(learner, "/api/cart", "premium", draws=30, chains=2, seed=5)
    assert isinstance(dt, xr.DataTree) and set(dt.children) == {"posterior"}
    same = learner.to_datatree("/api/cart", "premium", draws=30, chains=2, seed=5)
    assert dt["posterior"].dataset.identical(same["posterior"].dataset)
    assert dt["posterior"].dataset.identical(
        dr.posterior_draws(learner, "/api/cart", "premium", draws=30, chains=2, seed=5))


def test_bad_names_are_refused(learner):
    with pytest.raises(ValueError, match="unknown layer"):
        dr.posterior_draws(learner, layer="nope")
    with pytest.raises(KeyError, match="unknown endpoint"):
        dr.posterior_draws(learner, "/api/nope")
    with pytest.raises(KeyError, match="unknown persona"):
        dr.posterior_draws(learner, persona="nobody")
    with pytest.raises(ValueError, match="nothing learned yet"):
        dr.posterior_draws(DriftLearner())
