"""benchmarks/learn_speed.py end to end on tiny inputs: both tables well formed, numbers sane.

No timing is asserted (the machine is shared and noisy): only that every row ran and that
every measured number is positive and finite.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "learn_speed.py"
MET = {"yes", "**no**", "—"}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(lines: list[str], header_start: str) -> tuple[list[str], list[list[str]]]:
    """Header and body rows of the markdown table whose header line starts with ``header_start``."""
    i = next(k for k, line in enumerate(lines) if line.startswith(header_start))
    assert set(lines[i + 1].replace("|", "").replace(":", "").strip()) == {"-"}, lines[i + 1]
    body = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        body.append(_cells(line))
    return _cells(lines[i]), body


def _num(cell: str) -> float:
    return float(cell.lstrip("> ").split()[0].rstrip("×").replace(",", ""))


def _sane(x: float) -> bool:
    return math.isfinite(x) and x > 0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_learn_speed_benchmark_runs_tiny_and_writes_well_formed_tables(tmp_path):
    # every section but the NASA one, which learns the whole recording (not a tiny input);
    # 2 h of event time (120 windows of 60 s, not 1,440): the tables' form does not depend on it
    sections = ["table", "scale", "rss", "reads", "far-future", "ingest"]
    args = ["--only", ",".join(sections), "--scale", "0.002", "--events", "500000",
            "--span-hours", "2",
            "--wide-endpoints", "60", "--rss-endpoints", "200", "--no-before",
            "--reads-cap", "300", "--mem-cap-gb", "8", "--tmp", str(tmp_path / "work"),
            "--out", str(tmp_path / "learn_speed.md")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1700)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (tmp_path / "learn_speed.md").read_text()
    assert f"Command: `python benchmarks/learn_speed.py {' '.join(args)}`" in text
    lines = text.splitlines()

    # section 1: the core-learner table, four steps with positive finite numbers
    header, rows = _table(lines, "| step |")
    assert header == ["step", "seconds", "events/s", "speed vs pandas baseline"]
    assert [r[0] for r in rows] == ["core learner (in-memory batches)", "JSONL parse only",
                                    "JSONL parse + learn (end to end)",
                                    "baseline: pandas read_json + groupby"]
    for r in rows:
        assert all(_sane(_num(c)) for c in r[1:]), r
    assert rows[-1][3] == "1.00×"

    # section 2: one row per selected target, every one measured (none failed)
    header, rows = _table(lines, "| measure |")
    assert header == ["measure", "before", "now", "ratio", "target", "met", "detail"]
    assert len(rows) == len(sections) - 1 + 2  # reads gives three rows, table none
    for r in rows:
        assert len(r) == 7, r
        assert "failed" not in r[2], r
        assert r[5] in MET, r
        assert _sane(_num(r[2])), r
        if r[3] != "—":
            assert _sane(_num(r[3])), r
    targets = [r[4] for r in rows]
    for t in ["≤ 2×", "peak RSS ≤ 2 GB", "≤ 10 s", "O(1)", "≥ today's, same run"]:
        assert t in targets, (t, targets)
    assert sum(r[0].startswith("`") and "-endpoint state" in r[0] for r in rows) == 3

    # raw measurements: every child ran to completion with a positive time and peak RSS
    header, raw = _table(lines, "| measurement |")
    assert header == ["measurement", "seconds", "peak RSS MiB", "note"]
    assert len(raw) >= 2 * len(sections)
    for m, secs, rss, note in raw:
        assert "killed" not in note and "failed" not in note, (m, note)
        assert _sane(_num(secs)), m
        assert _sane(_num(rss)), m
    assert "JSONL reader on a far-future line" in text
