"""Fitting the hierarchical priors (slow: NUTS): the CLI stores them or refuses, the fit on
sufficient statistics equals a PyMC fit of the same model on the raw data, and its 90%
intervals cover known population parameters at the nominal rate.

Reference tolerance: posterior means of the two fits differ by less than
``Z·√(MCSE₁² + MCSE₂²)`` with ``Z = 4.5`` (as in ``test_pymc_reference``).

Coverage: the truth of each run is drawn from the model's own prior (population, group
spreads, group offsets), so the 90% equal-tailed intervals of an exact posterior cover it with
probability 0.9 whatever the data (simulation-based calibration). 20 seeded runs × 30
parameters = 600 indicators, correlated within a run; the binomial SD of the coverage of 600
independent ones is 1.2 points, so 85–95% is about ±4 SD.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from driftbayes.cli import app
from driftbayes.config import Config
from driftbayes.priors import CellData, simulate
from driftbayes.priors.data import LOGNORMAL_KINDS
from driftbayes.priors.fit import diagnose, fit_cells
from driftbayes.priors.model import build_model, group_theta, model_coords, natural
from driftbayes.state import load_state, save_state
from tests.test_priors import shop

pm = pytest.importorskip("pymc")
az = pytest.importorskip("arviz")

pytestmark = pytest.mark.slow
Z = 4.5


# ----------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A learned state of two groups (/api/users at 300 ms, /api/orders at 40 ms with 20%
    errors), fitted through the CLI; with the ``PriorFit`` the CLI got (the CLI tests share
    this one fit: compiling the model is most of its time)."""
    import driftbayes.priors as priors_mod

    path = tmp_path_factory.mktemp("priors") / "state.nc"
    save_state(shop(), path)
    fits = []
    real = priors_mod.fit_priors

    def keep(*args, **kwargs):
        fits.append(real(*args, **kwargs))
        return fits[-1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(priors_mod, "fit_priors", keep)
        res = CliRunner().invoke(app, ["priors", "fit", "--state", str(path), "--group-by",
                                       "prefix", "--depth", "2", "--draws", "1000"])
    return path, res, fits[0] if fits else None


def test_cli_fit_stores_priors_that_find_the_groups(fitted):
    path, res, _ = fitted
    assert res.exit_code == 0, res.output
    assert "compile" in res.output and "sampling" in res.output and "max r_hat" in res.output
    priors = load_state(path).group_priors_
    assert priors.group_by == "prefix" and priors.groups == ["/api/orders", "/api/users", "*"]
    med = priors.values["latency_median_ms"][:, 0]
    assert med[0] == pytest.approx(40.0, rel=0.15) and med[1] == pytest.approx(300.0, rel=0.15)
    err = priors.values["errors_rate"]
    assert err[0, 1] < 0.2 < err[0, 2]  # the 90% interval of /api/orders holds its 20%
    assert err[1, 1] < 0.05 < err[1, 2]
    assert priors.info["max_r_hat"] <= 1.01 and priors.info["divergences"] == 0
    # the state's prior layer now starts each endpoint from its group
    lrn = load_state(path)
    prm = lrn.snapshot().layer("prior")
    e = lrn.resolve_endpoint("/api/orders/new")
    assert np.exp(prm.lat_nig.mu[e, 0]) == pytest.approx(med[0], rel=1e-6)
    show = CliRunner().invoke(app, ["priors", "show", "--state", str(path), "--json"])
    rows = [json.loads(line) for line in show.stdout.splitlines()]
    assert {r["group"] for r in rows} == {"/api/orders", "/api/users", "*"}


def test_cli_refuses_priors_that_fail_their_diagnostics(fitted, monkeypatch, tmp_path):
    """A fit failing a threshold is not stored, and the message names the variable (the
    fixture's fit, diagnosed against an ESS no fit reaches)."""
    import dataclasses

    import driftbayes.priors as priors_mod

    path, _, fit = fitted
    assert fit is not None
    lrn = load_state(path)
    lrn.set_group_priors(None)
    state = save_state(lrn, tmp_path / "s.nc")
    table, failures, _ = diagnose(fit.idata, ess_min=10**9)
    strict = dataclasses.replace(fit, diagnostics=table, failures=failures)
    monkeypatch.setattr(priors_mod, "fit_priors", lambda *args, **kwargs: strict)
    res = CliRunner().invoke(app, ["priors", "fit", "--state", str(state)])
    assert res.exit_code == 1
    assert "no priors stored" in res.output and "bulk ESS" in res.output and "pop[" in res.output
    assert load_state(state).group_priors_ is None


def test_diagnose_names_divergences_and_r_hat():
    post = {"x": (("chain", "draw"), np.r_[np.zeros(100), np.ones(100)].reshape(2, 100)
                  + np.random.default_rng(0).normal(0, 0.1, (2, 100)))}
    idata = az.from_dict(posterior={"x": post["x"][1]},
                         sample_stats={"diverging": np.eye(2, 100, dtype=bool)})
    _, failures, div = diagnose(idata)
    assert div == 2
    assert any(f.startswith("x: r_hat") for f in failures)
    assert any("2 divergent transitions" in f for f in failures)


# ----------------------------------------------------------------------------- reference
def _cells(groups, per_group, rng):
    """A CellData template: ``per_group`` cells per group, integer counts."""
    G = len(groups)
    n_cells = G * per_group
    group = np.repeat(np.arange(G), per_group)
    all_cells = np.arange(n_cells)
    stats = {
        "latency": {"n": rng.integers(3, 15, n_cells).astype(float), "mean": np.zeros(n_cells),
                    "W": np.zeros(n_cells)},
        "errors": {"n": rng.integers(20, 80, n_cells).astype(float), "k": np.zeros(n_cells)},
        "frequency": {"c": np.zeros(n_cells), "T": np.full(n_cells, 600.0)},
    }
    stats["think_time"] = dict(stats["latency"])
    return CellData([f"GET /e{i}" for i in range(n_cells)], ["p"], all_cells,
                    np.zeros(n_cells, int), group, list(groups),
                    {k: all_cells for k in stats}, stats)


def _truth_params(model, data, seed):
    """Group parameters drawn from the model's prior: ``(sampled-scale pop, theta, natural
    params by name)``."""
    names = [v for v in ("pop", "tau", "z", "theta_c", "theta_u") if v in model.named_vars]
    draws = pm.draw([model[v] for v in names], random_seed=seed)
    post = {n: _Values(np.asarray(d)[None, None]) for n, d in zip(names, draws)}
    theta = group_theta(post, data)[0, 0]
    sampled = {str(n): theta[i] for i, n in enumerate(model.coords["param"])}
    params = {f"{k}_{p}": v for k in data.kinds for p, v in natural(sampled, k).items()}
    return np.asarray(post["pop"].values)[0, 0], theta, params


class _Values:
    def __init__(self, values):
        self.values = values


def test_sufficient_statistics_fit_equals_a_raw_data_fit():
    """Simulate raw observations, fit the model on their sufficient statistics and, in PyMC,
    the same hierarchy with the raw observations as data: each cell's own log-normal location
    and scale as latent variables (the closed-form marginal is the part written here), errors
    and requests through PyMC's own Beta-binomial and negative binomial. The population and
    group parameters agree."""
    rng = np.random.default_rng(7)
    template = _cells(["a", "b"], 4, rng)
    syn = Config().synthetic
    model = build_model(template, syn)
    _, _, params = _truth_params(model, template, 11)
    # raw data of each cell from its own parameters
    raw, stats = {}, {}
    for kind in LOGNORMAL_KINDS:
        g = template.group
        mu, kappa, alpha, sigma = (params[f"{kind}_{p}"][g] for p in ("mu", "kappa", "alpha",
                                                                       "sigma"))
        s2 = alpha * sigma**2 / rng.gamma(alpha)
        m = rng.normal(mu, np.sqrt(s2 / kappa))
        n = template.stats[kind]["n"].astype(int)
        cell = np.repeat(np.arange(len(n)), n)
        x = rng.normal(m[cell], np.sqrt(s2[cell]))
        raw[kind] = (cell, x)
        mean = np.bincount(cell, x) / n
        stats[kind] = {"n": n.astype(float), "mean": mean,
                       "W": np.bincount(cell, (x - mean[cell]) ** 2)}
    r, c = params["errors_rate"][template.group], params["errors_concentration"][template.group]
    n_err = template.stats["errors"]["n"]
    k = rng.binomial(n_err.astype(int), rng.beta(r * c, (1 - r) * c)).astype(float)
    stats["errors"] = {"n": n_err, "k": k}
    rate, shape = (params[f"frequency_{p}"][template.group] for p in ("rate", "shape"))
    T = template.stats["frequency"]["T"]
    counts = rng.poisson(rng.gamma(shape, rate / shape) * T).astype(float)
    stats["frequency"] = {"c": counts, "T": T}
    data = CellData(template.endpoints, template.personas, template.endpoint, template.persona,
                    template.group, template.groups, template.cells, stats)

    fit = fit_cells(data, syn, draws=1500, tune=1500, seed=1)
    assert not fit.divergences

    from driftbayes.priors.model import group_parameters

    coords = model_coords(data)
    with pm.Model(coords=coords) as raw_model:
        flat, index = group_parameters(data, syn)
        row = {n: flat[index[i]] for i, n in enumerate(coords["param"])}
        g = data.group
        for kind in LOGNORMAL_KINDS:
            sigma, kappa, alpha = (pm.math.exp(row[f"{kind}_log_{p}"])[g]
                                   for p in ("sigma", "kappa", "alpha"))
            s2 = pm.InverseGamma(f"{kind}_s2", alpha, alpha * sigma**2)
            e = pm.Normal(f"{kind}_e", 0.0, 1.0, shape=len(g))
            m = row[f"{kind}_mu"][g] + pm.math.sqrt(s2 / kappa) * e
            cell, x = raw[kind]
            pm.Normal(f"{kind}_x", m[cell], pm.math.sqrt(s2[cell]), observed=x)
        # errors and requests through PyMC's own Beta-binomial and negative binomial (a latent
        # rate per cell diverges where its Beta or Gamma piles up at 0)
        r = pm.math.sigmoid(row["errors_logit_rate"])[g]
        conc = pm.math.exp(row["errors_log_concentration"])[g]
        pm.BetaBinomial("k", r * conc, (1 - r) * conc, n_err.astype(int),
                        observed=k.astype(int))
        shape_ = pm.math.exp(row["frequency_log_shape"])[g]
        pm.NegativeBinomial("c", mu=pm.math.exp(row["frequency_log_rate"])[g] * T,
                            alpha=shape_, observed=counts.astype(int))
    ref = _sample_reference(raw_model)
    assert int(ref.sample_stats["diverging"].sum()) == 0
    for name in ("pop", "theta_u"):  # every group parameter is one of these
        a, b = fit.idata.posterior[name], ref.posterior[name]
        mean_a, mean_b = a.mean(("chain", "draw")).values, b.mean(("chain", "draw")).values
        tol = Z * np.hypot(az.mcse(a.to_dataset()).to_array().values[0],
                           az.mcse(b.to_dataset()).to_array().values[0])
        assert np.all(np.abs(mean_a - mean_b) < tol), (name, mean_a, mean_b, tol)


def _sample_reference(model):
    """NUTS draws of the raw-data model: nutpie when installed (its compiled sampler takes a
    fraction of PyMC's time here), else PyMC's; the cells' latent scales make a mild funnel,
    hence a smaller step than the fit's."""
    try:
        import nutpie
    except ImportError:
        with model:
            return pm.sample(draws=1500, tune=1500, chains=2, cores=2, random_seed=2,
                             target_accept=0.99, progressbar=False,
                             compute_convergence_checks=False)
    compiled = nutpie.compile_pymc_model(model, freeze_model=True)
    return nutpie.sample(compiled, draws=1500, tune=1500, chains=2, seed=2, target_accept=0.99,
                         progress_bar=False, save_warmup=False)


# ----------------------------------------------------------------------------- coverage
def test_ninety_percent_intervals_cover_known_population_parameters():
    rng = np.random.default_rng(0)
    template = _cells(["a", "b", "c"], 8, rng)
    syn = Config().synthetic
    model = build_model(template, syn)
    sampler = _Refitter(model)
    hits = []
    for seed in range(20):
        pop, theta, params = _truth_params(model, template, 100 + seed)
        data = simulate(template, params, np.random.default_rng(200 + seed))
        idata = sampler.sample(data, seed)
        post = idata.posterior
        pop_draws = np.asarray(post["pop"].values).reshape(-1, len(pop))
        theta_draws = group_theta(post, data).reshape((-1,) + theta.shape)
        grouped = [list(model.coords["param"]).index(n) for n in model.coords["grouped"]]
        for draws, truth in ((pop_draws, pop), (theta_draws[:, grouped].reshape(
                len(theta_draws), -1), theta[grouped].ravel())):
            lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
            hits.extend((lo <= truth) & (truth <= hi))
    coverage = float(np.mean(hits))
    assert len(hits) == 20 * 30
    assert 0.85 <= coverage <= 0.95, coverage


class _Refitter:
    """One compiled model, sampled again on new statistics of the same shapes (nutpie's
    ``with_data``, else PyMC's ``set_data``)."""

    def __init__(self, model):
        self.model = model
        try:
            import nutpie
        except ImportError:
            self.compiled = None
        else:
            self.compiled = nutpie.compile_pymc_model(model)

    def sample(self, data, seed):
        values = {f"{k}_{s}": v for k in data.kinds for s, v in data.stats[k].items()}
        if self.compiled is not None:
            import nutpie

            return nutpie.sample(self.compiled.with_data(**values), draws=400, tune=400,
                                 chains=2, seed=seed, progress_bar=False, target_accept=0.95)
        with self.model:
            pm.set_data(values)
            return pm.sample(draws=400, tune=400, chains=2, cores=1, random_seed=seed,
                             target_accept=0.95, progressbar=False,
                             compute_convergence_checks=False)
