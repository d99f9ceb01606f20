"""Distributed ``learn`` on Dask is exact: the same patterns (every layer, to 1e-9 relative), the
same seeded samples and the same bad-record report as one process, for any partitioning, file
order, late events and sessions across files, with adaptive forgetting on."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

pytest.importorskip("distributed")

import driftbayes as db  # noqa: E402
from driftbayes.api import as_config  # noqa: E402
from driftbayes.distributed import (  # noqa: E402
    PartitionError,
    Stages,
    learn_distributed,
    local_cluster,
)
from driftbayes.events import BadRecordError, BadRecordReport  # noqa: E402
from driftbayes.io.partitions import (  # noqa: E402
    batch_aligned,
    count_lines,
    first_lines,
    grid_offset,
    plan_input,
)
from driftbayes.learner import DriftLearner  # noqa: E402
from driftbayes.patterns import patterns  # noqa: E402
from driftbayes.sampling import sample, sample_sessions  # noqa: E402
from tests.test_lazy_equivalence import assert_close  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BATCH = 64  # lines per batch: small files still read in several batches and partitions
KNOBS = {"update_interval": "300s", "session_gap": "600s", "min_samples": 5,
         "changepoint_z": 3.0}
T0 = 1.7e9


@pytest.fixture(scope="module")
def client():
    with local_cluster(2, host="127.0.0.1", silence_logs=40) as c:
        yield c


def write_file(path: Path, rng, start: float, n: int, *, bad: bool = True,
               drift: bool = False) -> Path:
    """JSONL traffic over about an hour: sessions cut from clients and given as ids that recur
    in every file, ~5% late events, and (``bad``) broken lines, a negative latency, a
    timestamp past max_year and one far off the stream's clock."""
    lines = []
    t = start
    for i in range(n):
        t += rng.exponential(6.0)
        ts = t - rng.uniform(60, 900) if rng.random() < 0.05 else t
        ep = int(rng.integers(0, 8))
        lat = rng.lognormal(4 + (2.0 if drift and ep == 0 and i > n // 2 else 0.0), 0.4)
        rec = {"ts": ts, "method": "POST" if ep == 7 else "GET",
               "path": f"/api/r{ep}/{int(rng.integers(1, 50))}",
               "status": int(rng.choice([200, 200, 200, 200, 404, 503])),
               "latency_ms": round(float(lat), 3)}
        who = rng.random()
        if who < 0.5:
            rec["client"] = f"10.0.0.{int(rng.integers(0, 12))}"
        elif who < 0.85:
            rec["session"] = f"s{int(rng.integers(0, 15))}"
        if rng.random() < 0.3:
            rec["persona"] = str(rng.choice(["mobile", "admin"]))
        lines.append(orjson.dumps(rec))
        if bad and i in (n // 5, n // 2, 3 * n // 4):
            lines.append(
                [b'{"ts": 17', orjson.dumps({**rec, "latency_ms": -1.0}),
                 orjson.dumps({**rec, "ts": 7.3e9})][[n // 5, n // 2, 3 * n // 4].index(i)])
        if bad and i == n // 3:  # ten days ahead, alone: the stream clock rejects it
            lines.append(orjson.dumps({**rec, "ts": ts + 864_000}))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def write_access_log(path: Path, rng, start: float, n: int) -> Path:
    """A combined access log: sessions are cut from the clients (address and user agent),
    which recur in every log; ~5% late lines."""
    lines, t = [], start
    for _ in range(n):
        t += rng.exponential(8.0)
        ts = t - rng.uniform(60, 900) if rng.random() < 0.05 else t
        stamp = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
        lines.append(f'10.0.1.{int(rng.integers(0, 9))} - - [{stamp}] '
                     f'"GET /shop/item{int(rng.integers(0, 5))}/{int(rng.integers(1, 40))} '
                     f'HTTP/1.1" {int(rng.choice([200, 200, 304, 500]))} 512 "-" '
                     f'"agent/{int(rng.integers(1, 3))}" {rng.lognormal(-3, 0.5):.4f}')
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Three JSONL files, each starting 20 minutes before the one before it ends (late events
    across files), the same session ids in all, endpoint r0's latency drifting; then two
    access logs whose clients recur in both (sessions cut across files)."""
    tmp = tmp_path_factory.mktemp("dist")
    rng = np.random.default_rng(16)
    jsonl = [write_file(tmp / f"part-{k}.jsonl", rng, T0 + k * 2400.0, 500, drift=k == 1)
             for k in range(3)]
    logs = [write_access_log(tmp / f"part-{k}.log", rng, T0 + k * 1500.0, 300)
            for k in (3, 4)]
    return jsonl + logs


def single(paths, **options) -> tuple[DriftLearner, BadRecordReport]:
    report = BadRecordReport(keep=100)
    learner = db.learn([str(p) for p in paths], config=KNOBS, batch_size=BATCH, report=report,
                       **options)
    return learner, report


def distributed(paths, client, learner=None, **options):
    report = BadRecordReport(keep=100)
    learner = learner if learner is not None else DriftLearner(as_config(KNOBS))
    options.setdefault("partition_bytes", 6000)
    learn_distributed(learner, [str(p) for p in paths], client, batch_size=BATCH,
                      report=report, **options)
    return learner, report


def assert_same(got: DriftLearner, want: DriftLearner) -> None:
    for layer in ("prior", "posterior", "applied"):
        assert_close(patterns(got, layer), patterns(want, layer), (layer,))
    assert got.endpoints_ == want.endpoints_ and got.personas_ == want.personas_
    assert got.statuses_ == want.statuses_
    assert (got.n_events_, got.n_late_, got.window_, got.changes_) == (
        want.n_events_, want.n_late_, want.window_, want.changes_)
    assert got.t_first_ == want.t_first_ and got.t_last_ == want.t_last_
    assert sorted(got.sessions.open()) == sorted(want.sessions.open())
    assert got.bodies_ == want.bodies_ and list(got.bodies_) == list(want.bodies_)
    for layer in ("posterior", "applied"):
        # the same draws: sums added in another order may differ in their last bits
        a, b = sample(got, 200, layer=layer, seed=7), sample(want, 200, layer=layer, seed=7)
        for key in b:
            assert_close(a[key].tolist(), b[key].tolist(), (layer, key))
        assert_close(sample_sessions(got, 5, layer=layer, seed=3),
                     sample_sessions(want, 5, layer=layer, seed=3), (layer, "sessions"))


def same_report(got: BadRecordReport, want: BadRecordReport) -> None:
    assert (got.count, got.by_field) == (want.count, want.by_field)
    assert [str(b) for b in got.first] == [str(b) for b in want.first]


@pytest.fixture(scope="module")
def reference(files):
    return single(files)


def test_the_inputs_exercise_what_they_should(reference):
    one, report = reference
    assert one.n_late_ > 50  # late events, many across files
    assert one.changes_ > 0  # adaptive forgetting fired
    assert sum("#" in s.session for s in one.sessions.open()) > 0  # cut from clients
    assert sum(s.session.startswith("s-") for s in one.sessions.open()) > 0  # given ids
    assert report.by_field == {"json": 3, "latency_ms": 3, "ts": 6}
    assert any("stream's clock" in b.reason for b in report.first)


@pytest.mark.parametrize(("partition_bytes", "groups"),
                         [(2000, 3), (25_000, 1), (10**9, 7)])
def test_any_partitioning_learns_what_one_process_learns(client, files, reference,
                                                         partition_bytes, groups):
    stages = Stages()
    got, report = distributed(files, client, partition_bytes=partition_bytes, groups=groups,
                              stages=stages)
    assert stages.groups == groups
    assert stages.partitions >= (len(files) if partition_bytes > 10**8 else 2 * len(files))
    assert_same(got, reference[0])
    same_report(report, reference[1])


def test_the_scan_is_split_by_endpoint_across_workers(client, files, reference):
    """Blocks of endpoints reduce and scan as tasks of their own on the workers; with persona
    pooling on and adaptive forgetting firing (``reference``), the result is the same."""
    stages = Stages()
    got, _ = distributed(files, client, stages=stages)
    assert stages.blocks == 2 and len(stages.scanned_on) == 2
    assert set(stages.scanned_on) <= set(client.scheduler_info()["workers"])
    assert got.changes_ == reference[0].changes_ > 0
    assert_same(got, reference[0])


def test_split_scan_history_is_the_single_process_history(client, files):
    """More blocks than workers, the per-window history kept: the same rows in the same
    order as one process."""
    want, _ = single(files[:3], track_history=True)
    learner = DriftLearner(as_config(KNOBS), track_history=True)
    stages = Stages()
    got, _ = distributed(files[:3], client, learner=learner, blocks=5, stages=stages)
    assert stages.blocks == 5 and len(stages.scanned_on) == 5
    assert_same(got, want)
    assert len(got.history_) == len(want.history_) > 0
    assert_close([list(r) for r in got.history_], [list(r) for r in want.history_])


def test_files_in_any_order(client, files):
    order = [files[4], files[2], files[0], files[3], files[1]]
    want, want_report = single(order)
    got, report = distributed(order, client)
    assert_same(got, want)
    same_report(report, want_report)


def test_continuing_a_learner_continues_its_sessions_and_clock(client, files):
    first, _ = single(files[:1])
    want = db.learn([str(p) for p in files[1:]], learner=first, batch_size=BATCH)
    again, _ = single(files[:1])
    assert again.sessions.open()
    got, _ = distributed(files[1:], client, learner=again)
    assert_same(got, want)


def test_strict_fails_at_the_first_bad_record_and_learns_nothing(client, files):
    with pytest.raises(BadRecordError) as want:
        single(files, strict=True)
    learner = DriftLearner(as_config(KNOBS))
    with pytest.raises(BadRecordError) as got:
        distributed(files, client, learner=learner, strict=True)
    assert str(got.value) == str(want.value) and "part-0.jsonl:" in str(got.value)
    assert learner.n_events_ == 0 and learner.window_ is None


@pytest.fixture
def failing_range(client):
    """Workers whose JSONL reader fails on the byte ranges of part-1.jsonl."""

    def install():
        import driftbayes.io.jsonl as jsonl

        original = jsonl._iter_jsonl

        def failing(path, *args):
            byte_range = args[4]
            if str(path).endswith("part-1.jsonl") and byte_range is not None:
                raise OSError("simulated read error")
            return original(path, *args)

        jsonl._iter_jsonl, jsonl._unpatched = failing, original

    def restore():
        import driftbayes.io.jsonl as jsonl

        jsonl._iter_jsonl = jsonl._unpatched

    client.run(install)
    yield client
    client.run(restore)


def test_a_failing_partition_names_its_file_and_byte_range_and_learns_nothing(
        failing_range, files):
    learner = DriftLearner(as_config(KNOBS))
    with pytest.raises(PartitionError, match=r"part-1\.jsonl bytes [\d,]+-[\d,]+ "
                                             r"\(from line [\d,]+\): simulated read error"):
        distributed(files, failing_range, learner=learner)
    assert learner.n_events_ == 0 and learner.window_ is None and not learner.endpoints_


def test_gzip_files_are_read_whole(client, files, tmp_path):
    gz = tmp_path / "part-1.jsonl.gz"
    gz.write_bytes(gzip.compress(files[1].read_bytes()))
    parts = plan_input(gz, 0, partition_bytes=100)
    assert len(parts) == 1 and parts[0].whole
    paths = [files[0], gz, files[3]]
    want, want_report = single(paths)
    got, report = distributed(paths, client)
    assert_same(got, want)
    same_report(report, want_report)


def test_ranges_start_at_batch_boundaries_with_their_true_line_numbers(files):
    path = files[0]
    parts = plan_input(path, 0, partition_bytes=3000)
    assert len(parts) > 3 and all(not p.whole for p in parts)
    parts = first_lines(parts, [count_lines(p) for p in parts])
    parts = batch_aligned(parts, [grid_offset(p, BATCH) for p in parts])
    data = path.read_bytes()
    starts = np.r_[0, np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n"))[:-1] + 1]
    assert parts[0].start == 0 and parts[-1].end == len(data)
    for a, b in zip(parts, parts[1:]):
        assert a.end == b.start
    for p in parts:
        assert (p.first_line - 1) % BATCH == 0
        assert starts[p.first_line - 1] == p.start  # its first line is that line of the file


def run_cli(*args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "driftbayes", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_workers_gives_the_same_patterns_json(files, tmp_path):
    (tmp_path / "driftbayes.yaml").write_text(
        "drift_learning:\n" + "".join(f"  {k}: {v}\n" for k, v in KNOBS.items()))
    paths = [str(p) for p in files]
    one = run_cli("learn", *paths, "-s", "one.nc", "--no-progress", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = run_cli("learn", *paths, "-s", "two.nc", "--workers", "1", "--partition-mb", "0.01",
                  cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    assert "partitions read" in two.stderr
    assert one.stderr.split("skipped")[1] == two.stderr.split("skipped")[1]
    got, want = (json.loads(run_cli("patterns", "-s", s, "--format", "json", "--layer",
                                    "posterior", cwd=tmp_path).stdout)
                 for s in ("two.nc", "one.nc"))
    assert_close(got, want)
    assert_same(db.load(tmp_path / "two.nc"), db.load(tmp_path / "one.nc"))


def test_cli_failing_partition_saves_nothing(failing_range, files, tmp_path):
    out = run_cli("learn", *map(str, files), "-s", "state.nc", "--partition-mb", "0.005",
                  "--scheduler", failing_range.scheduler.address, cwd=tmp_path)
    assert out.returncode == 2
    assert "part-1.jsonl bytes" in out.stderr and "simulated read error" in out.stderr
    assert "nothing from this run was saved" in out.stderr
    assert not (tmp_path / "state.nc").exists()


def test_stage_times_are_reported(client, files):
    stages = Stages()
    got, _ = distributed(files[:1], client, stages=stages)
    assert stages.events == got.n_events_ > 0
    assert all(not math.isnan(x) and x >= 0 for x in (stages.plan, stages.map, stages.reduce,
                                                        stages.scan))


@pytest.mark.skipif("MALLOC_TRIM_THRESHOLD_" in os.environ,
                    reason="MALLOC_TRIM_THRESHOLD_ is set in this environment")
def test_local_workers_keep_glibc_defaults(client):
    # Dask's nanny would set it, turning off glibc's adaptive mmap threshold
    got = client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
    assert len(got) == 2 and set(got.values()) == {None}
