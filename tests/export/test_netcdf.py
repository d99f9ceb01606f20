"""``--to netcdf``: ArviZ data (NetCDF groups) with posterior draws and the state, reloadable.

Read here with xarray alone, so these run under either ArviZ generation; ``az.from_netcdf`` on
the file is tested in ``tests/test_arviz_0x.py`` and ``tests/test_arviz_1x.py``."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftbayes import conjugate as cj
from driftbayes.draws import QUANTITIES
from driftbayes.export import export
from driftbayes.export.netcdf import STATE_GROUP
from driftbayes.state import load_state, save_state, to_dataset

DRAWS = 4000


@pytest.fixture(scope="module")
def idata(learned, tmp_path_factory):
    import xarray as xr

    path = export(learned, "netcdf", tmp_path_factory.mktemp("nc") / "post.nc", draws=DRAWS,
                  seed=1)
    return path, xr.open_datatree(path, engine="h5netcdf").load()


def test_groups_and_provenance(idata, learned):
    _, data = idata
    assert set(data.children) == {"posterior", STATE_GROUP}
    post = data["posterior"].dataset
    assert post.sizes["chain"] == 1 and post.sizes["draw"] == DRAWS
    assert list(post.endpoint.values) == learned.endpoints_
    assert set(post.data_vars) == set(QUANTITIES)  # the one vocabulary
    for attrs in (post.attrs, data[STATE_GROUP].attrs, data.attrs):
        assert attrs["driftbayes_version"] and attrs["layer"] == "applied"
        assert attrs["created_at"] and attrs["data_start"] < attrs["data_end"]
        assert "drift_learning" in attrs["config_yaml"] or "sensitivity" in attrs["config_yaml"]


def test_reloads_as_the_same_state(idata, learned, tmp_path):
    path, _ = idata
    again = load_state(path)
    a, b = to_dataset(learned), to_dataset(again)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert again.endpoints_ == learned.endpoints_ and again.personas_ == learned.personas_
    # and it saves back as an ordinary state
    assert load_state(save_state(again, tmp_path / "s.nc")).n_events_ == learned.n_events_


def test_draws_match_the_conjugate_posteriors(idata, learned):
    """Monte Carlo means within 4 SE of the closed-form posterior means (SciPy moments)."""
    _, data = idata
    post = data["posterior"].dataset
    snap = learned.snapshot()
    prm = snap.layer("applied")
    e, p = snap.resolve_endpoint("GET /api/products"), snap.resolve_persona("web")
    alpha = prm.status_alpha[e, p]
    mean, var = stats.dirichlet.mean(alpha), stats.dirichlet.var(alpha)
    got = post.status_p.values[0, :, e, p, :].mean(0)
    assert np.all(np.abs(got - mean) <= 4 * np.sqrt(var / DRAWS) + 1e-12)
    rate = stats.gamma(prm.rate_a[e, p], scale=1 / prm.rate_b[e, p])
    got = post.request_rate.values[0, :, e, p].mean()
    assert abs(got - rate.mean()) <= 4 * rate.std() / np.sqrt(DRAWS)
    # the median of histogram draws concentrates on the median of the mean histogram
    med = cj.histogram_quantiles(cj.dirichlet_mean(prm.lat_alpha[e, p]), [0.5])[0]
    draws = post.latency_median_ms.values[0, :, e, p]
    assert np.quantile(draws, 0.01) <= med <= np.quantile(draws, 0.99)
    t = post.transition_p.values[0, :, p, -1, :].mean(0)  # START row (START → END: alpha 0)
    row = prm.transitions.row(p, len(snap.endpoints_))
    live = row > 0
    sd = np.sqrt(stats.dirichlet.var(row[live]) / DRAWS)
    assert np.all(np.abs(t[live] - stats.dirichlet.mean(row[live])) <= 4 * sd + 1e-12)
    assert np.all(t[~live] < 1e-6)


def test_cli_export_and_reload(learned, tmp_path):
    from typer.testing import CliRunner

    from driftbayes.cli import app

    state = save_state(learned, tmp_path / "state.nc")
    out = tmp_path / "posterior.nc"
    runner = CliRunner()
    r = runner.invoke(app, ["export", "--to", "netcdf", "--state", str(state), "--out", str(out),
                            "--draws", "50"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["patterns", "--state", str(out), "--format", "json"])
    assert r.exit_code == 0 and "GET" in r.output
    r = runner.invoke(app, ["export", "--to", "nope", "--state", str(state), "--out", str(out)])
    assert r.exit_code != 0 and "choose one of" in r.output
