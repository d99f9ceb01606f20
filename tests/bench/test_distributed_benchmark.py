"""benchmarks/distributed.py end to end on a tiny input: every run equal to one process, both
tables well formed. No timing is asserted (the machine is shared and noisy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "distributed.py"


@pytest.mark.slow
def test_tiny_benchmark_runs_and_every_cluster_learns_what_one_process_learns(tmp_path):
    out = tmp_path / "distributed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, str(SCRIPT), "--events", "4000", "--files", "2",
                          "--workers", "1,2", "--out", str(out)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.with_suffix(".json").read_text())
    rows = result["rows"]
    assert set(rows) == {"single", "1", "2"}
    for w in ("1", "2"):
        assert rows[w]["equal"] is True and rows[w]["events"] == rows["single"]["events"] == 4000
        assert len(rows[w]["worker_peak_rss_mb"]) == int(w)
        assert all(x > 0 for x in rows[w]["worker_cpu_s"])
        assert rows[w]["blocks"] == int(w)  # the scan splits into a block per worker
    md = out.with_suffix(".md").read_text()
    assert md.count("| LocalCluster, ") == 4  # a row per cluster in each table
    assert "**no**" not in md
