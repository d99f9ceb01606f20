"""The notebook API: ``import driftbayes as db`` learns from any source exactly as the CLI does,
one event at a time equals one batch, and the README's Python block runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import orjson
import pytest

import driftbayes as db
from driftbayes.cli import learn_files
from driftbayes.config import Config
from driftbayes.events import EventBatch
from driftbayes.learner import DriftLearner
from driftbayes.patterns import patterns
from tests.helpers import use_recording
from tests.test_lazy_equivalence import assert_close

ROOT = Path(__file__).resolve().parents[1]


def records(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    t = 1.7e9 + np.cumsum(rng.exponential(20.0, n))
    return [{"ts": float(t[i]), "method": "GET", "path": f"/api/items/{int(rng.integers(1, 50))}",
             "status": int(rng.choice([200, 200, 200, 503])),
             "latency_ms": float(rng.lognormal(4, 0.5)), "client": f"10.0.0.{i % 7}",
             "user_agent": "test"} for i in range(n)]


@pytest.mark.slow
def test_a_path_learns_what_the_cli_learns(monkeypatch):
    use_recording("apache", monkeypatch)
    cfg = Config()
    cli = DriftLearner(cfg)
    learn_files(cli, ["apache"], progress=False)
    api = db.learn("apache", config=cfg)
    assert api.n_events_ == cli.n_events_ > 0
    assert api.sessions.to_dataset().equals(cli.sessions.to_dataset())
    for layer in ("posterior", "applied"):
        assert_close(patterns(api, layer), patterns(cli, layer), (layer,))
    kinds = {r["kind"] for r in patterns(api, "posterior")}
    assert "transitions" in kinds  # sessions were cut: the footgun is gone


def test_dicts_dataframe_and_batch_give_the_same_learner():
    import pandas as pd

    recs = records(400)
    a = db.learn(recs)
    b = db.learn(pd.DataFrame(recs))
    c = db.learn(EventBatch.from_records(recs))
    for other in (b, c):
        assert other.endpoints_ == a.endpoints_
        assert_close(patterns(other, "applied"), patterns(a, "applied"))
    assert any(r["kind"] == "transitions" for r in patterns(a, "posterior"))


def test_learn_one_event_at_a_time_equals_one_batch():
    recs = records(150, seed=1)
    whole = DriftLearner().learn_many(EventBatch.from_records(recs))
    one = DriftLearner()
    for r in recs:
        one.learn_one(r)
    assert one.n_events_ == whole.n_events_ and one.window_ == whole.window_
    for layer in ("prior", "posterior", "applied"):
        assert_close(patterns(one, layer), patterns(whole, layer), (layer,))


def test_learning_more_continues_sessions():
    recs = records(600, seed=2)
    whole = db.learn(recs)
    part = db.learn(recs[:250])
    part.learn(recs[250:])
    assert_close(patterns(part, "applied"), patterns(whole, "applied"))


def test_save_and_load(tmp_path):
    learner = db.learn(records(300, seed=3), config={"update_interval": 120})
    path = db.save(learner, tmp_path / "state.nc")
    again = db.load(path)
    assert again.config.update_interval == 120
    assert patterns(again, "applied") == patterns(learner, "applied")
    assert learner.save(tmp_path / "b.nc").exists()
    draws = again.sample(50, seed=1)
    assert len(draws["latency_ms"]) == 50 and set(draws["status"]) <= {200, 503}
    assert again.patterns("posterior").shape[0] == len(patterns(again, "posterior"))


def test_an_unknown_source_is_refused():
    with pytest.raises(TypeError, match="cannot learn from int"):
        db.learn(3)


def test_the_readme_python_block_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Python\n\n```python\n(.*?)```", text, re.S).group(1)
    recs = records(2000, seed=4)
    (tmp_path / "traffic.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in recs[:1200]))
    (tmp_path / "more.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in recs[1200:]))
    (tmp_path / "driftbayes.yaml").write_text("drift_learning:\n  update_interval: 60s\n")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - the README's own code
    assert scope["learner"].n_events_ == 2000
    assert (tmp_path / "state.nc").exists()


@pytest.mark.parametrize("layer", ["prior", "posterior", "applied"])
def test_the_posterior_dataset_holds_what_patterns_prints(layer):
    from driftbayes.kinds import REGISTRY

    learner = db.learn(records(1500, seed=5))
    ds = learner.posterior(layer)
    assert list(ds["ci_bound"].values) == ["lower", "upper"]
    assert ds.attrs["ci_prob"] == learner.config.credible_mass and ds.attrs["layer"] == layer
    rows = patterns(learner, layer)
    assert rows
    for r in rows:
        kind = REGISTRY[r["kind"]]
        q = kind.quantity or r["kind"]
        name = f"{r['method']} {r['endpoint']}".strip() if r["endpoint"] != "START" else "START"
        cell = ({"persona": r["persona"], "src": name} if r["kind"] == "transitions"
                else {"endpoint": name, "persona": r["persona"]})
        at = ds.sel(cell)
        assert at[q].item() == r["estimate"]
        assert at[f"{q}_ci"].sel(ci_bound="lower").item() == r["interval"]["lower"]
        assert at[f"{q}_ci"].sel(ci_bound="upper").item() == r["interval"]["upper"]
        assert at[f"{r['kind']}_n_eff"].item() == r["n_eff"]
        assert at[f"{r['kind']}_confidence"].item() == r["confidence"]
        assert bool(at[f"{r['kind']}_gate"].item()) == r["applied"]


def test_history_is_a_dataset_with_a_window_dim():
    learner = db.learn(records(800, seed=6), track_history=True)
    ds = learner.history()
    frame = learner.history_frame()
    assert ds.sizes["window"] == frame["time"].nunique() > 1
    assert str(ds["window"].dtype).startswith("datetime64")
    row = frame.iloc[len(frame) // 2]
    at = ds.sel(window=row["time"].tz_localize(None), endpoint=row["endpoint"],
                persona=row["persona"])
    assert at["latency_median"].item() == row["latency_median"]
    assert bool(at["latency_gate"].item()) == bool(row["latency_gate"])


def test_in_memory_records_are_screened_like_file_records():
    """Bad records in memory are skipped and reported as ``<records>:N`` with their field (a
    far-off timestamp, text where a time belongs, a negative latency, an impossible status, a
    missing time, a non-mapping), exactly as JSONL lines are; NumPy scalars and datetimes are
    understood; strict mode raises at the first."""
    import datetime as dt

    from driftbayes.events import BadRecordError, BadRecordReport

    good = [{"ts": 60.0 * i, "path": "/api/users/7", "status": 200, "latency_ms": 80.0}
            for i in range(30)]
    hostile = [{"ts": 1e12, "path": "/far", "status": 200},
               {"ts": "yesterday", "path": "/text", "status": 200},
               {"ts": 100.0, "path": "/a\x00b\r\nX-Injected: 1", "status": 200,
                "latency_ms": -5},
               {"ts": 120.0, "path": "/" + "z" * 100_000, "status": 999_999},
               {"path": "/no-time", "status": 200},
               "not a mapping",
               {"ts": np.float64(1900.0), "path": "/numpy", "status": np.int64(200),
                "latency_ms": np.float32(3.0)},
               {"ts": dt.datetime(1970, 1, 1, 0, 40), "path": "/datetime", "status": 201}]
    report = BadRecordReport(keep=10)
    learner = db.learn(good + hostile, report=report)
    assert learner.n_events_ == 32
    assert learner.endpoints_ == ["GET /api/users/{id}", "GET /numpy", "GET /datetime"]
    assert learner.t_last_ == 2400.0
    got = {(b.line, b.field) for b in report.first}
    assert got == {(31, "ts"), (32, "ts"), (33, "latency_ms"), (34, "status"), (35, "ts"),
                   (36, "record")}
    assert all(b.source == "<records>" for b in report.first)
    with pytest.raises(BadRecordError, match="<records>:31: field 'ts'"):
        db.learn(good + hostile, strict=True)


def test_a_dataframe_with_missing_values_and_datetimes():
    import pandas as pd

    rows = records(300, seed=9)
    frame = pd.DataFrame(rows)
    frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
    frame.loc[::10, "latency_ms"] = np.nan  # a missing latency is an absent field, not bad
    want = db.learn([{k: v for k, v in r.items() if not (k == "latency_ms" and i % 10 == 0)}
                     for i, r in enumerate(rows)])
    got = db.learn(frame)
    assert got.n_events_ == want.n_events_ == 300
    assert_close(patterns(got, "posterior"), patterns(want, "posterior"))
