from __future__ import annotations

import sqlite3

import numpy as np
import orjson
import pytest

from driftbayes.events import COLUMNS, BadRecordError, BadRecordReport, EventBatch
from driftbayes.io.mockforge_sqlite import read_mockforge_sqlite, sniff_sqlite

# The recorder's tables (crates/mockforge-recorder/src/database.rs), verbatim in structure.
RECORDER_DDL = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    protocol TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query_params TEXT,
    headers TEXT NOT NULL,
    body TEXT,
    body_encoding TEXT NOT NULL DEFAULT 'utf8',
    client_ip TEXT,
    trace_id TEXT,
    span_id TEXT,
    duration_ms INTEGER,
    status_code INTEGER,
    tags TEXT,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS responses (
    request_id TEXT PRIMARY KEY,
    status_code INTEGER NOT NULL,
    headers TEXT NOT NULL,
    body TEXT,
    body_encoding TEXT NOT NULL DEFAULT 'utf8',
    size_bytes INTEGER NOT NULL,
    timestamp TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (request_id) REFERENCES requests(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_requests_timestamp ON requests(timestamp DESC);
"""
# Same columns without NOT NULL, so that damaged rows (NULL path, ...) can be stored.
LOOSE_DDL = RECORDER_DDL.replace(" NOT NULL", "")

REQ_COLS = ("id", "protocol", "timestamp", "method", "path", "query_params", "headers", "body",
            "client_ip", "trace_id", "span_id", "duration_ms", "status_code", "tags")


def req(id, ts, path="/api/users/42", **kw) -> dict:
    row = {"id": id, "protocol": "http", "timestamp": ts, "method": "GET", "path": path,
           "query_params": None, "headers": "{}", "body": None, "client_ip": "10.0.0.1",
           "trace_id": None, "span_id": None, "duration_ms": 20, "status_code": 200,
           "tags": None}
    row.update(kw)
    if isinstance(row["headers"], dict):
        row["headers"] = orjson.dumps(row["headers"]).decode()
    if isinstance(row["query_params"], dict):
        row["query_params"] = orjson.dumps(row["query_params"]).decode()
    return row


def make_db(path, requests, responses=(), ddl=RECORDER_DDL):
    con = sqlite3.connect(path)
    con.executescript(ddl)
    con.executemany(
        f"INSERT INTO requests ({', '.join(REQ_COLS)}) VALUES ({', '.join('?' * len(REQ_COLS))})",
        [tuple(r[c] for c in REQ_COLS) for r in requests],
    )
    con.executemany(
        "INSERT INTO responses (request_id, status_code, headers, body, size_bytes, timestamp) "
        "VALUES (?, ?, ?, NULL, 0, ?)",
        [(rid, st, orjson.dumps(h).decode(), "2024-01-01T00:00:00Z")
         for rid, st, h in responses],
    )
    con.commit()
    con.close()
    return path


def read_all(path, **kw) -> EventBatch:
    return EventBatch.concat(list(read_mockforge_sqlite(path, **kw)))


def everything(batch: EventBatch) -> str:
    parts = [repr(getattr(batch, n).tolist()) for n in COLUMNS]
    parts += [repr(k) + repr(v.tolist()) for k, v in batch.extra.items()]
    return "\n".join(parts)


@pytest.fixture
def recorder_db(tmp_path):
    """Five exchanges as the recorder writes them, inserted out of time order."""
    return make_db(tmp_path / "mockforge-recordings.db", [
        req("r3", "2024-01-01T12:00:02.5+00:00", "/api/orders/9f1c2e3d-1111-2222-3333-444455556666",
            method="post", duration_ms=150, status_code=None, trace_id="trace-b",
            headers={"Content-Type": "application/json", "X-MockForge-Persona": "premium",
                     "User-Agent": "k6/0.49"}),
        req("r1", "2024-01-01T12:00:00+00:00", query_params={"page": "2", "limit": "10"},
            trace_id="trace-a", headers={"User-Agent": "curl/8.0", "Accept": "*/*"}),
        req("r2", "2024-01-01T12:00:01.250000000+00:00", "/api/users/7",
            trace_id="trace-a", status_code=None, duration_ms=None, client_ip=None),
        req("r4", "2024-01-01 12:00:03", "/health?verbose=1", protocol="http", status_code=None,
            duration_ms=3),
        req("r5", 1704110404, "/grpc.health.v1.Health/Check", protocol="grpc",
            method="Check", duration_ms=1, status_code=0),
    ], responses=[
        ("r3", 201, {"X-MockForge-Persona": "ignored-request-header-wins"}),
        ("r2", 404, {"X-MockForge-Persona": "mobile"}),
        ("r1", 500, {}),  # requests.status_code (200) wins over responses.status_code
    ])


def test_exact_columns(recorder_db):
    report = BadRecordReport()
    b = read_all(recorder_db, report=report)
    assert report.count == 0
    assert b.line.tolist() == [2, 3, 1, 4, 5]  # rowids, in timestamp order
    assert b.ts.tolist() == pytest.approx(
        [1704110400.0, 1704110401.25, 1704110402.5, 1704110403.0, 1704110404.0], abs=1e-6)
    assert b.method.tolist() == ["GET", "GET", "POST", "GET", "CHECK"]
    assert b.endpoint.tolist() == ["/api/users/{id}", "/api/users/{id}", "/api/orders/{uuid}",
                                   "/health", "/grpc.health.v1.Health/Check"]
    assert b.status.tolist() == [200, 404, 201, 0, 0]
    np.testing.assert_array_equal(b.latency_ms, [20.0, np.nan, 150.0, 3.0, 1.0])
    assert b.persona.tolist() == ["default", "mobile", "premium", "default", "default"]
    assert b.session.tolist() == ["trace-a", "trace-a", "trace-b", "", ""]
    assert b.extra["client"].tolist() == ["10.0.0.1 curl/8.0", "", "10.0.0.1 k6/0.49",
                                          "10.0.0.1", "10.0.0.1"]
    assert b.extra["user_agent"].tolist() == ["curl/8.0", None, "k6/0.49", None, None]
    assert b.extra["query"].tolist() == ["page=2&limit=10", "", "", "verbose=1", ""]
    assert b.extra["protocol"].tolist() == ["http", "http", "http", "http", "grpc"]
    assert b.extra["header:accept"].tolist() == ["*/*", None, None, None, None]
    assert b.extra["header:content-type"].tolist() == [None, None, "application/json", None,
                                                       None]
    assert b.source == str(recorder_db)


def test_batches_equal_one_pass(recorder_db):
    whole = read_all(recorder_db)
    parts = list(read_mockforge_sqlite(recorder_db, batch_size=2))
    assert [len(p) for p in parts] == [2, 2, 1]
    joined = EventBatch.concat(parts)
    for name in COLUMNS:
        np.testing.assert_array_equal(getattr(joined, name), getattr(whole, name), err_msg=name)
    for k, v in whole.extra.items():
        assert joined.extra[k].tolist() == v.tolist(), k


def test_secrets_never_survive(tmp_path):
    secrets = ["SECRET-AUTHZ", "SECRET-COOKIE", "SECRET-QP", "SECRET-PATHQ", "SECRET-KEY",
               "SECRET-REF", "SECRET-PW", "SECRET-RAWQ"]
    db = make_db(tmp_path / "r.db", [
        req("a", "2024-01-01T00:00:00Z", "/api/login?access_token=SECRET-PATHQ",
            query_params={"token": "SECRET-QP", "page": "1", "password": ["SECRET-PW", "x"]},
            headers={"Authorization": "Bearer SECRET-AUTHZ", "Cookie": "s=SECRET-COOKIE",
                     "X-Api-Key": "SECRET-KEY",
                     "Referer": "https://app.example.com/?api_key=SECRET-REF"},
            body='{"password": "SECRET-PW"}'),
        req("b", "2024-01-01T00:00:01Z", query_params="?client_secret=SECRET-RAWQ&x=1"),
    ], responses=[("a", 200, {"Set-Cookie": "s=SECRET-COOKIE"})])
    b = read_all(db)
    text = everything(b)
    for s in secrets:
        assert s not in text, s
    assert b.extra["header:authorization"][0] == "[REDACTED]"
    assert b.extra["header:cookie"][0] == "[REDACTED]"
    assert b.extra["header:x-api-key"][0] == "[REDACTED]"
    assert b.extra["query"].tolist() == [
        "access_token=[REDACTED]&token=[REDACTED]&page=1&password=[REDACTED]&password=[REDACTED]",
        "client_secret=[REDACTED]&x=1",
    ]
    assert b.endpoint.tolist() == ["/api/login", "/api/users/{id}"]


def test_bad_rows_are_reported(tmp_path):
    db = make_db(tmp_path / "bad.db", [
        req("ok1", "2024-01-01T00:00:00Z"),
        req("nullpath", "2024-01-01T00:00:01Z", path=None),
        req("negdur", "2024-01-01T00:00:02Z", duration_ms=-5),
        req("garbage", "last tuesday"),
        req("nullts", None),
        req("hdrs", "2024-01-01T00:00:03Z", headers="not json"),
        req("qp", "2024-01-01T00:00:04Z", query_params="{broken"),
        req("status", "2024-01-01T00:00:05Z", status_code=42),
        req("textdur", "2024-01-01T00:00:06Z", duration_ms="slow"),
        req("emptypath", "2024-01-01T00:00:07Z", path=""),
        req("ok2", "2024-01-01T00:00:08Z"),
    ], ddl=LOOSE_DDL)
    report = BadRecordReport(keep=20)
    b = read_all(db, report=report)
    assert b.line.tolist() == [1, 11]
    got = sorted((r.line, r.field) for r in report.first)
    assert got == [(2, "path"), (3, "duration_ms"), (4, "timestamp"), (5, "timestamp"),
                   (6, "headers"), (7, "query_params"), (8, "status_code"), (9, "duration_ms"),
                   (10, "path")]
    reasons = {r.line: r.reason for r in report.first}
    assert reasons[2] == "missing" and "-5" in reasons[3] and "last tuesday" in reasons[4]
    assert report.by_field == {"path": 2, "duration_ms": 2, "timestamp": 2, "headers": 1,
                               "query_params": 1, "status_code": 1}
    # unparseable timestamps sort first (then by rowid), so they are the first bad rows met
    assert [r.line for r in report.first[:2]] == [4, 5]


def test_strict_raises_with_rowid(tmp_path):
    db = make_db(tmp_path / "bad.db", [
        req("a", "2024-01-01T00:00:00Z"),
        req("b", "2024-01-01T00:00:01Z", duration_ms=-1),
    ], ddl=LOOSE_DDL)
    with pytest.raises(BadRecordError) as err:
        read_all(db, strict=True)
    assert (err.value.bad.line, err.value.bad.field) == (2, "duration_ms")
    assert str(db) in str(err.value)


def test_lenient_without_report_warns(tmp_path):
    db = make_db(tmp_path / "bad.db", [req("a", "2024-01-01T00:00:00Z"), req("b", "nope")])
    with pytest.warns(UserWarning, match="skipped 1 bad record"):
        assert len(read_all(db)) == 1


def test_epoch_timestamps_and_order(tmp_path):
    # epoch numbers in the recorder's TEXT column are stored (and read back) as text
    db = make_db(tmp_path / "e.db", [
        req("ms", 1704110402000),
        req("s", 1704110401),
        req("us", "1704110403500000"),
        req("iso", "2024-01-01T11:00:00.000-01:00"),  # = 12:00:00Z, sorts first
        req("real", 1704110404.75),
    ])
    b = read_all(db)
    assert b.ts.tolist() == pytest.approx(
        [1704110400.0, 1704110401.0, 1704110402.0, 1704110403.5, 1704110404.75], abs=1e-6)
    assert b.line.tolist() == [4, 2, 1, 3, 5]


def test_numeric_timestamps(tmp_path):
    # a column without TEXT affinity keeps numbers: seconds, ms and ns by magnitude
    path = tmp_path / "numeric.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE requests (id, timestamp, method, path, duration_ms)")
    con.executemany("INSERT INTO requests VALUES (?, ?, 'GET', '/x', ?)", [
        ("ns", 1704110402 * 10**9, 2.5), ("s", 1704110401.5, 1), ("ms", 1704110400000, 0)])
    con.commit()
    con.close()
    b = read_all(path)
    assert b.ts.tolist() == pytest.approx([1704110400.0, 1704110401.5, 1704110402.0], abs=1e-6)
    assert b.latency_ms.tolist() == [0.0, 1.0, 2.5]
    assert b.line.tolist() == [3, 2, 1]


def test_without_responses_table(tmp_path):
    path = tmp_path / "only-requests.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE requests (id TEXT, timestamp TEXT, method TEXT, path TEXT)")
    con.execute("INSERT INTO requests VALUES ('a', '2024-01-01T00:00:00Z', 'get', '/x/1')")
    con.commit()
    con.close()
    b = read_all(path)
    assert (b.method[0], b.endpoint[0], b.status[0]) == ("GET", "/x/{id}", 0)
    assert np.isnan(b.latency_ms[0]) and b.session[0] == "" and b.persona[0] == "default"


def test_not_a_recorder_db(tmp_path):
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.close()
    with pytest.raises(ValueError, match="no 'requests' table"):
        read_all(other)
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not SQLite\n" * 100)
    with pytest.raises(ValueError, match="cannot read as an SQLite database"):
        read_all(text)
    with pytest.raises(FileNotFoundError):
        read_mockforge_sqlite(tmp_path / "missing.db")


def test_read_only(recorder_db):
    before = recorder_db.read_bytes()
    read_all(recorder_db)
    assert recorder_db.read_bytes() == before


def test_sniff_sqlite(recorder_db):
    assert sniff_sqlite(recorder_db.read_bytes()[:100])
    assert not sniff_sqlite(b'{"log": {}}')
    assert not sniff_sqlite(b"SQLite format 2\x00")
    assert not sniff_sqlite(b"")
