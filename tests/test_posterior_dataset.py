"""The posterior dataset is the whole posterior: the typed parameters come back from it exactly,
and patterns, the export model and the mock server's tables are computed from it alone (a
dataset written to NetCDF and read back gives the same numbers)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from driftbayes.config import Config
from driftbayes.export.model import export_model
from driftbayes.kinds import REGISTRY
from driftbayes.learner import DriftLearner
from driftbayes.patterns import patterns
from driftbayes.posterior import layer_params, posterior
from tests.helpers import traffic

LAYERS = ("prior", "posterior", "applied")


@pytest.fixture(scope="module")
def learner():
    learner = DriftLearner(Config(persona_adaptation=True))
    learner.learn_many(traffic(3000, seed=11))
    learner.learn_many(traffic(2000, seed=12, t0=3600.0, median_ms=300.0, error_rate=0.2,
                               endpoints=("/api/users/{id}", "/api/search")))
    return learner


def _same(a, b) -> None:
    if hasattr(a, "dense"):
        np.testing.assert_array_equal(a.dense(), b.dense())
        return
    for x, y in zip(a.__dict__.values(), b.__dict__.values()):
        if isinstance(x, tuple):  # a NIG
            for u, v in zip(x, y):
                np.testing.assert_array_equal(np.broadcast_to(u, np.shape(v)), v)
        else:
            np.testing.assert_array_equal(np.broadcast_to(x, np.shape(y)), y)


@pytest.mark.parametrize("layer", LAYERS)
def test_the_parameters_come_back_exactly(learner, layer):
    want = learner.snapshot().layer(layer)
    got = layer_params(posterior(learner, layer))
    for name in REGISTRY:
        _same(want[name], got[name])


def test_dims_coords_and_intervals(learner):
    ds = posterior(learner, "posterior")
    assert ds["latency_bin_alpha"].dims == ("endpoint", "persona", "latency_bin")
    assert ds["think_bin_alpha"].dims == ("endpoint", "persona", "think_bin")
    assert ds["think_lower_ms"].values[0] == 1.0 and ds["think_upper_ms"].values[-1] > 1.8e6
    assert ds["status_alpha"].dims == ("endpoint", "persona", "status")
    assert ds["transition_count"].dims == ("pair", "persona")
    assert ds["next_state_p"].dims == ("persona", "src")
    assert list(ds["ci_bound"].values) == ["lower", "upper"]
    assert ds.attrs["ci_kind"] == "eti" and ds.attrs["ci_prob"] == learner.config.credible_mass
    # every interval holds its estimate
    for name in ("latency_median_ms", "error_rate", "request_rate", "next_state_p"):
        lo, hi = ds[f"{name}_ci"].sel(ci_bound="lower"), ds[f"{name}_ci"].sel(ci_bound="upper")
        assert bool(((lo <= ds[name]) & (ds[name] <= hi)).all()), name
    # the sparse pairs are named: the first pair's count is that (src, dst) cell's count
    trans = learner.snapshot().layer("posterior").transitions
    src, dst = int(ds["pair_src_code"][0]), int(ds["pair_dst_code"][0])
    assert ds["pair_src"].values[0] == ds["src"].values[src]
    assert ds["pair_dst"].values[0] == ds["dst"].values[dst]
    want = [trans.row_counts(p, src)[dst] for p in range(ds.sizes["persona"])]
    np.testing.assert_array_equal(ds["transition_count"].values[0], want)


@pytest.mark.parametrize("layer", LAYERS)
def test_patterns_are_computed_from_a_saved_dataset(learner, layer, tmp_path):
    path = tmp_path / "posterior.nc"
    posterior(learner, layer).to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert patterns(ds.load()) == patterns(learner, layer)


def test_the_export_model_and_served_tables_read_the_dataset(learner):
    from driftbayes.server.app import MockEngine

    ds = posterior(learner, "applied")
    model = export_model(learner, "applied")
    prm = layer_params(ds)
    cell = model.cells[0]
    e, p = model.endpoints.index(cell.endpoint), model.personas.index(cell.persona)
    assert cell.rate_per_s == prm.rate_a[e, p] / prm.rate_b[e, p]
    engine = MockEngine(learner, learner.config, posterior=ds)
    np.testing.assert_array_equal(engine.latency_probs(e, p),
                                  prm.lat_alpha[e, p] / prm.lat_alpha[e, p].sum())


def test_an_empty_learner_has_an_empty_posterior():
    ds = posterior(DriftLearner(), "applied")
    assert ds.sizes["endpoint"] == 0 and ds.sizes["pair"] == 0
    assert patterns(ds) == []


def test_a_timestamp_past_year_9999_still_gives_a_posterior_and_patterns():
    # the learner API takes what the readers screen out; its provenance cannot be a datetime
    learner = DriftLearner(Config())
    learner.learn_many(traffic(200, seed=3))
    learner.learn_many(traffic(1, seed=4, t0=1e12))
    ds = posterior(learner)
    assert ds.attrs["data_end"].startswith("1e+12 s since 1970")
    assert len(patterns(learner, "posterior")) > 0
