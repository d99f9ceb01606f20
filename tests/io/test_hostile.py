"""Hostile input (issue 12): one bad-record policy for every reader, in lenient and strict mode.

A shared corpus of bad records — far-future timestamps (numeric and ISO), year 9999, a number of
400 digits, deep nesting, NUL/CR/LF in names, a huge path, latencies of 1e300 / negative,
truncated gzip, a file cut mid-line, JSONL that looks like HAR — goes through the readers and
through ``driftbayes learn``. Good records are all learned; bad ones are skipped and reported as
``file:line: field: reason``; ``--strict`` stops at the first, exit 2, state byte-identical.
"""

from __future__ import annotations

import gzip
import math

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_samples import (
    LINE_FORMATS,
    Rec,
    har_bytes,
    har_entry,
    sqlite_row,
    write_sqlite,
)
from typer.testing import CliRunner

from driftbayes.cli import app
from driftbayes.config import Config, InputLimits
from driftbayes.events import BadRecordError, BadRecordReport, EventBatch, Screen, screening
from driftbayes.io.recordings import detect_format, read_events

T0 = 1_700_000_000
N_GOOD = 40
YEAR_2200 = 7_258_118_400


def good(i: int) -> dict:
    return {"ts": T0 + 10 * i, "method": "GET", "path": f"/api/users/{i % 5}",
            "status": 200 if i % 7 else 503, "latency_ms": 20.0 + i % 9, "persona": "web"}


def line(**kw) -> bytes:
    return orjson.dumps({**good(0), **kw})


#: name → (bad JSONL line, field named in the report)
HOSTILE = {
    "far-future-number": (line(ts=1e20), "ts"),
    "far-future-iso": (line(ts="2200-01-01T00:00:00Z"), "ts"),
    "year-9999": (line(ts="9999-06-01T00:00:00Z"), "ts"),
    "month-ahead": (line(ts=T0 + 30 * 86400), "ts"),
    "epoch-zero": (line(ts=0.5), "ts"),
    "400-zero-number": (line()[:-1] + b',"latency_ms":1' + b"0" * 400 + b"}", "latency_ms"),
    "deep-nesting": (b'{"ts":1700000000,"path":"/x","status":200,"a":' + b'{"a":' * 10_000
                     + b"1" + b"}" * 10_001, "json"),
    "nul-path": (line(path="/a\x00b"), "path"),
    "crlf-path": (line(path="/a\r\nb"), "path"),
    "nul-persona": (line(persona="x\x00y"), "persona"),
    "crlf-persona": (line(persona="evil\r\nSet-Cookie: x=1"), "persona"),
    "huge-path": (line(path="/a/" + "x" * 100_000), "path"),
    "huge-persona": (line(persona="p" * 1000), "persona"),
    "latency-1e300": (line(latency_ms=1e300), "latency_ms"),
    "latency-negative": (line(latency_ms=-5), "latency_ms"),
    "latency-nan": (line()[:-1] + b',"latency_ms":NaN}', "json"),
}


def jsonl(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


GOOD_LINES = [orjson.dumps(good(i)) for i in range(N_GOOD)]


def read_all(path, **kw):
    """Events and report of ``path`` read as ``learn`` reads it (one fresh stream clock)."""
    report = BadRecordReport(keep=100)
    with screening(Screen()):
        batches = list(read_events(path, report=report, prefetch=False, **kw))
    return EventBatch.concat(batches), report


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("where", [0, N_GOOD // 2, N_GOOD])
def test_jsonl_hostile_record_is_skipped_and_reported(tmp_path, case, where):
    bad, field = HOSTILE[case]
    f = tmp_path / "in.jsonl"
    f.write_bytes(jsonl(GOOD_LINES[:where] + [bad] + GOOD_LINES[where:]))
    batch, report = read_all(f)
    assert len(batch) == N_GOOD
    assert sorted(batch.ts.tolist()) == [T0 + 10 * i for i in range(N_GOOD)]
    assert report.count == 1
    text = str(report.first[0])
    assert text.startswith(f"{f}:{where + 1}: field '{field}': "), text
    assert len(text) < 400  # a 100 KB path is quoted, not copied


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_jsonl_hostile_record_strict_names_file_and_line(tmp_path, case):
    bad, field = HOSTILE[case]
    f = tmp_path / "in.jsonl"
    f.write_bytes(jsonl(GOOD_LINES[:7] + [bad] + GOOD_LINES[7:]))
    with pytest.raises(BadRecordError) as exc:
        read_all(f, strict=True)
    assert (exc.value.bad.line, exc.value.bad.field) == (8, field)


# ------------------------------------------------------------------ every reader


def _rec(i: int, **kw) -> Rec:
    return Rec(i, kw.pop("dt", 0), i % 5, kw.pop("status", 200), kw.pop("latency_ms", 20 + i % 9),
               **kw)


FAR = (YEAR_2200 - T0) // 10  # Rec.i giving a ts in 2200
JUMP = 30 * 86400 // 10  # Rec.i giving a ts a month after the stream


def _write(tmp_path, fmt: str, recs: list[Rec]):
    if fmt == "har":
        f = tmp_path / "in.har"
        f.write_bytes(har_bytes([orjson.dumps(har_entry(r)) for r in recs])[0])
        return f, {}, 0
    if fmt == "mockforge-sqlite":
        return write_sqlite(tmp_path / "in.db", [sqlite_row(r) for r in recs]), {}, 0
    spec = LINE_FORMATS[fmt]
    f = tmp_path / "in.txt"
    lines = ([spec.header] if spec.header else []) + [spec.record(r) for r in recs]
    f.write_bytes(b"\n".join(lines) + b"\n")
    return f, spec.kwargs(), 1 if spec.header else 0


READERS = [*sorted(f for f in LINE_FORMATS if f != "trainticket-spans"), "har",
           "mockforge-sqlite"]
HAS_LATENCY = {"openstack", "csv", "otlp", "jaeger", "har", "mockforge-sqlite"}


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
@pytest.mark.parametrize("fmt", READERS)
def test_every_reader_skips_far_timestamps_and_huge_latencies(tmp_path, fmt, strict):
    recs = [_rec(i) for i in range(N_GOOD)]
    bad = {5: _rec(FAR), 17: _rec(JUMP)}
    if fmt in HAS_LATENCY:
        huge = {"mockforge-sqlite": 2**62, "har": 1e300, "jaeger": 2**50}.get(fmt, 10**300)
        bad[30] = _rec(N_GOOD + 1, latency_ms=huge)
    mixed = list(recs)
    for pos in sorted(bad):  # final positions 5, 17, 30
        mixed.insert(pos, bad[pos])
    f, kw, header = _write(tmp_path, fmt, mixed)
    lines = [p + 1 + header for p in sorted(bad)]
    if strict:
        with pytest.raises(BadRecordError) as exc:
            read_all(f, fmt=fmt, strict=True, **kw)
        assert (exc.value.bad.source, exc.value.bad.line) == (str(f), lines[0])
        return
    batch, report = read_all(f, fmt=fmt, **kw)
    assert np.floor(np.sort(batch.ts)).tolist() == [float(r.ts) for r in recs]
    assert [b.line for b in report.first] == lines
    assert {b.field for b in report.first} <= {"ts", "latency_ms"}
    assert all(str(b).startswith(f"{f}:{b.line}: field ") for b in report.first)


# ------------------------------------------------------------------ streams that end early


@pytest.mark.parametrize("cut", [6, "half"])
def test_truncated_gzip_keeps_every_complete_record(tmp_path, cut):
    lines = [orjson.dumps(good(i % 500) | {"ts": T0 + i}) for i in range(50_000)]
    data = gzip.compress(jsonl(lines))
    f = tmp_path / "in.jsonl.gz"
    f.write_bytes(data[:-6] if cut == 6 else data[: len(data) // 2])
    with pytest.warns(UserWarning, match=r"in\.jsonl\.gz: compressed stream ends early"):
        batch, report = read_all(f)
    if cut == 6:
        assert len(batch) == 50_000 and report.count == 0
    else:
        # every complete line that inflated, in order, and nothing else
        assert 20_000 < len(batch) < 30_000
        assert np.array_equal(batch.ts, T0 + np.arange(len(batch)))
        assert report.count == 0


def test_file_cut_mid_line_keeps_complete_records_and_reports_the_cut_line(tmp_path):
    f = tmp_path / "cut.jsonl"
    f.write_bytes(jsonl(GOOD_LINES)[:-15])
    batch, report = read_all(f)
    assert len(batch) == N_GOOD - 1
    assert [str(b).split(": invalid JSON")[0] for b in report.first] == [
        f"{f}:{N_GOOD}: field 'json'"]


# ------------------------------------------------------------------ format detection


def test_jsonl_with_log_and_version_keys_is_not_har(tmp_path):
    f = tmp_path / "app.log.json"
    f.write_bytes(jsonl([orjson.dumps(good(i) | {"log": {"level": "info"}, "version": "1"})
                         for i in range(N_GOOD)]))
    assert detect_format(f) == "jsonl"
    batch, report = read_all(f)
    assert len(batch) == N_GOOD and report.count == 0


def test_har_is_still_har(tmp_path):
    f, _, _ = _write(tmp_path, "har", [_rec(i) for i in range(3)])
    assert detect_format(f) == "har"
    pretty = tmp_path / "pretty.har"
    doc = orjson.loads(f.read_bytes())
    doc["log"]["pages"] = [{"id": f"p{i}", "title": "x" * 100} for i in range(2000)]
    pretty.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))  # entries beyond 64 KiB
    assert detect_format(pretty) == "har"


# ------------------------------------------------------------------ the clock


def test_clock_accepts_a_real_gap_and_an_older_file():
    s = Screen()
    day = 86400.0
    ts = np.concatenate([T0 + np.arange(100.0), T0 + 3 * day + np.arange(100.0)])
    kept, bad = s.check(EventBatch.from_records([{"ts": t, "path": "/a"} for t in ts]))
    assert len(kept) == 200 and not bad
    older = EventBatch.from_records([{"ts": T0 - 30 * day + i, "path": "/a"} for i in range(50)])
    kept, bad = s.check(older)
    assert len(kept) == 50 and not bad
    lone = EventBatch.from_records([{"ts": T0 + 99 * day, "path": "/a"}])
    assert s.check(lone)[1][0].field == "ts"


def test_a_reader_on_its_own_checks_no_clock(tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_bytes(jsonl(GOOD_LINES + [line(ts=T0 + 30 * 86400), line(ts=2e9)]))
    report = BadRecordReport()
    assert len(EventBatch.concat(list(read_events(f, report=report, prefetch=False)))) == 42
    f.write_bytes(jsonl(GOOD_LINES + [line(ts=1e20)]))  # the plausible years still hold
    assert len(EventBatch.concat(list(read_events(f, report=report, prefetch=False)))) == 40


def test_clock_starts_from_the_state_clock():
    day = 86400.0
    s = Screen(clock=T0 + 400 * day)  # the state's last event, over a year after this file
    few = EventBatch.from_records([{"ts": T0 + i, "path": "/a"} for i in range(3)])
    kept, bad = s.check(few)
    assert len(kept) == 0 and len(bad) == 3 and "behind the stream's clock" in bad[0].reason
    assert Screen(InputLimits(max_clock_skew=500 * day), clock=T0 + 400 * day).check(few)[1] == []


# ------------------------------------------------------------------ learn, end to end

runner = CliRunner()


def _learn(*args):
    return runner.invoke(app, ["learn", "--no-progress", *map(str, args)])


@pytest.fixture
def base(tmp_path):
    f = tmp_path / "base.jsonl"
    f.write_bytes(jsonl([orjson.dumps(good(i)) for i in range(2000)]))
    state = tmp_path / "base.nc"
    assert _learn(f, "-s", state).exit_code == 0
    return state


def _learned(learner) -> bytes:
    """What a learner learned: its posterior patterns, NaN-safe for comparison."""
    from driftbayes.patterns import patterns

    return orjson.dumps(patterns(learner, "posterior"), option=orjson.OPT_SERIALIZE_NUMPY)


def _cells(state) -> bytes:
    from driftbayes.state import load_state

    return _learned(load_state(state))


@pytest.mark.parametrize("case", ["far-future-number", "far-future-iso", "year-9999",
                                  "400-zero-number", "deep-nesting", "nul-path", "nul-persona",
                                  "huge-path", "latency-1e300"])
def test_learn_lenient_skips_and_reports(tmp_path, base, case):
    bad, field = HOSTILE[case]
    later = [orjson.dumps(good(i) | {"ts": T0 + 20_000 + 10 * i}) for i in range(200)]
    f = tmp_path / "more.jsonl"
    f.write_bytes(jsonl(later[:100] + [bad] + later[100:]))
    clean = tmp_path / "clean.jsonl"
    clean.write_bytes(jsonl(later))
    ref = tmp_path / "ref.nc"
    ref.write_bytes(base.read_bytes())
    assert _learn(clean, "-s", ref).exit_code == 0
    res = _learn(f, "-s", base)
    assert res.exit_code == 0, res.output
    assert "learned 200 events" in res.output
    assert f"{f}:101: field '{field}': " in res.output
    assert "Traceback" not in res.output
    assert _cells(base) == _cells(ref)  # the bad record changed nothing


@pytest.mark.parametrize("case", ["far-future-number", "year-9999", "nul-path", "huge-path",
                                  "latency-1e300", "month-ahead"])
def test_learn_strict_stops_and_leaves_state_byte_identical(tmp_path, base, case):
    bad, field = HOSTILE[case]
    later = [orjson.dumps(good(i) | {"ts": T0 + 20_000 + 10 * i}) for i in range(200)]
    f = tmp_path / "more.jsonl"
    f.write_bytes(jsonl(later[:100] + [bad] + later[100:]))
    before = base.read_bytes()
    res = _learn(f, "-s", base, "--strict")
    assert res.exit_code == 2
    assert f"{f}:101: field '{field}'" in res.output
    assert base.read_bytes() == before


def test_learn_far_future_keeps_the_clock(tmp_path, base):
    f = tmp_path / "one.jsonl"
    f.write_bytes(jsonl([line(ts=1e20)]))
    from driftbayes.state import load_state

    windows = load_state(base).n_windows_
    assert _learn(f, "-s", base).exit_code == 0
    after = load_state(base)
    assert after.n_windows_ == windows and math.isclose(after.t_last_, T0 + 19_990)


# ------------------------------------------------------------------ property


BAD_KINDS = sorted(k for k in HOSTILE if k not in ("month-ahead", "epoch-zero"))


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 300), st.sampled_from(BAD_KINDS)), max_size=12),
       st.lists(st.integers(0, 300), max_size=3))
def test_bad_records_never_change_what_is_learned(tmp_path_factory, inserts, jumps):
    from driftbayes.learner import DriftLearner

    d = tmp_path_factory.mktemp("prop")
    good_lines = [orjson.dumps(good(i)) for i in range(300)]
    dirty = list(good_lines)
    bad = [(p, HOSTILE[k][0]) for p, k in inserts]
    bad += [(p, line(ts=T0 + 40 * 86400 + 3600 * k)) for k, p in enumerate(jumps)]  # < quorum
    for pos, b in sorted(bad, key=lambda x: -x[0]):
        dirty.insert(pos, b)
    learned = []
    for name, lines in (("good", good_lines), ("dirty", dirty)):
        f = d / f"{name}.jsonl"
        f.write_bytes(jsonl(lines))
        learner = DriftLearner(Config())
        report = BadRecordReport()
        with screening(Screen(learner.config.limits, clock=learner.t_last_)):
            for batch in read_events(f, report=report, prefetch=False, batch_size=64):
                learner.learn_many(batch)
        learned.append((learner, report))
    (clean, r0), (dirty_l, r1) = learned
    assert r0.count == 0 and r1.count == len(bad)
    assert clean.t_last_ == dirty_l.t_last_ and clean.n_windows_ == dirty_l.n_windows_
    assert _learned(clean) == _learned(dirty_l)
