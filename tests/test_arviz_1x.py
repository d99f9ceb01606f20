"""ArviZ 1.x (``xarray.DataTree``, Python ≥ 3.12): ``to_datatree``, ``to_inference_data`` and the
NetCDF export work with ``az.summary(..., ci_prob=)``, ``az.hdi(..., prob=)`` and
``az.plot_dist``, and their numbers are the conjugate posterior's within Monte-Carlo error.
Skips under ArviZ < 1 (``test_arviz_0x.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from driftbayes.draws import arviz_generation, to_datatree, to_inference_data
from tests.helpers import cart_error_beta, cart_learner

az = pytest.importorskip("arviz")
if arviz_generation() < 1:
    pytest.skip(f"ArviZ {az.__version__} is 0.x (InferenceData; tests/test_arviz_0x.py); "
                "ArviZ 1.x needs Python >= 3.12", allow_module_level=True)

N = 2000  # chains × draws


@pytest.fixture(scope="module")
def learner():
    return cart_learner()


@pytest.fixture(scope="module")
def dt(learner):
    return to_datatree(learner, "/api/cart", "premium", draws=500, chains=4, seed=2)


def test_summary_and_hdi(dt, learner):
    import xarray as xr

    assert isinstance(dt, xr.DataTree)
    summ = az.summary(dt, ci_prob=0.9, var_names=["error_rate", "latency_median_ms",
                                                  "request_rate", "status_p"])
    assert {"eti90_lb", "eti90_ub", "ess_bulk", "r_hat"} <= set(summ.columns)
    beta = cart_error_beta(learner)
    mean = float(summ.loc["error_rate", "mean"])
    # the table is rounded to two significant digits of the sd
    assert abs(mean - beta.mean()) <= 4 * beta.std() / np.sqrt(N) + beta.std() / 10
    exact = summ.loc["error_rate", ["eti90_lb", "eti90_ub"]].astype(float).to_numpy()
    lo, hi = beta.ppf([0.05, 0.95])
    assert abs(exact[0] - lo) < beta.std() / 4 and abs(exact[1] - hi) < beta.std() / 4
    hdi = az.hdi(dt, prob=0.9, var_names=["error_rate"])["error_rate"]  # the posterior group
    lo, hi = hdi.sel(ci_bound="lower").item(), hdi.sel(ci_bound="upper").item()
    assert lo < beta.mean() < hi
    assert abs(beta.cdf(hi) - beta.cdf(lo) - 0.9) < 0.03  # a 90% HDI holds about 90%
    assert list(summ.filter(like="status_p", axis=0).index) == [
        f"status_p[{c}]" for c in learner.statuses_]


def test_plot_dist(dt, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    pc = az.plot_dist(dt, var_names=["latency_median_ms", "error_rate"], ci_prob=0.9,
                      backend="matplotlib")
    pc.savefig(tmp_path / "dist.png")
    assert (tmp_path / "dist.png").stat().st_size > 1000


def test_to_inference_data_is_the_datatree(dt, learner):
    same = to_inference_data(learner, "/api/cart", "premium", draws=500, chains=4, seed=2)
    assert same["posterior"].dataset.identical(dt["posterior"].dataset)


def test_all_cells(learner):
    dt = to_datatree(learner, draws=200, chains=2, seed=3)
    summ = az.summary(dt, ci_prob=0.9, var_names=["error_rate"])
    assert len(summ) == len(learner.endpoints_) * len(learner.personas_)


def test_netcdf_reads_as_a_datatree(learner, tmp_path):
    import xarray as xr

    from driftbayes.export import export
    from driftbayes.export.netcdf import STATE_GROUP
    from driftbayes.state import load_state

    path = export(learner, "netcdf", tmp_path / "post.nc", draws=200, seed=1)
    dt = az.from_netcdf(path, engine="h5netcdf")
    assert isinstance(dt, xr.DataTree) and set(dt.children) == {"posterior", STATE_GROUP}
    summ = az.summary(dt, ci_prob=0.9, var_names=["error_rate"])
    assert len(summ) == len(learner.endpoints_) * len(learner.personas_)
    assert load_state(path).n_events_ == learner.n_events_
