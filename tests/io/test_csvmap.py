from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import orjson
import pytest

from driftbayes.events import COLUMNS, BadRecordError, BadRecordReport, EventBatch
from driftbayes.io import (
    RECORDINGS,
    CsvMapping,
    data_root,
    open_recording,
    read_csv_mapped,
    read_events,
)
from tests.helpers import needs_real, real_path

TRAINTICKET_REL = "trainticket-traces/requests.csv.gz"
TRAINTICKET = real_path(TRAINTICKET_REL) or Path(TRAINTICKET_REL)

MAPPING = CsvMapping(
    ts="time_ms",
    ts_unit="ms",
    method="verb",
    path="url",
    status="code",
    latency="secs",
    latency_unit="s",
    persona="who",
    session="sid",
)
HEADER = "time_ms,verb,url,code,secs,who,sid,ignored"


def write(tmp_path, rows, name="t.csv", header=HEADER):
    text = "\n".join([header, *rows]) + "\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return path


def read_all(path, mapping=MAPPING, **kw) -> EventBatch:
    return EventBatch.concat(list(read_csv_mapped(path, mapping, **kw)))


def test_small_mapped_csv_exact(tmp_path):
    path = write(
        tmp_path,
        [
            "1700000000500,get,/api/users/42?x=1,200,0.0125,alice,s1,zzz",
            "1700000001000,,/api/orders/7,404,,,,",
            '1700000002000,"post","/a,b/9",201,1.5,bob,17,',
        ],
    )
    b = read_all(path)
    assert b.source == str(path)
    assert b.ts.tolist() == [1700000000.5, 1700000001.0, 1700000002.0]
    assert b.method.tolist() == ["GET", "GET", "POST"]
    assert b.endpoint.tolist() == ["/api/users/{id}", "/api/orders/{id}", "/a,b/{id}"]
    assert b.status.tolist() == [200, 404, 201]
    np.testing.assert_allclose(b.latency_ms, [12.5, np.nan, 1500.0])
    assert b.persona.tolist() == ["alice", "default", "bob"]
    assert b.session.tolist() == ["s1", "", "17"]
    assert b.line.tolist() == [2, 3, 4]
    for name, dtype in COLUMNS.items():
        assert getattr(b, name).dtype == np.dtype(dtype), name


def test_iso_ts_endpoint_column_and_absent_columns(tmp_path):
    path = write(
        tmp_path,
        [
            "2023-01-30T11:38:52Z,/x/{id},/ignored/1",
            "2023-01-30T12:38:52+01:00,,/api/7",
        ],
        header="when,ep,p",
    )
    mapping = CsvMapping(
        ts="when",
        ts_unit="iso",
        method=None,
        path="p",
        endpoint="ep",
        status=None,
        latency=None,
        default_method="post",
    )
    b = read_all(path, mapping)
    assert b.ts.tolist() == [1675078732.0, 1675078732.0]
    assert b.endpoint.tolist() == ["/x/{id}", "/api/{id}"]
    assert b.method.tolist() == ["POST", "POST"]
    assert b.status.tolist() == [0, 0]  # no status column → unknown
    assert np.isnan(b.latency_ms).all()  # no latency column → not recorded


@pytest.mark.parametrize(
    ("unit", "value", "expected"),
    [
        ("s", "1675078732.047", 1675078732.047),
        ("ms", "1675078732047", 1675078732.047),
        ("us", "1675078732047000", 1675078732.047),
        ("ns", "1675078732047000000", 1675078732.047),
    ],
)
def test_ts_units(tmp_path, unit, value, expected):
    path = write(tmp_path, [f"{value},/a,200"], header="t,p,s")
    b = read_all(
        path, CsvMapping(ts="t", ts_unit=unit, method=None, path="p", status="s", latency=None)
    )
    assert b.ts[0] == pytest.approx(expected, abs=1e-6)


def test_bad_rows_skipped_with_physical_lines(tmp_path):
    path = write(
        tmp_path,
        [
            "1700000000000,GET,/a,200,0.1,p,s,x",  # 2 good
            "1700000000000,GET,/a,42,0.1,p,s,x",  # 3 status out of range
            "",  # 4 blank: silent
            "1700000000000,GET,/a,200,-0.1,p,s,x",  # 5 negative latency
            "1700000000000,GET,/a,200,0.1,p,s,x,EXTRA",  # 6 too many fields
            "soon,GET,/a,200,0.1,p,s,x",  # 7 bad ts
            "1700000000000,GET,,200,0.1,p,s,x",  # 8 no path
            "1700000000000,GET,/a,abc,0.1,p,s,x",  # 9 status not a number
            "1700000000000,GET,/a,200,nan,p,s,x",  # 10 NaN latency
            "1700000000000,GET,/b,201",  # 11 too few fields: missing latency is fine
            "1700000000000,GET,/a,200.5,0.1,p,s,x",  # 12 non-integral status
            "1700000000000,GET,/c,299,inf,p,s,x",  # 13 infinite latency
            "1700000000000,GET,/d,599,0,p,s,x",  # 14 good
        ],
    )
    report = BadRecordReport(keep=100)
    batches = list(read_csv_mapped(path, MAPPING, report=report, batch_size=3))
    b = EventBatch.concat(batches)
    assert b.line.tolist() == [2, 11, 14]
    assert b.endpoint.tolist() == ["/a", "/b", "/d"]
    assert b.status.tolist() == [200, 201, 599]
    got = [(r.line, r.field) for r in report.first]
    assert got == [
        (3, "code"),
        (5, "secs"),
        (6, "csv"),
        (7, "time_ms"),
        (8, "url"),
        (9, "code"),
        (10, "secs"),
        (12, "code"),
        (13, "secs"),
    ]
    whole = read_all(path, report=BadRecordReport(), batch_size=1000)
    assert whole.line.tolist() == b.line.tolist()


def test_non_utf8_row_rejected(tmp_path):
    path = tmp_path / "enc.csv"
    path.write_bytes(
        (HEADER + "\n").encode()
        + b"1700000000000,GET,/a,200,0.1,caf\xe9,s,x\n"
        + b"1700000000000,GET,/b,200,0.1,cafe,s,\xff\n"  # bad byte in an unmapped column: fine
    )
    report = BadRecordReport()
    b = read_all(path, report=report)
    assert b.endpoint.tolist() == ["/b"]
    assert [(r.line, r.field, r.reason) for r in report.first] == [(2, "who", "not valid UTF-8")]


def test_strict_raises(tmp_path):
    path = write(
        tmp_path, ["1700000000000,GET,/a,200,0.1,p,s,x", "1700000000000,GET,/a,42,0.1,p,s,x"]
    )
    with pytest.raises(BadRecordError, match=r"t\.csv:3: field 'code'"):
        read_all(path, strict=True)


def test_gzip_and_missing_column(tmp_path):
    path = write(tmp_path, ["1700000000000,GET,/a/1,200,0.1,p,s,x"], name="t.csv.gz")
    assert read_all(path).endpoint.tolist() == ["/a/{id}"]
    with pytest.raises(ValueError, match="time_ms"):
        read_all(write(tmp_path, ["1,2"], header="a,b"))


def test_mapping_validation():
    with pytest.raises(ValueError, match="path or an endpoint"):
        CsvMapping(path=None)
    with pytest.raises(ValueError, match="ts_unit"):
        CsvMapping(ts_unit="minutes")
    with pytest.raises(ValueError, match="latency_unit"):
        CsvMapping(latency_unit="ns")


# ------------------------------------------------------------------------------ dispatch


def test_read_events_dispatch(tmp_path):
    event = orjson.dumps({"ts": 1, "path": "/u/1", "status": 200})
    for name in ("a.jsonl", "a.ndjson", "a.log"):  # .log: sniffed by its first byte
        p = tmp_path / name
        p.write_bytes(b"\n  " + event + b"\n")
        assert EventBatch.concat(list(read_events(p))).endpoint.tolist() == ["/u/{id}"]
    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress(event))
    assert len(EventBatch.concat(list(read_events(gz)))) == 1
    csv = write(tmp_path, ["1700000000000,GET,/a,200,0.1,p,s,x"])
    assert len(EventBatch.concat(list(read_events(csv, mapping=MAPPING)))) == 1
    with pytest.raises(ValueError, match=r"t\.csv: cannot tell its format\. Supported: JSONL"):
        read_events(csv)
    with pytest.raises(FileNotFoundError, match="registered: trainticket"):
        read_events(tmp_path / "missing.jsonl.bz2")


def test_data_root_env(tmp_path, monkeypatch):
    (tmp_path / "real").mkdir()
    monkeypatch.setenv("DRIFTBAYES_DATA", str(tmp_path))
    assert data_root() == tmp_path / "real"
    monkeypatch.setenv("DRIFTBAYES_DATA", str(tmp_path / "real"))
    assert data_root() == tmp_path / "real"


def test_data_root_walks_up(tmp_path, monkeypatch):
    monkeypatch.delenv("DRIFTBAYES_DATA", raising=False)
    real = tmp_path / "shared" / "data" / "real"
    real.mkdir(parents=True)
    (tmp_path / "proj" / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "proj" / "sub")
    assert data_root() == real


def test_unknown_recording():
    with pytest.raises(KeyError, match="trainticket"):
        open_recording("nope")


# ------------------------------------------------------------------------------ real recording


@needs_real(TRAINTICKET_REL, "trainticket")
def test_trainticket_real_file(monkeypatch):
    monkeypatch.setenv("DRIFTBAYES_DATA", str(TRAINTICKET.parents[1]))
    assert RECORDINGS["trainticket"].resolve() == TRAINTICKET
    report = BadRecordReport()
    b = EventBatch.concat(list(read_events("trainticket", report=report, batch_size=10_000)))
    assert report.count == 0
    assert len(b) == 27_364
    assert len(np.unique(b.endpoint)) == 10
    assert b.ts[0] == pytest.approx(1675078732.047, abs=1e-6)
    assert b.method[0] == "POST"
    assert b.endpoint[0] == "/api/v1/travel2service/trips/left"
    assert b.latency_ms[0] == pytest.approx(809.795, abs=1e-9)
    assert b.status[0] == 0
    assert b.line[0] == 2 and b.line[-1] == 27_365
    assert (b.persona == "default").all() and (b.session == "").all()
    assert set(b.method) == {"GET", "POST"}
    assert np.all(np.diff(b.ts) >= 0) and (b.latency_ms > 0).all()
    # 12.3 hours of traffic
    assert (b.ts[-1] - b.ts[0]) / 3600 == pytest.approx(12.3, abs=0.1)
