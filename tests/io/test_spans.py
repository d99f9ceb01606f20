from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from driftbayes.events import COLUMNS, BadRecordError, BadRecordReport, EventBatch
from driftbayes.io.spans import (
    TRAINTICKET_COLUMNS,
    read_jaeger_json,
    read_otlp_json,
    read_trainticket_spans,
    sniff_spans,
)
from tests.helpers import needs_real as needs_real_recording
from tests.helpers import real_path

TRAINTICKET = real_path("trainticket-traces") or Path("trainticket-traces")
T0 = 1_700_000_000_000_000_000  # ns


def read_all(reader, path, **kw) -> EventBatch:
    batches = list(reader(path, **kw))
    assert all(len(b) for b in batches)
    return EventBatch.concat(batches)


# --------------------------------------------------------------------------------------------
# OTLP


def s(v):
    return {"stringValue": v}


def i(v):
    return {"intValue": str(v)}


def attrs(kv):
    return [{"key": k, "value": v} for k, v in kv.items()]


def otlp_span(trace, span, kind, start, end, name="span", **kv):
    """Attribute keyword names use ``__`` for ``.`` (``http__route`` → ``http.route``)."""
    return {"traceId": trace, "spanId": span, "parentSpanId": "", "name": name, "kind": kind,
            "startTimeUnixNano": start, "endTimeUnixNano": end,
            "attributes": attrs({k.replace("__", "."): v for k, v in kv.items()})}


def otlp_doc(service, spans):
    return {"resourceSpans": [{
        "resource": {"attributes": attrs({"service.name": s(service)})},
        "scopeSpans": [{"scope": {"name": "x"}, "spans": spans}],
    }]}


DOC_A = otlp_doc("users", [
    # server span with http.route, new semantic conventions, secret in the query
    otlp_span("t1", "a1", 2, str(T0), str(T0 + 12_500_000), name="GET /api/users/{id}",
              **{"http__request__method": s("get"), "http__route": s("/api/users/{id}"),
                 "url__path": s("/api/users/42"), "url__query": s("token=abc&x=1"),
                 "http__response__status_code": i(200), "client__address": s("10.0.0.1")}),
    # client span of the same trace: not a request
    otlp_span("t1", "a2", 3, str(T0 + 1_000_000), str(T0 + 5_000_000),
              **{"http__request__method": s("GET"), "url__full": s("http://db/x")}),
    # internal span
    otlp_span("t1", "a3", 1, str(T0), str(T0 + 1), name="work"),
])
DOC_B = otlp_doc("orders", [
    # old conventions, no route: templated target, missing status, int times, string kind
    otlp_span("t2", "b1", "SPAN_KIND_SERVER", T0 + 10**9, T0 + 10**9 + 3_000_000,
              **{"http__method": s("POST"),
                 "http__target": s("/api/orders/7/items?api_key=zz&page=2"),
                 "net__peer__ip": s("10.0.0.2"), "session__id": s("sess-9")}),
    # full http.url, catch-all route ignored, status as a plain int value
    otlp_span("t3", "c1", 2, str(T0 + 2 * 10**9), str(T0 + 2 * 10**9 + 1_000_000),
              **{"http__method": s("DELETE"), "http__route": s("/*"),
                 "http__url": s("https://shop.example:8443/api/carts/"
                               "3f2b8c1e-1a2b-4c3d-9e8f-0123456789ab?x=1"),
                 "http__status_code": {"intValue": 404}}),
    # no path attributes at all: route from the span name, method from it too
    otlp_span("t4", "d1", 2, str(T0 + 3 * 10**9), str(T0 + 3 * 10**9 + 2_000_000),
              name="PUT /api/items/:itemId", **{"http__status_code": s("204")}),
])

EXPECTED_OTLP = {
    "ts": [1_700_000_000.0, 1_700_000_001.0, 1_700_000_002.0, 1_700_000_003.0],
    "method": ["GET", "POST", "DELETE", "PUT"],
    "endpoint": ["/api/users/{id}", "/api/orders/{id}/items", "/api/carts/{uuid}",
                 "/api/items/{itemId}"],
    "status": [200, 0, 404, 204],
    "latency_ms": [12.5, 3.0, 1.0, 2.0],
    "persona": ["default"] * 4,
    "session": ["", "sess-9", "", ""],
}
EXPECTED_OTLP_EXTRA = {
    "trace": ["t1", "t2", "t3", "t4"],
    "service": ["users", "orders", "orders", "orders"],
    "client": ["10.0.0.1", "10.0.0.2", None, None],
    "query": ["token=[REDACTED]&x=1", "api_key=[REDACTED]&page=2", "x=1", None],
}


def check_otlp(b: EventBatch, lines: list[int]) -> None:
    for name, values in EXPECTED_OTLP.items():
        assert getattr(b, name).tolist() == values, name
    for name, values in EXPECTED_OTLP_EXTRA.items():
        assert b.extra[name].tolist() == values, name
    assert b.line.tolist() == lines
    assert {name: getattr(b, name).dtype for name in COLUMNS} == {
        name: np.dtype(d) for name, d in COLUMNS.items()}


def test_otlp_single_pretty_document(tmp_path):
    doc = {"resourceSpans": DOC_A["resourceSpans"] + DOC_B["resourceSpans"]}
    path = tmp_path / "traces.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    b = read_all(read_otlp_json, path)
    check_otlp(b, [1, 1, 1, 1])
    assert b.source == str(path)


def test_otlp_json_lines_gzip_and_batches(tmp_path):
    path = tmp_path / "traces.jsonl.gz"
    text = orjson.dumps(DOC_A) + b"\n\n" + orjson.dumps(DOC_B) + b"\n"
    path.write_bytes(gzip.compress(text))
    check_otlp(read_all(read_otlp_json, path), [1, 3, 3, 3])
    sizes = [len(b) for b in read_otlp_json(path, batch_size=2)]
    assert sizes == [2, 2]


def test_otlp_bad_spans_lenient_and_strict(tmp_path):
    bad_doc = otlp_doc("svc", [
        otlp_span("", "x0", 2, str(T0), str(T0 + 1)),                          # spans[0]
        otlp_span("t", "x1", 3, "nope", "nope"),                               # client: ignored
        otlp_span("t", "x2", 2, str(T0), str(T0 - 1), **{"url__path": s("/a")}),  # end < start
        otlp_span("t", "x3", 2, "soon", str(T0), **{"url__path": s("/a")}),
        otlp_span("t", "x4", 2, str(T0), str(T0 + 1), **{"url__path": s("/a"),
                                                          "http__status_code": i(999)}),
        otlp_span("t", "x5", 2, str(T0), str(T0 + 1), name="handler"),         # no endpoint
        "garbage",
        otlp_span("t", "x7", 2, str(T0), str(T0 + 10**6), **{"url__path": s("/ok")}),
    ])
    path = tmp_path / "bad.jsonl"
    path.write_bytes(orjson.dumps(bad_doc) + b"\n" + orjson.dumps(DOC_A)[:50] + b"\n[1]\n")
    report = BadRecordReport(keep=10)
    b = read_all(read_otlp_json, path, report=report)
    assert b.endpoint.tolist() == ["/ok"]
    assert [(x.line, x.field) for x in report.first] == [
        (1, "spans[0].traceId"),
        (1, "spans[2].endTimeUnixNano"),
        (1, "spans[3].startTimeUnixNano"),
        (1, "spans[4].attributes[http.status_code]"),
        (1, "spans[5].attributes[http.route]"),
        (1, "spans[6]"),
        (2, "json"),
        (3, "json"),
    ]
    assert "invalid JSON" in report.first[6].reason
    with pytest.raises(BadRecordError, match=r"spans\[0\]\.traceId"):
        list(read_otlp_json(path, strict=True))
    with pytest.warns(UserWarning, match="skipped 8 bad record"):
        list(read_otlp_json(path))


def test_truncated_single_document_does_not_crash(tmp_path):
    path = tmp_path / "cut.json"
    path.write_bytes(orjson.dumps(DOC_A, option=orjson.OPT_INDENT_2)[:-40])
    report = BadRecordReport()
    assert list(read_otlp_json(path, report=report)) == []
    assert [(x.line, x.field) for x in report.first] == [(1, "json")]
    assert list(read_jaeger_json(path, report=report)) == []
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"\n \n")
    assert list(read_otlp_json(empty)) == []
    with pytest.raises(FileNotFoundError):
        read_otlp_json(tmp_path / "missing.json")


def test_json_lines_with_a_broken_first_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"resourceSpans": [\n' + orjson.dumps(DOC_B) + b"\n")
    report = BadRecordReport()
    b = read_all(read_otlp_json, path, report=report)
    assert b.extra["trace"].tolist() == ["t2", "t3", "t4"]
    assert b.line.tolist() == [2, 2, 2]
    assert [(x.line, x.field) for x in report.first] == [(1, "json")]


# --------------------------------------------------------------------------------------------
# Jaeger


def tag(key, value, type_="string"):
    return {"key": key, "type": type_, "value": value}


def jaeger_span(trace, span, start_us, duration_us, op, process, tags, refs=()):
    return {"traceID": trace, "spanID": span, "operationName": op, "references": list(refs),
            "startTime": start_us, "duration": duration_us, "tags": tags, "processID": process,
            "logs": []}


JAEGER = {"data": [
    {"traceID": "j1", "processes": {"p1": {"serviceName": "gateway", "tags": []},
                                    "p2": {"serviceName": "travel", "tags": []}},
     "spans": [
         jaeger_span("j1", "s1", 1_700_000_000_000_000, 31_497, "/*", "p1",
                     [tag("span.kind", "server"), tag("http.method", "POST"),
                      tag("http.url", "http://gw/api/v1/travel/trips/left?password=x"),
                      tag("http.status_code", 200, "int64")]),
         jaeger_span("j1", "s2", 1_700_000_000_001_000, 29_000, "HTTP POST", "p1",
                     [tag("span.kind", "client"), tag("http.method", "POST")]),
         jaeger_span("j1", "s3", 1_700_000_000_002_000, 25_000,
                     "/api/v1/travel/trips/left", "p2",
                     [tag("span.kind", "server"), tag("http.method", "POST")]),
         jaeger_span("j1", "s4", 1_700_000_000_003_000, 500, "TravelController.query", "p2",
                     []),
     ]},
    {"traceID": "j2", "processes": {"p1": {"serviceName": "users", "tags": []}},
     "spans": [
         jaeger_span("j2", "u1", 1_700_000_005_000_000, 1_000, "GET /api/users/{id}", "p1",
                     [tag("span.kind", "server"), tag("http.route", "/api/users/<int:id>"),
                      tag("http.status_code", "503"), tag("session.id", "s-1")]),
         jaeger_span("j2", "u2", 1_700_000_006_000_000, -5, "GET /x", "p1",
                     [tag("span.kind", "server")]),
         jaeger_span("j2", "", 1_700_000_006_000_000, 5, "GET /x", "p1",
                     [tag("span.kind", "server")]),
     ]},
]}


def test_jaeger_export_exact(tmp_path):
    path = tmp_path / "jaeger.json"
    path.write_bytes(orjson.dumps(JAEGER, option=orjson.OPT_INDENT_2))
    report = BadRecordReport()
    b = read_all(read_jaeger_json, path, report=report)
    assert b.ts.tolist() == [1_700_000_000.0, 1_700_000_000.002, 1_700_000_005.0]
    assert b.latency_ms.tolist() == [31.497, 25.0, 1.0]
    assert b.method.tolist() == ["POST", "POST", "GET"]
    assert b.endpoint.tolist() == ["/api/v1/travel/trips/left", "/api/v1/travel/trips/left",
                                   "/api/users/{id}"]
    assert b.status.tolist() == [200, 0, 503]
    assert b.session.tolist() == ["", "", "s-1"]
    assert b.extra["trace"].tolist() == ["j1", "j1", "j2"]
    assert b.extra["service"].tolist() == ["gateway", "travel", "users"]
    assert b.extra["query"].tolist() == ["password=[REDACTED]", None, None]
    assert [(x.line, x.field) for x in report.first] == [(1, "spans[5].duration"),
                                                         (1, "spans[6].spanID")]
    with pytest.raises(BadRecordError, match=r"spans\[5\]\.duration"):
        list(read_jaeger_json(path, strict=True))
    # an OTLP file is not a Jaeger file
    otlp = tmp_path / "otlp.json"
    otlp.write_bytes(orjson.dumps(DOC_A))
    report = BadRecordReport()
    assert list(read_jaeger_json(otlp, report=report)) == []
    assert report.first[0].field == "data"


# --------------------------------------------------------------------------------------------
# sniffing


def test_sniff_spans():
    otlp = orjson.dumps(DOC_A, option=orjson.OPT_INDENT_2)
    jaeger = orjson.dumps(JAEGER)
    csv = ",".join(TRAINTICKET_COLUMNS).encode() + b"\r\nabc,def"
    assert sniff_spans(otlp) == "otlp"
    assert sniff_spans(b"\xef\xbb\xbf  " + jaeger) == "jaeger"
    assert sniff_spans(csv) == "trainticket-spans"
    assert sniff_spans(gzip.compress(otlp)[:200]) == "otlp"
    assert sniff_spans(gzip.compress(csv)) == "trainticket-spans"
    assert sniff_spans(b'{"ts": 1, "path": "/a"}') is None
    assert sniff_spans(b"time,method,path\n") is None
    assert sniff_spans(b"\x1f\x8bgarbage") is None
    assert sniff_spans(b"") is None


# --------------------------------------------------------------------------------------------
# TrainTicket spans CSV


def tt_row(trace, span, parent, pod, op, start_ms, dur_ms):
    start, end = T0 + int(start_ms * 1e6), T0 + int((start_ms + dur_ms) * 1e6)
    return f"{trace},{span},{parent},{pod},{op},{start},{end},{int(dur_ms * 1e3)}"


def write_tt(tmp_path, rows):
    path = tmp_path / "spans.csv"
    path.write_text("\n".join([",".join(TRAINTICKET_COLUMNS), *rows]) + "\n")
    return path


def test_trainticket_small(tmp_path):
    rows = [
        # trace A: root, gateway client span, /api server span (file order = time order)
        tt_row("A", "a0", "root", "ts-gateway-service-6f6cfc45b-d9pnv", "/*", 0, 30),
        tt_row("A", "a1", "a0", "ts-gateway-service-6f6cfc45b-d9pnv", "HTTP POST", 1, 28),
        # trace B starts before A's /api span shows up, its root comes later in the file
        tt_row("B", "b2", "b1", "ts-user-service-5b67c48447-fj8b7", "/api/v1/users/{id}",
               3_000, 5),
        tt_row("A", "a2", "a1", "ts-travel-service-775f544d9-tmwcv",
               "/api/v1/travelservice/trips/left", 2, 25),
        tt_row("A", "a3", "a2", "ts-travel-service-775f544d9-tmwcv", "HTTP GET", 3, 5),
        tt_row("A", "a4", "a3", "ts-route-service-775f544d9-tmwcv", "/api/v1/routes/{id}", 4,
               4),
        "A,bad,a0,pod,op,notanumber,1,1",
        tt_row("B", "b1", "b0", "ts-gateway-service-6f6cfc45b-d9pnv", "HTTP GET", 2_999, 8),
        tt_row("B", "b0", "root", "ts-gateway-service-6f6cfc45b-d9pnv", "/*", 2_998, 10),
        tt_row("B", "b0", "root", "ts-gateway-service-6f6cfc45b-d9pnv", "/*", 2_998, 10),  # dup
        "",
        # trace C: root only, no /api span; trace D: no root
        tt_row("C", "c0", "root", "ts-gateway-service-6f6cfc45b-d9pnv", "/*", 1_000, 2),
        tt_row("D", "d1", "d0", "ts-user-service-5b67c48447-fj8b7", "/api/v1/users/{id}",
               500, 1),
        "E,e0,root,pod,/*,5,4,1",  # end before start
        "F,f0,root,pod,/*,5,6,1,extra",  # too many fields
        # trace G: root, no /api span
        tt_row("G", "g0", "root", "ts-gateway-service-6f6cfc45b-d9pnv", "/*", 60_000, 1),
    ]
    path = write_tt(tmp_path, rows)
    for batch_size in (2, 3, 1000):
        report = BadRecordReport(keep=10)
        batches = list(read_trainticket_spans(path, batch_size=batch_size, horizon_s=10,
                                              report=report))
        b = EventBatch.concat(batches)
        assert b.extra["trace"].tolist() == ["A", "B"], batch_size
        assert b.ts.tolist() == [1_700_000_000.0, 1_700_000_002.998]
        assert b.latency_ms.tolist() == [30.0, 10.0]
        assert b.method.tolist() == ["POST", "GET"]
        assert b.endpoint.tolist() == ["/api/v1/travelservice/trips/left", "/api/v1/users/{id}"]
        assert b.status.tolist() == [0, 0]
        assert b.session.tolist() == ["", ""]
        assert b.extra["service"].tolist() == ["ts-travel-service", "ts-user-service"]
        assert b.line.tolist() == [2, 10]
        assert sorted((x.line, x.field) for x in report.first) == [
            (8, "StartTimeUnixNano"),
            (13, "OperationName"),
            (14, "ParentID"),
            (15, "EndTimeUnixNano"),
            (16, "csv"),
            (17, "OperationName"),
        ], batch_size
    with pytest.raises(BadRecordError, match="StartTimeUnixNano"):
        list(read_trainticket_spans(path, strict=True))


def test_trainticket_straggler_after_emission_is_ignored(tmp_path):
    gw = "ts-gateway-service-6f6cfc45b-d9pnv"
    rows = [
        tt_row("A", "a0", "root", gw, "/*", 0, 30),
        tt_row("A", "a2", "a0", "ts-travel-service-775f544d9-tmwcv", "/api/v1/first", 2, 25),
        tt_row("Z", "z0", "root", gw, "/*", 60_000, 5),
        tt_row("Z", "z1", "z0", "ts-travel-service-775f544d9-tmwcv", "/api/v1/z", 60_001, 1),
        # an earlier /api span of A arriving after A was emitted (60 s > horizon later)
        tt_row("A", "a1", "a0", "ts-travel-service-775f544d9-tmwcv", "/api/v1/late", 1, 1),
    ]
    path = write_tt(tmp_path, rows)
    report = BadRecordReport()
    batches = list(read_trainticket_spans(path, batch_size=1, horizon_s=40, report=report))
    assert [b.extra["trace"].tolist() for b in batches] == [["A"], ["Z"]]
    assert EventBatch.concat(batches).endpoint.tolist() == ["/api/v1/first", "/api/v1/z"]
    assert report.count == 0
    # within the horizon the earliest /api span wins, whatever the file order
    b = read_all(read_trainticket_spans, path, horizon_s=100)
    assert b.endpoint.tolist() == ["/api/v1/late", "/api/v1/z"]


def test_trainticket_bad_header(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("TraceID,SpanID\n1,2\n")
    with pytest.raises(ValueError, match="not in the header"):
        list(read_trainticket_spans(path))
    with pytest.raises(ValueError, match="horizon_s"):
        read_trainticket_spans(path, horizon_s=0)


# --------------------------------------------------------------------------------------------
# the real recording, checked trace by trace against the derived requests.csv.gz

needs_real = needs_real_recording("trainticket-traces/spans.csv.gz", "trainticket-spans")


def compare_with_requests(b: EventBatch, requests: pd.DataFrame) -> None:
    assert (np.diff(b.ts) >= 0).all()
    got = pd.DataFrame({"trace_id": b.extra["trace"], "ts": b.ts, "latency": b.latency_ms,
                        "method": b.method, "endpoint": b.endpoint,
                        "service": b.extra["service"]}).set_index("trace_id")
    assert got.index.is_unique
    want = requests.set_index("trace_id").loc[got.index]
    np.testing.assert_allclose(got["ts"], want["start_unix_ns"] / 1e9, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["latency"], want["duration_us"] / 1e3, rtol=1e-12)
    assert (got["method"] == want["method"]).all()
    assert (got["endpoint"] == want["endpoint"]).all()
    assert (got["service"] == want["entry_service"]).all()
    assert (b.status == 0).all() and (b.session == "").all()


@needs_real
def test_trainticket_first_rows_match_requests():
    n = 60_000
    head = pd.read_csv(TRAINTICKET / "spans.csv.gz", usecols=["TraceID"], nrows=n + 20_000)
    last_row = head.reset_index().groupby("TraceID")["index"].max()
    complete = set(last_row.index[last_row < n])  # traces entirely inside the first n rows
    report = BadRecordReport()
    b = read_all(read_trainticket_spans, TRAINTICKET / "spans.csv.gz", nrows=n,
                 batch_size=7_000, report=report)
    requests = pd.read_csv(TRAINTICKET / "requests.csv.gz")
    inside = np.isin(b.extra["trace"], list(complete))
    assert inside.sum() > 800
    assert set(b.extra["trace"][inside]) == complete & set(requests["trace_id"])
    compare_with_requests(b.take(inside), requests)
    assert len(report.first) == report.count  # only a few cut-off traces, if any
    assert all(x.field in ("ParentID", "OperationName") for x in report.first)


@needs_real
@pytest.mark.slow
def test_trainticket_full_file_matches_requests():
    report = BadRecordReport()
    b = read_all(read_trainticket_spans, TRAINTICKET / "spans.csv.gz", report=report)
    requests = pd.read_csv(TRAINTICKET / "requests.csv.gz")
    assert report.count == 0
    assert len(b) == len(requests) == 27_364
    assert set(b.extra["trace"]) == set(requests["trace_id"])
    compare_with_requests(b, requests)


def test_otlp_grpc_and_resource_session(tmp_path):
    doc = otlp_doc("cart", [
        otlp_span("g1", "x", 2, str(T0), str(T0 + 500_000), name="cart.CartService/AddItem",
                  **{"rpc__system": s("grpc"), "rpc__service": s("cart.CartService"),
                     "rpc__method": s("AddItem")}),
        otlp_span("g2", "y", 2, str(T0), str(T0), name="GET /api/users/",
                  **{"http__route": s("/api/users/")}),
    ])
    doc["resourceSpans"][0]["resource"]["attributes"] += attrs({"session.id": s("rs-1")})
    path = tmp_path / "grpc.json"
    path.write_bytes(orjson.dumps(doc))
    b = read_all(read_otlp_json, path)
    assert b.endpoint.tolist() == ["/cart.CartService/AddItem", "/api/users"]
    assert b.method.tolist() == ["POST", "GET"]
    assert b.latency_ms.tolist() == [0.5, 0.0]
    assert b.session.tolist() == ["rs-1", "rs-1"]
    assert b.extra["user_agent"].tolist() == [None, None]
