"""Tiny valid records of every input format, for dispatch and fuzz tests.

Each :class:`LineFormat` writes one valid record from a :class:`Rec` and knows how far a record
may be cut so that what is left is *invalid* (never a shorter valid record with fewer fields).
"""

from __future__ import annotations

import datetime as dt
import importlib
import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson
import pytest

from driftbayes.events import COLUMNS, EventBatch

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


@dataclass(frozen=True)
class Rec:
    """The content of one valid record."""

    i: int  # position in the file (ts = T0 + 10 i + dt)
    dt: int  # seconds, 0..9
    pid: int  # path id
    status: int
    latency_ms: int  # whole milliseconds (exact in every format)
    method: str = "GET"
    client: str = "10.0.0.1"

    @property
    def ts(self) -> int:
        return T0 + 10 * self.i + self.dt


def need(module: str):
    """Skip (with the reason) when a reader module is not there yet."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.skip(f"reader module {module} is not available: {exc}")


def clf(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def iso(ts: int, ms: int = 0) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms:03d}Z"


# ------------------------------------------------------------------------------ line formats


def _jsonl(r: Rec) -> bytes:
    return orjson.dumps({"ts": r.ts, "method": r.method, "path": f"/api/users/{r.pid}?q=1",
                         "status": r.status, "latency_ms": r.latency_ms})


def _combined(r: Rec) -> bytes:
    return (f'{r.client} - - [{clf(r.ts)}] "{r.method} /api/users/{r.pid}?q=1 HTTP/1.1" '
            f'{r.status} 123 "-" "Mozilla/5.0 (test)"').encode()


def _common(r: Rec) -> bytes:
    return (f'{r.client} - - [{clf(r.ts)}] "{r.method} /api/users/{r.pid} HTTP/1.1" '
            f"{r.status} 123").encode()


def _nasa(r: Rec) -> bytes:
    return f"{r.client}\t-\t{r.ts}\t{r.method}\t/api/users/{r.pid}\t{r.status}\t123\t\t".encode()


def _openstack(r: Rec) -> bytes:
    stamp = dt.datetime.fromtimestamp(r.ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return (f"nova-api.log.1.2017-05-16_13:53:08 {stamp}.008 25746 INFO "
            f"nova.osapi_compute.wsgi.server [req-38101a0b-2096-447d-96ea-a692162415ae "
            f"113d3a99c3da401fbd62cc2caa5b96d2 54fadb412c4e40cdbaed9335e4c35a9e - - -] "
            f'10.11.10.1 "{r.method} /v2/54fadb412c4e40cdbaed9335e4c35a9e/servers/{r.pid} '
            f'HTTP/1.1" status: {r.status} len: 1893 time: {r.latency_ms / 1000:.3f}').encode()


def _csv(r: Rec) -> bytes:
    return f"{r.ts},{r.method},/api/users/{r.pid},{r.status},{r.latency_ms}".encode()


def _otlp_line(r: Rec) -> bytes:
    def a(k, v):
        return {"key": k, "value": {"intValue": str(v)} if isinstance(v, int)
                else {"stringValue": v}}

    start = r.ts * 10**9
    span = {"traceId": f"t{r.i}", "spanId": f"s{r.i}", "parentSpanId": "",
            "name": f"{r.method} /api/users/{{id}}", "kind": 2,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + r.latency_ms * 10**6),
            "attributes": [a("http.request.method", r.method),
                           a("url.path", f"/api/users/{r.pid}"),
                           a("http.response.status_code", r.status),
                           a("client.address", r.client)]}
    return orjson.dumps({"resourceSpans": [{
        "resource": {"attributes": [a("service.name", "users")]},
        "scopeSpans": [{"scope": {"name": "x"}, "spans": [span]}]}]})


def _jaeger_line(r: Rec) -> bytes:
    def tag(k, v):
        return {"key": k, "type": "int64" if isinstance(v, int) else "string", "value": v}

    return orjson.dumps({"data": [{
        "traceID": f"t{r.i}", "processes": {"p1": {"serviceName": "users", "tags": []}},
        "spans": [{"traceID": f"t{r.i}", "spanID": f"s{r.i}",
                   "operationName": f"{r.method} /api/users/{{id}}", "references": [],
                   "startTime": r.ts * 10**6, "duration": r.latency_ms * 1000,
                   "tags": [tag("span.kind", "server"), tag("http.method", r.method),
                            tag("http.target", f"/api/users/{r.pid}"),
                            tag("http.status_code", r.status)],
                   "processID": "p1", "logs": []}]}]})


TT_HEADER = (b"TraceID,SpanID,ParentID,PodName,OperationName,StartTimeUnixNano,"
             b"EndTimeUnixNano,Duration")


def _tt(r: Rec) -> bytes:
    start = r.ts * 10**9
    end = start + r.latency_ms * 10**6
    pod = "ts-user-service-5b67c48447-fj8b7"
    return (f"T{r.i},r{r.i},root,ts-gateway-service-6f6cfc45b-d9pnv,/*,{start},{end},"
            f"{r.latency_ms * 1000}\n"
            f"T{r.i},a{r.i},r{r.i},{pod},/api/v1/users/{{id}},{start},{end},"
            f"{r.latency_ms * 1000}").encode()


def _before(marker: bytes, offset: int = 0) -> Callable[[bytes], int]:
    """Cut limit: a cut must leave the record before ``marker`` (+ ``offset``)."""
    return lambda line: line.index(marker) + offset


def _nth(sep: bytes, n: int, offset: int = 0) -> Callable[[bytes], int]:
    def limit(line: bytes) -> int:
        pos = -1
        for _ in range(n):
            pos = line.index(sep, pos + 1)
        return pos + offset
    return limit


@dataclass(frozen=True)
class LineFormat:
    """A line-oriented format: header, one valid record, how far a cut leaves it invalid."""

    fmt: str
    module: str
    record: Callable[[Rec], bytes]
    header: bytes = b""
    #: largest prefix length that is still an invalid record (None: never cut)
    cut_limit: Callable[[bytes], int] | None = None
    #: bytes garbage lines may not contain (e.g. CSV quotes that open multi-line fields)
    forbidden: bytes = b"\n"
    options: tuple = ()

    def kwargs(self) -> dict:
        if self.fmt == "csv":
            from driftbayes.io.csvmap import CsvMapping

            return {"mapping": CsvMapping()}
        return dict(self.options)


LINE_FORMATS = {
    f.fmt: f
    for f in (
        LineFormat("jsonl", "driftbayes.io.jsonl", _jsonl, cut_limit=lambda ln: len(ln) - 1),
        LineFormat("combined", "driftbayes.io.accesslog", _combined,
                   cut_limit=_before(b'" ', 0)),
        LineFormat("common", "driftbayes.io.accesslog", _common, cut_limit=_before(b'" ', 0)),
        LineFormat("nasa-tsv", "driftbayes.io.accesslog", _nasa,
                   header=b"host\tlogname\ttime\tmethod\turl\tresponse\tbytes\treferer\tuseragent",
                   cut_limit=_nth(b"\t", 5, -1)),
        LineFormat("openstack", "driftbayes.io.regexmap", _openstack,
                   cut_limit=_before(b" time: ", 6)),
        LineFormat("csv", "driftbayes.io.csvmap", _csv, header=b"ts,method,path,status,latency_ms",
                   cut_limit=_nth(b",", 4, -1), forbidden=b'\n\r"'),
        LineFormat("otlp", "driftbayes.io.spans", _otlp_line, cut_limit=lambda ln: len(ln) - 1),
        LineFormat("jaeger", "driftbayes.io.spans", _jaeger_line,
                   cut_limit=lambda ln: len(ln) - 1),
        LineFormat("trainticket-spans", "driftbayes.io.spans", _tt, header=TT_HEADER,
                   forbidden=b'\n\r"'),
    )
}


def write_lines(path, fmt: LineFormat, records: list[Rec]):
    lines = ([fmt.header] if fmt.header else []) + [fmt.record(r) for r in records]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


# ------------------------------------------------------------------------------ documents


def har_entry(r: Rec, headers: dict | None = None, url: str | None = None) -> dict:
    headers = {"User-Agent": "Mozilla/5.0 (test)", **(headers or {})}
    return {
        "startedDateTime": iso(r.ts),
        "time": r.latency_ms,
        "request": {"method": r.method,
                    "url": url or f"https://api.example.com/api/users/{r.pid}?q=1",
                    "httpVersion": "HTTP/1.1",
                    "headers": [{"name": k, "value": v} for k, v in headers.items()],
                    "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
        "response": {"status": r.status, "statusText": "", "httpVersion": "HTTP/1.1",
                     "headers": [], "cookies": [], "content": {"size": 0, "mimeType": ""},
                     "redirectURL": "", "headersSize": -1, "bodySize": 0},
        "cache": {},
        "timings": {"send": 0, "wait": r.latency_ms, "receive": 0},
    }


HAR_PREFIX = (b'{"log":{"version":"1.2","creator":{"name":"driftbayes-test","version":"1"},'
              b'"pages":[],"entries":[')
HAR_SUFFIX = b"]}}"


def har_bytes(entries: list[bytes]) -> tuple[bytes, list[int]]:
    """A HAR document of already-serialised entries and each entry's end offset."""
    out = bytearray(HAR_PREFIX)
    ends = []
    for k, e in enumerate(entries):
        if k:
            out += b","
        out += e
        ends.append(len(out))
    out += HAR_SUFFIX
    return bytes(out), ends


def write_har(path, records: list[Rec], **kw):
    doc, _ = har_bytes([orjson.dumps(har_entry(r, **kw)) for r in records])
    path.write_bytes(doc)
    return path


SQLITE_DDL = """
CREATE TABLE requests (
    id TEXT PRIMARY KEY, protocol TEXT, timestamp TEXT, method TEXT, path TEXT,
    query_params TEXT, headers TEXT, body TEXT, body_encoding TEXT DEFAULT 'utf8',
    client_ip TEXT, trace_id TEXT, span_id TEXT, duration_ms INTEGER, status_code INTEGER,
    tags TEXT, created_at TEXT DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE responses (
    request_id TEXT PRIMARY KEY, status_code INTEGER, headers TEXT, body TEXT,
    body_encoding TEXT DEFAULT 'utf8', size_bytes INTEGER, timestamp TEXT,
    created_at TEXT DEFAULT CURRENT_TIMESTAMP);
"""
SQLITE_COLS = ("id", "protocol", "timestamp", "method", "path", "query_params", "headers",
               "body", "client_ip", "trace_id", "span_id", "duration_ms", "status_code", "tags")


def sqlite_row(r: Rec, **kw) -> tuple:
    row = {"id": f"r{r.i}", "protocol": "http", "timestamp": iso(r.ts), "method": r.method,
           "path": f"/api/users/{r.pid}", "query_params": None,
           "headers": orjson.dumps({"user-agent": "test"}).decode(), "body": None,
           "client_ip": r.client, "trace_id": None, "span_id": None,
           "duration_ms": r.latency_ms, "status_code": r.status, "tags": None}
    row.update(kw)
    return tuple(row[c] for c in SQLITE_COLS)


def write_sqlite(path, rows: list[tuple]):
    con = sqlite3.connect(path)
    con.executescript(SQLITE_DDL)
    con.executemany(f"INSERT INTO requests ({', '.join(SQLITE_COLS)}) VALUES "
                    f"({', '.join('?' * len(SQLITE_COLS))})", rows)
    con.commit()
    con.close()
    return path


# ------------------------------------------------------------------------------ comparing


def event_rows(batches, extras: bool = True) -> list[tuple]:
    """Every event as a comparable tuple (line numbers left out; NaN → None)."""
    batch = EventBatch.concat(list(batches))
    rows = []
    cols = [c for c in COLUMNS if c != "line"]
    keys = sorted(batch.extra) if extras else []
    for i in range(len(batch)):
        row = []
        for c in cols:
            v = getattr(batch, c)[i]
            v = v.item() if hasattr(v, "item") else v
            row.append(None if isinstance(v, float) and math.isnan(v) else v)
        row += [(k, batch.extra[k][i]) for k in keys if batch.extra[k][i] is not None]
        rows.append(tuple(row))
    return rows


def as_array(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
