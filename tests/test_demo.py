"""The built-in demo: a seeded simulation with known truth, learned, plotted and checked."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from driftbayes import conjugate as cj
from driftbayes.cli import app
from driftbayes.demo import DEMO_CONFIG, DEMO_ENDPOINTS, DEMO_PERSONA, demo_scenario, truth_frame
from driftbayes.learner import DriftLearner
from driftbayes.patterns import patterns
from driftbayes.plots import plot_drift

Z = 4.0  # tolerance in standard errors: a fixed seed, so this is a check, not a coin flip
SE_MEDIAN = math.sqrt(math.pi / 2)  # sd of a normal sample median = this x sigma / sqrt(n)
HALF_BIN = float(np.diff(cj.LOG_EDGES).max()) / 2  # the latency histogram's resolution (log)


@pytest.fixture(scope="module")
def scenario():
    return demo_scenario(seed=0)


def cell(sc, endpoint: str):
    method, tmpl = endpoint.split(" ", 1)
    return sc.cells[(tmpl, DEMO_PERSONA)]


def segment_events(sc, endpoint: str, t_a: float, t_b: float):
    ev = sc.events
    method, tmpl = endpoint.split(" ", 1)
    m = ((ev.endpoint == tmpl) & (ev.method == method) & (ev.persona == DEMO_PERSONA)
         & (ev.ts >= t_a) & (ev.ts < t_b))
    return ev.latency_ms[m], ev.status[m]


def test_demo_scenario_is_seeded_and_has_every_change(scenario):
    again = demo_scenario(seed=0)
    other = demo_scenario(seed=1)
    assert np.array_equal(again.events.latency_ms, scenario.events.latency_ms)
    assert len(other.events) != len(scenario.events) or not np.array_equal(
        other.events.latency_ms, scenario.events.latency_ms)
    assert {c.kind for c in scenario.changes} == {"latency", "errors", "flow"}
    truth = truth_frame(scenario)
    for ep in DEMO_ENDPOINTS:  # both plotted cells drift in latency and in error rate
        t = truth[(truth.endpoint == ep) & (truth.persona == DEMO_PERSONA)]
        assert t.p50_ms.max() >= 2 * t.p50_ms.min()
        assert t.error_rate.max() >= 5 * t.error_rate.min()


def test_simulation_matches_its_truth_in_every_steady_segment(scenario):
    sc = scenario
    for t_a, t_b in sc.steady:
        for ep in DEMO_ENDPOINTS:
            c = cell(sc, ep)
            lat, status = segment_events(sc, ep, t_a, t_b)
            n = len(lat)
            assert n > 100
            p50 = float(c.quantile(0.5, t_a))
            tol = Z * SE_MEDIAN * c.latency.sigmas[0] / math.sqrt(n)
            assert abs(math.log(np.median(lat)) - math.log(p50)) < tol, (ep, t_a)
            p = float(c.error_rate(t_a))
            tol = Z * math.sqrt(p * (1 - p) / n) + 1 / n
            assert abs(np.mean(status >= 500) - p) < tol, (ep, t_a)


def test_learner_recovers_the_latency_truth_at_the_end_of_each_steady_segment(scenario):
    sc = scenario
    learner = DriftLearner(DEMO_CONFIG)
    ev, fed = sc.events, sc.t0
    checked = 0
    for _, t_b in sc.steady:
        learner.learn_many(ev.take(np.flatnonzero((ev.ts >= fed) & (ev.ts < t_b))))
        fed = t_b
        rows = {(f"{r['method']} {r['endpoint']}", r["kind"]): r
                for r in patterns(learner, "posterior") if r["persona"] == DEMO_PERSONA}
        for ep in DEMO_ENDPOINTS:
            c, row = cell(sc, ep), rows[(ep, "latency")]
            true = float(c.quantile(0.5, t_b - 1))
            tol = Z * SE_MEDIAN * c.latency.sigmas[0] / math.sqrt(row["n_eff"]) + HALF_BIN
            assert abs(math.log(row["estimate"]) - math.log(true)) < tol, (ep, t_b)
            checked += 1
    assert checked == 2 * len(sc.steady) >= 8


def test_learner_recovers_the_baseline_error_rate_and_sees_the_burst(scenario):
    sc = scenario
    first_change = min(c.t for c in sc.changes)
    burst = next(c for c in sc.changes if c.kind == "errors" and "burst" in c.description)
    ev = sc.events
    learner = DriftLearner(DEMO_CONFIG)
    learner.learn_many(ev.take(np.flatnonzero(ev.ts < first_change)))
    before = {f"{r['method']} {r['endpoint']}": r for r in patterns(learner, "posterior")
              if r["persona"] == DEMO_PERSONA and r["kind"] == "errors"}
    for ep in DEMO_ENDPOINTS:
        p, n = float(cell(sc, ep).error_rate(sc.t0)), before[ep]["n_eff"]
        assert abs(before[ep]["estimate"] - p) < Z * math.sqrt(p * (1 - p) / n) + 1 / n, ep
    learner.learn_many(ev.take(np.flatnonzero((ev.ts >= first_change)
                                              & (ev.ts < burst.t + 3600))))
    after = next(r for r in patterns(learner, "posterior") if r["persona"] == DEMO_PERSONA
                 and r["kind"] == "errors" and r["endpoint"] == burst.endpoint)
    assert after["interval"]["lower"] > before[f"POST {burst.endpoint}"]["interval"]["upper"]


def test_demo_plot_draws_the_truth_and_real_drift_in_every_panel(scenario):
    learner = DriftLearner(DEMO_CONFIG, track_history=True)
    learner.learn_many(scenario.events)
    fig = plot_drift(learner.history_frame(), endpoints=DEMO_ENDPOINTS, persona=DEMO_PERSONA,
                     truth=truth_frame(scenario))
    axes = fig.axes
    assert len(axes) == 3 * len(DEMO_ENDPOINTS)
    # third column: the change probabilities cross the threshold where the truth changed
    for (ep, line), ax in zip([("GET /api/products/{id}", "latency"),
                               ("POST /api/cart", "error rate")], axes[2::3]):
        assert ep in ax.get_title()
        cp = {ln.get_label(): ln.get_ydata() for ln in ax.get_lines()}
        assert np.nanmax(cp[line]) > 0.9
        assert np.nanmin(cp[line]) < 0.5
    for ax in [a for i, a in enumerate(axes) if i % 3 != 2]:
        assert not any("no status codes" in t.get_text() for t in ax.texts)
        labels = [line.get_label() for line in ax.get_lines()]
        assert "truth (simulated)" in labels
        observed = ax.collections[0].get_offsets()[:, 1]  # the observed window values
        observed = observed[np.isfinite(observed)]
        assert observed.max() > 2 * max(observed.min(), 1e-3)  # it moved


def test_demo_command_needs_no_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRIFTBAYES_DATA", str(tmp_path / "nothing-here"))
    res = CliRunner().invoke(app, ["demo", "--no-progress"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "driftbayes-demo"
    assert (out / "drift.png").stat().st_size > 10_000
    rows = json.loads((out / "patterns.json").read_text())
    kinds = {r["kind"] for r in rows if r["endpoint"] == "/api/cart"}
    assert {"latency", "errors", "transitions"} <= kinds
    assert "error burst" in res.output and "learned vs truth" in res.output


def test_demo_recording_without_data_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRIFTBAYES_DATA", str(tmp_path / "nothing-here"))
    res = CliRunner().invoke(app, ["demo", "--recording", "nasa", "--no-progress"])
    assert res.exit_code == 2
    assert res.exception is None or isinstance(res.exception, SystemExit)
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "nasa" in lines[0]
    assert "DRIFTBAYES_DATA=/path/to/data/real" in lines[0] and "Traceback" not in res.output


def test_demo_recording_with_no_data_root_at_all(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRIFTBAYES_DATA", raising=False)
    from driftbayes.io import recordings

    def nowhere():
        raise FileNotFoundError("cannot find the real recordings")

    monkeypatch.setattr(recordings, "data_root", nowhere)
    res = CliRunner().invoke(app, ["demo", "--recording", "trainticket", "--no-progress"])
    assert res.exit_code == 2
    line, = res.output.strip().splitlines()
    assert "trainticket" in line and "DRIFTBAYES_DATA=/path/to/data/real" in line
