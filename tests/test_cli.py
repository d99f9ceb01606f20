"""The fixed CLI contract: learn → patterns → sample → reset, config get/set, bad input."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from driftbayes.cli import app
from driftbayes.state import load_state
from tests.helpers import needs_real, traffic

runner = CliRunner()


def write_jsonl(path, batch, *, extra_lines=()):
    lines = [
        orjson.dumps({"ts": float(t), "method": m, "path": e.replace("{id}", str(i)),
                      "status": int(s), "latency_ms": float(x), "persona": p, "session": ss})
        for i, (t, m, e, s, x, p, ss) in enumerate(zip(
            batch.ts, batch.method, batch.endpoint, batch.status, batch.latency_ms,
            batch.persona, batch.session))
    ]
    for pos, line in extra_lines:
        lines.insert(pos, line)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def run(*args, ok=True):
    res = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert res.exit_code == 0, res.output
    return res


@pytest.fixture()
def learned(tmp_path):
    data = write_jsonl(tmp_path / "t.jsonl", traffic(3000, seed=1))
    state = tmp_path / "s.nc"
    run("learn", data, "--state", state, "--no-progress")
    return tmp_path, state, data


def test_learn_patterns_json_contract(learned):
    _, state, _ = learned
    rows = json.loads(run("patterns", "--state", state, "--format", "json").stdout)
    kinds = {r["kind"] for r in rows}
    assert kinds == {"latency", "errors", "transitions", "think_time", "frequency"}
    for r in rows:
        for key in ("endpoint", "persona", "kind", "n_eff", "confidence", "applied", "estimate"):
            assert key in r
        assert set(r["interval"]) == {"lower", "upper", "mass"}
        assert r["interval"]["lower"] <= r["estimate"] <= r["interval"]["upper"] + 1e-9
        assert 0.0 <= r["confidence"] <= 1.0
    lat = [r for r in rows if r["kind"] == "latency" and r["endpoint"] == "/api/cart"]
    assert {r["persona"] for r in lat} == {"premium", "regular"}
    assert all(90 < r["estimate"] < 160 for r in lat)  # truth 120 ms
    err = [r for r in rows if r["kind"] == "errors"]
    assert all(0.0 <= r["estimate"] < 0.2 for r in err)
    post = json.loads(run("patterns", "--state", state, "--format", "json", "--layer",
                          "posterior").stdout)
    assert all(r["layer"] == "posterior" for r in post)
    table = run("patterns", "--state", state).stdout
    assert "/api/cart" in table and "latency" in table


def test_learn_is_incremental(tmp_path):
    batch = traffic(3000, seed=2)
    half = len(batch) // 2
    a = write_jsonl(tmp_path / "a.jsonl", batch.take(np.arange(half)))
    b = write_jsonl(tmp_path / "b.jsonl", batch.take(np.arange(half, len(batch))))
    both = write_jsonl(tmp_path / "all.jsonl", batch)
    run("learn", a, "--state", tmp_path / "inc.nc", "--no-progress")
    run("learn", b, "--state", tmp_path / "inc.nc", "--no-progress")
    run("learn", both, "--state", tmp_path / "one.nc", "--no-progress")
    inc, one = load_state(tmp_path / "inc.nc"), load_state(tmp_path / "one.nc")
    assert inc.evidence_.equals(one.evidence_) and inc.applied_.equals(one.applied_)
    assert inc.pending_.equals(one.pending_) and inc.n_events_ == one.n_events_ == 3000


def test_sample_contract_and_seed(learned):
    _, state, _ = learned
    out1 = run("sample", "--state", state, "--n", 50, "--seed", 7).stdout
    out2 = run("sample", "--state", state, "--n", 50, "--seed", 7).stdout
    assert out1 == out2
    rows = [json.loads(line) for line in out1.splitlines()]
    assert len(rows) == 50
    assert {"endpoint", "persona", "status", "latency_ms"} <= set(rows[0])
    assert {r["endpoint"] for r in rows} <= {"/api/users/{id}", "/api/orders/{id}", "/api/cart"}
    one = [json.loads(x) for x in run("sample", "--state", state, "--n", 20, "--endpoint",
                                      "GET /api/cart", "--persona", "premium").stdout.splitlines()]
    assert {(r["endpoint"], r["persona"]) for r in one} == {("/api/cart", "premium")}
    prior = [json.loads(x) for x in run("sample", "--state", state, "--n", 20, "--layer",
                                        "prior").stdout.splitlines()]
    assert len(prior) == 20
    sess = [json.loads(x) for x in run("sample", "--state", state, "--sessions", 4,
                                       "--seed", 1).stdout.splitlines()]
    assert {r["session"] for r in sess} <= {0, 1, 2, 3}
    for r in sess:
        keys = {"session", "step", "endpoint", "persona", "think_ms", "status", "latency_ms"}
        assert keys <= set(r)
        assert (r["think_ms"] == 0) == (r["step"] == 0)
    bad = run("sample", "--state", state, "--endpoint", "/nope", ok=False)
    assert bad.exit_code != 0 and "unknown endpoint" in bad.output


def test_reset_and_missing_state(learned, tmp_path):
    _, state, _ = learned
    run("reset", "--state", state, "--endpoint", "/api/users/*", "--persona", "premium")
    rows = json.loads(run("patterns", "--state", state, "--format", "json").stdout)
    assert not any(r["endpoint"] == "/api/users/{id}" and r["persona"] == "premium"
                   for r in rows if r["kind"] == "latency")
    assert any(r["endpoint"] == "/api/users/{id}" and r["persona"] == "regular" for r in rows)
    run("reset", "--state", state)
    assert json.loads(run("patterns", "--state", state, "--format", "json").stdout) == []
    missing = run("patterns", "--state", tmp_path / "nope.nc", ok=False)
    assert missing.exit_code == 2 and "no such state file" in missing.output


def test_bad_lines_lenient_and_strict(tmp_path):
    data = write_jsonl(tmp_path / "bad.jsonl", traffic(200, seed=3),
                       extra_lines=[(5, b'{"ts": 1, "path": "/x", "status": "oops"}'),
                                    (50, b"not json at all")])
    res = run("learn", data, "--state", tmp_path / "s.nc", "--no-progress")
    assert "skipped 2 bad record" in res.output and "bad.jsonl:6" in res.output
    assert load_state(tmp_path / "s.nc").n_events_ == 200
    strict = run("learn", data, "--state", tmp_path / "strict.nc", "--strict", "--no-progress",
                 ok=False)
    assert strict.exit_code == 2
    assert "bad.jsonl:6" in strict.output and "status" in strict.output
    assert not (tmp_path / "strict.nc").exists()


def test_config_set_get_show(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run("config", "set", "drift_learning.mode", "hybrid")
    run("config", "set", "drift_learning.enabled", "true")
    run("config", "set", "decay", "0.1")
    assert run("config", "get", "drift_learning.mode").stdout.strip() == "hybrid"
    assert run("config", "get", "drift_learning.decay").stdout.strip() == "0.1"
    assert "decay: 0.1" in run("config", "show").stdout
    bad = run("config", "set", "drift_learning.decay", "1.5", ok=False)
    assert bad.exit_code == 2 and "range" in bad.output
    typo = run("config", "set", "drift_learning.sensitivty", "0.3", ok=False)
    assert "sensitivity" in typo.output


def test_learn_uses_config_and_warns_unreachable_gate(tmp_path):
    cfg = tmp_path / "driftbayes.yaml"
    cfg.write_text("drift_learning:\n  decay: 0.9\n  min_samples: 500\n  update_interval: 60s\n")
    data = write_jsonl(tmp_path / "t.jsonl", traffic(500, seed=4))
    res = run("learn", data, "--config", cfg, "--state", tmp_path / "s.nc", "--no-progress")
    assert "gate can never open" in res.output
    assert load_state(tmp_path / "s.nc").config.decay == 0.9


@needs_real("trainticket-traces/requests.csv.gz", "trainticket")
def test_demo_recording_writes_plot_and_patterns(tmp_path):
    out = tmp_path / "demo"
    res = run("demo", "--recording", "trainticket", "--out", out, "--no-progress")
    assert (out / "drift.png").stat().st_size > 10_000
    rows = json.loads((out / "patterns.json").read_text())
    login = [r for r in rows if r["endpoint"] == "/api/v1/users/login" and r["kind"] == "latency"]
    assert login and 100 < login[0]["estimate"] < 300  # the recording's login p50 is ~175 ms
    assert "27,364 events" in res.output
