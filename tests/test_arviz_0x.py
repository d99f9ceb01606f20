"""ArviZ 0.x (``InferenceData``, Python 3.11): ``to_inference_data`` and the NetCDF export work
with ``az.summary``, ``az.hdi`` and ``az.plot_posterior``, and their numbers are the conjugate
posterior's within Monte-Carlo error. Skips under ArviZ ≥ 1 (``test_arviz_1x.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from driftbayes.draws import arviz_generation, to_datatree, to_inference_data
from tests.helpers import cart_error_beta, cart_learner

az = pytest.importorskip("arviz")
if arviz_generation() >= 1:
    pytest.skip(f"ArviZ {az.__version__} is 1.x: InferenceData became xarray.DataTree "
                "(tests/test_arviz_1x.py)", allow_module_level=True)

N = 2000  # chains × draws


@pytest.fixture(scope="module")
def learner():
    return cart_learner()


@pytest.fixture(scope="module")
def idata(learner):
    return to_inference_data(learner, "/api/cart", "premium", draws=500, chains=4, seed=2)


def test_summary_and_hdi(idata, learner):
    assert isinstance(idata, az.InferenceData)
    summ = az.summary(idata, hdi_prob=0.9, var_names=["error_rate", "latency_median_ms",
                                                      "request_rate", "status_p"])
    assert {"hdi_5%", "hdi_95%", "ess_bulk", "r_hat"} <= set(summ.columns)
    beta = cart_error_beta(learner)
    assert abs(summ.loc["error_rate", "mean"] - beta.mean()) <= 4 * beta.std() / np.sqrt(N) + 1e-3
    assert summ.loc["error_rate", "ess_bulk"] > N / 2  # independent draws
    hdi = az.hdi(idata, hdi_prob=0.9)["error_rate"].values
    assert hdi[0] < beta.mean() < hdi[1]
    # a 90% HDI holds about 90% of the Beta posterior
    assert abs(beta.cdf(hdi[1]) - beta.cdf(hdi[0]) - 0.9) < 0.03
    assert list(summ.filter(like="status_p", axis=0).index) == [
        f"status_p[{c}]" for c in learner.statuses_]


def test_plot_posterior(idata):
    import matplotlib

    matplotlib.use("Agg")
    axes = az.plot_posterior(idata, var_names=["latency_median_ms", "error_rate"], hdi_prob=0.9)
    assert np.size(axes) == 2


def test_a_datatree_converts(learner):
    dt = to_datatree(learner, "/api/cart", "premium", draws=100, chains=2, seed=2)
    idata = az.from_datatree(dt)
    assert isinstance(idata, az.InferenceData)
    assert az.summary(idata, hdi_prob=0.9, var_names=["error_rate"]).shape[0] == 1


def test_netcdf_reads_as_inference_data(learner, tmp_path):
    from driftbayes.export import export
    from driftbayes.export.netcdf import STATE_GROUP
    from driftbayes.state import load_state

    path = export(learner, "netcdf", tmp_path / "post.nc", draws=200, seed=1)
    idata = az.from_netcdf(path, engine="h5netcdf")
    assert set(idata.groups()) == {"posterior", STATE_GROUP}
    summ = az.summary(idata, hdi_prob=0.9, var_names=["error_rate"])
    assert len(summ) == len(learner.endpoints_) * len(learner.personas_)
    assert load_state(path).n_events_ == learner.n_events_
