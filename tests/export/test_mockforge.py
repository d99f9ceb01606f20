"""The MockForge export: ``mockforge.yaml`` against MockForge's serde schema (MockForge itself
cannot be built here), the ``!normal`` tag, the status mix in ``fault_types``, the log-normal
moments, and the behavioural-cloning rows in JSON and SQLite.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import sqlite3

import numpy as np
import pytest
from scipy import stats

from driftbayes import conjugate as cj
from driftbayes import yamlio
from driftbayes.export.mockforge import (
    DRIFT_LEARNING_FIELDS,
    ERROR_STATUS,
    FAILURE_CONFIG_FIELDS,
    FAULT_ENTRIES,
    TABLE_COLUMNS,
    NormalLatency,
    dump_mockforge_yaml,
    endpoint_probability_rows,
    export_persona,
    histogram_moments,
    load_mockforge_yaml,
    lognormal_moments,
    status_split,
    validate_mockforge,
    write_mockforge,
)


@pytest.fixture(scope="module")
def written(model, tmp_path_factory):
    return write_mockforge(model, tmp_path_factory.mktemp("mockforge"))


@pytest.fixture(scope="module")
def doc(written):
    return validate_mockforge(written)


def _route_cells(model, doc, persona):
    by_key = {(c.method, c.template): c for c in model.cells if c.persona == persona}
    return [(r, by_key[(r["method"], r["path"])]) for r in doc["routes"]]


def test_files_written_and_yaml_validates(written, doc, model):
    assert written.name == "mockforge.yaml"
    assert (written.parent / "endpoint_probabilities.json").exists()
    assert (written.parent / "endpoint_probabilities.sqlite").exists()
    assert doc["reality"] == {"enabled": False}
    assert {(r["method"], r["path"]) for r in doc["routes"]} == {
        tuple(ep.split(" ", 1)) for ep in model.endpoints}
    # fewer path parameters first (MockForge matches first-match-wins)
    n_params = [r["path"].count("{") for r in doc["routes"]]
    assert n_params == sorted(n_params)


def test_normal_tag_present_and_round_trips(written, doc):
    text = written.read_text(encoding="utf-8")
    assert text.count("distribution: !normal {mean_ms:") == len(doc["routes"])
    dists = [r["latency"]["distribution"] for r in doc["routes"]]
    assert all(isinstance(d, NormalLatency) for d in dists)
    again = load_mockforge_yaml(dump_mockforge_yaml(doc))
    assert again == doc
    with pytest.raises(yamlio.YAMLError):  # a plain safe loader does not know the tag
        yamlio.load(text)


def test_persona_comment_and_choice(written, model):
    persona = export_persona(model)
    assert persona == model.personas[int(np.argmax(model.persona_share))]
    head = written.read_text(encoding="utf-8").split("reality:")[0]
    assert f"serves persona {persona!r}" in head and "no latency or faults by persona" in head
    with_default = dataclasses.replace(model, personas=["a", "default", "b"])
    assert export_persona(with_default) == "default"
    with pytest.raises(ValueError, match="unknown persona"):
        export_persona(model, "nobody")


def test_other_persona(model, tmp_path):
    persona = model.personas[-1]
    doc = validate_mockforge(write_mockforge(model, tmp_path / "mf.yaml", persona=persona))
    for route, cell in _route_cells(model, doc, persona):
        mean, _ = lognormal_moments(cell.median_ms, cell.sigma)
        assert route["latency"]["distribution"].mean_ms == pytest.approx(mean, abs=1e-3)


def test_normal_matches_lognormal_moments(model, doc):
    persona = export_persona(model)
    for route, cell in _route_cells(model, doc, persona):
        ref = stats.lognorm(s=cell.sigma, scale=cell.median_ms)
        d = route["latency"]["distribution"]
        assert d.mean_ms == pytest.approx(ref.mean(), abs=1e-3)
        assert d.std_dev_ms == pytest.approx(ref.std(), abs=1e-3)
        lat = route["latency"]
        assert lat["enabled"] is True and lat["probability"] == 1.0
        assert lat["jitter_percent"] == 0.0


def test_fault_types_reproduce_status_mix(model, doc):
    persona = export_persona(model)
    for route, cell in _route_cells(model, doc, persona):
        codes = np.array(cell.statuses)
        probs = np.array(cell.status_p)
        fi = route["fault_injection"]
        split = status_split(cell)
        assert route["response"]["status"] == split.primary < ERROR_STATUS
        err = float(probs[codes >= ERROR_STATUS].sum())
        assert fi["probability"] == pytest.approx(err, abs=1e-6)
        assert fi["enabled"] is (err > 0)
        entries = [f["status_code"] for f in fi["fault_types"]]
        assert all(f["type"] == "http_error" for f in fi["fault_types"])
        assert len(entries) == (FAULT_ENTRIES if err > 0 else 0)
        for code in codes[codes >= ERROR_STATUS]:
            want = probs[codes == code].sum() / err
            got = entries.count(int(code)) / len(entries)
            assert abs(got - want) < 1.0 / FAULT_ENTRIES, (cell.endpoint, code, got, want)
        # what MockForge serves: primary (plus merged non-errors) 1 − err, each fault err/20
        served = {split.primary: 1 - fi["probability"]}
        for c in entries:
            served[c] = served.get(c, 0.0) + fi["probability"] / len(entries)
        for code, p in zip(cell.statuses, cell.status_p):
            if code >= ERROR_STATUS:
                assert abs(served.get(code, 0.0) - p) <= err / FAULT_ENTRIES + 1e-9


def test_failure_config_and_drift_learning(model, doc, learned, tmp_path):
    core = doc["core"]
    assert core["failures_enabled"] is False
    assert set(FAILURE_CONFIG_FIELDS) <= set(core["failure_config"])
    fc = core["failure_config"]
    assert 0 < fc["global_error_rate"] < 1
    assert all(c >= ERROR_STATUS for c in fc["default_status_codes"])
    dl = doc["drift_learning"]
    assert set(dl) <= set(DRIFT_LEARNING_FIELDS)
    assert "update_interval" not in dl and "traffic_mirroring" not in dl
    cfg = learned.config
    assert dl["mode"] == cfg.mode and dl["sensitivity"] == cfg.sensitivity
    assert dl["decay"] == cfg.decay and dl["min_samples"] == cfg.min_samples
    on = validate_mockforge(write_mockforge(model, tmp_path, global_failures=True))
    assert on["core"]["failures_enabled"] is True
    # driftbayes reads its own block back out of the MockForge file
    from driftbayes.config import load_config

    back = load_config(tmp_path / "mockforge.yaml")
    assert (back.mode, back.sensitivity, back.decay) == (cfg.mode, cfg.sensitivity, cfg.decay)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(reality={"enabled": True}), "reality.enabled"),
    (lambda d: d.pop("reality"), "reality.enabled"),
    (lambda d: d["routes"][0]["latency"].pop("jitter_percent"), "jitter_percent"),
    (lambda d: d["routes"][0]["latency"].update(distribution="normal"), "distribution"),
    (lambda d: d["routes"][0]["latency"].update(
        distribution={"normal": {"mean_ms": 1.0, "std_dev_ms": 1.0}}), "distribution"),
    (lambda d: d["routes"][0]["fault_injection"].pop("probability"), "probability"),
    (lambda d: d["routes"][0]["fault_injection"]["fault_types"].append({"type": "http_error"}),
     "status_code"),
    (lambda d: d["routes"][0]["response"].update(status=200.0), "response.status"),
    (lambda d: d["core"]["failure_config"].pop("exclude_tags"), "exclude_tags"),
    (lambda d: d["drift_learning"].update(update_interval="60s"), "update_interval"),
    (lambda d: d["drift_learning"].update(min_samples=2.5), "min_samples"),
])
def test_validator_rejects(doc, tmp_path, edit, message):
    bad = copy.deepcopy(doc)
    edit(bad)
    path = tmp_path / "bad.yaml"
    path.write_text(dump_mockforge_yaml(bad), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        validate_mockforge(path)


def test_validator_rejects_unknown_tag(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("reality: {enabled: false}\nroutes:\n- path: /a\n  method: GET\n"
                    "  response: {status: 200}\n  latency: {enabled: true, probability: 1.0, "
                    "jitter_percent: 0.0, distribution: !lognormal {mean_ms: 1, std_dev_ms: 1}}\n",
                    encoding="utf-8")
    with pytest.raises(ValueError, match="not valid MockForge YAML"):
        validate_mockforge(path)


def test_histogram_moments_match_draws(model):
    cell = model.cells[0]
    mean, sd = histogram_moments(cell.latency_p)
    rng = np.random.default_rng(5)
    draws = cj.sample_histogram(np.broadcast_to(cell.latency_p, (200_000, len(cell.latency_p))),
                                rng)
    assert mean == pytest.approx(draws.mean(), rel=0.01)
    assert sd == pytest.approx(draws.std(), rel=0.05)


def test_sqlite_rows(model, written):
    persona = export_persona(model)
    con = sqlite3.connect(written.parent / "endpoint_probabilities.sqlite")
    try:
        info = con.execute("PRAGMA table_info(endpoint_probabilities)").fetchall()
        assert tuple(r[1] for r in info) == TABLE_COLUMNS
        assert {r[1] for r in info if r[5]} == {"endpoint", "method"}  # primary key
        rows = con.execute(f"SELECT {', '.join(TABLE_COLUMNS)} FROM endpoint_probabilities"
                           ).fetchall()
    finally:
        con.close()
    assert len(rows) == len(model.endpoints)
    from_json = json.loads((written.parent / "endpoint_probabilities.json").read_text())
    cells = {(c.method, c.template): c for c in model.cells if c.persona == persona}
    for row, ref in zip(rows, from_json):
        rec = dict(zip(TABLE_COLUMNS, row))
        for key in ("status_code_distribution", "latency_distribution", "error_patterns",
                    "payload_variations"):
            rec[key] = json.loads(rec[key])
        assert rec == ref  # the JSON file is the same records
        cell = cells[(rec["method"], rec["endpoint"])]
        dist = rec["status_code_distribution"]
        assert dist == {str(c): pytest.approx(p) for c, p in zip(cell.statuses, cell.status_p)}
        assert sum(dist.values()) == pytest.approx(1.0)
        lat = rec["latency_distribution"]
        assert set(lat) == {"p50", "p95", "p99", "mean", "std_dev", "min", "max"}
        for k in ("p50", "p95", "p99", "min", "max"):
            assert isinstance(lat[k], int) and lat[k] >= 0  # u64 in MockForge
        assert lat["min"] <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert lat["p50"] == round(cell.p50_ms) and lat["p99"] == round(cell.p99_ms)
        assert lat["mean"] == pytest.approx(histogram_moments(cell.latency_p)[0], abs=1e-3)
        errors = {e["status_code"]: e for e in rec["error_patterns"]}
        assert set(errors) == {c for c in cell.statuses if c >= ERROR_STATUS}
        for code, e in errors.items():
            assert e["error_type"] == str(code) and 0 < e["probability"] < 1
            assert set(e) == {"error_type", "probability", "conditions", "sample_responses",
                              "status_code"}
        for v in rec["payload_variations"]:
            assert set(v) == {"id", "probability", "sample_payload", "conditions"}
        assert isinstance(rec["sample_count"], int) and rec["sample_count"] > 0
        assert dt.datetime.fromisoformat(rec["updated_at"]).tzinfo is not None
    assert endpoint_probability_rows(model) == from_json
