"""Hierarchical priors without sampling: grouping, the marginal likelihoods against SciPy, the
PyMC model's log density against the same code in NumPy, storing, and how the learner uses
stored priors (cold cells start from their group; a well-observed endpoint is not pulled
beyond one of its own standard errors, as in persona pooling)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftbayes.config import Config, SyntheticPrior
from driftbayes.events import EventBatch
from driftbayes.learner import DriftLearner
from driftbayes.priors import GroupPriors, cell_data, group_of, prefix_of
from driftbayes.priors import data as lik
from driftbayes.priors.fit import endpoint_caps
from driftbayes.priors.groups import POPULATION
from driftbayes.state import load_state, save_state
from tests.helpers import concat, traffic


# ----------------------------------------------------------------------------- grouping
@pytest.mark.parametrize("endpoint, depth, want", [
    ("GET /shuttle/missions/sts-69/index.html", 1, "/shuttle"),
    ("GET /shuttle/missions/sts-69/index.html", 2, "/shuttle/missions"),
    ("GET /v2/{tenant}/servers/detail", 1, "/v2"),
    ("GET /v2/{tenant}/servers/detail", 2, "/v2/servers"),
    ("GET /ksc.html", 1, "/"),
    ("GET /", 1, "/"),
    ("/images/{id}.gif", 1, "/images"),
])
def test_prefix(endpoint, depth, want):
    assert prefix_of(endpoint, depth) == want


def test_group_of_every_structure():
    assert group_of("POST /api/cart", "web", "method") == "POST"
    assert group_of("/api/cart", "web", "method") == "-"
    assert group_of("POST /api/cart", "web", "persona") == "web"
    assert group_of("POST /api/cart", None, "persona") == POPULATION
    assert group_of("POST /api/cart", "web", "none") == "all"
    with pytest.raises(ValueError, match="unknown grouping 'service'"):
        group_of("POST /api/cart", "web", "service")


# ----------------------------------------------------------------------------- likelihoods
def test_nig_marginal_is_the_multivariate_t():
    rng = np.random.default_rng(0)
    for n in (1, 2, 5):
        x = rng.normal(4.0, 0.7, n)
        mu, kappa, alpha, beta = 3.5, 2.5, 3.0, 1.2
        shape = beta / alpha * (np.eye(n) + np.ones((n, n)) / kappa)
        want = stats.multivariate_t(loc=np.full(n, mu), shape=shape, df=2 * alpha).logpdf(x)
        W = float(((x - x.mean()) ** 2).sum())
        got = lik.nig_loglik(float(n), x.mean(), W, mu, kappa, alpha, beta)
        assert got == pytest.approx(want, rel=1e-10)


def test_betabinomial_and_negative_binomial_match_scipy():
    n, k, a, b = 40.0, np.array([0.0, 3.0, 40.0]), 0.7, 12.0
    assert lik.betabinom_loglik(n, k, a, b) == pytest.approx(
        stats.betabinom(int(n), a, b).logpmf(k.astype(int)), rel=1e-10)
    c, T, shape, rate = np.array([0.0, 5.0, 300.0]), 1200.0, 0.8, 0.05
    b_ = shape / rate
    assert lik.gamma_poisson_loglik(c, T, shape, rate) == pytest.approx(
        stats.nbinom(shape, b_ / (b_ + T)).logpmf(c.astype(int)), rel=1e-10)


def test_group_indexed_likelihood_equals_per_cell():
    g = np.array([0, 1, 1, 0])
    n, mean, W = np.array([3.0, 0.5, 9.0, 1.0]), np.array([4.0, 5.0, 3.0, 6.0]), np.ones(4)
    mu, kappa, alpha, beta = (np.array(v) for v in ([4.0, 5.0], [1.0, 0.2], [2.0, 3.0],
                                                     [0.5, 2.0]))
    per_cell = lik.nig_loglik(n, mean, W, mu[g], kappa[g], alpha[g], beta[g])
    assert lik.nig_loglik(n, mean, W, mu, kappa, alpha, beta, g=g) == pytest.approx(per_cell)
    a, b = np.array([0.5, 2.0]), np.array([20.0, 3.0])
    k = np.array([0.0, 1.0, 2.0, 0.0])
    assert lik.betabinom_loglik(n, k, a, b, g=g) == pytest.approx(
        lik.betabinom_loglik(n, k, a[g], b[g]))
    assert lik.gamma_poisson_loglik(k, n * 100, a, b, g=g) == pytest.approx(
        lik.gamma_poisson_loglik(k, n * 100, a[g], b[g]))


# ----------------------------------------------------------------------------- data
#: The synthetic prior these tests were written against: worth 10 pseudo-observations (the
#: cap of a group's weight), evidence that is the plain (decayed) sum of the data.
TEN = SyntheticPrior(prior_strength=10.0)


def shop(seed=0, decay=0.0):
    """Three endpoints under /api/users (median 200–450 ms, 5% errors), two under /api/orders
    (30–50 ms, 20% errors): groups that differ, endpoints that differ within them."""
    spec = [("/api/users/{id}", 200.0, 0.4, 0.05), ("/api/users/me", 300.0, 0.5, 0.05),
            ("/api/users/list", 450.0, 0.6, 0.05), ("/api/orders/{id}", 30.0, 0.5, 0.2),
            ("/api/orders/new", 50.0, 0.7, 0.2)]
    parts = [traffic(1000, seed=seed + i, endpoints=(e,), median_ms=m, sigma=s, error_rate=r)
             for i, (e, m, s, r) in enumerate(spec)]
    both = concat(*parts)
    order = np.argsort(both.ts, kind="stable")
    cfg = Config(decay=decay, changepoint_hazard=0.0, synthetic=TEN)
    return DriftLearner(cfg).learn_many(both.take(order))


def test_cell_data_holds_the_learned_statistics():
    lrn = shop()
    d = cell_data(lrn, "prefix", depth=2)
    assert d.groups == ["/api/orders", "/api/users"]
    ev = lrn.snapshot().evidence_
    e, p = d.endpoint[d.cells["latency"]], d.persona[d.cells["latency"]]
    s = d.stats["latency"]
    np.testing.assert_allclose(s["n"], ev["lat_n"][e, p])
    np.testing.assert_allclose(s["n"] * s["mean"], ev["lat_sx"][e, p])
    np.testing.assert_allclose(s["W"] + s["n"] * s["mean"] ** 2, ev["lat_sxx"][e, p])
    assert d.stats["errors"]["n"].sum() == pytest.approx(5000)
    assert d.stats["frequency"]["c"].sum() == pytest.approx(5000)
    # /api/orders has the 20% error rate
    k, n = d.stats["errors"]["k"], d.stats["errors"]["n"]
    orders = d.group[d.cells["errors"]] == 0
    assert k[orders].sum() / n[orders].sum() == pytest.approx(0.2, abs=0.03)


def test_simulated_statistics_follow_the_population():
    lrn = shop()
    d = cell_data(lrn, "none")
    params = {"latency_mu": [np.log(50.0)], "latency_kappa": [1e6], "latency_alpha": [1e6],
              "latency_sigma": [0.5], "think_time_mu": [7.0], "think_time_kappa": [2.0],
              "think_time_alpha": [3.0], "think_time_sigma": [1.0], "errors_rate": [0.1],
              "errors_concentration": [1e6], "frequency_rate": [0.02],
              "frequency_shape": [1e6]}
    sim = lik.simulate(d, params, np.random.default_rng(1))
    s = sim.stats["latency"]
    assert np.average(s["mean"], weights=s["n"]) == pytest.approx(np.log(50.0), abs=0.02)
    assert s["W"].sum() / (s["n"] - 1).sum() == pytest.approx(0.25, rel=0.05)
    e = sim.stats["errors"]
    assert e["k"].sum() / e["n"].sum() == pytest.approx(0.1, abs=0.015)


def test_model_log_density_is_the_numpy_likelihood():
    """The PyMC model's likelihood term at a random point equals the NumPy likelihood of the
    same group parameters (data-only constants left out)."""
    pytest.importorskip("pymc")
    from driftbayes.priors.model import build_model, group_theta, natural

    lrn = shop()
    d = cell_data(lrn, "prefix", depth=2)
    model = build_model(d, lrn.config.synthetic)
    rng = np.random.default_rng(3)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in model.initial_point().items()}
    (pot,) = model.potentials
    got = float(model.compile_logp(vars=[pot], jacobian=False)(point))
    post = {k.removesuffix("_log__"): _Values(np.exp(v) if k.endswith("_log__") else v)
            for k, v in point.items()}
    theta = group_theta(post, d)
    names = [str(n) for n in model.coords["param"]]
    sampled = {n: theta[i] for i, n in enumerate(names)}
    params = {f"{k}_{p}": v for k in d.kinds for p, v in natural(sampled, k).items()}
    want = 0.0
    for kind in d.kinds:
        s, g = d.stats[kind], d.group[d.cells[kind]]
        if kind in lik.LOGNORMAL_KINDS:
            want += lik.nig_loglik(s["n"], s["mean"], s["W"], params[f"{kind}_mu"],
                                   params[f"{kind}_kappa"], params[f"{kind}_alpha"],
                                   params[f"{kind}_alpha"] * params[f"{kind}_sigma"] ** 2,
                                   g=g, const=False).sum()
        elif kind == "errors":
            r, c = params["errors_rate"], params["errors_concentration"]
            want += lik.betabinom_loglik(s["n"], s["k"], r * c, (1 - r) * c, g=g,
                                         const=False).sum()
        else:
            want += lik.gamma_poisson_loglik(s["c"], s["T"], params["frequency_shape"],
                                             params["frequency_rate"], g=g, const=False).sum()
    assert got == pytest.approx(want, rel=1e-9)


class _Values:
    def __init__(self, values):
        self.values = values


# ----------------------------------------------------------------------------- stored priors
def priors_for(lrn, group_by="prefix", depth=2, *, latency_ms=None, weight=10.0, sigma=0.5):
    """Group priors built by hand (no sampling): each group's latency median ``latency_ms``
    (dict group → ms), error rate 5%, rate 0.5/s, worth ``weight`` pseudo-observations."""
    d = cell_data(lrn, group_by, depth)
    G = len(d.groups) + 1
    med = np.array([latency_ms.get(g, 100.0) for g in d.groups + [POPULATION]])

    def rows(x):
        x = np.broadcast_to(np.asarray(x, float), (G,))
        return np.stack([x, x * 0.9, x * 1.1], axis=1)

    values = {}
    for kind in d.kinds:
        if kind in lik.LOGNORMAL_KINDS:
            m = med if kind == "latency" else np.full(G, 2000.0)
            values.update({f"{kind}_median_ms": rows(m), f"{kind}_mu": rows(np.log(m)),
                           f"{kind}_sigma": rows(sigma), f"{kind}_kappa": rows(weight),
                           f"{kind}_alpha": rows(weight / 2), f"{kind}_weight": rows(weight)})
        elif kind == "errors":
            values.update({"errors_rate": rows(0.05), "errors_concentration": rows(weight),
                           "errors_weight": rows(weight)})
        else:
            values.update({"frequency_rate": rows(0.5), "frequency_shape": rows(weight),
                           "frequency_weight": rows(weight)})
    endpoints, group, caps = endpoint_caps(d, values)
    return GroupPriors(group_by, depth, d.groups + [POPULATION], d.kinds, values, endpoints,
                       group, caps, {"sampler": "hand"})


def latency_prior(lrn, endpoint):
    prm = lrn.snapshot().layer("prior")
    e = lrn.resolve_endpoint(endpoint)
    return float(np.exp(prm.lat_nig.mu[e, 0])), float(prm.lat_nig.kappa[e, 0])


def test_cold_endpoint_starts_from_its_group():
    """An endpoint seen 3 times under /api/users starts from the group's 300 ms, not the
    synthetic 100 ms; the same endpoint without group priors keeps the synthetic prior."""
    busy = traffic(3000, seed=0, endpoints=("/api/users/{id}", "/api/users/me"),
                   median_ms=300.0, personas=("p",))
    cold = EventBatch.from_records([{"ts": 100.0 * i, "path": "/api/users/new", "status": 200,
                                     "latency_ms": ms, "persona": "p"}
                                    for i, ms in enumerate((250.0, 300.0, 360.0))])
    both = concat(busy, cold)
    lrn = DriftLearner(Config(decay=0.0, synthetic=TEN)).learn_many(
        both.take(np.argsort(both.ts, kind="stable")))
    synthetic = lrn.posterior("posterior")
    lrn.set_group_priors(priors_for(lrn, latency_ms={"/api/users": 300.0}))
    assert latency_prior(lrn, "/api/users/new") == pytest.approx((300.0, 10.0))
    ds = lrn.posterior("posterior")
    e = lrn.resolve_endpoint("/api/users/new")
    before = float(synthetic["latency_median_ms"][e, 0])
    after = float(ds["latency_median_ms"][e, 0])
    assert before < 200 < after < 400
    # an endpoint first seen after the fit gets its group's prior by the prefix rule
    late = traffic(1, seed=6, t0=4000.0, endpoints=("/api/users/late",), personas=("p",))
    lrn.learn_many(late)
    assert latency_prior(lrn, "/api/users/late") == pytest.approx((300.0, 10.0))
    other = traffic(1, seed=7, t0=4001.0, endpoints=("/other/x",), personas=("p",))
    lrn.learn_many(other)
    assert latency_prior(lrn, "/other/x")[0] == pytest.approx(100.0)  # the population row


def test_well_observed_endpoint_is_not_pulled_beyond_its_own_standard_error():
    """600 samples at 300 ms against a group prior at 30 ms (10x apart, many standard errors):
    the prior's weight is capped at own·se/(|d| − se), so the posterior log-latency location
    moves by exactly one own standard error, and the median stays at its own 300 ms. Without
    the cap, 10 pseudo-observations would pull it by 10/610·|d| (more than one se)."""
    many = traffic(600, seed=11, endpoints=("/api/a",), personas=("p",), median_ms=300.0)
    # the cap alone: a prior that does not fade as well (fading would pull even less)
    lrn = DriftLearner(Config(decay=0.0, prior_fade=0.0, synthetic=TEN)).learn_many(many)
    ev = lrn.snapshot().evidence_
    n, sx, sxx = (float(ev[k][0, 0]) for k in ("lat_n", "lat_sx", "lat_sxx"))
    mean = sx / n
    se = np.sqrt((sxx / n - mean**2) / n)
    d = abs(mean - np.log(30.0))
    assert 10 / (n + 10) * d > se  # the uncapped prior would pull further than se
    priors = priors_for(lrn, latency_ms={"/api": 30.0})
    k = float(priors.endpoint_weight["latency"][0])
    assert k == pytest.approx(n * se / (d - se))
    lrn.set_group_priors(priors)
    ds = lrn.posterior("posterior")
    assert float(ds["latency_log_mu"][0, 0]) == pytest.approx(mean - se, rel=1e-9)
    assert float(ds["latency_median_ms"][0, 0]) == pytest.approx(300.0, rel=0.05)


def test_endpoint_that_agrees_with_its_group_gets_the_full_weight():
    many = traffic(600, seed=11, endpoints=("/api/a",), personas=("p",), median_ms=300.0)
    lrn = DriftLearner(Config(decay=0.0, synthetic=TEN)).learn_many(many)
    lrn.set_group_priors(priors_for(lrn, latency_ms={"/api": 300.0}, weight=4.0))
    assert latency_prior(lrn, "/api/a") == pytest.approx((300.0, 4.0), rel=0.01)


def test_weight_never_exceeds_the_synthetic_prior_strength():
    lrn = shop()
    lrn.set_group_priors(priors_for(lrn, latency_ms={}, weight=500.0))
    prm = lrn.snapshot().layer("prior")
    assert np.all(prm.lat_nig.kappa <= 10.0 + 1e-12)
    assert np.all(prm.rate_a <= 10.0 + 1e-12)


def test_clearing_restores_the_synthetic_prior():
    lrn = shop()
    plain = lrn.snapshot().layer("prior")
    lrn.set_group_priors(priors_for(lrn, latency_ms={"/api/users": 300.0}))
    assert not np.allclose(lrn.snapshot().layer("prior").lat_nig.mu, plain.lat_nig.mu)
    lrn.set_group_priors(None)
    again = lrn.snapshot().layer("prior")
    for kind in ("latency", "errors", "frequency", "think_time"):
        for a, b in zip(np.atleast_1d(again[kind]), np.atleast_1d(plain[kind])):
            for x, y in zip(getattr(a, "__dict__", {"v": a}).values(),
                            getattr(b, "__dict__", {"v": b}).values()):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_priors_are_saved_and_loaded_with_the_state(tmp_path):
    lrn = shop()
    lrn.set_group_priors(priors_for(lrn, latency_ms={"/api/users": 300.0}))
    path = save_state(lrn, tmp_path / "s.nc")
    back = load_state(path)
    p, q = lrn.group_priors_, back.group_priors_
    assert (q.group_by, q.depth, q.groups, q.kinds, q.endpoints) == (
        p.group_by, p.depth, p.groups, p.kinds, p.endpoints)
    for name in p.values:
        np.testing.assert_array_equal(q.values[name], p.values[name])
    assert q.info["sampler"] == "hand"
    a, b = lrn.posterior("prior"), back.posterior("prior")
    np.testing.assert_allclose(a["latency_log_mu"].values, b["latency_log_mu"].values)
    np.testing.assert_allclose(a["status_alpha"].values, b["status_alpha"].values)
    # a state without priors loads without them
    lrn.set_group_priors(None)
    assert load_state(save_state(lrn, tmp_path / "plain.nc")).group_priors_ is None


def test_cli_show_and_fit_say_what_is_wrong(tmp_path):
    from typer.testing import CliRunner

    from driftbayes.cli import app

    path = save_state(shop(), tmp_path / "s.nc")
    res = CliRunner().invoke(app, ["priors", "show", "--state", str(path)])
    assert res.exit_code == 1 and "no fitted priors" in res.output
    res = CliRunner().invoke(app, ["priors", "fit", "--state", str(path), "--group-by", "host"])
    assert res.exit_code == 2 and "choose one of prefix, method, persona, none" in res.output
    res = CliRunner().invoke(app, ["priors", "fit", "--state", str(tmp_path / "none.nc")])
    assert res.exit_code == 2 and "no such state file" in res.output
