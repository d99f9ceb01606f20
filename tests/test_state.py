"""State files: round trip, continuing after a reload, atomic save, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from driftbayes import state as state_mod
from driftbayes.config import Config
from driftbayes.learner import DriftLearner
from driftbayes.state import StateError, load_state, save_state, to_dataset
from tests.helpers import traffic


def test_round_trip_and_continue(tmp_path):
    batch = traffic(4000, seed=1)
    half = np.arange(2000)
    first = DriftLearner(Config(decay=0.1)).learn_many(batch.take(half))
    save_state(first, tmp_path / "s.nc")
    again = load_state(tmp_path / "s.nc")
    assert again.config.decay == 0.1
    assert again.endpoints_ == first.endpoints_ and again.personas_ == first.personas_
    assert again.evidence_.equals(first.evidence_) and again.pending_.equals(first.pending_)
    again.learn_many(batch.take(np.arange(2000, 4000)))
    whole = DriftLearner(Config(decay=0.1)).learn_many(batch)
    assert again.evidence_.equals(whole.evidence_)
    assert again.applied_.equals(whole.applied_)


def test_dataset_has_named_dims():
    ds = to_dataset(DriftLearner().learn_many(traffic(500, seed=2)))
    assert ds["lat_hist"].dims == ("store", "endpoint", "persona", "lat_bin")
    assert ds["think_hist"].dims == ("store", "endpoint", "persona", "think_bin")
    assert ds["think_lower_ms"].dims == ("think_bin",)
    assert ds["trans_count"].dims == ("store", "pair", "persona")
    assert ds["trans_count_src"].dims == ds["trans_count_dst"].dims == ("pair",)
    assert list(ds["store"].values) == ["evidence", "applied", "pending"]
    assert ds["src"].values[-1] == "START" and ds["dst"].values[-1] == "END"
    assert ds.attrs["schema"] == "driftbayes-state"


def test_crash_mid_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "s.nc"
    save_state(DriftLearner().learn_many(traffic(300, seed=3)), path)
    before = path.read_bytes()

    def boom(self, *a, **k):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(KeyboardInterrupt):
        save_state(DriftLearner().learn_many(traffic(900, seed=4)), path)
    assert path.read_bytes() == before
    # no temp file left behind (the writer lock file stays, as lock files do)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.nc", "s.nc.lock"]


def test_not_a_state_and_unknown_version(tmp_path):
    junk = tmp_path / "junk.nc"
    junk.write_text("hello")
    with pytest.raises(StateError, match="not a driftbayes state"):
        load_state(junk)
    other = tmp_path / "other.nc"
    xr.Dataset({"x": ("a", [1, 2])}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(StateError, match="no 'driftbayes-state' schema"):
        load_state(other)
    future = tmp_path / "future.nc"
    ds = to_dataset(DriftLearner().learn_many(traffic(100, seed=5)))
    ds.attrs["schema_version"] = state_mod.SCHEMA_VERSION + 1
    ds.to_netcdf(future, engine="h5netcdf")
    with pytest.raises(StateError,
                       match=f"schema version {state_mod.SCHEMA_VERSION + 1} is not supported"):
        load_state(future)
    with pytest.raises(StateError, match="no such state file"):
        load_state(tmp_path / "missing.nc")


def test_version_1_state_migrates_to_the_same_patterns():
    """tests/data/state-v1.nc was saved by driftbayes' schema-1 writer from these events."""
    from driftbayes.patterns import patterns
    from tests.helpers import concat, traffic
    from tests.test_lazy_equivalence import assert_close

    path = Path(__file__).parent / "data" / "state-v1.nc"
    # the maths of the time (the file's config, a prior that never fades, the z-test)
    written = state_mod.load_state(path).config
    cfg = written.replace(prior_fade=0.0, changepoint_hazard=0.0)
    old = state_mod.load_state(path, config=cfg)
    fresh = DriftLearner(cfg).learn_many(
        concat(traffic(600, seed=3, t0=0.0), traffic(300, seed=4, t0=7200.0)))
    fresh.bodies_[("GET /api/cart", 200)] = ("application/json", '{"items": []}')
    # to 1e-9 relative, the equality standard of the learner core: the v1 file's applied
    # transition counts were computed dense, the fresh ones sparse (1 ulp apart). Transition
    # rows differ since session ENDs carry the decay since the session's last request: the
    # v1 file counted them at full weight when the gap ran out; its counts must be those
    for layer in ("prior", "posterior", "applied"):
        assert_close([r for r in patterns(old, layer) if r["kind"] != "transitions"],
                     [r for r in patterns(fresh, layer) if r["kind"] != "transitions"],
                     (layer,))
    with xr.open_dataset(path, engine="h5netcdf") as raw:
        dense = raw["trans_count"].sel(store="evidence").values  # (persona, src, dst)
    np.testing.assert_allclose(old.evidence_["trans_count"].to_dense(), dense, rtol=1e-12)
    assert old.bodies_ == fresh.bodies_
    assert [s.session for s in old.sessions.open()] == [s.session for s in fresh.sessions.open()]
    for kind, g in fresh.gate_.items():
        np.testing.assert_array_equal(old.gate_[kind], g)
    # saved again, it is a current file with one gate variable per kind
    ds = state_mod.to_dataset(old)
    assert ds.attrs["schema_version"] == state_mod.SCHEMA_VERSION and "gate" not in ds
    assert ds["gate_transitions"].dims == ("persona", "src")
    assert ds["gate_latency"].dims == ("endpoint", "persona")


def test_version_2_dense_transitions_migrate_to_sparse(tmp_path):
    """Version 2 kept the transition counts dense ``(store, persona, src, dst)``."""
    from driftbayes.patterns import patterns
    from tests.test_lazy_equivalence import assert_close

    learner = DriftLearner(Config()).learn_many(traffic(2000, seed=5))
    ds = state_mod.to_dataset(learner)
    dense = np.zeros((3, len(learner.personas_), len(ds["src"]), len(ds["dst"])))
    for i, store in enumerate(("evidence_", "applied_", "pending_")):
        dense[i] = getattr(learner, store)["trans_count"].to_dense()
    v2 = ds.drop_vars(["trans_count", "trans_count_src", "trans_count_dst"]).assign(
        trans_count=(("store", "persona", "src", "dst"), dense)).assign_attrs(schema_version=2)
    path = tmp_path / "v2.nc"
    v2.to_netcdf(path, engine="h5netcdf")
    old = state_mod.load_state(path)
    assert old.evidence_.equals(learner.evidence_) and old.applied_.equals(learner.applied_)
    for layer in ("prior", "posterior", "applied"):
        assert_close(patterns(old, layer), patterns(learner, layer), (layer,))
    assert len(old.evidence_["trans_count"]) == int(dense.any(axis=(0, 1)).sum())


def test_version_3_think_summary_migrates_to_a_histogram(tmp_path):
    """Version 3 kept think times as a log-normal summary only: a migrated file gets each
    cell's count spread as the log-normal of its mean and spread; the rest is unchanged."""
    from scipy import stats

    learner = DriftLearner(Config()).learn_many(traffic(3000, seed=6))
    ds = state_mod.to_dataset(learner)
    assert "ring_think_hist" in ds
    v3 = ds.drop_vars(["think_hist", "ring_think_hist"]).assign_attrs(schema_version=3)
    path = tmp_path / "v3.nc"
    v3.to_netcdf(path, engine="h5netcdf")
    old = state_mod.load_state(path)
    for store in ("evidence_", "applied_", "pending_"):
        got, want = getattr(old, store), getattr(learner, store)
        for name, arr in want.arrays.items():
            if name != "think_hist" and isinstance(arr, np.ndarray):  # (not the sparse counts)
                np.testing.assert_array_equal(got[name], arr, err_msg=f"{store}{name}")
        hist, n = got["think_hist"], want["think_n"]
        np.testing.assert_allclose(hist.sum(-1), n, rtol=1e-9, atol=1e-12)
    # one cell by hand: n · (Φ((log edge − m)/s)) differences, outer bins absorbing the tails
    ev = learner.evidence_
    e, p = np.unravel_index(np.argmax(ev["think_n"]), ev["think_n"].shape)
    n, sx, sxx = (float(ev[f"think_{k}"][e, p]) for k in ("n", "sx", "sxx"))
    m, s = sx / n, np.sqrt(sxx / n - (sx / n) ** 2)
    cdf = stats.norm.cdf(np.log(ds["think_lower_ms"].values[1:]), m, s)
    want = n * np.diff(np.r_[0.0, cdf, 1.0])
    np.testing.assert_allclose(old.evidence_["think_hist"][e, p], want, rtol=1e-9, atol=1e-12)
    assert old.runs.ring and all(
        np.allclose(a["think_hist"].sum(-1), a["think_n"]) for _, _, a in old.runs.ring)
