"""CLI writers and failures: concurrent `learn` runs lose nothing, every failure is one line."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from driftbayes.cli import app
from driftbayes.state import load_state
from tests.helpers import ROOT, child_env, hold_state_lock, traffic
from tests.test_cli import write_jsonl

runner = CliRunner()


def _cli(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "driftbayes", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env(), cwd=ROOT)


def _one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture()
def base(tmp_path):
    state = tmp_path / "s.nc"
    data = write_jsonl(tmp_path / "base.jsonl", traffic(500, seed=1))
    res = runner.invoke(app, ["learn", str(data), "--state", str(state), "--no-progress"])
    assert res.exit_code == 0, res.output
    return tmp_path, state


def test_two_concurrent_learn_runs_keep_both_runs_events(base):
    tmp_path, state = base
    n = 2000
    files = [write_jsonl(tmp_path / f"run{i}.jsonl", traffic(n, seed=10 + i, t0=3600.0 * (i + 1)))
             for i in range(2)]
    procs = [_cli("learn", f, "--state", state, "--no-progress", "--wait", "120") for f in files]
    for p in procs:
        _, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
    assert load_state(state).n_events_ == 500 + 2 * n


def test_second_writer_with_wait_0_fails_with_one_line_and_changes_nothing(base):
    tmp_path, state = base
    data = write_jsonl(tmp_path / "more.jsonl", traffic(300, seed=5, t0=7200.0))
    before = state.read_bytes()
    holder = hold_state_lock(state)
    try:
        for args in (["learn", data, "--no-progress"], ["reset"]):
            p = _cli(*args, "--state", state, "--wait", "0")
            _, stderr = p.communicate(timeout=120)
            assert p.returncode == 2
            line = _one_error_line(stderr)
            assert str(state) in line and "another driftbayes process" in line
            assert "--wait" in line
        assert state.read_bytes() == before
        # a waiting writer is not refused: it goes on once the lock is free
        waiting = _cli("learn", data, "--state", state, "--no-progress", "--wait", "300")
        assert waiting.poll() is None
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    _, stderr = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, stderr
    assert load_state(state).n_events_ == 800


# ------------------------------------------------------------------ one line, never a traceback


def _run(*args, **kw):
    res = runner.invoke(app, [str(a) for a in args], **kw)
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    line = _one_error_line(res.stderr)
    return line


def test_unreadable_input_file_is_one_line(tmp_path, monkeypatch):
    data = write_jsonl(tmp_path / "t.jsonl", traffic(50, seed=1))
    real_open = builtins.open

    def deny(file, *a, **k):
        if str(file) == str(data):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", deny)
    line = _run("learn", data, "--state", tmp_path / "s.nc", "--no-progress")
    assert str(data) in line and "Permission denied" in line and "permissions" in line
    assert not (tmp_path / "s.nc").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_input_file_chmod(tmp_path):
    data = write_jsonl(tmp_path / "t.jsonl", traffic(50, seed=1))
    data.chmod(0)
    line = _run("learn", data, "--state", tmp_path / "s.nc", "--no-progress")
    assert str(data) in line


def test_unwritable_state_dir_is_one_line(tmp_path, monkeypatch):
    data = write_jsonl(tmp_path / "t.jsonl", traffic(50, seed=1))
    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr("driftbayes.statefile.os.access",
                        lambda p, m: False if Path(p) == folder else real_access(p, m))
    line = _run("learn", data, "--state", folder / "s.nc", "--no-progress")
    assert str(folder) in line and "writable" in line
    assert list(folder.iterdir()) == []
    # a state "folder" that is a file
    line = _run("learn", data, "--state", data / "s.nc", "--no-progress")
    assert str(data) in line and "not a folder" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_state_dir_chmod(tmp_path):
    data = write_jsonl(tmp_path / "t.jsonl", traffic(50, seed=1))
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    line = _run("learn", data, "--state", folder / "s.nc", "--no-progress")
    assert str(folder) in line


def _damaged(base, name, edit) -> Path:
    tmp_path, state = base
    with xr.open_dataset(state, engine="h5netcdf") as ds:
        ds = ds.load()
    ds = edit(ds)
    out = tmp_path / name
    ds.to_netcdf(out, engine="h5netcdf")
    return out


def _set_attr(key, value):
    def edit(ds):
        ds.attrs[key] = value
        return ds
    return edit


def _nan_in(var):
    def edit(ds):
        ds = ds.copy(deep=True)
        ds[var].values.flat[0] = np.nan
        return ds
    return edit


@pytest.mark.parametrize("name, edit, expect", [
    ("version-text.nc", _set_attr("schema_version", "one"), "schema_version"),
    ("version-float.nc", _set_attr("schema_version", 1.5), "schema_version"),
    ("nan.nc", _nan_in("lat_hist"), "'lat_hist' holds non-finite"),
    ("inf.nc", _nan_in("status_count"), "non-finite"),
    ("attr.nc", _set_attr("n_events", "many"), "'n_events'"),
    ("missing-var.nc", lambda ds: ds.drop_vars("gate_latency"), "damaged"),
])
def test_damaged_state_is_one_line_in_every_command(base, name, edit, expect):
    tmp_path, _ = base
    state = _damaged(base, name, edit)
    data = write_jsonl(tmp_path / "t.jsonl", traffic(50, seed=3))
    before = state.read_bytes()
    for args in (["patterns"], ["sample"], ["export", "--to", "wiremock", "--out", tmp_path / "w"],
                 ["learn", data, "--no-progress"], ["reset"]):
        line = _run(*args, "--state", state)
        assert str(state) in line and expect in line, line
    assert state.read_bytes() == before  # never "repaired" by a writer


def test_nan_state_rejected_by_load_state(base):
    from driftbayes.state import StateError

    state = _damaged(base, "nan.nc", _nan_in("lat_sx"))
    with pytest.raises(StateError, match="non-finite"):
        load_state(state)


def test_serve_with_a_damaged_or_missing_state_is_one_line(base):
    tmp_path, _ = base
    state = _damaged(base, "nan.nc", _nan_in("lat_hist"))
    for s in (state, tmp_path / "missing.nc"):
        p = _cli("serve", "--state", s, "--port", "0")
        _, stderr = p.communicate(timeout=120)
        assert p.returncode == 2
        assert str(s) in _one_error_line(stderr)


def test_bad_config_is_one_line(base):
    tmp_path, state = base
    bad = tmp_path / "bad.yaml"
    bad.write_text("drift_learning:\n  decay: lots\n")
    for args in (["patterns"], ["learn", tmp_path / "base.jsonl", "--no-progress"]):
        line = _run(*args, "--state", state, "--config", bad)
        assert str(bad) in line and "decay" in line


def test_unexpected_errors_are_one_line_unless_debug(base, monkeypatch):
    _, state = base

    def broken(*a, **k):
        raise RuntimeError("something unforeseen\nover two lines")

    monkeypatch.setattr("driftbayes.patterns.patterns", broken)
    line = _run("patterns", "--state", state)
    assert "something unforeseen over two lines" in line and "DRIFTBAYES_DEBUG" in line
    monkeypatch.setenv("DRIFTBAYES_DEBUG", "1")
    res = runner.invoke(app, ["patterns", "--state", str(state)])
    assert isinstance(res.exception, RuntimeError)
