"""The `driftbayes bench` command, the realism benchmark script and real-recording streams."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from driftbayes.bench.harness import default_mocks, score_stream
from driftbayes.bench.suite import OTHER_ENDPOINT, recording_stream
from driftbayes.cli import app
from tests.helpers import use_recording

ROOT = Path(__file__).resolve().parents[2]


def test_bench_command_writes_results_plots_and_report(tmp_path):
    out = tmp_path / "b"
    res = CliRunner().invoke(app, ["bench", "-s", "latency_regression", "--hours", "2",
                                   "-l", "static", "-l", "driftbayes", "-l", "ema",
                                   "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    assert set(data["mean_rank"]) == {"static", "driftbayes", "ema"}
    assert {r["metric"] for r in data["scores"]} >= {"latency_crps", "coverage90", "trans_kl"}
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2  # the stream's plot and the rank map
    assert (out / "latency_regression.png").stat().st_size > 10_000
    assert "| latency_regression | latency_crps |" in (out / "results.md").read_text()


def test_bench_command_rejects_unknown_names(tmp_path):
    res = CliRunner().invoke(app, ["bench", "-s", "nope", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown scenario 'nope'" in res.output
    res = CliRunner().invoke(app, ["bench", "-s", "steady", "-l", "nope", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown learner 'nope'" in res.output


def test_realism_script_on_a_tiny_setting(tmp_path):
    spec = importlib.util.spec_from_file_location("realism", ROOT / "benchmarks" / "realism.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    path = mod.main(["--scenario", "steady", "--hours", "1.5", "--out", str(tmp_path)])
    text = path.read_text()
    assert "Command: `python benchmarks/realism.py --scenario steady --hours 1.5" in text
    assert "| learner | mean rank |" in text and "driftbayes-tuned" in text
    assert (tmp_path / "realism" / "report.html").exists()


def test_openstack_recording_stream_scores(monkeypatch):
    use_recording("openstack", monkeypatch)
    stream = recording_stream("openstack")
    assert len(stream.events) == 1017 and stream.window_s == 60.0
    assert stream.n_windows >= 15
    mocks = {k: v for k, v in default_mocks().items() if k in ("static", "driftbayes")}
    res = score_stream(stream, mocks)
    s = res.scores.set_index(["metric", "learner"]).value
    # real latency (hundreds of ms) far from the synthetic defaults: learning must help
    assert s["latency_crps", "driftbayes"] < s["latency_crps", "static"]
    assert np.isfinite(s["error_brier", "driftbayes"])


def test_nasa_stream_keeps_the_busiest_endpoints(monkeypatch):
    use_recording("nasa", monkeypatch)
    stream = recording_stream("nasa", max_events=5000)
    eps = set(stream.events.endpoint)
    assert OTHER_ENDPOINT in eps and len(eps) <= 31
